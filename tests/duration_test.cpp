#include <coffee/duration.hpp>
#include <coffee/errors.hpp>

#include <doctest/doctest.h>

#include <string>
#include <string_view>

using namespace std::chrono_literals;
using coffee::format_duration;
using coffee::parse_duration;

namespace {

// The message of the usage_error parse_duration throws, or "" if it does not.
std::string parse_error(std::string_view text) {
    try {
        (void)parse_duration(text);
    } catch (const coffee::usage_error& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST_SUITE("duration") {

TEST_CASE("parse_duration reads each unit") {
    CHECK(parse_duration("0") == 0ms);
    CHECK(parse_duration("0s") == 0ms);
    CHECK(parse_duration("0ms") == 0ms);
    CHECK(parse_duration("250ms") == 250ms);
    CHECK(parse_duration("4s") == 4s);
    CHECK(parse_duration("1m") == 1min);
    CHECK(parse_duration("1min") == 1min);
    CHECK(parse_duration("1h") == 1h);
    CHECK(parse_duration("90s") == 90s);
}

TEST_CASE("parse_duration: a bare number means seconds") {
    CHECK(parse_duration("10") == 10s);
    CHECK(parse_duration("1") == 1000ms);
}

TEST_CASE("parse_duration: a day is the limit") {
    CHECK(parse_duration("24h") == 24h);
    CHECK(parse_duration("86400") == 24h);
    CHECK(parse_duration("1440m") == 24h);
    CHECK(parse_duration("86400000ms") == 24h);
    for (const char* text : {"25h", "86401", "86401s", "1441m", "86400001ms", "999999999h", "99999999999999999999s"}) {
        CAPTURE(text);
        CHECK(parse_error(text).find(text) != std::string::npos);
    }
    CHECK(parse_error("25h").find("longer than a day") != std::string::npos);
    CHECK(parse_error("999999999h").find("longer than a day") != std::string::npos);
}

TEST_CASE("parse_duration refuses negative numbers, junk and unknown units, naming the text") {
    for (const char* text : {"-1", "-250ms", "", "s", "ms", "abc", " 4s", "+4s", "4 s", "4s ", "4.5s", "0x10", "4S", "4sec", "1d", "4s4"}) {
        CAPTURE(text);
        const std::string message = parse_error(text);
        CHECK_FALSE(message.empty());
        CHECK(message.find(fmt::format("'{}'", text)) != std::string::npos);
    }
    CHECK(parse_error("1d").find("unknown unit 'd'") != std::string::npos);
    CHECK(parse_error("-1").find("invalid duration") != std::string::npos);
}

TEST_CASE("format_duration gives the shortest exact form") {
    CHECK(format_duration(0ms) == "0s");
    CHECK(format_duration(250ms) == "250ms");
    CHECK(format_duration(1500ms) == "1500ms");
    CHECK(format_duration(4s) == "4s");
    CHECK(format_duration(90s) == "90s");
    CHECK(format_duration(1min) == "1m");
    CHECK(format_duration(90min) == "90m");
    CHECK(format_duration(1h) == "1h");
    CHECK(format_duration(24h) == "24h");
}

TEST_CASE("format_duration and parse_duration round-trip") {
    for (const coffee::duration d : {coffee::duration{0ms}, coffee::duration{1ms}, coffee::duration{250ms},
                                     coffee::duration{999ms}, coffee::duration{1s}, coffee::duration{4s},
                                     coffee::duration{59s}, coffee::duration{61s}, coffee::duration{1min},
                                     coffee::duration{59min}, coffee::duration{1h}, coffee::duration{23h},
                                     coffee::duration{24h}, coffee::duration{86'399'999ms}}) {
        CAPTURE(d.count());
        CHECK(parse_duration(format_duration(d)) == d);
    }
    for (const char* text : {"0s", "250ms", "4s", "1m", "1h", "24h"}) {
        CAPTURE(text);
        CHECK(format_duration(parse_duration(text)) == text);
    }
}

}  // TEST_SUITE
