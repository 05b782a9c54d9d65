#include <coffee/fifo.hpp>

#include <coffee/errors.hpp>
#include <coffee/posix.hpp>
#include <coffee/safe_path.hpp>

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdlib>
#include <thread>

namespace coffee {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void throw_not_fifo(const fs::path& path, mode_t mode) {
    throw exit_error(exit_config, fmt::format("'{}' is {}, not a FIFO; refusing to use it", path.native(), file_type_name(mode)));
}

// A FIFO or directory the shop may not create (the system shop's, for a user
// without $XDG_RUNTIME_DIR): the way out, after the error itself.
[[noreturn]] void throw_not_ours_to_create(int err, const std::string& what) {
    throw exit_error(exit_noperm, fmt::format("{}: {}; choose a FIFO this user may create: --fifo PATH, or $COFFEE_FIFO, "
                                              "or set XDG_RUNTIME_DIR for a per-user shop",
                                              what, std::generic_category().message(err)));
}

std::string env_or_empty(const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr ? value : "";
}

bool is_fifo_node(const fs::path& path) {
    struct stat st{};
    return ::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

// Sets the umask for one scope: mkfifoat() and mkdirat() then create exactly
// the mode asked for, with no window in which it is wider (systemd's
// ListenFIFO= does the same). The umask is per process: call it before any
// thread starts.
class umask_guard {
public:
    explicit umask_guard(mode_t mask) noexcept : saved_{::umask(mask)} {}
    ~umask_guard() { ::umask(saved_); }
    umask_guard(const umask_guard&) = delete;
    umask_guard& operator=(const umask_guard&) = delete;

private:
    mode_t saved_;
};

// The FIFO's name in its directory, and that directory, checked and open.
struct fifo_place {
    unique_fd dir;
    std::string name;
};

std::string name_in_directory(const fs::path& path) {
    const std::string name = path.filename().native();
    if (name.empty() || name == "." || name == "..")
        throw exit_error(exit_config, fmt::format("'{}' does not name a FIFO (it ends in a directory)", path.native()));
    return name;
}

fs::path directory_of(const fs::path& path) {
    const fs::path parent = path.parent_path();
    return parent.empty() ? fs::path{"."} : parent;
}

// The directory of `path`, checked by open_safe_directory(). With `create`,
// a missing last component is made, mode 0700 whatever the umask (its own
// parent must exist and be safe).
fifo_place open_fifo_directory(const fs::path& path, bool create) {
    fifo_place place{unique_fd{}, name_in_directory(path)};
    const fs::path dir = directory_of(path);
    try {
        place.dir = open_safe_directory(dir);
        return place;
    } catch (const std::system_error& e) {
        if (!create || e.code().value() != ENOENT || dir.filename().empty() || dir.filename() == "." || dir.filename() == "..")
            throw;
    }
    const unique_fd grandparent = open_safe_directory(directory_of(dir));
    {
        const umask_guard mask{0077};
        if (::mkdirat(grandparent.get(), dir.filename().c_str(), 0700) != 0 && errno != EEXIST) {
            if (errno == EACCES || errno == EPERM)
                throw_not_ours_to_create(errno, fmt::format("create directory '{}'", dir.native()));
            throw_system_error(errno, "create directory '{}' (only its last component is created)", dir.native());
        }
    }
    place.dir = open_safe_directory(dir);
    return place;
}

struct stat stat_fd(int fd, const fs::path& path) {
    struct stat st{};
    if (::fstat(fd, &st) != 0)
        throw_system_error(errno, "fstat '{}'", path.native());
    return st;
}

// What a FIFO must be for the shop to read customers' orders from it, checked
// on the open descriptor. One we created gets the exact mode we asked for.
void check_fifo_for_reading(int fd, const struct stat& st, const fs::path& path, bool created, const fifo_policy& policy) {
    if (!S_ISFIFO(st.st_mode))
        throw_not_fifo(path, st.st_mode);
    const uid_t us = ::geteuid();
    if (created ? st.st_uid != us : (st.st_uid != us && st.st_uid != 0))
        throw exit_error(exit_noperm, fmt::format("FIFO '{}' is owned by uid {}, not by us (uid {}){}; refusing to read orders from it",
                                                  path.native(), st.st_uid, us, created ? "" : " or root"));
    const mode_t mode = st.st_mode & 07777U;
    if (created) {
        if (mode != policy.create_mode && ::fchmod(fd, policy.create_mode) != 0)
            throw_system_error(errno, "chmod FIFO '{}'", path.native());
        return;
    }
    if ((mode & (S_IRGRP | S_IROTH)) != 0)
        throw exit_error(exit_noperm, fmt::format("FIFO '{}' is readable by {} (mode {:04o}): orders are customers' data; "
                                                  "refusing it (chmod go-r)",
                                                  path.native(), (mode & S_IROTH) != 0 ? "everyone" : "its group", mode));
    if ((mode & S_IWOTH) != 0 && !policy.allow_world_writable)
        throw exit_error(exit_noperm, fmt::format("FIFO '{}' is writable by everyone (mode {:04o}); refusing it (chmod o-w, or --allow-world-writable)",
                                                  path.native(), mode));
}

// " (alice)" for a uid with a name, "" for one without.
std::string user_name_of(uid_t uid) {
    struct passwd entry{};
    struct passwd* found = nullptr;
    std::string buffer(16384, '\0');
    if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr)
        return "";
    return fmt::format(" ({})", found->pw_name);
}

// Whom the producer hands customers' orders to. A FIFO owned by us or root
// is the shop's; so is any FIFO in a directory that only its owner (us or
// root: the directory was checked) can write to, since only they can have
// put it there. In a directory that others may write to (sticky, as /tmp),
// anyone may have made it: one of another user's is theirs, and so would be
// the orders, and the pipe they may leave full.
void check_fifo_for_writing(const struct stat& fifo, int dir_fd, const fs::path& path, bool allow_other_owner) {
    const uid_t us = ::geteuid();
    if (fifo.st_uid == us || fifo.st_uid == 0 || allow_other_owner)
        return;
    const struct stat dir = stat_fd(dir_fd, directory_of(path));
    if ((dir.st_mode & (S_IWGRP | S_IWOTH)) == 0)
        return;
    throw exit_error(exit_noperm, fmt::format("FIFO '{}' is owned by uid {}{}, not by us (uid {}) or root, in a directory "
                                              "others may write to (mode {:04o}): it may be theirs, not the shop's; refusing "
                                              "to deliver orders to it (--allow-other-owner to deliver anyway)",
                                              path.native(), fifo.st_uid, user_name_of(fifo.st_uid), us,
                                              dir.st_mode & 07777U));
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
        throw exit_error(exit_config, fmt::format("{} is {}, not a FIFO; refusing to use it", what, file_type_name(st.st_mode)));
}

void check_open_for_reading(int fd, const std::string& what) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0)
        throw_system_error(errno, "fcntl(F_GETFL) {}", what);
    if ((flags & O_ACCMODE) == O_WRONLY)
        throw exit_error(exit_config, fmt::format("{} is open for writing only; the shop reads orders from it, so it "
                                                  "needs a read end (O_RDONLY or O_RDWR); refusing to use it",
                                                  what));
}

unique_fd open_fifo_for_reading(const fs::path& path, const fifo_policy& policy) {
    // Everything relative to the checked directory, nothing by name alone: a
    // chmod() by name could follow a symlink swapped in after mkfifo().
    const fifo_place place = open_fifo_directory(path, true);
    // A node that vanishes between mkfifoat() and the open (someone else's,
    // in a sticky directory) is looked for again, a few times.
    for (int attempt = 1;; ++attempt) {
        bool created = false;
        {
            const umask_guard mask{static_cast<mode_t>(~policy.create_mode & 0777U)};
            created = ::mkfifoat(place.dir.get(), place.name.c_str(), policy.create_mode) == 0;
        }
        if (!created && (errno == EACCES || errno == EPERM))
            throw_not_ours_to_create(errno, fmt::format("create FIFO '{}'", path.native()));
        if (!created && errno != EEXIST)
            throw_system_error(errno, "create FIFO '{}'", path.native());

        // The type before opening: opening a device could have side effects.
        struct stat before{};
        if (::fstatat(place.dir.get(), place.name.c_str(), &before, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT && attempt < 10)
                continue;
            throw_system_error(errno, "stat '{}'", path.native());
        }
        if (!S_ISFIFO(before.st_mode))
            throw_not_fifo(path, before.st_mode);
        // O_RDWR: we hold a write end ourselves, so read() never sees EOF when
        // the last producer closes, and the open does not wait for a writer.
        unique_fd fd{retry_on_eintr([&] {
            return ::openat(place.dir.get(), place.name.c_str(), O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        })};
        if (!fd && errno == ENOENT && attempt < 10)
            continue;
        if (!fd && errno == ELOOP)
            throw_not_fifo(path, S_IFLNK);
        if (!fd)
            throw_system_error(errno, "open FIFO '{}'", path.native());
        const struct stat after = stat_fd(fd.get(), path);
        if (after.st_dev != before.st_dev || after.st_ino != before.st_ino)
            throw exit_error(exit_noperm, fmt::format("FIFO '{}' was replaced while we opened it; refusing it", path.native()));
        check_fifo_for_reading(fd.get(), after, path, created, policy);
        return fd;
    }
}

unique_fd lock_fifo(const fs::path& fifo_path) {
    const fifo_place place = open_fifo_directory(fifo_path, false);
    const std::string name = place.name + ".lock";
    const fs::path lock_path = fifo_path.native() + ".lock";
    unique_fd fd;
    {
        const umask_guard mask{0077};
        // O_NONBLOCK: a FIFO planted under this name must not block us.
        fd = unique_fd{retry_on_eintr([&] {
            return ::openat(place.dir.get(), name.c_str(), O_RDONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        })};
    }
    if (!fd && errno == ELOOP)
        throw exit_error(exit_noperm, fmt::format("lock file '{}' is a symbolic link; refusing it", lock_path.native()));
    if (!fd)
        throw_system_error(errno, "open the lock file '{}' (the FIFO's directory must be writable by the shop)",
                           lock_path.native());
    const struct stat st = stat_fd(fd.get(), lock_path);
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != ::geteuid())
        throw exit_error(exit_noperm, fmt::format("lock file '{}' is not a plain file of ours (uid {}, {} link(s), {}); "
                                                  "refusing it",
                                                  lock_path.native(), st.st_uid, st.st_nlink, file_type_name(st.st_mode)));
    // Nobody else may open it, or they could hold the lock.
    if ((st.st_mode & 07777U) != 0600 && ::fchmod(fd.get(), 0600) != 0)
        throw_system_error(errno, "chmod the lock file '{}'", lock_path.native());
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            throw exit_error(exit_tempfail, fmt::format("another consumer already reads '{}' (it holds '{}')",
                                                        fifo_path.native(), lock_path.native()));
        throw_system_error(errno, "lock '{}'", lock_path.native());
    }
    return fd;
}

unique_fd open_fifo_for_writing(const fs::path& path, duration wait, bool allow_other_owner) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + wait;
    auto pause = std::chrono::milliseconds{5};
    for (;;) {
        // The directory first: a FIFO in a directory that someone else
        // controls may be theirs, and the orders customers' data.
        std::optional<fifo_place> place;
        int err = 0;
        try {
            place = open_fifo_directory(path, false);
        } catch (const std::system_error& e) {
            if (e.code().value() != ENOENT)
                throw;
            err = ENOENT;  // not made yet: the consumer creates it
        }
        struct stat st{};
        if (place && ::fstatat(place->dir.get(), place->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
            err = errno;
        if (place && err == 0) {
            if (!S_ISFIFO(st.st_mode))
                throw_not_fifo(path, st.st_mode);
            check_fifo_for_writing(st, place->dir.get(), path, allow_other_owner);
            // O_NONBLOCK: fail with ENXIO instead of blocking when no one reads.
            unique_fd fd{retry_on_eintr([&] {
                return ::openat(place->dir.get(), place->name.c_str(), O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
            })};
            if (fd) {
                const struct stat opened = stat_fd(fd.get(), path);
                if (!S_ISFIFO(opened.st_mode))
                    throw_not_fifo(path, opened.st_mode);
                check_fifo_for_writing(opened, place->dir.get(), path, allow_other_owner);
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
