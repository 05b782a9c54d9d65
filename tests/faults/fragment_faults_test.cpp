// Unfinished lines (bytes without an LF) and the pipe's size: what a writer
// who leaves a line unfinished, or shrinks the pipe, can do to the orders of
// others, and what an honest writer of big writes must never suffer.
#include "shop.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <string_view>
#include <thread>

using namespace coffee::test;
using namespace coffee::test::faults;

namespace {

// Writes all of `bytes` to the (non-blocking) FIFO descriptor.
void write_raw(int fd, std::string_view bytes) { CHECK(write_all(fd, bytes)); }

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

TEST_CASE("an over-long line left unfinished is cut off like a fragment: the next order, however late, is served") {
    scratch_shop shop;
    consumer_fixture consumer{shop.fifo, {"--journal", shop.journal.native(), "--brew-time", "0", "--until-finish"}};
    REQUIRE(eventually([&] { return logged(consumer, "open for orders"); }, 20s));
    auto delay = 700ms;
    SUBCASE("0.7 s later") {}
    SUBCASE("5 s later") { delay = 5000ms; }
    write_raw(shop.holder.get(), std::string(5000, 'x'));
    std::this_thread::sleep_for(delay);  // a sleep: how late the next order comes is the test's point
    CHECK(eventually([&] { return logged(consumer, "dropped 5000 bytes of an unfinished line"); }));
    CHECK(produce(shop.fifo, {"Latte for alice"}) == 0);
    CHECK(produce(shop.fifo, {"--finish"}) == 0);
    CHECK(consumer.wait(60s) == std::optional<int>{0});
    CHECK(consumer.output().lines() == std::vector<std::string>{"Latte for alice"});
    CHECK(logged(consumer, "rejected 1 lines"));
}

// An attacker who keeps an unfinished line alive: a space every 100 ms
// (never quiet for 500 ms, even on a loaded machine), for at most a minute.
class space_trickle {
public:
    explicit space_trickle(int fd)
        : thread_{[this, fd] {
              for (int i = 0; i < 600 && !stop_; ++i) {
                  std::this_thread::sleep_for(100ms);  // a sleep: the attacker's pace
                  write_raw(fd, " ");
              }
          }} {}
    space_trickle(const space_trickle&) = delete;
    space_trickle& operator=(const space_trickle&) = delete;
    ~space_trickle() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
    }

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

TEST_CASE("a fragment kept alive a space at a time is cut off once 2 s old: the next order is served as sent") {
    scratch_shop shop;
    consumer_fixture consumer{shop.fifo, {"--journal", shop.journal.native(), "--brew-time", "0", "--until-finish"}};
    REQUIRE(eventually([&] { return logged(consumer, "open for orders"); }, 20s));
    write_raw(shop.holder.get(), "FREE COFFEE, charge it to: ");
    space_trickle trickle{shop.holder.get()};
    CHECK(eventually([&] { return logged(consumer, "of an unfinished line (no LF, 2s since it began): 'FREE COFFEE"); }, 20s));
    CHECK(produce(shop.fifo, {"customer-2-C-1 Latte"}) == 0);
    std::this_thread::sleep_for(1s);  // a sleep: the attacker goes on after the order
    trickle.stop();
    CHECK(produce(shop.fifo, {"--finish"}) == 0);
    CHECK(consumer.wait(60s) == std::optional<int>{0});
    CHECK(consumer.output().lines() == std::vector<std::string>{"customer-2-C-1 Latte"});
}

TEST_CASE("a shop stopped for a while does not take a growing fragment for a quiet one: it is cut once 2 s old") {
    scratch_shop shop;
    consumer_fixture consumer{shop.fifo, {"--journal", shop.journal.native(), "--brew-time", "0", "--until-finish"}};
    REQUIRE(eventually([&] { return logged(consumer, "open for orders"); }, 20s));
    write_raw(shop.holder.get(), "half an order");
    space_trickle trickle{shop.holder.get()};
    // Stopped past the 500 ms of quiet while the writer goes on: once it runs
    // again it must see the bytes added meanwhile before it calls the line quiet.
    // A sleep: the shop looks at the fragment (left in the pipe) without an
    // outward sign; it looks every 100 us to 20 ms, many times in 200 ms.
    std::this_thread::sleep_for(200ms);
    REQUIRE(::kill(consumer.pid(), SIGSTOP) == 0);
    REQUIRE(wait_stopped(consumer.pid()));
    std::this_thread::sleep_for(900ms);  // a sleep: stopped for longer than the quiet that cuts a line
    REQUIRE(::kill(consumer.pid(), SIGCONT) == 0);
    CHECK(eventually([&] { return logged(consumer, "of an unfinished line (no LF, 2s since it began): 'half an order"); }, 20s));
    CHECK_FALSE(logged(consumer, "(no LF, nothing more for"));
    trickle.stop();
    CHECK(produce(shop.fifo, {"--finish"}) == 0);
    CHECK(consumer.wait(60s) == std::optional<int>{0});
    CHECK(consumer.output().lines().empty());
}

TEST_CASE("a fragment behind orders that wait for the baristas is cut off there: the next order is served unglued") {
    scratch_shop shop;
    consumer_fixture consumer{shop.fifo,
                              {"--journal", shop.journal.native(), "--brew-time", "5ms", "--until-finish", "-v"}};
    REQUIRE(eventually([&] { return logged(consumer, "open for orders"); }, 20s));
    // 28 KB of orders (10 s of brewing): the reader holds 4 KiB for the
    // baristas, and the rest, with the fragment, waits in the pipe where no
    // take reaches. The next order comes once the fragment is cut off, or
    // after 3 s (500 ms of quiet is the limit).
    order_book book = write_orders(shop.dir.path(), 1, 2000);
    auto producers = start_producers(shop.fifo, book, shop.dir.path());
    expect_delivered(producers);
    write_raw(shop.holder.get(), "FREE COFFEE, charge it to: ");
    CHECK(eventually([&] { return logged(consumer, "cut off the unfinished line at the tail of the pipe"); }, 3s));
    CHECK(produce(shop.fifo, {"customer-2-C-1 Latte"}) == 0);
    CHECK(consumer.output().line_count() < book.all.size());  // orders were still ahead of it
    CHECK(produce(shop.fifo, {"--finish"}) == 0);
    CHECK(consumer.wait(120s) == std::optional<int>{0});
    book.all.push_back("customer-2-C-1 Latte");
    const tally t = count(book.all, consumer.output().lines());
    MESSAGE(t.describe());
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
    CHECK(logged(consumer, "dropped 27 bytes of an unfinished line (no LF, nothing more for 500ms): 'FREE COFFEE"));
}

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
    CHECK_FALSE(logged(consumer, "dropped"));
}

TEST_CASE("a writer who shrinks the pipe again and again while a cat writes: no line of the cat is cut") {
    scratch_shop shop;
    REQUIRE(::fcntl(shop.holder.get(), F_SETPIPE_SZ, 65536) == 65536);
    consumer_fixture consumer{shop.fifo, {"--journal", shop.journal.native(), "--brew-time", "0", "--until-finish"}};
    REQUIRE(eventually([&] { return logged(consumer, "open for orders"); }, 20s));
    // A pipe of one page cannot hold an unfinished line and the next page
    // of the cat's write: the cat waits for room in the middle of a line.
    REQUIRE(::fcntl(shop.holder.get(), F_SETPIPE_SZ, 4096) == 4096);
    std::atomic<bool> stop{false};
    std::atomic<int> shrunk{1};
    std::thread shrinker{[&] {
        while (!stop) {
            if (::fcntl(shop.holder.get(), F_SETPIPE_SZ, 4096) == 4096)
                ++shrunk;
            std::this_thread::sleep_for(100ms);  // a sleep: the attacker's pace
        }
    }};
    const order_book book = write_orders(shop.dir.path(), 1, 10000);
    CHECK(cat_into(shop.fifo, book.files[0]) == 0);
    stop = true;
    shrinker.join();
    CHECK(produce(shop.fifo, {"--finish"}) == 0);
    CHECK(consumer.wait(300s) == std::optional<int>{0});
    const tally t = count(book.all, consumer.output().lines());
    MESSAGE(t.describe(), "; the pipe shrunk ", shrunk.load(), " times");
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
    CHECK_FALSE(logged(consumer, "dropped"));
}

TEST_CASE("a cat into a full pipe with a brew time: its line waiting for room is never cut off") {
    scratch_shop shop;
    REQUIRE(::fcntl(shop.holder.get(), F_SETPIPE_SZ, 65536) == 65536);
    consumer_fixture consumer{shop.fifo, {"--journal", shop.journal.native(), "--brew-time", "3ms", "--until-finish"}};
    REQUIRE(eventually([&] { return logged(consumer, "open for orders"); }, 20s));
    // 70 KB in one cat: it fills the 64 KiB pipe and waits in write(), in
    // the middle of a line, while the barista brews a take of 4 KiB (292
    // orders, about 0.9 s: longer than the 500 ms of quiet that cut a line
    // off), and again, until the pipe has room for the rest.
    const order_book book = write_orders(shop.dir.path(), 1, 5000);
    CHECK(cat_into(shop.fifo, book.files[0]) == 0);
    CHECK(produce(shop.fifo, {"--finish"}) == 0);
    CHECK(consumer.wait(300s) == std::optional<int>{0});
    const tally t = count(book.all, consumer.output().lines());
    MESSAGE(t.describe());
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
    CHECK_FALSE(logged(consumer, "dropped"));
}

}
