#include <coffee/pipe_fill.hpp>

#include <fmt/format.h>

#include <coffee/posix.hpp>
#include <coffee/unique_fd.hpp>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>

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

pipe_contents peek_pipe_lines(int fd) {
    pipe_contents seen;
    int unread = 0;
    if (::ioctl(fd, FIONREAD, &unread) != 0 || unread <= 0)
        return seen;
    seen.bytes = static_cast<std::size_t>(unread);
    pipe_ends copy = make_pipe();
    (void)::fcntl(copy.write.get(), F_SETPIPE_SZ, unread);  // best effort; tee stops at its capacity
    const ssize_t copied =
        retry_on_eintr([&] { return ::tee(fd, copy.write.get(), seen.bytes, SPLICE_F_NONBLOCK); });
    seen.all_seen = copied == unread;
    copy.write.reset();
    std::array<char, 65536> buf{};
    for (ssize_t n; (n = retry_on_eintr([&] { return ::read(copy.read.get(), buf.data(), buf.size()); })) > 0;)
        seen.lines += static_cast<std::size_t>(std::count(buf.data(), buf.data() + n, '\n'));
    return seen;
}

}  // namespace coffee
