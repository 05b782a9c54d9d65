#include "shop_watch.hpp"

#include <coffee/errors.hpp>

#include <fmt/format.h>

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace coffee::launcher {

namespace {

constexpr std::string_view barista_prefix = "X_COFFEE_BARISTA_";

std::optional<std::uint64_t> number(std::string_view text) {
    std::uint64_t n = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || ptr != text.data() + text.size())
        return std::nullopt;
    return n;
}

// The first line of a /proc file; empty when it cannot be read.
std::string first_line(const std::filesystem::path& path) {
    std::ifstream in{path};
    std::string line;
    std::getline(in, line);
    return line;
}

}  // namespace

void consumer_report::apply(std::string_view message) {
    while (!message.empty()) {
        const std::size_t lf = message.find('\n');
        const std::string_view line = message.substr(0, lf);
        message.remove_prefix(lf == std::string_view::npos ? message.size() : lf + 1);
        const std::size_t eq = line.find('=');
        if (eq == std::string_view::npos)
            continue;
        const std::string_view key = line.substr(0, eq);
        const std::string_view value = line.substr(eq + 1);
        if (key == "READY") {
            ready = value == "1";
        } else if (key == "STOPPING") {
            stopping = value == "1";
        } else if (key == "STATUS") {
            status.assign(value);
        } else if (key == "X_COFFEE_WAITING") {
            waiting = number(value);
        } else if (key.starts_with(barista_prefix)) {
            const auto n = number(key.substr(barista_prefix.size()));
            if (!n || *n < 1 || *n > 1024)
                continue;
            if (baristas.size() < *n)
                baristas.resize(*n);
            baristas[*n - 1].assign(value == "-" ? std::string_view{} : value);
        }
    }
}

notify_listener::notify_listener(std::filesystem::path path)
    : path_{std::move(path)}, sock_{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)} {
    if (!sock_)
        throw_system_error(errno, "socket for '{}'", path_.native());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.native().size() >= sizeof addr.sun_path)
        throw_system_error(ENAMETOOLONG, "notify socket '{}'", path_.native());
    std::memcpy(addr.sun_path, path_.c_str(), path_.native().size());
    if (::bind(sock_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        throw_system_error(errno, "bind notify socket '{}'", path_.native());
}

notify_listener::~notify_listener() { (void)::unlink(path_.c_str()); }

bool notify_listener::receive(consumer_report& report) {
    bool any = false;
    char buf[16384];
    for (;;) {
        const ssize_t n = ::recv(sock_.get(), buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return any;  // EAGAIN: nothing more
        }
        report.apply({buf, static_cast<std::size_t>(n)});
        any = true;
    }
}

std::optional<bool> blocked_in_pipe_write(pid_t pid) {
    const std::filesystem::path proc = fmt::format("/proc/{}", pid);
    const std::string wchan = first_line(proc / "wchan");
    if (!wchan.empty() && wchan != "0")
        return wchan.find("pipe_write") != std::string::npos;
    // "1 0x3 0x55d0... 0x1000 ...": the syscall number, then its arguments;
    // "running" while it runs in user space.
    const std::string syscall = first_line(proc / "syscall");
    const std::string stat = first_line(proc / "stat");
    const std::size_t paren = stat.rfind(')');
    if (syscall.empty() || paren == std::string::npos || paren + 2 >= stat.size())
        return std::nullopt;
    std::istringstream in{syscall};
    long nr = -1;
    if (!(in >> nr))
        return false;
    return nr == SYS_write && stat[paren + 2] == 'S';
}

}  // namespace coffee::launcher
