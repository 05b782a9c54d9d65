// `coffee-launcher serve` under faults that outlast the start limit (the
// journal's disk full or read-only): serve keeps the FIFO and waits, and
// once the fault has passed every order delivered is served.
#include "shop.hpp"

#include <doctest/doctest.h>

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

}  // TEST_SUITE
