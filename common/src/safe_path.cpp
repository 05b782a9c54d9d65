#include <coffee/safe_path.hpp>

#include <coffee/errors.hpp>
#include <coffee/posix.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <string>

namespace coffee {

namespace fs = std::filesystem;

namespace {

// As the kernel's MAXSYMLINKS: more links than this on one path is a loop.
constexpr int max_symlinks = 40;

unique_fd open_path(int dir_fd, const char* name, int extra_flags) {
    return unique_fd{retry_on_eintr([&] { return ::openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC | extra_flags); })};
}

struct stat stat_of(int fd, const std::string& shown) {
    struct stat st{};
    if (::fstat(fd, &st) != 0)
        throw_system_error(errno, "stat '{}'", shown);
    return st;
}

bool owned_by_us_or_root(const struct stat& st) noexcept { return st.st_uid == 0 || st.st_uid == ::geteuid(); }

[[noreturn]] void refuse(const std::string& shown, const fs::path& asked, const std::string& why) {
    const std::string via = shown == asked.native() ? "" : fmt::format(" (on the way to '{}')", asked.native());
    throw exit_error(exit_noperm, fmt::format("unsafe directory '{}'{}: {}; refusing to use it", shown, via, why));
}

void check_directory(const struct stat& st, const std::string& shown, const fs::path& asked) {
    if (!owned_by_us_or_root(st))
        refuse(shown, asked, fmt::format("owned by uid {}, not by us (uid {}) or root", st.st_uid, ::geteuid()));
    if ((st.st_mode & S_ISVTX) != 0)
        return;  // sticky: others may add entries, but not remove or rename ours
    if ((st.st_mode & S_IWOTH) != 0)
        refuse(shown, asked, fmt::format("writable by others (mode {:04o}) and not sticky", st.st_mode & 07777U));
    if ((st.st_mode & S_IWGRP) != 0)
        refuse(shown, asked, fmt::format("writable by its group, gid {} (mode {:04o}), and not sticky", st.st_gid,
                                         st.st_mode & 07777U));
}

std::string join(const std::string& parent, const std::string& name) { return parent == "/" ? "/" + name : parent + "/" + name; }

// Pushes the components of `path` in front of `todo`, in order.
void push_components(std::deque<std::string>& todo, const fs::path& path) {
    std::deque<std::string> parts;
    for (const fs::path& part : path.relative_path())
        if (!part.empty() && part != ".")
            parts.push_back(part.native());
    todo.insert(todo.begin(), parts.begin(), parts.end());
}

}  // namespace

unique_fd open_safe_directory(const fs::path& dir) {
    const fs::path asked = dir.is_absolute() ? dir : fs::current_path() / dir;
    const auto open_root = [] {
        unique_fd root = open_path(AT_FDCWD, "/", O_DIRECTORY);
        if (!root)
            throw_system_error(errno, "open '/'");
        return root;
    };
    unique_fd current = open_root();
    std::string shown = "/";
    check_directory(stat_of(current.get(), shown), shown, asked);

    std::deque<std::string> todo;
    push_components(todo, asked);
    int links = 0;
    while (!todo.empty()) {
        const std::string name = std::move(todo.front());
        todo.pop_front();
        // ".." is opened, not computed: after a symlink it is the target's
        // parent, which must pass the check like any other directory.
        const std::string next_shown = name == ".." ? fs::path{shown}.parent_path().native() : join(shown, name);
        unique_fd next = open_path(current.get(), name.c_str(), 0);
        if (!next)
            throw_system_error(errno, "open directory '{}'", next_shown);
        const struct stat st = stat_of(next.get(), next_shown);
        if (S_ISLNK(st.st_mode)) {
            if (++links > max_symlinks)
                throw_system_error(ELOOP, "open directory '{}'", asked.native());
            if (!owned_by_us_or_root(st))
                refuse(next_shown, asked, fmt::format("a symbolic link owned by uid {}, not by us (uid {}) or root",
                                                      st.st_uid, ::geteuid()));
            std::string target(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 4095) + 1, '\0');
            const ssize_t n = ::readlinkat(next.get(), "", target.data(), target.size());
            if (n < 0)
                throw_system_error(errno, "read symbolic link '{}'", next_shown);
            target.resize(static_cast<std::size_t>(n));
            const fs::path target_path{target};
            push_components(todo, target_path);
            if (target_path.is_absolute()) {
                current = open_root();
                shown = "/";
            }
            continue;
        }
        if (!S_ISDIR(st.st_mode))
            throw_system_error(ENOTDIR, "open directory '{}'", next_shown);
        check_directory(st, next_shown, asked);
        current = std::move(next);
        shown = next_shown.empty() ? "/" : next_shown;
    }
    return current;
}

void check_safe_directory(const fs::path& dir) { (void)open_safe_directory(dir); }

}  // namespace coffee
