#include <coffee/errors.hpp>

#include <cerrno>

namespace coffee {

int exit_code_for(const std::system_error& e) noexcept {
    if (e.code().category() == std::system_category() && (e.code().value() == EACCES || e.code().value() == EPERM))
        return exit_noperm;
    return exit_io;
}

}  // namespace coffee
