// Unfinished lines (bytes without an LF) and the pipe's size: what a writer
// who leaves a line unfinished, or shrinks the pipe, can do to the orders of
// others, and what an honest writer of big writes must never suffer.
#include "shop.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <string_view>
#include <thread>

using namespace coffee::test;
using namespace coffee::test::faults;

namespace {

bool logged(const watched& w, std::string_view text) { return w.output().err().find(text) != std::string::npos; }

int produce(const std::filesystem::path& fifo, const std::vector<std::string>& orders) {
    std::vector<std::string> argv{producer_program, "--fifo", fifo.native(), "--wait", "30s", "-q"};
    argv.insert(argv.end(), orders.begin(), orders.end());
    return coffee::test::run(argv, spawn_options{}, 60s);
}

// cat FILE > FIFO: one writer of big writes, whose lines are cut between them.
int cat_into(const std::filesystem::path& fifo, const std::filesystem::path& file) {
    return coffee::test::run({"/bin/sh", "-c", "exec cat \"$0\" > \"$1\"", file.native(), fifo.native()}, spawn_options{}, 300s);
}

}  // namespace

TEST_SUITE("faults: unfinished lines") {

TEST_CASE("a pipe shrunk to 4096 bytes while no consumer runs: the consumer sets its size, a cat is served whole") {
    scratch_shop shop;
    REQUIRE(::fcntl(shop.holder.get(), F_SETPIPE_SZ, 4096) == 4096);
    const order_book book = write_orders(shop.dir.path(), 1, 10000);
    const std::vector<std::string> args{"--journal", shop.journal.native(), "--brew-time", "0", "--until-finish"};
    std::optional<consumer_fixture> by_hand;
    std::optional<watched> inherited;
    int wanted = 0;
    SUBCASE("inherited, as from systemd's socket or serve: at least a new pipe's 64 KiB") {
        wanted = 65536;
        std::vector<std::string> argv{"/bin/sh", "-c",
                                      "f=$1; shift; exec 3<>\"$f\"; LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --fifo \"$f\" \"$@\"",
                                      consumer_program, shop.fifo.native()};
        argv.insert(argv.end(), args.begin(), args.end());
        inherited.emplace(argv);
    }
    SUBCASE("by hand, brew 0: 1 MiB") {
        wanted = 1 << 20;
        by_hand.emplace(shop.fifo, args);
    }
    watched& consumer = by_hand ? static_cast<watched&>(*by_hand) : *inherited;
    REQUIRE(eventually([&] { return logged(consumer, "open for orders"); }, 20s));
    CHECK(::fcntl(shop.holder.get(), F_GETPIPE_SZ) == wanted);
    CHECK(logged(consumer, "was shrunk to 4096 bytes"));
    CHECK(cat_into(shop.fifo, book.files[0]) == 0);
    CHECK(produce(shop.fifo, {"--finish"}) == 0);
    CHECK(consumer.wait(300s) == std::optional<int>{0});
    const tally t = count(book.all, consumer.output().lines());
    MESSAGE(t.describe());
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
    CHECK_FALSE(logged(consumer, "unfinished line"));
}

}
