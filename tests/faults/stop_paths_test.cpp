// Every way a consumer under `coffee-launcher serve` can end, with orders
// still in the pipe: after a fresh consumer has drained, none is lost.
#include "shop.hpp"

#include <doctest/doctest.h>

#include <signal.h>

using namespace coffee::test;
using namespace coffee::test::faults;

namespace {

struct stop_case {
    std::vector<std::string> serve_options;
    std::vector<std::string> consumer_options;  // on top of the journal, brew 2ms, 1 barista
    int expected_code;                          // serve's exit code
};

// Orders go into the pipe (all delivered: it holds them), `stop` makes the
// consumer end, serve must end as `expected_code` says; a second serve on the
// same FIFO and journal then serves what is left.
template <typename Stop>
void stop_and_drain(const stop_case& c, Stop&& stop) {
    temp_dir dir;
    const auto fifo = dir / "orders";
    const auto journal = (dir / "journal").native();
    const order_book book = write_orders(dir.path(), 4, 1000);
    std::vector<std::string> args{"--journal", journal, "--brew-time", "2ms", "--baristas", "1", "-q"};
    args.insert(args.end(), c.consumer_options.begin(), c.consumer_options.end());

    std::vector<std::string> served;
    std::string first_log;
    {
        serve_fixture first{fifo, c.serve_options, args};
        REQUIRE(first.consumer() > 0);
        stop(first, fifo, book, dir);
        const auto code = first.wait(60s);
        served = first.output().lines();
        first_log = first.output().err();
        CHECK_MESSAGE(code == c.expected_code, first_log);
        MESSAGE("served before the stop: ", served.size(), " of ", book.all.size());
    }
    serve_fixture second{fifo, {}, {"--journal", journal, "--brew-time", "0", "-q"}};
    const auto all_lines = [&] { return joined(served, second); };
    const bool drained = all_served(book.all, all_lines, 60s);
    CHECK(second.stop() == 0);
    const tally t = count(book.all, all_lines());
    MESSAGE(t.describe());
    CHECK_MESSAGE(drained, first_log);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated <= 1);
}

void deliver(const std::filesystem::path& fifo, const order_book& book, const std::filesystem::path& dir) {
    auto producers = start_producers(fifo, book, dir);
    expect_delivered(producers);
}

}  // namespace

TEST_SUITE("faults: stop paths") {

TEST_CASE("consumer --timeout under serve: nothing lost") {
    stop_and_drain({{}, {"--timeout", "1s"}, 0}, [](serve_fixture&, const auto& fifo, const auto& book, const auto& dir) {
        deliver(fifo, book, dir.path());
    });
}

TEST_CASE("finish with orders behind it under serve: nothing lost") {
    stop_and_drain({{}, {"--until-finish"}, 0}, [](serve_fixture&, const auto& fifo, const auto& book, const auto& dir) {
        order_book first_half{{book.files[0], book.files[1]}, {}};
        order_book second_half{{book.files[2], book.files[3]}, {}};
        deliver(fifo, first_half, dir.path());
        CHECK(run({producer_program, "--fifo", fifo.native(), "--finish", "-q"}, spawn_options{}) == 0);
        deliver(fifo, second_half, dir.path());
    });
}

TEST_CASE("SIGTERM to the consumer's pid under serve: nothing lost") {
    stop_and_drain({{}, {}, 0}, [](serve_fixture& serve, const auto& fifo, const auto& book, const auto& dir) {
        deliver(fifo, book, dir.path());
        REQUIRE(eventually([&] { return !serve.output().lines().empty(); }, 20s));
        REQUIRE(::kill(serve.consumer(), SIGTERM) == 0);
    });
}

TEST_CASE("SIGTERM to serve: nothing lost") {
    stop_and_drain({{}, {}, 0}, [](serve_fixture& serve, const auto& fifo, const auto& book, const auto& dir) {
        deliver(fifo, book, dir.path());
        REQUIRE(eventually([&] { return !serve.output().lines().empty(); }, 20s));
        serve.signal(SIGTERM);
    });
}

TEST_CASE("start limit reached under serve with orders in the pipe: serve waits and retries, SIGTERM, nothing lost") {
    stop_and_drain({{"--start-limit", "2", "--start-interval", "60s", "--restart-delay", "10ms"}, {}, 0},
                   [](serve_fixture& serve, const auto& fifo, const auto& book, const auto& dir) {
                       deliver(fifo, book, dir.path());
                       pid_t consumer = serve.consumer();
                       for (int i = 0; i < 2 && consumer > 0; ++i) {
                           const auto before = serve.output().lines().size();
                           REQUIRE(eventually([&] { return serve.output().lines().size() > before; }, 20s));
                           REQUIRE(::kill(consumer, SIGKILL) == 0);
                           consumer = i == 0 ? serve.consumer(consumer) : -1;
                       }
                       // Not giving up: the FIFO is kept, and stopping still saves what is in it.
                       REQUIRE(eventually([&] { return serve.output().err().find("keeping the FIFO") != std::string::npos; }, 20s));
                       CHECK(is_alive(serve.pid()));
                       serve.signal(SIGTERM);
                   });
}

}  // TEST_SUITE
