#include <coffee/fifo.hpp>

#include <coffee/errors.hpp>
#include <coffee/posix.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdlib>
#include <thread>

namespace coffee {

namespace fs = std::filesystem;

namespace {

std::string_view type_name(mode_t mode) noexcept {
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFLNK: return "a symbolic link";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFIFO: return "a FIFO";
    default: return "not a FIFO";
    }
}

[[noreturn]] void throw_not_fifo(const fs::path& path, mode_t mode) {
    throw exit_error(exit_config, fmt::format("'{}' is {}, not a FIFO; refusing to use it", path.native(), type_name(mode)));
}

std::string env_or_empty(const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr ? value : "";
}

bool is_fifo_node(const fs::path& path) {
    struct stat st{};
    return ::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

void make_parent_directory(const fs::path& path) {
    const fs::path parent = path.parent_path();
    if (parent.empty())
        return;
    if (::mkdir(parent.c_str(), 0700) == 0) {
        if (::chmod(parent.c_str(), 0700) != 0)  // the umask may have narrowed it
            throw_system_error(errno, "chmod directory '{}'", parent.native());
        return;
    }
    if (errno != EEXIST)
        throw_system_error(errno, "create directory '{}' (only its last component is created)", parent.native());
}

}  // namespace

fs::path default_fifo_path(bool for_producer) {
    if (const std::string fifo = env_or_empty("COFFEE_FIFO"); !fifo.empty())
        return fifo;
    const std::string runtime_dir = env_or_empty("XDG_RUNTIME_DIR");
    if (::geteuid() == 0 || runtime_dir.empty())
        return system_fifo_path;
    fs::path per_user = fs::path{runtime_dir} / "coffee-shop" / "orders";
    if (for_producer && !is_fifo_node(per_user) && is_fifo_node(system_fifo_path))
        return system_fifo_path;
    return per_user;
}

void check_is_fifo(int fd, const std::string& what) {
    struct stat st{};
    if (::fstat(fd, &st) != 0)
        throw_system_error(errno, "fstat {}", what);
    if (!S_ISFIFO(st.st_mode))
        throw exit_error(exit_config, fmt::format("{} is {}, not a FIFO; refusing to use it", what, type_name(st.st_mode)));
}

unique_fd open_fifo_for_reading(const fs::path& path, const fifo_policy& policy) {
    // mkfifo() first, lstat() after: no window in which we check one node and
    // another appears (the open below then checks it is the same node).
    const auto try_mkfifo = [&] { return ::mkfifo(path.c_str(), policy.create_mode) == 0; };
    bool created = try_mkfifo();
    if (!created && errno == ENOENT) {
        make_parent_directory(path);
        created = try_mkfifo();
    }
    if (!created && errno != EEXIST)
        throw_system_error(errno, "create FIFO '{}'", path.native());
    // mkfifo() honours the umask, which may even deny us our own access: set
    // the mode we were asked for before opening (the open below checks that
    // it is still the node we made).
    if (created && ::chmod(path.c_str(), policy.create_mode) != 0)
        throw_system_error(errno, "chmod FIFO '{}'", path.native());

    struct stat before{};
    if (::lstat(path.c_str(), &before) != 0)
        throw_system_error(errno, "stat '{}'", path.native());
    if (!S_ISFIFO(before.st_mode))
        throw_not_fifo(path, before.st_mode);
    if (!created) {
        if (before.st_uid != ::geteuid() && before.st_uid != 0)
            throw exit_error(exit_noperm, fmt::format("FIFO '{}' is owned by uid {}, not by us (uid {}) or root; refusing to read orders from it",
                                                      path.native(), before.st_uid, ::geteuid()));
        if ((before.st_mode & S_IWOTH) != 0 && !policy.allow_world_writable)
            throw exit_error(exit_noperm, fmt::format("FIFO '{}' is writable by everyone (mode {:04o}); refusing it (chmod o-w, or --allow-world-writable)",
                                                      path.native(), before.st_mode & 07777U));
    }

    // O_RDWR: we hold a write end ourselves, so read() never sees EOF when
    // the last producer closes, and the open does not wait for a writer.
    unique_fd fd{retry_on_eintr([&] { return ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC); })};
    if (!fd)
        throw_system_error(errno, "open FIFO '{}'", path.native());
    struct stat after{};
    if (::fstat(fd.get(), &after) != 0)
        throw_system_error(errno, "fstat '{}'", path.native());
    if (after.st_dev != before.st_dev || after.st_ino != before.st_ino)
        throw exit_error(exit_noperm, fmt::format("FIFO '{}' was replaced while we opened it; refusing it", path.native()));
    return fd;
}

unique_fd open_fifo_for_writing(const fs::path& path, duration wait) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + wait;
    auto pause = std::chrono::milliseconds{5};
    for (;;) {
        struct stat st{};
        const bool exists = ::lstat(path.c_str(), &st) == 0;
        if (exists && !S_ISFIFO(st.st_mode))
            throw_not_fifo(path, st.st_mode);
        int err = exists ? 0 : errno;
        if (exists) {
            // O_NONBLOCK: fail with ENXIO instead of blocking when no one reads.
            unique_fd fd{retry_on_eintr([&] { return ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC); })};
            if (fd) {
                struct stat opened{};
                if (::fstat(fd.get(), &opened) != 0)
                    throw_system_error(errno, "fstat '{}'", path.native());
                if (!S_ISFIFO(opened.st_mode))
                    throw_not_fifo(path, opened.st_mode);
                set_nonblocking(fd.get(), false);
                return fd;
            }
            err = errno;
        }
        if (err == EACCES || err == EPERM)
            throw exit_error(exit_noperm, fmt::format("cannot open FIFO '{}' for writing: {} (is your user in the shop's group?)",
                                                      path.native(), std::strerror(err)));
        if (err == ELOOP)
            throw exit_error(exit_config, fmt::format("'{}' is a symbolic link, not a FIFO; refusing to use it", path.native()));
        if (err != ENXIO && err != ENOENT)
            throw_system_error(err, "open FIFO '{}'", path.native());
        if (clock::now() >= deadline) {
            const std::string why = err == ENOENT ? "does not exist" : "has no consumer reading it";
            throw exit_error(exit_unavailable, fmt::format("FIFO '{}' {} (waited {}); is coffee-consumer running?",
                                                           path.native(), why, format_duration(wait)));
        }
        std::this_thread::sleep_for(std::min<clock::duration>(pause, deadline - clock::now()));
        pause = std::min(pause * 2, std::chrono::milliseconds{100});
    }
}

}  // namespace coffee
