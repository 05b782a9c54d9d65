// An LD_PRELOAD shim that records, in order, what a process does to the
// files of one directory (the journal's) and what it shows outside: bytes
// consumed from one FIFO and bytes written to stdout. The crash suite
// (crash_test.cpp) builds from it the states a power cut could leave.
//
//   COFFEE_TRACE_FILE  where the trace goes (created; the shim is off without it)
//   COFFEE_TRACE_DIR   the directory whose files are traced (absolute, no trailing /)
//   COFFEE_TRACE_FIFO  the FIFO whose consumed bytes are counted
//
// Each record is written after the real call succeeded, under one lock, so
// the trace's order is an order the calls really happened in. The format
// is trace_format.hpp's. Built without sanitizers: it runs in front of
// theirs.
#include "trace_format.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using namespace coffee::trace;

template <typename F>
F next(const char* name) {
    return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

struct shim {
    int out = -1;
    std::string dir;
    struct stat dir_st{};
    bool have_fifo = false;
    struct stat fifo_st{};
    struct stat stdout_st{};  // the program may write to it through another descriptor
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    // fd -> traced file id (0: not traced), and whether it is the directory.
    std::uint32_t file_of[4096]{};
    bool is_dir[4096]{};
    // inode -> file id, for the few files a run touches.
    std::uint64_t inode_of[256]{};
    std::uint32_t files = 0;

    ssize_t (*write_)(int, const void*, size_t) = next<ssize_t (*)(int, const void*, size_t)>("write");

    shim() {
        const char* file = std::getenv("COFFEE_TRACE_FILE");
        const char* d = std::getenv("COFFEE_TRACE_DIR");
        if (file == nullptr || d == nullptr)
            return;
        dir = d;
        if (::stat(d, &dir_st) != 0)
            return;
        if (::fstat(STDOUT_FILENO, &stdout_st) != 0)
            return;
        if (const char* f = std::getenv("COFFEE_TRACE_FIFO"))
            have_fifo = ::stat(f, &fifo_st) == 0;
        auto open_ = next<int (*)(const char*, int, ...)>("open");
        const int fd = open_(file, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        // Out of the way of the descriptors the program counts on.
        out = fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 900);
        if (fd >= 0)
            next<int (*)(int)>("close")(fd);  // not ours: the shim is not built yet
    }

    [[nodiscard]] bool on() const noexcept { return out >= 0; }

    void emit(op kind, std::uint32_t file, std::uint64_t a, std::string_view name, std::string_view data,
              std::string_view name2 = {}) {
        const std::string rec = encode(record{kind, file, a, std::string{name}, std::string{name2}, std::string{data}});
        for (std::size_t done = 0; done < rec.size();) {
            const ssize_t n = write_(out, rec.data() + done, rec.size() - done);
            if (n <= 0) {
                if (n < 0 && errno == EINTR)
                    continue;
                std::abort();  // a trace with a hole would prove nothing
            }
            done += static_cast<std::size_t>(n);
        }
    }

    // The name of `path` in the traced directory, or empty.
    [[nodiscard]] std::string name_in_dir(const char* path) const {
        if (path == nullptr || std::strncmp(path, dir.c_str(), dir.size()) != 0 || path[dir.size()] != '/')
            return {};
        const char* name = path + dir.size() + 1;
        return std::strchr(name, '/') != nullptr ? std::string{} : std::string{name};
    }

    std::uint32_t id_of(const struct stat& st) {
        for (std::uint32_t i = 0; i < files; ++i)
            if (inode_of[i] == st.st_ino)
                return i + 1;
        if (files == 256)
            std::abort();
        inode_of[files] = st.st_ino;
        return ++files;
    }

    void opened(int fd, const char* path) {
        if (!on() || fd < 0 || fd >= 4096)
            return;
        struct stat st{};
        if (::fstat(fd, &st) != 0)
            return;
        pthread_mutex_lock(&lock);
        if (S_ISDIR(st.st_mode) && st.st_dev == dir_st.st_dev && st.st_ino == dir_st.st_ino) {
            is_dir[fd] = true;
        } else if (S_ISREG(st.st_mode)) {
            const std::string name = name_in_dir(path);
            if (!name.empty()) {
                file_of[fd] = id_of(st);
                emit(op::open, file_of[fd], static_cast<std::uint64_t>(st.st_size), name, {});
            }
        }
        pthread_mutex_unlock(&lock);
    }

    [[nodiscard]] static bool same(int fd, const struct stat& node) {
        struct stat st{};
        return ::fstat(fd, &st) == 0 && st.st_dev == node.st_dev && st.st_ino == node.st_ino;
    }
    [[nodiscard]] bool is_fifo(int fd) const { return have_fifo && same(fd, fifo_st); }
    [[nodiscard]] bool is_stdout(int fd) const { return on() && traced(fd) == 0 && same(fd, stdout_st); }
    [[nodiscard]] std::uint32_t traced(int fd) const { return fd >= 0 && fd < 4096 ? file_of[fd] : 0; }
};

shim& the() {
    static shim s;
    return s;
}

// Runs `call` under the lock when `fd` is traced (or is stdout), and records
// what it did with `note(result)`.
template <typename Call, typename Note>
auto locked(bool wanted, Call call, Note note) {
    shim& s = the();
    if (!s.on() || !wanted)
        return call();
    pthread_mutex_lock(&s.lock);
    auto r = call();
    const int err = errno;
    note(r);
    pthread_mutex_unlock(&s.lock);
    errno = err;
    return r;
}

std::string gather(const struct iovec* iov, int n, std::size_t bytes) {
    std::string data;
    for (int i = 0; i < n && data.size() < bytes; ++i)
        data.append(static_cast<const char*>(iov[i].iov_base), std::min(iov[i].iov_len, bytes - data.size()));
    return data;
}

void wrote(int fd, const std::string& data, off_t at_or_append) {
    shim& s = the();
    if (s.traced(fd) == 0) {
        s.emit(op::out, 0, data.size(), {}, {});
        return;
    }
    const off_t at = at_or_append >= 0 ? at_or_append : ::lseek(fd, 0, SEEK_CUR) - static_cast<off_t>(data.size());
    s.emit(op::write, s.traced(fd), static_cast<std::uint64_t>(at), {}, data);
}

int open_mode(int flags, va_list ap) {
    return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0;
}

// Counts what a read or splice of `fd` returned when `fd` is the FIFO;
// keeps errno.
ssize_t consumed(int fd, ssize_t r) {
    const int err = errno;
    shim& s = the();
    if (r > 0 && s.on() && s.is_fifo(fd)) {
        pthread_mutex_lock(&s.lock);
        s.emit(op::consume, 0, static_cast<std::uint64_t>(r), {}, {});
        pthread_mutex_unlock(&s.lock);
    }
    errno = err;
    return r;
}

// Notes a descriptor just opened (a relative path is not the directory's:
// the program names the journal by its full path); keeps errno.
int opened(int fd, const char* path) {
    const int err = errno;
    the().opened(fd, path);
    errno = err;
    return fd;
}

}  // namespace

extern "C" {

// The mode argument, there only with O_CREAT or O_TMPFILE.
#define COFFEE_MODE_ARG(flags)          \
    int mode = 0;                       \
    {                                   \
        va_list ap;                     \
        va_start(ap, flags);            \
        mode = open_mode(flags, ap);    \
        va_end(ap);                     \
    }

int open(const char* path, int flags, ...) {
    static auto real = next<int (*)(const char*, int, ...)>("open");
    COFFEE_MODE_ARG(flags)
    return opened(real(path, flags, mode), path);
}
int open64(const char* path, int flags, ...) {
    static auto real = next<int (*)(const char*, int, ...)>("open64");
    COFFEE_MODE_ARG(flags)
    return opened(real(path, flags, mode), path);
}
int openat(int at, const char* path, int flags, ...) {
    static auto real = next<int (*)(int, const char*, int, ...)>("openat");
    COFFEE_MODE_ARG(flags)
    return opened(real(at, path, flags, mode), at == AT_FDCWD ? path : nullptr);
}
int openat64(int at, const char* path, int flags, ...) {
    static auto real = next<int (*)(int, const char*, int, ...)>("openat64");
    COFFEE_MODE_ARG(flags)
    return opened(real(at, path, flags, mode), at == AT_FDCWD ? path : nullptr);
}

int close(int fd) {
    static auto real = next<int (*)(int)>("close");
    shim& s = the();
    if (s.on() && fd >= 0 && fd < 4096 && (s.file_of[fd] != 0 || s.is_dir[fd])) {
        pthread_mutex_lock(&s.lock);
        s.file_of[fd] = 0;
        s.is_dir[fd] = false;
        const int r = real(fd);
        pthread_mutex_unlock(&s.lock);
        return r;
    }
    return real(fd);
}

ssize_t write(int fd, const void* buf, size_t n) {
    static auto real = next<ssize_t (*)(int, const void*, size_t)>("write");
    return locked(
        the().traced(fd) != 0 || the().is_stdout(fd), [&] { return real(fd, buf, n); },
        [&](ssize_t r) {
            if (r > 0)
                wrote(fd, std::string{static_cast<const char*>(buf), static_cast<std::size_t>(r)}, -1);
        });
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
    static auto real = next<ssize_t (*)(int, const struct iovec*, int)>("writev");
    return locked(
        the().traced(fd) != 0 || the().is_stdout(fd), [&] { return real(fd, iov, count); },
        [&](ssize_t r) {
            if (r > 0)
                wrote(fd, gather(iov, count, static_cast<std::size_t>(r)), -1);
        });
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t at) {
    static auto real = next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
    return locked(
        the().traced(fd) != 0, [&] { return real(fd, buf, n, at); },
        [&](ssize_t r) {
            if (r > 0)
                wrote(fd, std::string{static_cast<const char*>(buf), static_cast<std::size_t>(r)}, at);
        });
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off_t at) { return pwrite(fd, buf, n, at); }

int ftruncate(int fd, off_t length) {
    static auto real = next<int (*)(int, off_t)>("ftruncate");
    return locked(
        the().traced(fd) != 0, [&] { return real(fd, length); },
        [&](int r) {
            if (r == 0)
                the().emit(op::truncate, the().traced(fd), static_cast<std::uint64_t>(length), {}, {});
        });
}
int ftruncate64(int fd, off_t length) { return ftruncate(fd, length); }

static int synced(int fd, int (*real)(int)) {
    shim& s = the();
    const bool dir = fd >= 0 && fd < 4096 && s.is_dir[fd];
    return locked(
        dir || s.traced(fd) != 0, [&] { return real(fd); },
        [&](int r) {
            if (r == 0)
                s.emit(dir ? op::sync_dir : op::sync, dir ? 0 : s.traced(fd), 0, {}, {});
        });
}
int fdatasync(int fd) { return synced(fd, next<int (*)(int)>("fdatasync")); }
int fsync(int fd) { return synced(fd, next<int (*)(int)>("fsync")); }

int rename(const char* from, const char* to) {
    static auto real = next<int (*)(const char*, const char*)>("rename");
    shim& s = the();
    const std::string a = s.name_in_dir(from);
    const std::string b = s.name_in_dir(to);
    return locked(
        !a.empty() && !b.empty(), [&] { return real(from, to); },
        [&](int r) {
            if (r == 0)
                s.emit(op::rename, 0, 0, a, {}, b);
        });
}

int unlink(const char* path) {
    static auto real = next<int (*)(const char*)>("unlink");
    shim& s = the();
    const std::string name = s.name_in_dir(path);
    return locked(
        !name.empty(), [&] { return real(path); },
        [&](int r) {
            if (r == 0)
                s.emit(op::unlink, 0, 0, name, {});
        });
}

// Consumed from the FIFO: counted after the call (a read that waits must
// not hold the lock); only the reader consumes, so its own records keep
// their order around it.
ssize_t splice(int in, loff_t* in_off, int out, loff_t* out_off, size_t n, unsigned flags) {
    static auto real = next<ssize_t (*)(int, loff_t*, int, loff_t*, size_t, unsigned)>("splice");
    return consumed(in, real(in, in_off, out, out_off, n, flags));
}

ssize_t read(int fd, void* buf, size_t n) {
    static auto real = next<ssize_t (*)(int, void*, size_t)>("read");
    return consumed(fd, real(fd, buf, n));
}

}  // extern "C"
