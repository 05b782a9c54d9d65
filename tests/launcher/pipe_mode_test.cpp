// coffee-launcher pipe, run as a real process through real pipes.
#include "process_util.hpp"

#include <coffee/child_process.hpp>
#include <coffee/posix.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <thread>

using namespace std::chrono_literals;
using coffee::test::run;

namespace {

const std::string launcher = COFFEE_LAUNCHER;
const std::string test_child = COFFEE_TEST_CHILD;

// Deterministic "random" bytes (xorshift64*), so that the output can be
// checked byte by byte against a second generator without storing it.
class random_bytes {
public:
    explicit random_bytes(std::uint64_t seed) : state_{seed} {}
    void fill(std::string& buf, std::size_t n) {
        buf.resize(n);
        for (std::size_t i = 0; i < n; i += 8) {
            state_ ^= state_ >> 12;
            state_ ^= state_ << 25;
            state_ ^= state_ >> 27;
            const std::uint64_t v = state_ * 0x2545F4914F6CDD1DULL;
            for (std::size_t k = 0; k < 8 && i + k < n; ++k)
                buf[i + k] = static_cast<char>(v >> (8 * k));
        }
    }

private:
    std::uint64_t state_;
};

// Feeds `input_bytes` random bytes; checks that the output is `prefix_bytes`
// of test_child's spew pattern followed by exactly the input.
void check_round_trip(const std::vector<std::string>& argv, std::size_t input_bytes, std::size_t prefix_bytes) {
    auto child = coffee::test::start(argv);
    random_bytes in_gen{42}, check_gen{42};
    std::size_t sent = 0, received = 0, mismatches = 0;
    std::string expected;
    std::size_t expected_offset = 0;
    const auto result = coffee::test::stream(
        child,
        [&](std::string& buf) {
            if (sent == input_bytes)
                return false;
            const std::size_t n = std::min<std::size_t>(1 << 20, input_bytes - sent);
            in_gen.fill(buf, n);
            sent += n;
            return true;
        },
        [&](std::string_view chunk) {
            for (const char c : chunk) {
                char want = 0;
                if (received < prefix_bytes) {
                    want = static_cast<char>('a' + (received % 65536) % 26);
                } else {
                    if (expected_offset == expected.size()) {
                        check_gen.fill(expected, 1 << 20);
                        expected_offset = 0;
                    }
                    want = expected[expected_offset++];
                }
                mismatches += c != want ? 1 : 0;
                ++received;
            }
        },
        120s);
    CHECK_FALSE(result.timed_out);
    CHECK(result.exit_code() == 0);
    CHECK(received == prefix_bytes + input_bytes);
    CHECK(mismatches == 0);
    CHECK(result.err.empty());
}

}  // namespace

TEST_SUITE("launcher pipe") {

TEST_CASE("from a terminal with no input option it prints the blog post's greeting") {
    const int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    REQUIRE(master >= 0);
    coffee::unique_fd master_fd{master};
    REQUIRE(::grantpt(master) == 0);
    REQUIRE(::unlockpt(master) == 0);
    coffee::unique_fd slave{::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC)};
    REQUIRE(slave);
    REQUIRE(::isatty(slave.get()) == 1);
    auto child = coffee::test::start({launcher, "pipe"}, slave.get());
    slave.reset();
    const auto r = coffee::test::communicate(child, {}, 20s);
    CHECK(r.exit_code() == 0);
    CHECK(r.out == "Hello from child!\n");
}

TEST_CASE("stdin from a pipe, --input and --input-file are passed through") {
    SUBCASE("stdin") {
        const auto r = run({launcher, "pipe"}, "Latte\nEspresso\n");
        CHECK(r.exit_code() == 0);
        CHECK(r.out == "Latte\nEspresso\n");
    }
    SUBCASE("--input, to any command") {
        const auto r = run({launcher, "pipe", "--input", "flat white", "--", "tr", "a-z", "A-Z"});
        CHECK(r.exit_code() == 0);
        CHECK(r.out == "FLAT WHITE");
    }
    SUBCASE("--input-file, binary: every byte value, NULs included") {
        coffee::test::temp_dir dir;
        std::string bytes;
        for (int round = 0; round < 3; ++round)
            for (int b = 0; b < 256; ++b)
                bytes += static_cast<char>(b);
        std::ofstream{dir.path() / "in.bin", std::ios::binary} << bytes;
        const auto r = run({launcher, "pipe", "--input-file", (dir.path() / "in.bin").native()});
        CHECK(r.exit_code() == 0);
        CHECK(r.out == bytes);
    }
    SUBCASE("a missing --input-file") {
        const auto r = run({launcher, "pipe", "--input-file", "/nonexistent/orders.txt"});
        CHECK(r.exit_code() == 74);
        CHECK(r.err.find("/nonexistent/orders.txt") != std::string::npos);
    }
}

TEST_CASE("256 MiB of random bytes round-trip through `pipe -- cat` byte-exact") {
    check_round_trip({launcher, "pipe", "--", "cat"}, 256U << 20, 0);
}

TEST_CASE("a child that writes 64 MiB before reading anything does not deadlock") {
    check_round_trip({launcher, "pipe", "--", test_child, "spew", std::to_string(64U << 20)}, 64U << 20, 64U << 20);
}

TEST_CASE("exec failure: a clear error and the shell's exit codes") {
    SUBCASE("not found: 127") {
        const auto r = run({launcher, "pipe", "--input", "x", "--", "coffee-no-such-command"});
        CHECK(r.exit_code() == 127);
        CHECK(r.err.find("cannot run 'coffee-no-such-command': No such file or directory") != std::string::npos);
    }
    SUBCASE("not executable: 126") {
        coffee::test::temp_dir dir;
        const auto file = dir.path() / "not-executable";
        std::ofstream{file} << "#!/bin/sh\necho hi\n";
        const auto r = run({launcher, "pipe", "--input", "x", "--", file.native()});
        CHECK(r.exit_code() == 126);
        CHECK(r.err.find("cannot run '" + file.native() + "': Permission denied") != std::string::npos);
    }
}

TEST_CASE("the child holds only fds 0, 1, 2, with no signal blocked or ignored") {
    const auto r = run({launcher, "pipe", "--input", "", "--", test_child, "inspect"});
    CHECK(r.exit_code() == 0);
    CHECK(r.out.find("fds: 0 1 2\n") != std::string::npos);
    CHECK(r.out.find("SigBlk:\t0000000000000000\n") != std::string::npos);
    CHECK(r.out.find("SigIgn:\t0000000000000000\n") != std::string::npos);
    CHECK(r.out.find("LISTEN_FDS=(unset)") != std::string::npos);
}

TEST_CASE("the exit status and 128+signal propagate") {
    CHECK(run({launcher, "pipe", "--input", "", "--", "sh", "-c", "exit 7"}).exit_code() == 7);
    CHECK(run({launcher, "pipe", "--input", "", "--", "sh", "-c", "kill -9 $$"}).exit_code() == 128 + SIGKILL);
    CHECK(run({launcher, "pipe", "--input", "", "--", "sh", "-c", "kill -TERM $$"}).exit_code() == 128 + SIGTERM);
}

TEST_CASE("SIGTERM to the launcher is passed on, and the child's status comes back") {
    auto child = coffee::test::start({launcher, "pipe", "--", "sleep", "30"});
    std::this_thread::sleep_for(200ms);  // let it start the child
    const auto started = std::chrono::steady_clock::now();
    const auto grandchildren = coffee::test::children_of(child.process.pid());
    CHECK(grandchildren.size() == 1);
    child.process.send_signal(SIGTERM);
    const auto r = coffee::test::communicate(child, {}, 10s);
    CHECK(r.exit_code() == 128 + SIGTERM);
    CHECK(std::chrono::steady_clock::now() - started < 3s);
    for (const pid_t pid : grandchildren)
        CHECK_FALSE(coffee::test::is_alive(pid));
}

TEST_CASE("a grandchild holding the output open does not hang the launcher") {
    const auto started = std::chrono::steady_clock::now();
    const auto r = run({launcher, "pipe", "--wait-delay", "300ms", "--input", "", "--", "sh", "-c", "sleep 30 2>/dev/null & echo $!"}, {}, 20s);
    const auto took = std::chrono::steady_clock::now() - started;
    const pid_t orphan = static_cast<pid_t>(std::atol(r.out.c_str()));
    if (orphan > 0)
        ::kill(orphan, SIGKILL);  // leave nothing behind
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code() == 0);
    CHECK(took < 5s);
    CHECK(r.err.find("still open") != std::string::npos);
}

TEST_CASE("a child that stops reading early is not an error for the launcher") {
    const auto r = run({launcher, "pipe", "--", "head", "-c", "5"}, std::string(1 << 20, 'x'));
    CHECK(r.exit_code() == 0);
    CHECK(r.out == "xxxxx");
}

TEST_CASE("usage errors exit 64 with one line naming the problem") {
    for (const auto& args : std::vector<std::vector<std::string>>{{launcher},
                                                                  {launcher, "brew"},
                                                                  {launcher, "pipe", "--input", "a", "--input-file", "b"},
                                                                  {launcher, "pipe", "cat"},
                                                                  {launcher, "pipe", "--"},
                                                                  {launcher, "pipe", "--no-such-option"},
                                                                  {launcher, "pipe", "--wait-delay", "soon"}}) {
        const auto r = run(args);
        CHECK(r.exit_code() == 64);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
    const auto help = run({launcher, "pipe", "--help"});
    CHECK(help.exit_code() == 0);
    CHECK(help.out.find("Exit codes") != std::string::npos);
}

}  // TEST_SUITE
