#include <coffee/sd_daemon.hpp>

#include <coffee/errors.hpp>
#include <coffee/posix.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

namespace coffee::sd {

namespace {

// The variable as an unsigned number, if it is one.
std::optional<unsigned long> env_number(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr)
        return std::nullopt;
    unsigned long n = 0;
    const char* end = value + std::strlen(value);
    const auto [ptr, ec] = std::from_chars(value, end, n);
    if (ec != std::errc{} || ptr != end || ptr == value)
        return std::nullopt;
    return n;
}

bool is_our_pid(const char* name) {
    const auto pid = env_number(name);
    return pid && *pid == static_cast<unsigned long>(::getpid());
}

}  // namespace

std::vector<unique_fd> take_listen_fds() {
    std::vector<unique_fd> fds;
    const auto count = env_number("LISTEN_FDS");
    if (is_our_pid("LISTEN_PID") && count) {
        for (unsigned long i = 0; i < *count && i < 64; ++i) {
            const int fd = listen_fds_start + static_cast<int>(i);
            if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
                throw_system_error(errno, "inherited descriptor {} (LISTEN_FDS={})", fd, *count);
            fds.emplace_back(fd);
        }
    }
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    return fds;
}

bool notify(std::string_view state) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || (path[0] != '/' && path[0] != '@'))
        return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::size_t length = std::strlen(path);
    if (length >= sizeof addr.sun_path)
        throw_system_error(ENAMETOOLONG, "notify socket '{}'", path);
    std::memcpy(addr.sun_path, path, length);
    if (path[0] == '@')
        addr.sun_path[0] = '\0';  // abstract namespace
    const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);

    unique_fd sock{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    if (!sock)
        throw_system_error(errno, "socket for notify");
    // MSG_DONTWAIT: a receiver that does not read (its queue full) must not
    // hang the shop, which would then ignore --timeout and SIGTERM. The
    // datagram is dropped instead, with EAGAIN.
    const ssize_t n = retry_on_eintr([&] {
        return ::sendto(sock.get(), state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&addr), addr_len);
    });
    if (n < 0)
        throw_system_error(errno, "notify '{}'", path);
    return true;
}

std::optional<duration> watchdog_interval() {
    const auto usec = env_number("WATCHDOG_USEC");
    if (!usec || *usec == 0)
        return std::nullopt;
    if (std::getenv("WATCHDOG_PID") != nullptr && !is_our_pid("WATCHDOG_PID"))
        return std::nullopt;
    return std::chrono::duration_cast<duration>(std::chrono::microseconds{*usec});
}

}  // namespace coffee::sd
