#include "process_util.hpp"

#include <coffee/child_process.hpp>
#include <coffee/unique_fd.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

using namespace std::chrono_literals;
using coffee::child_process;

namespace {

std::string read_all(coffee::unique_fd& fd) {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) != 0;) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

// Runs argv with its stdout on a pipe; returns what it printed and its status.
std::pair<std::string, int> output_of(coffee::spawn_request request) {
    auto [read_end, write_end] = coffee::make_pipe();
    request.fds.push_back({STDOUT_FILENO, write_end.get()});
    auto child = child_process::spawn(request);
    write_end.reset();
    std::string out = read_all(read_end);
    return {out, child.wait()};
}

}  // namespace

TEST_SUITE("child_process") {

TEST_CASE("exec failure surfaces in the parent with its errno, and the child is reaped") {
    SUBCASE("not found") {
        try {
            (void)child_process::spawn({.argv = {"/nonexistent/coffee"}});
            FAIL("spawn should have thrown");
        } catch (const coffee::exec_error& e) {
            CHECK(e.code() == std::errc::no_such_file_or_directory);
            CHECK(std::string{e.what()}.find("/nonexistent/coffee") != std::string::npos);
        }
    }
    SUBCASE("not executable") {
        coffee::test::temp_dir dir;
        const auto file = dir.path() / "script";
        std::ofstream{file} << "#!/bin/sh\nexit 0\n";
        try {
            (void)child_process::spawn({.argv = {file.native()}});
            FAIL("spawn should have thrown");
        } catch (const coffee::exec_error& e) {
            CHECK(e.code() == std::errc::permission_denied);
        }
    }
    SUBCASE("a name not on $PATH") {
        CHECK_THROWS_AS((void)child_process::spawn({.argv = {"coffee-no-such-program-here"}}), coffee::exec_error);
    }
    CHECK(coffee::test::children_of(::getpid()).empty());
}

TEST_CASE("a name is looked up in $PATH and the exit status comes back") {
    auto child = child_process::spawn({.argv = {"sh", "-c", "exit 3"}});
    CHECK(child.running());
    const int status = child.wait();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 3);
    CHECK_FALSE(child.running());
    CHECK(child.status() == status);
    CHECK(coffee::exit_code_of(status) == 3);
    CHECK(coffee::describe_wait_status(status) == "exited with status 3");
}

TEST_CASE("mapped descriptors may swap places") {
    auto out = coffee::make_pipe();
    auto err = coffee::make_pipe();
    // stdout goes to `err` and stderr to `out`: a naive dup2 loop would lose one.
    auto child = child_process::spawn({.argv = {"sh", "-c", "echo to-stdout; echo to-stderr >&2"},
                                       .fds = {{STDOUT_FILENO, err.write.get()}, {STDERR_FILENO, out.write.get()}}});
    out.write.reset();
    err.write.reset();
    CHECK(read_all(out.read) == "to-stderr\n");
    CHECK(read_all(err.read) == "to-stdout\n");
    CHECK(child.wait() == 0);
}

TEST_CASE("the child gets only 0, 1, 2 and its mapped fds, whatever our fds' flags") {
    const int leaky = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
    REQUIRE(leaky >= 0);
    coffee::unique_fd guard{leaky};
    auto fifo_like = coffee::make_pipe();
    SUBCASE("standard fds only") {
        const auto [out, status] = output_of({.argv = {COFFEE_TEST_CHILD, "inspect"}});
        CHECK(out.find("fds: 0 1 2\n") != std::string::npos);
        CHECK(status == 0);
    }
    SUBCASE("plus fd 3") {
        const auto [out, status] = output_of({.argv = {COFFEE_TEST_CHILD, "inspect"}, .fds = {{3, fifo_like.read.get()}}});
        CHECK(out.find("fds: 0 1 2 3\n") != std::string::npos);
        CHECK(out.find("fd 3: FIFO\n") != std::string::npos);
        CHECK(status == 0);
    }
}

TEST_CASE("the child starts with an empty signal mask and default dispositions") {
    sigset_t block, old_mask;
    ::sigemptyset(&block);
    ::sigaddset(&block, SIGTERM);
    ::sigaddset(&block, SIGCHLD);
    REQUIRE(::pthread_sigmask(SIG_BLOCK, &block, &old_mask) == 0);
    struct sigaction ignore{}, old_pipe{}, old_usr1{};
    ignore.sa_handler = SIG_IGN;
    REQUIRE(::sigaction(SIGPIPE, &ignore, &old_pipe) == 0);
    REQUIRE(::sigaction(SIGUSR1, &ignore, &old_usr1) == 0);

    const auto [out, status] = output_of({.argv = {COFFEE_TEST_CHILD, "inspect"}});

    ::sigaction(SIGUSR1, &old_usr1, nullptr);
    ::sigaction(SIGPIPE, &old_pipe, nullptr);
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    CHECK(out.find("SigBlk:\t0000000000000000\n") != std::string::npos);
    CHECK(out.find("SigIgn:\t0000000000000000\n") != std::string::npos);
    CHECK(status == 0);
}

TEST_CASE("the environment: set, removed, and the child's own pid in pid_env") {
    ::setenv("COFFEE_TEST_REMOVE_ME", "1", 1);
    ::setenv("LISTEN_PID", "1", 1);  // a stale value must be replaced
    const auto [out, status] = output_of({.argv = {"sh", "-c", "echo ${COFFEE_TEST_REMOVE_ME-unset} $COFFEE_TEST_SET; echo $LISTEN_PID; echo $$"},
                                          .env = {"COFFEE_TEST_REMOVE_ME", "COFFEE_TEST_SET=yes"},
                                          .pid_env = "LISTEN_PID"});
    ::unsetenv("COFFEE_TEST_REMOVE_ME");
    ::unsetenv("LISTEN_PID");
    CHECK(status == 0);
    const auto first = out.find('\n');
    REQUIRE(first != std::string::npos);
    CHECK(out.substr(0, first) == "unset yes");
    const auto second = out.find('\n', first + 1);
    REQUIRE(second != std::string::npos);
    CHECK(out.substr(first + 1, second - first - 1) == out.substr(second + 1, out.size() - second - 2));
}

TEST_CASE("try_wait, terminate and wait") {
    auto child = child_process::spawn({.argv = {"sleep", "30"}});
    CHECK_FALSE(child.try_wait().has_value());
    child.terminate();
    const int status = child.wait();
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGTERM);
    CHECK(coffee::exit_code_of(status) == 128 + SIGTERM);
    CHECK(coffee::describe_wait_status(status) == "killed by SIGTERM");
    CHECK(child.try_wait() == status);
    child.terminate();  // reaped: does nothing, and signals no reused pid
}

TEST_CASE("the destructor kills and reaps, moving transfers the child") {
    pid_t pid = -1;
    {
        auto child = child_process::spawn({.argv = {"sleep", "30"}});
        pid = child.pid();
        child_process moved = std::move(child);
        CHECK(child.pid() == -1);  // NOLINT(bugprone-use-after-move): checking the moved-from state
        CHECK_FALSE(child.running());
        CHECK(moved.pid() == pid);
        CHECK(moved.running());
    }
    CHECK_FALSE(coffee::test::is_alive(pid));
    CHECK(::waitpid(pid, nullptr, WNOHANG) == -1);  // already reaped: no zombie left
    CHECK(errno == ECHILD);

    auto first = child_process::spawn({.argv = {"sleep", "30"}});
    const pid_t first_pid = first.pid();
    first = child_process::spawn({.argv = {"true"}});  // the old child is killed and reaped
    CHECK_FALSE(coffee::test::is_alive(first_pid));
    CHECK(first.wait() == 0);
}

}  // TEST_SUITE
