// kill -9 of the consumer under `coffee-launcher serve`, at random moments:
// nothing lost, nothing torn, duplicates within the bound docs/journal.md
// states ("What the shop guarantees"). The random pauses come from
// seeded_rng() (shop.hpp): each storm prints "COFFEE_TEST_SEED=N" and its
// pauses; COFFEE_TEST_SEED=N in the environment draws the same pauses again
// (when each kill lands after its wait still depends on the machine).
#include "shop.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <random>
#include <thread>

using namespace coffee::test;
using namespace coffee::test::faults;

namespace {

// Restart at once, every time: the storm must not hit the start limit.
const std::vector<std::string> restart_always{"--restart-delay", "10ms", "--start-interval", "1ms", "--start-limit",
                                              "1000"};

// The random part of a storm's kill schedule, one line for the log.
std::string schedule(const std::vector<int>& pauses_us) {
    return fmt::format("pauses before each kill (us): {}", fmt::join(pauses_us, " "));
}

struct storm {
    std::string brew;
    unsigned baristas;
    unsigned per_producer;
    int kills;
};

void run_storm(const storm& s) {
    temp_dir dir;
    const auto fifo = dir / "orders";
    const order_book book = write_orders(dir.path(), 4, s.per_producer);
    auto rng = seeded_rng();
    // With a brew time, kills spread over the run: the k-th once k/(kills+1)
    // of the orders are served, then after a random pause of 0-20 ms. Brew 0:
    // see below.
    std::uniform_int_distribution<int> pause_us{0, s.brew == "0" ? 300 : 20000};
    serve_fixture serve{fifo, restart_always,
                        {"--journal", (dir / "journal").native(), "--brew-time", s.brew, "--baristas",
                         std::to_string(s.baristas), "-q"}};
    pid_t consumer = serve.consumer();
    REQUIRE_MESSAGE(consumer > 0, serve.output().err());
    auto producers = start_producers(fifo, book, dir.path());
    std::vector<int> pauses;
    int kills = 0;
    for (; kills < s.kills; ++kills) {
        if (s.brew == "0") {
            // Brew 0 serves a full pipe (1 MiB) in a millisecond or two, just
            // after each restart: kill within 0.3 ms of the first new line,
            // in that burst, where the writes are.
            const std::size_t before = serve.output().line_count();
            (void)eventually([&] { return serve.output().line_count() != before; }, 30s, 50us);
        } else {
            const std::size_t due =
                book.all.size() * static_cast<std::size_t>(kills + 1) / static_cast<std::size_t>(s.kills + 1);
            (void)eventually([&] { return serve.output().line_count() >= due; }, 30s);
        }
        pauses.push_back(pause_us(rng));
        std::this_thread::sleep_for(std::chrono::microseconds{pauses.back()});  // a sleep: the storm's random pause
        REQUIRE_MESSAGE(::kill(consumer, SIGKILL) == 0, serve.output().err());
        const pid_t next = serve.consumer(consumer);
        REQUIRE_MESSAGE(next > 0, "serve did not restart the consumer after kill ", kills + 1);
        consumer = next;
    }
    const std::size_t at_last_kill = serve.output().line_count();
    expect_delivered(producers);
    const bool drained = all_served(book.all, [&] { return serve.output().lines(); }, 90s);
    const auto code = serve.stop();
    const tally t = count(book.all, serve.output().lines());
    MESSAGE("kill -9 storm, brew ", s.brew, ", ", s.baristas, " barista(s), ", kills, " kills (", at_last_kill,
            " served at the last one): ", t.describe(), "\n", schedule(pauses));
    CHECK(drained);
    CHECK(code == 0);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(serve.output().partial().empty());
    // The guarantee's bound is asserted; one order per barista per kill is
    // tighter than it promises (a reader's take may be served again too),
    // so that figure is only shown.
    const auto kills_n = static_cast<std::size_t>(kills);
    const std::size_t bound = duplicate_bound(kills_n, s.baristas, s.brew == "0", 14);
    CHECK_MESSAGE(t.duplicated <= bound, "duplicates: ", t.duplicated, ", the guarantee's bound for ", kills,
                  " kills: ", bound, " (one order per barista per kill would be ",
                  duplicate_target(kills_n, s.baristas), ")");
    MESSAGE("duplicates: ", t.duplicated, " of at most ", bound, "; one per barista per kill would be ",
            duplicate_target(kills_n, s.baristas));
    if (!code || *code != 0)
        MESSAGE(serve.output().err());
}

}  // namespace

TEST_SUITE("faults: kill -9") {

// With stdout a file, brew 0 writes 128 KiB at a time, and a kill in the
// middle of such a write() stops it at a page boundary, in the middle of a
// line. The next start cuts that write off again (docs/journal.md, "Output
// cut-back"). Each kill here comes within 0.3 ms of the consumer's first
// write, in its burst of writes; 0 to 3 of the 30 land inside a write (the log says "cut off"),
// too few to prove the cut: stdout_faults_test.cpp does that. This one
// counts the orders.
TEST_CASE("kill -9 storm with stdout a file: brew 0, nothing torn, nothing lost") {
    scratch_shop shop;
    std::vector<std::string> orders;
    for (int i = 0; i < 1'000'000; ++i)
        orders.push_back(fmt::format("f-{:09}-end", i));
    const auto out = shop.dir / "served";
    const auto log = shop.dir / "log";
    const auto start = [&] {
        return process{{consumer_program, "--fifo", shop.fifo.native(), "--journal", shop.journal.native(),
                        "--brew-time", "0", "-q"},
                       {.stdout_file = out, .stderr_file = log}};
    };
    auto rng = seeded_rng();
    std::uniform_int_distribution<int> pause_us{0, 300};
    const auto out_bytes = [&] {
        std::error_code ec;
        const auto n = std::filesystem::file_size(out, ec);
        return ec ? std::uintmax_t{0} : n;
    };
    std::optional<process> consumer{start()};
    std::thread writer{[&] { stream(shop.holder.get(), orders); }};
    std::vector<int> pauses;
    int kills = 0;
    for (; kills < 30; ++kills) {
        // Once this consumer writes (the pipe it finds is full: a burst of
        // 128 KiB writes), kill it within 0.3 ms.
        const auto before = out_bytes();
        (void)eventually([&] { return out_bytes() != before; }, 1s, 50us);
        pauses.push_back(pause_us(rng));
        std::this_thread::sleep_for(std::chrono::microseconds{pauses.back()});  // a sleep: the storm's random pause
        consumer->kill(SIGKILL);
        CHECK(consumer->wait(30s) == 128 + SIGKILL);
        consumer.reset();
        consumer.emplace(start());
    }
    const std::size_t at_last_kill = read_lines(out).size();
    writer.join();
    const bool drained = all_served(orders, [&] { return read_lines(out); }, 60s);
    consumer->kill(SIGTERM);
    CHECK(consumer->wait(30s) == 0);
    const tally t = count(orders, read_lines(out));
    const std::string said = read_file(log);
    std::size_t cuts = 0;
    for (std::size_t at = said.find("cut off"); at != std::string::npos; at = said.find("cut off", at + 1))
        ++cuts;
    MESSAGE("kill -9 storm, stdout a file, brew 0, ", kills, " kills (", at_last_kill, " served at the last one), ", cuts, " unfinished writes cut off: ",
            t.describe(), "\n", schedule(pauses));
    CHECK(drained);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated <= static_cast<std::size_t>(kills) * (131072 / 14));  // one write per kill
}


TEST_CASE("kill -9 storm: brew 0, 1 barista") { run_storm({"0", 1, 50000, 8}); }
TEST_CASE("kill -9 storm: brew 0, 4 baristas") { run_storm({"0", 4, 50000, 8}); }
TEST_CASE("kill -9 storm: brew 1ms, 1 barista") { run_storm({"1ms", 1, 600, 8}); }
TEST_CASE("kill -9 storm: brew 1ms, 4 baristas") { run_storm({"1ms", 4, 1500, 8}); }

TEST_CASE("kill -9 while the consumer serves its journal at start") {
    temp_dir dir;
    const auto fifo = dir / "orders";
    const auto journal = (dir / "journal").native();
    const order_book book = write_orders(dir.path(), 4, 500);
    const std::vector<std::string> args{"--journal", journal, "--brew-time", "2ms", "--baristas", "1", "-q"};
    std::vector<std::string> served;

    {   // Orders in the pipe, then a stop: the pipe's lines move to the journal.
        serve_fixture first{fifo, restart_always, args};
        const pid_t consumer = first.consumer();
        REQUIRE(consumer > 0);
        auto producers = start_producers(fifo, book, dir.path());
        expect_delivered(producers);
        REQUIRE(eventually([&] { return first.output().lines().size() >= 50; }, 30s));
        REQUIRE(::kill(consumer, SIGTERM) == 0);  // it ends with 0: serve ends too
        CHECK(first.wait(30s) == 0);
        served = first.output().lines();
        MESSAGE("served before the stop: ", served.size());
        REQUIRE(served.size() < book.all.size());
    }

    serve_fixture second{fifo, restart_always, args};
    pid_t consumer = second.consumer();
    REQUIRE(consumer > 0);
    int kills = 0;
    for (; kills < 3; ++kills) {  // each while it replays the journal
        const std::size_t before = second.output().lines().size();
        REQUIRE(eventually([&] { return second.output().lines().size() >= before + 100; }, 30s));
        REQUIRE(::kill(consumer, SIGKILL) == 0);
        consumer = second.consumer(consumer);
        REQUIRE(consumer > 0);
    }
    const auto all_lines = [&] { return joined(served, second); };
    const bool drained = all_served(book.all, all_lines, 60s);
    CHECK(second.stop() == 0);
    const tally t = count(book.all, all_lines());
    MESSAGE("kill -9 during the journal's replay, ", kills, " kills: ", t.describe());
    CHECK(drained);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated <= duplicate_bound(static_cast<std::size_t>(kills), 1, false, 14));
}

TEST_CASE("kill -9 while the consumer drains the pipe at a stop") {
    temp_dir dir;
    const auto fifo = dir / "orders";
    const order_book book = write_orders(dir.path(), 4, 2000);
    auto rng = seeded_rng();
    std::uniform_int_distribution<int> after_us{0, 1500};
    const std::vector<std::string> args{"--journal", (dir / "journal").native(), "--brew-time", "1ms", "--baristas", "2",
                                        "-q"};
    // A stop that completes before the SIGKILL ends serve with 0 (the
    // consumer finished on its own); the next serve takes over the journal.
    std::vector<std::unique_ptr<serve_fixture>> serves;
    serves.push_back(std::make_unique<serve_fixture>(fifo, restart_always, args));
    const auto all_lines = [&] {
        std::vector<std::string> lines;
        for (const auto& s : serves) {
            const auto more = s->output().lines();
            lines.insert(lines.end(), more.begin(), more.end());
        }
        return lines;
    };
    pid_t consumer = serves.back()->consumer();
    REQUIRE(consumer > 0);
    auto producers = start_producers(fifo, book, dir.path());
    expect_delivered(producers);  // all in the pipe: a serve that ends must not fail them
    std::vector<int> pauses;
    int kills = 0;
    int completed_stops = 0;
    for (; kills < 4; ++kills) {
        const std::size_t before = all_lines().size();
        REQUIRE(eventually([&] { return all_lines().size() >= before + 20; }, 30s));
        // SIGTERM starts the stop (the pipe's lines go to the journal);
        // SIGKILL lands somewhere in it, and serve restarts the consumer.
        REQUIRE(::kill(consumer, SIGTERM) == 0);
        pauses.push_back(after_us(rng));
        std::this_thread::sleep_for(std::chrono::microseconds{pauses.back()});  // a sleep: the storm's random pause
        (void)::kill(consumer, SIGKILL);
        const pid_t next = serves.back()->consumer(consumer, 5s);
        if (next > 0) {
            consumer = next;
            continue;
        }
        CHECK(serves.back()->wait(10s) == 0);
        ++completed_stops;
        serves.push_back(std::make_unique<serve_fixture>(fifo, restart_always, args));
        consumer = serves.back()->consumer();
        REQUIRE(consumer > 0);
    }
    const bool drained = all_served(book.all, all_lines, 60s);
    const auto code = serves.back()->stop();
    const tally t = count(book.all, all_lines());
    MESSAGE("kill -9 during the stop's drain, ", kills, " kills (", completed_stops,
            " stops were done before the kill): ", t.describe(), "\n",
            "pauses between SIGTERM and SIGKILL (us): ", fmt::format("{}", fmt::join(pauses, " ")));
    CHECK(drained);
    CHECK(code == 0);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated <= duplicate_bound(static_cast<std::size_t>(kills), 2, false, 14));
}

// A CRLF storm at brew 0 sends every order the journal's way and never lets
// the shop go idle, so the journal is rewritten with its unserved orders
// every few MiB. Each kill here lands while a rewrite is under way (its new
// file exists), or just after: the next start finds the old journal or the
// new one, whole, and nothing is lost or served more than a kill allows.
TEST_CASE("kill -9 storm while the journal is rewritten: nothing lost, nothing torn") {
    scratch_shop shop;
    constexpr std::size_t line_bytes = 16;
    const auto out = shop.dir / "served";
    const auto log = shop.dir / "log";
    const auto rewriting = shop.journal.native() + ".rewrite";
    const auto start = [&] {
        return process{{consumer_program, "--fifo", shop.fifo.native(), "--journal", shop.journal.native(),
                        "--brew-time", "0", "--baristas", "1"},
                       {.stdout_file = out, .stderr_file = log}};
    };
    auto rng = seeded_rng();
    std::uniform_int_distribution<int> pause_us{0, 300};
    std::optional<process> consumer{start()};
    // The storm lasts until the kills are done: blocks of whole lines, as
    // fast as the pipe takes them.
    std::atomic<bool> storming{true};
    std::vector<std::string> orders;
    std::thread writer{[&] {
        while (storming) {
            std::string text;
            for (int i = 0; i < 4096; ++i) {
                orders.push_back(fmt::format("k-{:09}-end", orders.size()));
                text += orders.back() + "\r\n";
            }
            CHECK(write_all(shop.holder.get(), text));
        }
    }};
    std::vector<int> pauses;  // one per odd kill, after the rename
    int kills = 0;
    int seen_rewriting = 0;
    for (; kills < 12; ++kills) {
        // A rewrite the last kill cut short: gone once this consumer opened
        // the journal. Then this consumer's own rewrite.
        const auto rewrite_exists = [&] { return ::access(rewriting.c_str(), F_OK) == 0; };
        const auto rewrite_gone = [&] { return !rewrite_exists(); };
        (void)eventually(rewrite_gone, 30s, 20us);
        if (!eventually(rewrite_exists, 30s, 20us))
            break;  // no rewrite for 30 s of a storm: checked below
        ++seen_rewriting;
        if (kills % 2 == 1) {  // once it is renamed over the journal
            (void)eventually(rewrite_gone, 30s, 20us);
            pauses.push_back(pause_us(rng));
            std::this_thread::sleep_for(std::chrono::microseconds{pauses.back()});  // a sleep: the storm's random pause
        }
        consumer->kill(SIGKILL);
        CHECK(consumer->wait(30s) == 128 + SIGKILL);
        consumer.reset();
        consumer.emplace(start());
    }
    storming = false;
    writer.join();
    const bool drained = all_served(orders, [&] { return read_lines(out); }, 120s);
    consumer->kill(SIGTERM);
    CHECK(consumer->wait(30s) == 0);
    const tally t = count(orders, read_lines(out));
    const std::string said = read_file(log);
    std::size_t removed = 0;
    for (std::size_t at = said.find("removed a rewrite"); at != std::string::npos;
         at = said.find("removed a rewrite", at + 1))
        ++removed;
    MESSAGE("kill -9 storm during journal rewrites, brew 0, CRLF: ", kills, " kills, ", seen_rewriting,
            " with a rewrite under way, ", removed, " rewrites cut short and removed at the next start: ",
            t.describe(), "\n", schedule(pauses));
    CHECK(seen_rewriting == kills);
    CHECK(kills == 12);
    CHECK(drained);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    // Per kill: one write to the file (128 KiB), one the reader serves
    // itself (4 KiB), one record between its append and its splice (64 KiB).
    CHECK(t.duplicated <= static_cast<std::size_t>(kills) * ((131072 + 4096 + 65536) / line_bytes));
    CHECK(said.find(" error") == std::string::npos);
}

}  // TEST_SUITE
