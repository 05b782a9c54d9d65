#include <coffee/child_process.hpp>
#include <coffee/stop_child.hpp>
#include <coffee/unique_fd.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

using namespace std::chrono_literals;
using coffee::child_process;

namespace {

// Starts test_child with `mode` and waits until it printed "ready" (so a
// SIGTERM it ignores cannot reach it before it does).
child_process start_ready(const std::string& mode, const std::string& arg) {
    auto [read_end, write_end] = coffee::make_pipe();
    auto child = child_process::spawn(
        {.argv = {COFFEE_TEST_CHILD, mode, arg}, .fds = {{STDOUT_FILENO, write_end.get()}}});
    write_end.reset();
    std::string out;
    char buf[64];
    for (ssize_t n; out.find('\n') == std::string::npos && (n = ::read(read_end.get(), buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR)
            continue;
        REQUIRE(n > 0);
        out.append(buf, static_cast<std::size_t>(n));
    }
    REQUIRE(out == "ready\n");
    return child;
}  // TEST_SUITE

}  // namespace

TEST_SUITE("stop_child") {

TEST_CASE("a child that exits on SIGTERM is not sent SIGKILL") {
    auto child = child_process::spawn({.argv = {COFFEE_TEST_CHILD, "sleep", "600000"}});
    const auto result = coffee::stop_child(child, {{SIGTERM, 600s}, {SIGKILL, coffee::forever}});
    CHECK(result.steps == 1);
    CHECK(result.last_signal == SIGTERM);
    REQUIRE(WIFSIGNALED(result.wait_status));
    CHECK(WTERMSIG(result.wait_status) == SIGTERM);
    CHECK_FALSE(child.running());
}  // TEST_SUITE

TEST_CASE("a child that ignores SIGTERM gets SIGKILL after the grace period") {
    auto child = start_ready("ignore-term", "600000");
    const auto before = std::chrono::steady_clock::now();
    const auto result = coffee::stop_child(child, {{SIGTERM, 200ms}, {SIGKILL, coffee::forever}});
    CHECK(std::chrono::steady_clock::now() - before >= 200ms);  // the grace was given, not skipped
    CHECK(result.steps == 2);
    CHECK(result.last_signal == SIGKILL);
    REQUIRE(WIFSIGNALED(result.wait_status));
    CHECK(WTERMSIG(result.wait_status) == SIGKILL);
}  // TEST_SUITE

TEST_CASE("a child that already exited is sent nothing") {
    auto child = child_process::spawn({.argv = {COFFEE_TEST_CHILD, "exit", "3"}});
    (void)child.wait();
    const auto result = coffee::stop_child(child, {{SIGTERM, 1s}, {SIGKILL, coffee::forever}});
    CHECK(result.steps == 0);
    CHECK(result.last_signal == 0);
    REQUIRE(WIFEXITED(result.wait_status));
    CHECK(WEXITSTATUS(result.wait_status) == 3);
}  // TEST_SUITE

TEST_CASE("a schedule moves to the next step only when the grace has passed, and never past the last") {
    coffee::stop_schedule stop;
    CHECK_FALSE(stop.started());
    CHECK_FALSE(stop.deadline());
    const auto t0 = coffee::stop_schedule::clock::now();
    CHECK(stop.begin({{SIGTERM, 5s}, {SIGKILL, coffee::forever}}, t0).signal == SIGTERM);
    CHECK(stop.steps_taken() == 1);
    REQUIRE(stop.deadline());
    CHECK(*stop.deadline() == t0 + 5s);
    CHECK_FALSE(stop.due(t0 + 4s));
    const auto next = stop.due(t0 + 5s);
    REQUIRE(next);
    CHECK(next->signal == SIGKILL);
    CHECK(stop.steps_taken() == 2);
    CHECK_FALSE(stop.deadline());  // the last step waits forever
    CHECK_FALSE(stop.due(t0 + 1000s));
    CHECK_THROWS_AS(stop.begin({}, t0), std::invalid_argument);
}  // TEST_SUITE

}  // TEST_SUITE
