// `coffee-launcher serve` under faults that outlast the start limit (the
// journal's disk full or read-only) and under a kill -9 of serve itself:
// serve keeps the FIFO and waits, its consumer never outlives it, and once
// the fault has passed every order delivered is served.
#include "shop.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <signal.h>
#include <unistd.h>

using namespace coffee::test;
using namespace coffee::test::faults;

namespace {

// Serve's log line when it stops restarting quickly and starts waiting.
constexpr std::string_view waiting_line = "keeping the FIFO";

// Quick restarts, so that the start limit comes soon.
const std::vector<std::string> impatient{"--restart-delay", "10ms", "--start-limit", "3"};

void deliver(const std::filesystem::path& fifo, const order_book& book, const std::filesystem::path& dir) {
    auto producers = start_producers(fifo, book, dir);
    expect_delivered(producers);
}

// Waits until serve says it waits (or has exited: the bug this guards against).
bool waits(serve_fixture& serve) {
    const bool said = eventually(
        [&] { return serve.output().err().find(waiting_line) != std::string::npos || !is_alive(serve.pid()); }, 60s);
    return said && is_alive(serve.pid());
}

// Once the fault is gone (`repair`), serve's consumer serves every order of
// `book`; serve then stops as asked, and nothing is lost, torn or doubled.
template <typename Repair>
void served_after(serve_fixture& serve, const order_book& book, Repair&& repair) {
    CHECK(serve.output().lines().empty());
    repair();
    const bool all = all_served(book.all, [&] { return serve.output().lines(); }, 90s);
    CHECK_MESSAGE(all, serve.output().err());
    CHECK(serve.stop() == 0);
    const tally t = count(book.all, serve.output().lines());
    MESSAGE(t.describe());
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
    CHECK(serve.output().err().find("giving up") == std::string::npos);
}

}  // namespace

TEST_SUITE("faults: serve") {

TEST_CASE("the journal's disk is full under serve: serve keeps the FIFO and retries, and once there is room every order is served") {
    temp_dir dir;
    tmpfs_mount disk{dir / "disk", "256k"};
    if (!disk.ok()) {
        skip(disk.why());
        return;
    }
    const auto fifo = dir / "orders";
    const auto journal = dir / "disk" / "journal";
    const order_book book = write_orders(dir.path(), 2, 500);
    disk.fill("filler");
    // With a brew time every order goes the journal's way: no room, no take.
    serve_fixture serve{fifo, impatient, {"--journal", journal.native(), "--brew-time", "1ms", "--baristas", "2", "-q"}};
    deliver(fifo, book, dir.path());
    REQUIRE_MESSAGE(waits(serve), serve.output().err());
    served_after(serve, book, [&] { std::filesystem::remove(dir / "disk" / "filler"); });
}

TEST_CASE("the journal's disk is read-only under serve: serve keeps the FIFO and retries, and once it is writable every order is served") {
    temp_dir dir;
    tmpfs_mount disk{dir / "disk", "1m"};
    if (!disk.ok()) {
        skip(disk.why());
        return;
    }
    REQUIRE(disk.remount("ro"));
    const auto fifo = dir / "orders";
    const auto journal = dir / "disk" / "journal";
    const order_book book = write_orders(dir.path(), 2, 500);
    // Even at brew 0: the journal cannot be opened, the consumer exits 74 at
    // every start, with the FIFO empty or not.
    serve_fixture serve{fifo, impatient, {"--journal", journal.native(), "--brew-time", "0", "-q"}};
    REQUIRE_MESSAGE(waits(serve), serve.output().err());
    deliver(fifo, book, dir.path());
    served_after(serve, book, [&] { REQUIRE(disk.remount("rw")); });
}

TEST_CASE("kill -9 of serve alone: its consumer moves the pipe to its journal and exits, and the next serve serves every order") {
    temp_dir dir;
    const auto fifo = dir / "orders";
    const auto journal = (dir / "journal").native();
    const order_book book = write_orders(dir.path(), 4, 250);
    std::vector<std::string> served;
    {
        // One barista, 50 ms a cup: most orders still wait in the pipe at the kill
        // (and would for longer than the wait below for the consumer to exit).
        serve_fixture first{fifo, {}, {"--journal", journal, "--brew-time", "50ms", "-q"}};
        const pid_t consumer = first.consumer();
        REQUIRE(consumer > 0);
        deliver(fifo, book, dir.path());
        REQUIRE(eventually([&] { return first.output().lines().size() >= 3; }, 20s));
        first.signal(SIGKILL);
        const bool consumer_exited = eventually([&] { return !is_alive(consumer); }, 20s);
        CHECK_MESSAGE(consumer_exited, "the consumer outlived serve: ", first.output().err());
        if (!consumer_exited)
            ::kill(consumer, SIGKILL);  // it would keep the journal locked, and this test hanging
        CHECK(first.wait(30s) == 128 + SIGKILL);
        served = first.output().lines();
        MESSAGE("served before the kill and during the consumer's stop: ", served.size(), " of ", book.all.size());
    }
    serve_fixture second{fifo, {}, {"--journal", journal, "--brew-time", "0", "-q"}};
    const auto all_lines = [&] { return joined(served, second); };
    const bool drained = all_served(book.all, all_lines, 60s);
    CHECK_MESSAGE(drained, second.output().err());
    CHECK(second.stop() == 0);
    const tally t = count(book.all, all_lines());
    MESSAGE(t.describe());
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
}

TEST_CASE("a consumer whose supervisor died before it could watch it stops at once, its pipe's orders in the journal") {
    scratch_shop shop;
    const auto& dir = shop.dir;
    const order_book book = write_orders(dir.path(), 2, 250);
    deliver(shop.fifo, book, dir.path());
    std::vector<std::string> served;
    {
        // Its parent is this test, not the supervisor it was told of: as when
        // serve is killed between the consumer's fork and its watching.
        watched consumer{{"/usr/bin/env", fmt::format("COFFEE_SUPERVISOR_PID={}", ::getppid()), consumer_program,
                          "--fifo", shop.fifo.native(), "--journal", shop.journal.native(), "--brew-time", "50ms"}};
        CHECK_MESSAGE(consumer.wait(20s) == 0, consumer.output().err());
        CHECK(consumer.output().err().find("is gone: stopping") != std::string::npos);
        served = consumer.output().lines();
        CHECK(served.size() <= 1);  // the order being brewed, if any
    }
    consumer_fixture next{shop.fifo, {"--journal", shop.journal.native(), "--brew-time", "0", "-q"}};
    const auto all_lines = [&] { return joined(served, next); };
    CHECK(all_served(book.all, all_lines, 60s));
    CHECK(next.stop() == 0);
    const tally t = count(book.all, all_lines());
    MESSAGE(t.describe());
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
}

}  // TEST_SUITE
