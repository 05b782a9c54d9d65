#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <system_error>

namespace coffee {

// Exit codes, from sysexits.h. README lists them; every --help repeats them.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;       // an unexpected internal error
inline constexpr int exit_usage = 64;        // EX_USAGE: bad option or argument
inline constexpr int exit_data = 65;         // EX_DATAERR: some orders were malformed
inline constexpr int exit_unavailable = 69;  // EX_UNAVAILABLE: no consumer / no FIFO
inline constexpr int exit_oserr = 71;        // EX_OSERR: cannot start a thread (a limit on processes or memory)
inline constexpr int exit_io = 74;           // EX_IOERR: the pipe or stdout broke
inline constexpr int exit_tempfail = 75;     // EX_TEMPFAIL: the FIFO is busy (another consumer)
inline constexpr int exit_noperm = 77;       // EX_NOPERM: permission denied or unsafe FIFO
inline constexpr int exit_config = 78;       // EX_CONFIG: the path is not a FIFO

// A bad command line. main() prints it and exits with exit_usage.
class usage_error : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A malformed line (from a peer, or an order the producer refuses).
class protocol_error : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

// An error that already knows which exit code it deserves, e.g. a FIFO that
// is not safe to use. The message names the object and the problem.
class exit_error : public std::runtime_error {
public:
    exit_error(int code, const std::string& what) : std::runtime_error{what}, code_{code} {}
    [[nodiscard]] int code() const noexcept { return code_; }

private:
    int code_;
};

// Throws std::system_error(err) whose message is the formatted context,
// e.g. throw_system_error(errno, "open '{}'", path).
template <typename... Args>
[[noreturn]] void throw_system_error(int err, fmt::format_string<Args...> context, Args&&... args) {
    throw std::system_error(err, std::system_category(), fmt::format(context, std::forward<Args>(args)...));
}

// The exit code a system error deserves: EACCES/EPERM -> 77, else 74.
[[nodiscard]] int exit_code_for(const std::system_error& e) noexcept;

}  // namespace coffee
