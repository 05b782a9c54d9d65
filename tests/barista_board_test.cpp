// The consumer's status, below the process: the barista board written by
// several threads at once, the notify message format_status() builds from
// it, and $COFFEE_STATUS_INTERVAL.
#include <status.hpp>

#include <coffee/errors.hpp>
#include <coffee/line_protocol.hpp>

#include "support/scratch.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using coffee::consumer::barista_board;
using coffee::consumer::format_status;
using coffee::consumer::shop_status;
using coffee::consumer::status_interval_from_env;

namespace {

// The message's lines, and the value of its field `key`, if it has one.
std::vector<std::string> fields(const std::string& message) { return coffee::test::split_lines(message + "\n"); }

std::optional<std::string> field(const std::string& message, const std::string& key) {
    for (const std::string& line : fields(message))
        if (line.starts_with(key + "="))
            return line.substr(key.size() + 1);
    return std::nullopt;
}

// The barista fields' values, in order.
std::vector<std::string> barista_fields(const std::string& message) {
    std::vector<std::string> values;
    for (const std::string& line : fields(message))
        if (line.starts_with("X_COFFEE_BARISTA_"))
            values.push_back(line.substr(line.find('=') + 1));
    return values;
}

// What status_interval_from_env() says of `text`: its interval, or the
// message of its usage_error.
std::string interval_of(const char* text) {
    const coffee::test::env_guard guard{"COFFEE_STATUS_INTERVAL", text ? std::optional<std::string>{text} : std::nullopt};
    try {
        return std::to_string(status_interval_from_env().count()) + "ms";
    } catch (const coffee::usage_error& e) {
        return e.what();
    }
}

}  // namespace

TEST_SUITE("consumer status") {

TEST_CASE("the barista board: each barista's order in hand, empty when idle, in the snapshot") {
    barista_board board{3};
    CHECK(board.snapshot() == std::vector<std::string>{"", "", ""});
    board.brewing(1, "Latte for alice");
    board.brewing(2, "Flat White");
    CHECK(board.snapshot() == std::vector<std::string>{"", "Latte for alice", "Flat White"});
    board.brewing(1, "Tea");  // the next order replaces the last
    board.idle(2);
    CHECK(board.snapshot() == std::vector<std::string>{"", "Tea", ""});
    board.idle(1);
    CHECK(board.snapshot() == std::vector<std::string>{"", "", ""});
}

// Four baristas write their own slots while two readers take snapshots, as
// the reader thread does for STATUS=: every slot of every snapshot is one
// of the orders its barista wrote, whole, or idle. Run under TSan (label
// threads), a race on the board is reported.
TEST_CASE("the barista board written by four baristas and read by two at once: every snapshot whole") {
    constexpr unsigned baristas = 4;
    constexpr int rounds = 2000;
    barista_board board{baristas};
    // Short and long orders, so that a slot's storage is reallocated.
    const auto order = [](unsigned barista, int round) {
        return "b" + std::to_string(barista) + "-" + std::to_string(round) + std::string(round % 3 == 0 ? 100 : 0, '.');
    };
    const auto is_order_of = [&](const std::string& text, unsigned barista) {
        if (text.empty())
            return true;
        const std::string prefix = "b" + std::to_string(barista) + "-";
        if (!text.starts_with(prefix))
            return false;
        const int round = std::stoi(text.substr(prefix.size()));
        return round >= 0 && round < rounds && text == order(barista, round);
    };
    std::atomic<bool> brewing{true};
    std::atomic<long> snapshots{0};
    std::atomic<long> bad{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 2; ++r)
        readers.emplace_back([&] {
            while (brewing) {
                const auto seen = board.snapshot();
                ++snapshots;
                if (seen.size() != baristas)
                    ++bad;
                for (unsigned b = 0; b < seen.size(); ++b)
                    if (!is_order_of(seen[b], b))
                        ++bad;
            }
        });
    std::vector<std::thread> workers;
    for (unsigned b = 0; b < baristas; ++b)
        workers.emplace_back([&, b] {
            for (int round = 0; round < rounds; ++round) {
                board.brewing(b, order(b, round));
                if (round % 2 == 1)
                    board.idle(b);
            }
            board.idle(b);
        });
    for (auto& w : workers)
        w.join();
    brewing = false;
    for (auto& r : readers)
        r.join();
    MESSAGE(snapshots.load(), " snapshots taken while the baristas brewed");
    CHECK(snapshots.load() > 0);
    CHECK(bad.load() == 0);
    CHECK(board.snapshot() == std::vector<std::string>(baristas));
}

TEST_CASE("format_status: the STATUS= line for systemctl, then every X_COFFEE_ field, an idle barista as -") {
    shop_status status;
    status.served = 1200;
    status.waiting = 14;
    status.rejected = 3;
    status.pipe = coffee::pipe_fill{.unread = 62464, .capacity = 65536};
    status.baristas = {"Latte for alice", ""};
    CHECK(format_status(status) ==
          "STATUS=served 1200, waiting 14, pipe 61/64 KiB, baristas 1/2 busy, rejected 3\n"
          "X_COFFEE_SERVED=1200\n"
          "X_COFFEE_WAITING=14\n"
          "X_COFFEE_PIPE=62464/65536\n"
          "X_COFFEE_BARISTA_1=Latte for alice\n"
          "X_COFFEE_BARISTA_2=-");

    SUBCASE("no pipe to measure: no pipe in either") {
        status.pipe.reset();
        status.baristas = {""};
        CHECK(format_status(status) ==
              "STATUS=served 1200, waiting 14, baristas 0/1 busy, rejected 3\n"
              "X_COFFEE_SERVED=1200\n"
              "X_COFFEE_WAITING=14\n"
              "X_COFFEE_BARISTA_1=-");
    }
}

TEST_CASE("format_status lists the first 16 baristas and counts them all") {
    shop_status status;
    for (int i = 1; i <= 20; ++i)
        status.baristas.push_back(i == 3 ? "" : "order " + std::to_string(i));
    const std::string message = format_status(status);
    CHECK(field(message, "STATUS") == "served 0, waiting 0, baristas 19/20 busy, rejected 0");
    const auto listed = barista_fields(message);
    REQUIRE(listed.size() == 16);
    CHECK(listed.front() == "order 1");
    CHECK(listed[2] == "-");
    CHECK(field(message, "X_COFFEE_BARISTA_16") == "order 16");
    CHECK_FALSE(field(message, "X_COFFEE_BARISTA_17"));
}

TEST_CASE("format_status cuts an order to 64 bytes, never inside a UTF-8 character") {
    const auto listed = [](const std::string& order) {
        shop_status status;
        status.baristas = {order};
        return field(format_status(status), "X_COFFEE_BARISTA_1").value_or("(none)");
    };
    const std::string a63(63, 'a');
    CHECK(listed(std::string(64, 'a')) == std::string(64, 'a'));            // 64 fits
    CHECK(listed(std::string(65, 'a')) == std::string(64, 'a'));
    CHECK(listed(std::string(62, 'a') + "\xc3\xa9") == std::string(62, 'a') + "\xc3\xa9");  // é ends at 64
    CHECK(listed(a63 + "\xc3\xa9" + "b") == a63);                           // é would straddle 64
    CHECK(listed(std::string(62, 'a') + "\xe2\x82\xac" + "b") == std::string(62, 'a'));   // €: 3 bytes
    CHECK(listed(std::string(61, 'a') + "\xf0\x9f\x8d\xb5" + "b") == std::string(61, 'a'));  // 🍵: 4 bytes
    const std::string cups = [] {
        std::string s;
        for (int i = 0; i < 30; ++i)
            s += "\xe2\x98\x95";  // ☕, 3 bytes each: 21 of them fit in 64
        return s;
    }();
    CHECK(listed(cups) == cups.substr(0, 63));
}

// The orders on the board are lines the shop accepted, up to their LF: the
// line rules refuse control bytes (LF and CR among them), so what is left of
// a hostile order, '=' and field names included, stays inside its own field.
TEST_CASE("format_status: no order that the line rules let through adds a field or changes another") {
    const std::vector<std::string> hostile{
        "X_COFFEE_SERVED=999",
        "Latte\nX_COFFEE_SERVED=999",
        "Latte\rX_COFFEE_SERVED=999",
        "Latte\x0bX_COFFEE_SERVED=999",
        "Latte\x85X_COFFEE_SERVED=999",
        "Latte\xc2\x85X_COFFEE_SERVED=999",  // U+0085, NEXT LINE
        std::string("Latte\0X_COFFEE_SERVED=999", 25),
        "Latte\tX_COFFEE_WAITING=0",
        std::string(58, 'a') + "\nX_COFFEE_SERVED=999",
    };
    shop_status status;
    status.served = 7;
    status.waiting = 2;
    for (const std::string& order : hostile) {
        const std::string shown = coffee::printable(order);
        CAPTURE(shown);
        const auto checked = coffee::check_line(order);
        if (checked.problem != coffee::line_problem::none)
            continue;  // never reaches a barista
        status.baristas = {std::string{checked.text}, ""};
        const std::string message = format_status(status);
        CHECK(fields(message).size() == 5);
        CHECK(field(message, "X_COFFEE_SERVED") == "7");
        CHECK(field(message, "X_COFFEE_WAITING") == "2");
        CHECK(field(message, "X_COFFEE_BARISTA_1") == checked.text);
        CHECK(field(message, "X_COFFEE_BARISTA_2") == "-");
    }
}

TEST_CASE("COFFEE_STATUS_INTERVAL: 1s unless set, from 10ms to 1m, else a usage error naming it") {
    CHECK(interval_of(nullptr) == "1000ms");
    CHECK(interval_of("") == "1000ms");
    CHECK(interval_of("10ms") == "10ms");
    CHECK(interval_of("250ms") == "250ms");
    CHECK(interval_of("1m") == "60000ms");
    CHECK(interval_of("60s") == "60000ms");
    CHECK(interval_of("10") == "10000ms");  // a bare number is seconds
    for (const char* bad : {"9ms", "0", "60001ms", "2m", "1h"}) {
        CAPTURE(bad);
        const std::string said = interval_of(bad);
        CHECK(said == "COFFEE_STATUS_INTERVAL: '" + std::string{bad} + "' is not between 10ms and 1m");
    }
    for (const char* bad : {"soon", "5 s", "-1s"}) {
        CAPTURE(bad);
        const std::string said = interval_of(bad);
        CHECK(said.starts_with("COFFEE_STATUS_INTERVAL: "));
        CHECK(said.find(bad) != std::string::npos);
    }
}

}  // TEST_SUITE
