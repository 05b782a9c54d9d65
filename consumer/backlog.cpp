#include "backlog.hpp"

#include <coffee/errors.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/posix.hpp>
#include <coffee/unique_fd.hpp>

#include <fcntl.h>
#include <unistd.h>

namespace coffee::consumer {

namespace {

// Appends the valid lines of the file at `path` to `orders`; false if absent.
bool read_orders(const std::filesystem::path& path, order_batch& orders, std::size_t& rejected) {
    unique_fd fd{retry_on_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC); })};
    if (!fd) {
        if (errno == ENOENT)
            return false;
        throw_system_error(errno, "open backlog '{}'", path.native());
    }
    line_reader lines;
    std::string chunk;
    const auto take = [&](const line_reader::line& line) {
        if (line.check.problem != line_problem::none)
            ++rejected;
        else if (!line.check.text.empty())
            orders.add(line.check.text);
    };
    while (true) {
        chunk.clear();
        if (read_some(fd.get(), chunk, 65536, fmt::format("backlog '{}'", path.native())) == 0)
            break;
        lines.feed(chunk, take);
    }
    if (lines.mid_line())
        lines.feed("\n", take);
    return true;
}

}  // namespace

order_batch take_backlog(const std::filesystem::path& path, std::size_t& rejected) {
    order_batch orders;
    if (read_orders(path, orders, rejected) && ::unlink(path.c_str()) != 0)
        throw_system_error(errno, "remove backlog '{}'", path.native());
    return orders;
}

void save_backlog(const std::filesystem::path& path, const order_batch& orders) {
    order_batch all;
    std::size_t rejected = 0;
    read_orders(path, all, rejected);  // never overwrite orders saved earlier
    all.text += orders.text;

    const std::filesystem::path temporary = path.native() + ".tmp";
    unique_fd fd{retry_on_eintr([&] {
        return ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    })};
    if (!fd)
        throw_system_error(errno, "create backlog '{}'", temporary.native());
    const std::string what = fmt::format("backlog '{}'", temporary.native());
    write_all(fd.get(), all.text, what);
    if (::fsync(fd.get()) != 0)
        throw_system_error(errno, "fsync {}", what);
    fd.reset();
    if (::rename(temporary.c_str(), path.c_str()) != 0)
        throw_system_error(errno, "rename {} to '{}'", what, path.native());
}

}  // namespace coffee::consumer
