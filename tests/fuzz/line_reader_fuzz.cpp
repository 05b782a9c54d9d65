// libFuzzer target over the line protocol: coffee::line_reader fed in
// chunks whose sizes come from the input, coffee::check_line against an
// independent reference validator, and coffee::printable. Every invariant
// failure is a __builtin_trap(), so libFuzzer keeps the input as a crash.
//
// Input layout: byte 0 picks printable()'s `max`; bytes 1..8 (when present)
// are the chunk-size schedule, used in a cycle; the rest is the stream.
#include <coffee/line_protocol.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace {

void check(bool ok) {
    if (!ok)
        __builtin_trap();
}

// What a line should be, decided without coffee's code: decode code points
// one by one and apply the v1 rules (docs/design.md, "The line protocol").
std::pair<coffee::line_problem, std::size_t> reference_check(std::string_view raw) {
    using coffee::line_problem;
    std::string_view text = raw;
    if (!text.empty() && text.back() == '\r')
        text.remove_suffix(1);
    if (raw.size() > coffee::max_order_bytes)
        return {line_problem::too_long, coffee::max_order_bytes};
    std::size_t i = 0;
    while (i < text.size()) {
        const auto b0 = static_cast<unsigned char>(text[i]);
        std::size_t length = 0;
        std::uint32_t cp = 0;
        std::uint32_t min = 0;
        if (b0 < 0x80) {
            length = 1;
            cp = b0;
        } else if ((b0 & 0xE0U) == 0xC0U) {
            length = 2;
            cp = b0 & 0x1FU;
            min = 0x80;
        } else if ((b0 & 0xF0U) == 0xE0U) {
            length = 3;
            cp = b0 & 0x0FU;
            min = 0x800;
        } else if ((b0 & 0xF8U) == 0xF0U) {
            length = 4;
            cp = b0 & 0x07U;
            min = 0x10000;
        } else {
            return {line_problem::invalid_utf8, i};
        }
        if (i + length > text.size())
            return {line_problem::invalid_utf8, i};
        for (std::size_t k = 1; k < length; ++k) {
            const auto b = static_cast<unsigned char>(text[i + k]);
            if ((b & 0xC0U) != 0x80U)
                return {line_problem::invalid_utf8, i};
            cp = (cp << 6) | (b & 0x3FU);
        }
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return {line_problem::invalid_utf8, i};
        if (cp == 0)
            return {line_problem::nul_byte, i};
        if ((cp < 0x20 && cp != '\t') || (cp >= 0x7F && cp <= 0x9F))
            return {line_problem::control_char, i};
        i += length;
    }
    return {line_problem::none, 0};
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

void check_line_against_reference(std::string_view raw) {
    const auto got = coffee::check_line(raw);
    const auto [problem, offset] = reference_check(raw);
    check(got.problem == problem);
    if (problem != coffee::line_problem::none) {
        check(got.offset == offset);
        check(got.text.empty());
        return;
    }
    // The text is a trimmed view into raw, without LF, CR, NUL or blank ends.
    check(got.text.empty() || (got.text.data() >= raw.data() && got.text.data() + got.text.size() <= raw.data() + raw.size()));
    check(got.text.find_first_of(std::string_view{"\n\r\0", 3}) == std::string_view::npos);
    check(got.text.empty() || (!is_blank(got.text.front()) && !is_blank(got.text.back())));
    check(got.text.size() <= coffee::max_order_bytes);
    // Normalising is idempotent.
    const auto again = coffee::check_line(got.text);
    check(again.problem == coffee::line_problem::none && again.text == got.text);
}

// Undoes printable()'s escapes (\\ and \xHH); false if the text is not
// something printable() could have produced.
bool unescape(std::string_view text, std::string& out) {
    const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\') {
            out += text[i];
            continue;
        }
        if (i + 1 < text.size() && text[i + 1] == '\\') {
            out += '\\';
            ++i;
        } else if (i + 3 < text.size() && text[i + 1] == 'x' && hex(text[i + 2]) >= 0 && hex(text[i + 3]) >= 0) {
            out += static_cast<char>(hex(text[i + 2]) * 16 + hex(text[i + 3]));
            i += 3;
        } else {
            return false;
        }
    }
    return true;
}

void check_printable(std::string_view raw, std::size_t max) {
    const std::string out = coffee::printable(raw, max);
    // Bounded: a last escape or UTF-8 sequence may pass max by 3, then "...".
    check(out.size() <= max + 3 + 3);
    for (const char c : out) {
        const auto b = static_cast<unsigned char>(c);
        check(b >= 0x20 && b != 0x7F);
    }
    if (out.size() <= coffee::max_order_bytes)
        check(coffee::check_line(out).problem == coffee::line_problem::none);
    // Nothing is lost but the cut tail: unescaped, it is raw or a prefix of raw + "...".
    std::string whole;
    const bool complete = unescape(out, whole) && whole == raw;
    bool cut = false;
    if (!complete && out.size() >= 3 && std::string_view{out}.substr(out.size() - 3) == "...") {
        std::string head;
        cut = unescape(std::string_view{out}.substr(0, out.size() - 3), head) && head.size() < raw.size() &&
              raw.substr(0, head.size()) == head && head.size() <= max + 3;  // a whole last character
    }
    check(complete || cut);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input{reinterpret_cast<const char*>(data), size};

    const std::size_t max = input.empty() ? 80 : static_cast<unsigned char>(input[0]) % 100;
    const std::string_view schedule = input.substr(0, std::min<std::size_t>(input.size(), 9)).substr(input.empty() ? 0 : 1);
    const std::string_view stream = input.substr(std::min<std::size_t>(input.size(), 9));

    check_line_against_reference(stream);
    check_printable(stream, max);

    // The oracle: the complete lines, split the obvious way.
    std::size_t expected_lines = 0;
    std::size_t line_start = 0;
    coffee::line_reader reader;
    std::size_t fed = 0;
    std::size_t reported = 0;
    std::size_t step = 0;
    std::string_view rest = stream;
    while (!rest.empty()) {
        std::size_t n = rest.size();
        if (!schedule.empty()) {
            const auto b = static_cast<unsigned char>(schedule[step++ % schedule.size()]);
            n = b < 128 ? std::size_t{b} + 1 : std::size_t{b - 127U} * 64;  // 1..128, or 64..8192
        }
        const std::string_view chunk = rest.substr(0, n);
        rest.remove_prefix(chunk.size());
        reader.feed(chunk, [&](const coffee::line_reader::line& l) {
            // The line the reader reports is the next one in the stream.
            const std::size_t lf = stream.find('\n', line_start);
            check(lf != std::string_view::npos);
            const std::string_view expected = stream.substr(line_start, lf - line_start);
            line_start = lf + 1;
            ++expected_lines;
            check(l.bytes == expected.size() + 1);
            check(l.raw.find('\n') == std::string_view::npos);
            if (expected.size() > coffee::max_order_bytes) {
                check(l.check.problem == coffee::line_problem::too_long);
                check(l.check.text.empty());
            } else {
                check(l.raw == expected);
                check_line_against_reference(expected);
                check(l.check.problem == coffee::check_line(expected).problem);
                check(l.check.text == coffee::check_line(expected).text);
            }
            if (l.check.problem == coffee::line_problem::none) {
                const auto again = coffee::check_line(l.raw);
                check(again.problem == coffee::line_problem::none && again.text == l.check.text);
                check(l.check.text.find('\n') == std::string_view::npos);
                check(l.check.text.find('\0') == std::string_view::npos);
            }
            reported += l.bytes;
        });
        fed += chunk.size();
        const bool discarding = reader.mid_line() && reader.partial().empty();
        check(reader.partial().size() <= coffee::max_order_bytes);
        if (!discarding)
            check(reader.pending_bytes() == reader.partial().size() && reader.pending_bytes() <= coffee::max_order_bytes);
        check(reported + reader.pending_bytes() == fed);
        check(reader.mid_line() == (fed != line_start));
    }
    // Every LF produced exactly one line.
    std::size_t lfs = 0;
    for (const char c : stream)
        lfs += c == '\n' ? 1 : 0;
    check(expected_lines == lfs);
    return 0;
}
