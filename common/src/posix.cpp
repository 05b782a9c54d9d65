#include <coffee/posix.hpp>

#include <coffee/errors.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace coffee {

std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> children;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator{"/proc", ec}) {
        const std::string name = entry.path().filename().native();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        std::ifstream in{entry.path() / "stat"};
        std::string stat;
        std::getline(in, stat);
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        const std::size_t paren = stat.rfind(')');
        if (paren == std::string::npos)
            continue;
        std::istringstream rest{stat.substr(paren + 1)};
        char state = 0;
        long ppid = 0;
        if (rest >> state >> ppid && ppid == parent)
            children.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return children;
}

void ensure_std_fds_open() noexcept {
    for (int fd = 0; fd < 3; ++fd) {
        if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        // open() returns the lowest free descriptor, which is this one.
        const int null_fd = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (null_fd >= 0 && null_fd != fd)
            (void)::close(null_fd);
    }
}

void write_all(int fd, std::string_view data, std::string_view what) {
    while (!data.empty()) {
        const ssize_t n = retry_on_eintr([&] { return ::write(fd, data.data(), data.size()); });
        if (n < 0)
            throw_system_error(errno, "write to {}", what);
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

long read_some(int fd, std::string& out, std::size_t max, std::string_view what) {
    const std::size_t old_size = out.size();
    out.resize(old_size + max);
    const ssize_t n = retry_on_eintr([&] { return ::read(fd, out.data() + old_size, max); });
    const int err = errno;
    out.resize(old_size + (n > 0 ? static_cast<std::size_t>(n) : 0));
    if (n < 0 && err != EAGAIN)
        throw_system_error(err, "read from {}", what);
    errno = err;
    return static_cast<long>(n);
}

void set_nonblocking(int fd, bool on) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) < 0)
        throw_system_error(errno, "fcntl(O_NONBLOCK) on fd {}", fd);
}

unique_fd reopen_pipe_nonblocking(int fd, int access) {
    struct stat was{};
    if (::fstat(fd, &was) != 0 || !S_ISFIFO(was.st_mode))
        return {};
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    unique_fd again{::open(path.c_str(), access | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)};
    struct stat is{};
    if (!again || ::fstat(again.get(), &is) != 0 || is.st_dev != was.st_dev || is.st_ino != was.st_ino)
        return {};
    return again;
}

int grow_pipe(int fd, int wanted, int least) noexcept {
    const int size = ::fcntl(fd, F_GETPIPE_SZ);
    if (size < 0 || size >= wanted)
        return size;
    const int set = ::fcntl(fd, F_SETPIPE_SZ, wanted);
    if (set >= 0)
        return set;
    if (size >= least)
        return size;  // errno says why `wanted` was refused
    if (least >= wanted)
        return -1;
    const int refused = errno;
    const int fallback = ::fcntl(fd, F_SETPIPE_SZ, least);
    if (fallback >= 0)
        errno = refused;
    return fallback;
}

void ignore_sigpipe() noexcept { (void)::signal(SIGPIPE, SIG_IGN); }

std::string_view file_type_name(mode_t mode) noexcept {
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFLNK: return "a symbolic link";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFIFO: return "a FIFO";
    default: return "of another kind";
    }
}

}  // namespace coffee
