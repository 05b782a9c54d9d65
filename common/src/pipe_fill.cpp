#include <coffee/pipe_fill.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/ioctl.h>

namespace coffee {

std::optional<pipe_fill> measure_pipe(int fd) noexcept {
    int unread = 0;
    const int capacity = ::fcntl(fd, F_GETPIPE_SZ);
    if (capacity <= 0 || ::ioctl(fd, FIONREAD, &unread) != 0 || unread < 0)
        return std::nullopt;
    return pipe_fill{static_cast<std::size_t>(unread), static_cast<std::size_t>(capacity)};
}

std::string describe_fill(const pipe_fill& fill) {
    if (fill.capacity % 1024 != 0)
        return fmt::format("{}/{} bytes", fill.unread, fill.capacity);
    return fmt::format("{}/{} KiB", (fill.unread + 1023) / 1024, fill.capacity / 1024);
}

}  // namespace coffee
