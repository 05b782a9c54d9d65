// The consumer under a limit it cannot live with (prlimit): it says what it
// could not do, exits 71, and takes nothing from the pipe.
#include "shop.hpp"
#include "support/users.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <regex>

using namespace coffee::test;
using namespace coffee::test::faults;

TEST_SUITE("faults: resource limits") {

TEST_CASE("a limit on processes: the consumer names the thread it cannot start, exits 71, the pipe's orders left in it") {
    const std::string prlimit = "/usr/bin/prlimit";
    if (::access(prlimit.c_str(), X_OK) != 0) {
        skip("no " + prlimit + " (util-linux)");
        return;
    }
    // RLIMIT_NPROC does not bind root: a throw-away user runs the shop.
    std::string why_not;
    const auto user = throwaway_user::create(why_not);
    if (!user) {
        skip(why_not);
        return;
    }
    temp_dir base;
    REQUIRE(::chmod(base.path().c_str(), 0755) == 0);
    const auto dir = base / "shop";
    REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
    REQUIRE(::chown(dir.c_str(), user->uid(), user->gid()) == 0);
    const auto fifo = dir / "orders";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    REQUIRE(::chown(fifo.c_str(), user->uid(), user->gid()) == 0);
    unique_fd held{::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC)};
    REQUIRE(held);
    REQUIRE(::write(held.get(), "Latte\n", 6) == 6);

    // Its own processes and threads: the main thread, the pipe's watch and
    // a few baristas (a sanitizer's thread too), not 8.
    std::vector<std::string> argv{prlimit, "--nproc=4", "--"};
    for (auto& arg : user->as_user({consumer_program, "--fifo", fifo.native(), "--baristas", "8", "--brew-time", "0",
                                    "--timeout", "5s"}))
        argv.push_back(std::move(arg));
    const int code = run(argv, {.stderr_file = base / "consumer.err"});
    const std::string err = read_file(base / "consumer.err");
    CAPTURE(err);
    CHECK(code == 71);
    CHECK(std::regex_search(err, std::regex{"cannot start barista thread [2-8] of 8: Resource temporarily unavailable"}));
    // Nothing was taken: the order is still in the pipe.
    char buf[64];
    const ssize_t n = ::read(held.get(), buf, sizeof buf);
    CHECK(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))) == "Latte\n");
}

}  // TEST_SUITE
