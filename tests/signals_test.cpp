#include <coffee/signals.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

namespace {

// Restores the thread's signal mask at scope exit, after draining `fd`,
// so that no test leaves a blocked or pending signal behind.
class mask_guard {
public:
    mask_guard() { ::pthread_sigmask(SIG_SETMASK, nullptr, &saved_); }
    ~mask_guard() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
    mask_guard(const mask_guard&) = delete;
    mask_guard& operator=(const mask_guard&) = delete;

private:
    sigset_t saved_{};
};

void drain(const coffee::unique_fd& fd) {
    while (coffee::read_signal(fd)) {
    }
}

bool readable(const coffee::unique_fd& fd) {
    pollfd p{fd.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace

TEST_SUITE("signals") {

TEST_CASE("block_and_watch blocks the signals and returns a non-blocking close-on-exec fd") {
    mask_guard guard;
    const auto fd = coffee::block_and_watch({SIGUSR1, SIGUSR2});
    REQUIRE(fd);
    CHECK((::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK((::fcntl(fd.get(), F_GETFL) & O_NONBLOCK) != 0);
    sigset_t now;
    ::pthread_sigmask(SIG_SETMASK, nullptr, &now);
    CHECK(::sigismember(&now, SIGUSR1) == 1);
    CHECK(::sigismember(&now, SIGUSR2) == 1);
    CHECK(::sigismember(&now, SIGTERM) == 0);
    CHECK_FALSE(readable(fd));
    CHECK_FALSE(coffee::read_signal(fd).has_value());
}

TEST_CASE("a raised signal becomes readable on the fd, once, then nothing is left") {
    mask_guard guard;
    const auto fd = coffee::block_and_watch({SIGUSR1});
    REQUIRE(::raise(SIGUSR1) == 0);
    CHECK(readable(fd));
    CHECK(coffee::read_signal(fd) == SIGUSR1);
    CHECK_FALSE(readable(fd));
    CHECK(coffee::read_signal(fd) == std::nullopt);
    drain(fd);
}

TEST_CASE("signals sent to the process with kill() are read in turn") {
    mask_guard guard;
    const auto fd = coffee::block_and_watch({SIGTERM, SIGINT, SIGHUP});
    REQUIRE(::kill(::getpid(), SIGTERM) == 0);
    REQUIRE(::kill(::getpid(), SIGHUP) == 0);
    int seen_term = 0;
    int seen_hup = 0;
    while (const auto sig = coffee::read_signal(fd)) {
        seen_term += *sig == SIGTERM ? 1 : 0;
        seen_hup += *sig == SIGHUP ? 1 : 0;
        CHECK(*sig != SIGINT);
    }
    CHECK(seen_term == 1);
    CHECK(seen_hup == 1);
    CHECK(coffee::read_signal(fd) == std::nullopt);
}

TEST_CASE("a signal not in the set is not reported") {
    mask_guard guard;
    const auto watched = coffee::block_and_watch({SIGUSR1});
    // Block SIGUSR2 too, so that raising it does not kill the test, but watch only USR1.
    sigset_t usr2;
    ::sigemptyset(&usr2);
    ::sigaddset(&usr2, SIGUSR2);
    REQUIRE(::pthread_sigmask(SIG_BLOCK, &usr2, nullptr) == 0);
    REQUIRE(::raise(SIGUSR2) == 0);
    CHECK(coffee::read_signal(watched) == std::nullopt);
    // Take the pending SIGUSR2 away before the guard unblocks it.
    const auto other = coffee::block_and_watch({SIGUSR2});
    CHECK(coffee::read_signal(other) == SIGUSR2);
    drain(other);
}

TEST_CASE("signal_name names signals the way kill -l does, with SIG") {
    CHECK(coffee::signal_name(SIGTERM) == "SIGTERM");
    CHECK(coffee::signal_name(SIGINT) == "SIGINT");
    CHECK(coffee::signal_name(SIGHUP) == "SIGHUP");
    CHECK(coffee::signal_name(SIGPIPE) == "SIGPIPE");
    CHECK(coffee::signal_name(SIGKILL) == "SIGKILL");
    CHECK(coffee::signal_name(SIGCHLD) == "SIGCHLD");
    CHECK(coffee::signal_name(0) == "signal 0");
    CHECK(coffee::signal_name(1000) == "signal 1000");
    CHECK(coffee::signal_name(-1) == "signal -1");
}

}  // TEST_SUITE
