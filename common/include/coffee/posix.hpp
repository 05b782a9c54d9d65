#pragma once
#include <cerrno>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include <coffee/unique_fd.hpp>

namespace coffee {

// Calls f() until it fails with something other than EINTR. For read, write,
// open, poll, waitpid; never for close (see unique_fd::reset).
template <typename F>
auto retry_on_eintr(F&& f) {
    for (;;) {
        auto r = f();
        if (!(r == -1 && errno == EINTR))
            return r;
    }
}

// Opens /dev/null on any of fds 0, 1, 2 that is closed, so that no file we
// open later lands on a standard descriptor by accident. Call first in main().
void ensure_std_fds_open() noexcept;

// Writes all of `data` to a blocking fd, retrying on EINTR and short writes.
// Throws std::system_error (EPIPE when the reader went away; SIGPIPE must be
// ignored for that).
void write_all(int fd, std::string_view data, std::string_view what);

// Reads up to `max` bytes appended to `out`. Returns the number read; 0 at
// EOF; -1 with errno EAGAIN when a non-blocking fd has nothing. Retries EINTR,
// throws std::system_error on other errors.
long read_some(int fd, std::string& out, std::size_t max, std::string_view what);

// Makes the fd blocking or non-blocking. Throws std::system_error.
void set_nonblocking(int fd, bool on);

// The pids whose parent is `parent` (zombies included), from /proc/*/stat.
// A process that goes away meanwhile is simply not listed.
[[nodiscard]] std::vector<pid_t> children_of(pid_t parent);

// What a stat() mode is, for messages: "a FIFO", "a directory", "a regular
// file", "a symbolic link", ...
[[nodiscard]] std::string_view file_type_name(mode_t mode) noexcept;

// A second open file description of the pipe or FIFO at `fd`, for `access`
// (O_RDONLY or O_WRONLY) and non-blocking, through /proc/self/fd/N, checked
// to be the same pipe (device and inode): its O_NONBLOCK affects no one else,
// where setting it on `fd` would change the pipe end of whoever shares it.
// Invalid when `fd` is no pipe, or without /proc.
[[nodiscard]] unique_fd reopen_pipe_nonblocking(int fd, int access);

// A new pipe's size on Linux (16 pages), and the default
// /proc/sys/fs/pipe-max-size: the most an unprivileged user may ask for.
inline constexpr int new_pipe_size = 65536;
inline constexpr int user_max_pipe_size = 1 << 20;

// Grows the pipe or FIFO at `fd` to at least `wanted` bytes (fcntl
// F_SETPIPE_SZ; the kernel rounds up to a power of two pages). A pipe that
// holds `wanted` already is kept as it is, never shrunk. When `wanted` is
// refused, mostly because it is more than this user may have (EPERM: above
// /proc/sys/fs/pipe-max-size, or over /proc/sys/fs/pipe-user-pages-soft),
// a pipe smaller than `least` (at most `wanted`) is set to `least` instead.
// Returns the size the pipe has then: below `wanted` only when `wanted` was
// refused, errno then saying why; or -1 with errno when it stays below
// `least`, or `fd` is no pipe. Logs nothing: the caller says what it means.
[[nodiscard]] int grow_pipe(int fd, int wanted, int least) noexcept;

// Ignores SIGPIPE so that a write to a pipe without reader fails with EPIPE.
void ignore_sigpipe() noexcept;

}  // namespace coffee
