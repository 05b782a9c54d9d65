#include <coffee/line_protocol.hpp>

#include <doctest/doctest.h>

#include <cstring>

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using namespace std::string_view_literals;
using coffee::check_line;
using coffee::line_problem;

namespace {

// One line as a test sees it: copies, because the reader's views die with the call.
struct seen_line {
    line_problem problem;
    std::string text;
    std::string raw;
    std::size_t bytes;

    bool operator==(const seen_line&) const = default;
};

// Feeds `input` to `reader` in one piece and collects the lines.
std::vector<seen_line> feed_all(coffee::line_reader& reader, std::string_view input) {
    std::vector<seen_line> lines;
    reader.feed(input, [&](const coffee::line_reader::line& l) {
        lines.push_back({l.check.problem, std::string{l.check.text}, std::string{l.raw}, l.bytes});
    });
    return lines;
}

std::vector<seen_line> feed_all(std::string_view input) {
    coffee::line_reader reader;
    return feed_all(reader, input);
}

line_problem problem_of(std::string_view raw) { return check_line(raw).problem; }

}  // namespace

TEST_SUITE("line_protocol") {

TEST_CASE("check_line accepts plain orders and normalises CR and blanks") {
    CHECK(check_line("Latte").problem == line_problem::none);
    CHECK(check_line("Latte").text == "Latte");
    CHECK(check_line("Flat White for Ana").text == "Flat White for Ana");
    CHECK(check_line("Latte\r").text == "Latte");
    CHECK(check_line("  \tLatte  \t").text == "Latte");
    CHECK(check_line(" Latte \r").text == "Latte");
    CHECK(check_line("Flat  White").text == "Flat  White");  // inner blanks kept
    CHECK(check_line("Latte\tfor\tAna").problem == line_problem::none);
}

TEST_CASE("check_line: only one trailing CR is dropped") {
    CHECK(check_line("Latte\r\r").problem == line_problem::control_char);
    CHECK(check_line("Latte\r\r").offset == 5);
    CHECK(check_line("La\rtte").problem == line_problem::control_char);
    CHECK(check_line("Latte\r ").problem == line_problem::control_char);
}

TEST_CASE("check_line: empty and blank lines are valid and empty, meaning ignore") {
    for (const std::string_view raw : {""sv, "\r"sv, " "sv, "\t\t  "sv, "  \r"sv}) {
        CAPTURE(raw);
        const auto c = check_line(raw);
        CHECK(c.problem == line_problem::none);
        CHECK(c.text.empty());
    }
}

TEST_CASE("check_line: the text views into the raw line") {
    const std::string raw = "  Mocha \r";
    const auto c = check_line(raw);
    REQUIRE(c.text == "Mocha");
    CHECK(c.text.data() == raw.data() + 2);
}

TEST_CASE("check_line: 4095 bytes is the longest order, 4096 is too long") {
    const std::string longest(coffee::max_order_bytes, 'a');
    REQUIRE(longest.size() == 4095);
    CHECK(check_line(longest).problem == line_problem::none);
    CHECK(check_line(longest).text.size() == 4095);

    const std::string too_long(4096, 'a');
    CHECK(check_line(too_long).problem == line_problem::too_long);
    CHECK(check_line(too_long).text.empty());
    CHECK(check_line(std::string(100'000, 'a')).problem == line_problem::too_long);

    // 4095 bytes + CR + LF is a 4097-byte line on the wire: too long.
    CHECK(check_line(longest + "\r").problem == line_problem::too_long);
    CHECK(check_line(std::string(4094, 'a') + "\r").problem == line_problem::none);
}

TEST_CASE("check_line: NUL bytes are refused with their offset") {
    const auto c = check_line("Lat\0te"s);
    CHECK(c.problem == line_problem::nul_byte);
    CHECK(c.offset == 3);
    CHECK(c.text.empty());
    CHECK(check_line("\0"s).problem == line_problem::nul_byte);
    CHECK(check_line("Latte\0"s).problem == line_problem::nul_byte);
}

TEST_CASE("check_line: every C0 control but TAB, DEL, and C1 controls are refused") {
    for (int c = 1; c < 0x20; ++c) {
        CAPTURE(c);
        const std::string raw = "Lat"s + static_cast<char>(c) + "te";
        const auto checked = check_line(raw);
        if (c == '\t') {
            CHECK(checked.problem == line_problem::none);
        } else {
            CHECK(checked.problem == line_problem::control_char);
            CHECK(checked.offset == 3);
        }
    }
    CHECK(check_line("Latte\x7f").problem == line_problem::control_char);
    CHECK(check_line("Latte\x7f").offset == 5);
    CHECK(check_line("\x1b[31mred").problem == line_problem::control_char);

    // U+0080..U+009F, encoded C2 80..C2 9F: valid UTF-8 but control characters.
    for (int second = 0x80; second <= 0x9F; ++second) {
        CAPTURE(second);
        const std::string raw = "ab\xC2"s + static_cast<char>(second);
        CHECK(check_line(raw).problem == line_problem::control_char);
        CHECK(check_line(raw).offset == 2);
    }
    // U+00A0 (no-break space) and U+00FF are printable.
    CHECK(check_line("a\xC2\xA0" "b").problem == line_problem::none);
    CHECK(check_line("\xC3\xBF").problem == line_problem::none);
}

TEST_CASE("check_line accepts valid multibyte UTF-8") {
    CHECK(check_line("Café").problem == line_problem::none);
    CHECK(check_line("Café").text == "Café");
    CHECK(check_line("茶").problem == line_problem::none);
    CHECK(check_line("☕ for Zoë").problem == line_problem::none);
    CHECK(check_line("\xF0\x9F\x98\x80 emoji").problem == line_problem::none);  // U+1F600
    CHECK(check_line("\xF4\x8F\xBF\xBF").problem == line_problem::none);        // U+10FFFF
    CHECK(check_line("\xEF\xBF\xBD").problem == line_problem::none);            // U+FFFD
    CHECK(check_line("\xED\x9F\xBF").problem == line_problem::none);            // U+D7FF
    CHECK(check_line("\xEE\x80\x80").problem == line_problem::none);            // U+E000
    CHECK(check_line("\xE0\xA0\x80").problem == line_problem::none);            // U+0800
    CHECK(check_line("\xF0\x90\x80\x80").problem == line_problem::none);        // U+10000
}

TEST_CASE("check_line refuses every class of invalid UTF-8, at the right offset") {
    struct bad {
        const char* name;
        std::string raw;
        std::size_t offset;
    };
    const std::vector<bad> cases = {
        {"stray continuation byte", "ab\x80", 2},
        {"stray continuation 0xBF", "\xBF", 0},
        {"truncated 2-byte sequence", "Caf\xC3", 3},
        {"2-byte lead then ASCII", "Caf\xC3" "e", 3},
        {"truncated 3-byte sequence", "x\xE8\x8C", 1},
        {"truncated 4-byte sequence", "\xF0\x9F\x98", 0},
        {"4-byte lead then ASCII", "\xF0\x9F\x98z", 0},
        {"overlong 2-byte (C0)", "\xC0\xAF", 0},
        {"overlong 2-byte (C1)", "\xC1\xBF", 0},
        {"overlong 3-byte", "\xE0\x80\xAF", 0},
        {"overlong 3-byte max", "\xE0\x9F\xBF", 0},
        {"overlong 4-byte", "\xF0\x80\x80\xAF", 0},
        {"overlong 4-byte max", "\xF0\x8F\xBF\xBF", 0},
        {"high surrogate U+D800", "a\xED\xA0\x80", 1},
        {"low surrogate U+DFFF", "\xED\xBF\xBF", 0},
        {"above U+10FFFF (F4 90)", "\xF4\x90\x80\x80", 0},
        {"lead F5", "\xF5\x80\x80\x80", 0},
        {"lead F8", "\xF8\x88\x80\x80\x80", 0},
        {"lead FC", "\xFC\x84\x80\x80\x80\x80", 0},
        {"lead FE", "\xFE", 0},
        {"lead FF", "ok \xFF", 3},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        const auto checked = check_line(c.raw);
        CHECK(checked.problem == line_problem::invalid_utf8);
        CHECK(checked.offset == c.offset);
        CHECK(checked.text.empty());
    }
    for (int lead = 0xF5; lead <= 0xFF; ++lead) {
        CAPTURE(lead);
        const std::string raw = std::string(1, static_cast<char>(lead)) + "\x80\x80\x80";
        CHECK(problem_of(raw) == line_problem::invalid_utf8);
    }
}

TEST_CASE("describe names each problem") {
    CHECK(coffee::describe(line_problem::too_long) == "longer than 4096 bytes");
    CHECK(coffee::describe(line_problem::nul_byte) == "contains a NUL byte");
    CHECK(coffee::describe(line_problem::control_char) == "contains a control character");
    CHECK(coffee::describe(line_problem::invalid_utf8) == "is not valid UTF-8");
    CHECK(coffee::describe(line_problem::none) == "valid");
}

TEST_CASE("printable escapes what a terminal should not see") {
    CHECK(coffee::printable("Latte") == "Latte");
    CHECK(coffee::printable("Café 茶") == "Café 茶");
    CHECK(coffee::printable("a\0b"s) == "a\\x00b");
    CHECK(coffee::printable("a\\b") == "a\\\\b");
    CHECK(coffee::printable("\t\r\n\x1b\x7f") == "\\x09\\x0d\\x0a\\x1b\\x7f");
    CHECK(coffee::printable("\xC2\x85") == "\\xc2\\x85");  // C1 control NEL
    CHECK(coffee::printable("\xFF\xC3") == "\\xff\\xc3");   // invalid and truncated
    CHECK(coffee::printable("\xED\xA0\x80") == "\\xed\\xa0\\x80");
    CHECK(coffee::printable("") == "");
}

TEST_CASE("printable escapes bidi controls and other invisible format characters, byte by byte") {
    // "Trojan Source": U+202E RIGHT-TO-LEFT OVERRIDE makes "paid" read backwards.
    CHECK(coffee::printable("Latte \u202Edias\u202C") == "Latte \\xe2\\x80\\xaedias\\xe2\\x80\\xac");
    for (const char* format : {"\u061C", "\u200B", "\u200E", "\u200F", "\u202A", "\u202B", "\u202D", "\u2028", "\u2029",
                               "\u2060", "\u2066", "\u2067", "\u2068", "\u2069", "\u00AD", "\uFEFF", "\U000E0041"}) {
        CAPTURE(format);
        const std::string escaped = coffee::printable(std::string{"a"} + format + "b");
        CHECK(escaped.front() == 'a');
        CHECK(escaped.back() == 'b');
        CHECK(escaped.find("\\x") == 1);
        CHECK(escaped.size() == 2 + 4 * std::strlen(format));
    }
    // Neighbours of those ranges stay as they are.
    for (const char* visible : {"\u061B", "\u2027", "\u2030", "\u2065", "\u2070", "é", "茶", "\U0001F600"})
        CHECK(coffee::printable(visible) == visible);
}

TEST_CASE("printable truncates long text with ...") {
    const std::string text(200, 'x');
    CHECK(coffee::printable(text) == std::string(80, 'x') + "...");
    CHECK(coffee::printable(text, 10) == "xxxxxxxxxx...");
    CHECK(coffee::printable(std::string(10, 'x'), 10) == std::string(10, 'x'));
    CHECK(coffee::printable("abc", 0) == "...");
    // Never cuts inside a UTF-8 sequence.
    const auto cut = coffee::printable("a茶茶茶", 2);
    CHECK(cut == "a茶...");
    CHECK(check_line(cut).problem == line_problem::none);
}

TEST_CASE("line_reader splits whole lines and reports each with its byte count") {
    const auto lines = feed_all("Latte\nEspresso\n\n  Mocha \r\n");
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == seen_line{line_problem::none, "Latte", "Latte", 6});
    CHECK(lines[1] == seen_line{line_problem::none, "Espresso", "Espresso", 9});
    CHECK(lines[2] == seen_line{line_problem::none, "", "", 1});
    CHECK(lines[3] == seen_line{line_problem::none, "Mocha", "  Mocha \r", 10});
}

TEST_CASE("line_reader: CRLF lines give the same orders as LF lines") {
    const auto crlf = feed_all("Latte\r\nCafé\r\n");
    REQUIRE(crlf.size() == 2);
    CHECK(crlf[0].text == "Latte");
    CHECK(crlf[0].problem == line_problem::none);
    CHECK(crlf[1].text == "Café");
    CHECK(crlf[1].bytes == 7);
}

TEST_CASE("line_reader: a partial line is held until its LF") {
    coffee::line_reader reader;
    CHECK_FALSE(reader.mid_line());
    CHECK(feed_all(reader, "Lat").empty());
    CHECK(reader.mid_line());
    CHECK(reader.pending_bytes() == 3);
    CHECK(reader.partial() == "Lat");
    CHECK(feed_all(reader, "te").empty());
    CHECK(reader.pending_bytes() == 5);
    const auto lines = feed_all(reader, "\nMo");
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].text == "Latte");
    CHECK(lines[0].bytes == 6);
    CHECK(reader.partial() == "Mo");
    CHECK(feed_all(reader, "cha\n").at(0).text == "Mocha");
    CHECK_FALSE(reader.mid_line());
    CHECK(reader.pending_bytes() == 0);
}

TEST_CASE("line_reader: splitting the stream at any byte position gives the same lines") {
    const std::string stream = "Latte\nCafé for Zoë\r\n\n  茶  \nbad\x01line\nbad\xFFutf8\nnul\0byte\n\xF0\x9F\x98\x80\nfinish\n"s;
    const auto whole = feed_all(stream);
    REQUIRE(whole.size() == 9);
    CHECK(whole[4].problem == line_problem::control_char);
    CHECK(whole[5].problem == line_problem::invalid_utf8);
    CHECK(whole[6].problem == line_problem::nul_byte);
    CHECK(whole[8].text == "finish");

    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        CAPTURE(cut);
        coffee::line_reader reader;
        auto lines = feed_all(reader, std::string_view{stream}.substr(0, cut));
        const auto rest = feed_all(reader, std::string_view{stream}.substr(cut));
        lines.insert(lines.end(), rest.begin(), rest.end());
        CHECK(lines == whole);
        CHECK_FALSE(reader.mid_line());
    }
    // And one byte at a time.
    coffee::line_reader reader;
    std::vector<seen_line> lines;
    for (const char c : stream) {
        const auto got = feed_all(reader, std::string_view{&c, 1});
        lines.insert(lines.end(), got.begin(), got.end());
    }
    CHECK(lines == whole);
}

TEST_CASE("line_reader: many lines in one feed") {
    std::string stream;
    for (int i = 0; i < 1000; ++i)
        stream += "Order " + std::to_string(i) + "\n";
    const auto lines = feed_all(stream);
    REQUIRE(lines.size() == 1000);
    CHECK(lines.front().text == "Order 0");
    CHECK(lines[500].text == "Order 500");
    CHECK(lines.back().text == "Order 999");
    std::size_t total = 0;
    for (const auto& l : lines)
        total += l.bytes;
    CHECK(total == stream.size());
}

TEST_CASE("line_reader: NUL bytes do not end a line and are reported") {
    const auto lines = feed_all("a\0b\nok\n"s);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].problem == line_problem::nul_byte);
    CHECK(lines[0].raw == "a\0b"s);
    CHECK(lines[0].bytes == 4);
    CHECK(lines[1] == seen_line{line_problem::none, "ok", "ok", 3});
}

TEST_CASE("line_reader: exactly 4095 bytes is one line, 4096 is too long, in any split") {
    const std::string longest(coffee::max_order_bytes, 'a');
    for (const std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{2048}, std::size_t{4094}, std::size_t{4095}}) {
        CAPTURE(cut);
        coffee::line_reader reader;
        const std::string stream = longest + "\n";
        auto lines = feed_all(reader, std::string_view{stream}.substr(0, cut));
        CHECK(reader.pending_bytes() <= coffee::max_order_bytes);
        const auto rest = feed_all(reader, std::string_view{stream}.substr(cut));
        lines.insert(lines.end(), rest.begin(), rest.end());
        REQUIRE(lines.size() == 1);
        CHECK(lines[0].problem == line_problem::none);
        CHECK(lines[0].text.size() == 4095);
        CHECK(lines[0].bytes == 4096);
    }
    for (const std::size_t cut : {std::size_t{0}, std::size_t{4095}, std::size_t{4096}}) {
        CAPTURE(cut);
        coffee::line_reader reader;
        const std::string stream = std::string(4096, 'a') + "\nnext\n";
        auto lines = feed_all(reader, std::string_view{stream}.substr(0, cut));
        const auto rest = feed_all(reader, std::string_view{stream}.substr(cut));
        lines.insert(lines.end(), rest.begin(), rest.end());
        REQUIRE(lines.size() == 2);
        CHECK(lines[0].problem == line_problem::too_long);
        CHECK(lines[0].bytes == 4097);
        CHECK(lines[1] == seen_line{line_problem::none, "next", "next", 5});
    }
    // 4095 bytes + CRLF is also too long: 4097 bytes on the wire.
    const auto crlf = feed_all(longest + "\r\n");
    REQUIRE(crlf.size() == 1);
    CHECK(crlf[0].problem == line_problem::too_long);
}

TEST_CASE("line_reader: a 1 MiB line is discarded, bounded, reported once, and the next line is fine") {
    coffee::line_reader reader;
    const std::string chunk(4000, 'x');
    std::vector<seen_line> lines;
    const std::size_t total = 1024 * 1024;
    std::size_t fed = 0;
    while (fed < total) {
        const std::size_t n = std::min(chunk.size(), total - fed);
        const auto got = feed_all(reader, std::string_view{chunk}.substr(0, n));
        lines.insert(lines.end(), got.begin(), got.end());
        fed += n;
        // While discarding nothing is held; before that, at most max_order_bytes.
        CHECK(reader.partial().size() <= coffee::max_order_bytes);
        CHECK(reader.mid_line());
    }
    CHECK(lines.empty());             // no LF yet: not reported
    CHECK(reader.partial().empty());  // the start of it was dropped
    CHECK(reader.pending_bytes() == total);  // counted as dropped
    CHECK(reader.mid_line());

    const auto after = feed_all(reader, "\nLatte\n");
    REQUIRE(after.size() == 2);
    CHECK(after[0].problem == line_problem::too_long);
    CHECK(after[0].bytes == total + 1);
    CHECK(after[0].raw.empty());
    CHECK(after[1] == seen_line{line_problem::none, "Latte", "Latte", 6});
    CHECK_FALSE(reader.mid_line());
    CHECK(reader.pending_bytes() == 0);
}

TEST_CASE("line_reader: a 1 MiB line in one feed is reported once as too long") {
    std::string stream(1024 * 1024, 'y');
    stream += "\nEspresso\n";
    const auto lines = feed_all(stream);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].problem == line_problem::too_long);
    CHECK(lines[0].bytes == 1024 * 1024 + 1);
    CHECK(lines[1].text == "Espresso");
}

TEST_CASE("line_reader holds at most 4095 bytes of a partial line, and the 4096th starts discarding") {
    coffee::line_reader reader;
    CHECK(feed_all(reader, std::string(coffee::max_order_bytes, 'a')).empty());
    CHECK(reader.partial().size() == coffee::max_order_bytes);
    CHECK(reader.pending_bytes() == coffee::max_order_bytes);
    CHECK(feed_all(reader, "a").empty());
    CHECK(reader.partial().empty());
    CHECK(reader.pending_bytes() == 4096);
    CHECK(reader.mid_line());
    const auto lines = feed_all(reader, "\n");
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].problem == line_problem::too_long);
    CHECK(lines[0].bytes == 4097);

    // The same 4096 bytes in one feed, no LF yet: nothing is held either.
    coffee::line_reader whole;
    CHECK(feed_all(whole, std::string(4096, 'a')).empty());
    CHECK(whole.partial().empty());
    CHECK(whole.pending_bytes() == 4096);
}

TEST_CASE("line_reader: a partial line that grows too long starts discarding") {
    coffee::line_reader reader;
    CHECK(feed_all(reader, std::string(3000, 'a')).empty());
    CHECK(reader.pending_bytes() == 3000);
    CHECK(feed_all(reader, std::string(3000, 'b')).empty());
    CHECK(reader.partial().empty());
    CHECK(reader.pending_bytes() == 6000);
    const auto lines = feed_all(reader, "c\n");
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].problem == line_problem::too_long);
    CHECK(lines[0].bytes == 6002);
}

}  // TEST_SUITE
