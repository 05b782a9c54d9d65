// grow_pipe on real pipes: the size asked for, a bigger one kept, and the
// fallback for a user who may not have that much.
#include <coffee/posix.hpp>
#include <coffee/unique_fd.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

constexpr int one_mib = 1 << 20;
constexpr int new_pipe_size = 65536;

int pipe_size(int fd) { return ::fcntl(fd, F_GETPIPE_SZ); }

// How many bytes a writer can put into the pipe before it would block.
long room_in(const coffee::unique_fd& write_end) {
    coffee::set_nonblocking(write_end.get(), true);
    const std::string page(4096, 'x');
    long written = 0;
    for (ssize_t n = 0; (n = ::write(write_end.get(), page.data(), page.size())) > 0;)
        written += n;
    return written;
}

long pipe_max_size() {
    std::ifstream in{"/proc/sys/fs/pipe-max-size"};
    long max = -1;
    in >> max;
    return max;
}

// What grow_pipe did in a child that runs as an unprivileged user.
struct as_user_result {
    bool dropped = false;  // false: root could not become another user
    int small_got = 0, small_errno = 0, small_size = 0;
    int kept_got = 0, kept_errno = 0, kept_size = 0;
};

// grow_pipe(wanted), with `least` a new pipe's size, on a pipe of one page
// and on one of 128 KiB.
as_user_result grow_small_and_kept(int wanted) {
    as_user_result r;
    r.dropped = true;
    const auto small = coffee::make_pipe();
    (void)::fcntl(small.write.get(), F_SETPIPE_SZ, 4096);
    r.small_got = coffee::grow_pipe(small.write.get(), wanted, new_pipe_size);
    r.small_errno = errno;
    r.small_size = pipe_size(small.write.get());
    const auto kept = coffee::make_pipe();
    (void)::fcntl(kept.write.get(), F_SETPIPE_SZ, 131072);
    r.kept_got = coffee::grow_pipe(kept.write.get(), wanted, new_pipe_size);
    r.kept_errno = errno;
    r.kept_size = pipe_size(kept.write.get());
    return r;
}

// grow_small_and_kept() in a child, as uid and gid 65534 when we are root.
as_user_result grow_as_user(int wanted) {
    auto [result_read, result_write] = coffee::make_pipe();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        as_user_result r;
        try {
            if (::geteuid() != 0 || (::setresgid(65534, 65534, 65534) == 0 && ::setresuid(65534, 65534, 65534) == 0))
                r = grow_small_and_kept(wanted);
        } catch (...) {
            ::_exit(1);  // the parent's read comes short
        }
        (void)!::write(result_write.get(), &r, sizeof r);
        ::_exit(0);
    }
    result_write.reset();
    as_user_result r;
    const ssize_t n = coffee::retry_on_eintr([&] { return ::read(result_read.get(), &r, sizeof r); });
    int status = 0;
    REQUIRE(coffee::retry_on_eintr([&] { return ::waitpid(pid, &status, 0); }) == pid);
    REQUIRE(n == static_cast<ssize_t>(sizeof r));
    return r;
}

}  // namespace

TEST_SUITE("pipe size") {

TEST_CASE("grow_pipe keeps a pipe that is bigger than wanted") {
    auto [read_end, write_end] = coffee::make_pipe();
    REQUIRE(::fcntl(write_end.get(), F_SETPIPE_SZ, 131072) == 131072);
    CHECK(coffee::grow_pipe(write_end.get(), new_pipe_size, 4096) == 131072);
    CHECK(pipe_size(read_end.get()) == 131072);
    CHECK(room_in(write_end) == 131072);
}

TEST_CASE("grow_pipe gives a pipe 1 MiB, as root or within pipe-max-size") {
    if (::geteuid() != 0 && pipe_max_size() < one_mib) {
        std::printf("SKIP: not root, and /proc/sys/fs/pipe-max-size is %ld, below 1 MiB\n", pipe_max_size());
        return;
    }
    auto [read_end, write_end] = coffee::make_pipe();
    REQUIRE(pipe_size(write_end.get()) < one_mib);
    const int got = coffee::grow_pipe(write_end.get(), one_mib, new_pipe_size);
    CHECK(got >= one_mib);
    CHECK(pipe_size(read_end.get()) == got);
    CHECK(room_in(write_end) == got);
}

TEST_CASE("grow_pipe falls back to the least size for a user above pipe-max-size, and keeps a pipe already that big") {
    const long max = pipe_max_size();
    if (max <= 0 || max > (1L << 29)) {
        std::printf("SKIP: /proc/sys/fs/pipe-max-size is %ld: no size above it to ask for\n", max);
        return;
    }
    const as_user_result r = grow_as_user(static_cast<int>(max * 2));
    if (!r.dropped) {
        std::printf("SKIP: root here cannot become uid 65534 (setresuid) to be refused a big pipe\n");
        return;
    }
    // One page, and more than may be had: the least size instead.
    CHECK(r.small_got == new_pipe_size);
    CHECK(r.small_errno == EPERM);
    CHECK(r.small_size == new_pipe_size);
    // 128 KiB, more than the least: kept, not shrunk to it.
    CHECK(r.kept_got == 131072);
    CHECK(r.kept_errno == EPERM);
    CHECK(r.kept_size == 131072);
}

TEST_CASE("grow_pipe returns -1 for what is not a pipe") {
    char name[] = "/tmp/coffee-pipe-size-XXXXXX";
    const coffee::unique_fd file{::mkstemp(name)};
    REQUIRE(file);
    ::unlink(name);
    errno = 0;
    CHECK(coffee::grow_pipe(file.get(), one_mib, new_pipe_size) == -1);
    CHECK(errno != 0);
}

}  // TEST_SUITE
