#include <coffee/line_protocol.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <cstring>

namespace coffee {

std::string_view describe(line_problem p) noexcept {
    switch (p) {
    case line_problem::none: return "valid";
    case line_problem::too_long: return "longer than 4096 bytes";
    case line_problem::nul_byte: return "contains a NUL byte";
    case line_problem::control_char: return "contains a control character";
    case line_problem::invalid_utf8: return "is not valid UTF-8";
    }
    return "unknown problem";
}

namespace {

constexpr bool is_blank(char c) noexcept { return c == ' ' || c == '\t'; }

// Length of the valid UTF-8 sequence at s[i], or 0 if it is invalid
// (overlong forms, surrogates and code points above U+10FFFF included).
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char b0 = byte(i);
    const auto cont = [&](std::size_t k) { return k < s.size() && (byte(k) & 0xC0U) == 0x80U; };
    if (b0 >= 0xC2 && b0 <= 0xDF)
        return cont(i + 1) ? 2 : 0;
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (!cont(i + 1) || !cont(i + 2))
            return 0;
        const unsigned char b1 = byte(i + 1);
        if ((b0 == 0xE0 && b1 < 0xA0) || (b0 == 0xED && b1 > 0x9F))
            return 0;  // overlong, or a UTF-16 surrogate
        return 3;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3))
            return 0;
        const unsigned char b1 = byte(i + 1);
        if ((b0 == 0xF0 && b1 < 0x90) || (b0 == 0xF4 && b1 > 0x8F))
            return 0;  // overlong, or above U+10FFFF
        return 4;
    }
    return 0;
}

// How many leading bytes of `s` are, 8 at a time, plain printable ASCII
// (0x20..0x7E), the common case; the caller checks the rest byte by byte.
// Bit tricks from "Bit Twiddling Hacks" (haszero/hasless): each test is exact
// about whether some byte in the word matches, which is all we ask of it.
std::size_t skip_plain_ascii(std::string_view s) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101U;
    constexpr std::uint64_t highs = 0x8080808080808080U;
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        std::uint64_t word = 0;
        std::memcpy(&word, s.data() + i, sizeof word);
        const std::uint64_t below_space = (word - ones * 0x20U) & ~word & highs;
        const std::uint64_t del = word ^ (ones * 0x7FU);
        const std::uint64_t has_del = (del - ones) & ~del & highs;
        if (((word & highs) | below_space | has_del) != 0)
            break;
    }
    return i;
}

// The code point of the valid UTF-8 sequence of `n` bytes at s[i].
char32_t decode_utf8(std::string_view s, std::size_t i, std::size_t n) noexcept {
    const auto byte = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k])); };
    constexpr char32_t lead_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    char32_t cp = byte(0) & lead_mask[n];
    for (std::size_t k = 1; k < n; ++k)
        cp = (cp << 6) | (byte(k) & 0x3F);
    return cp;
}

// Characters that are invisible or that change how the text around them is
// shown, not what it says: Unicode's format characters (category Cf: the
// bidi embeddings, overrides and isolates that "Trojan Source" abuses, the
// marks LRM/RLM/ALM, zero-width characters, soft hyphen, BOM, tags...) and
// the line and paragraph separators (Zl, Zp). From Unicode 15's
// UnicodeData.txt; sorted, inclusive ranges.
bool is_format_char(char32_t cp) noexcept {
    struct range {
        char32_t first, last;
    };
    static constexpr range ranges[] = {
        {0x00AD, 0x00AD},   {0x0600, 0x0605},   {0x061C, 0x061C},   {0x06DD, 0x06DD},   {0x070F, 0x070F},
        {0x0890, 0x0891},   {0x08E2, 0x08E2},   {0x180E, 0x180E},   {0x200B, 0x200F},   {0x2028, 0x202E},
        {0x2060, 0x2064},   {0x2066, 0x206F},   {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD},
        {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
        {0xE0020, 0xE007F},
    };
    for (const range& r : ranges) {
        if (cp < r.first)
            return false;
        if (cp <= r.last)
            return true;
    }
    return false;
}

}  // namespace

checked_line check_line(std::string_view raw) noexcept {
    std::string_view text = raw;
    if (!text.empty() && text.back() == '\r')
        text.remove_suffix(1);
    if (raw.size() > max_order_bytes)
        return {line_problem::too_long, {}, max_order_bytes};
    std::size_t i = skip_plain_ascii(text);
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            if (c == 0)
                return {line_problem::nul_byte, {}, i};
            if ((c < 0x20 && c != '\t') || c == 0x7F)
                return {line_problem::control_char, {}, i};
            ++i;
            continue;
        }
        const std::size_t n = utf8_sequence(text, i);
        if (n == 0)
            return {line_problem::invalid_utf8, {}, i};
        if (c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0)
            return {line_problem::control_char, {}, i};  // C1 controls U+0080..U+009F
        i += n;
    }
    while (!text.empty() && is_blank(text.front()))
        text.remove_prefix(1);
    while (!text.empty() && is_blank(text.back()))
        text.remove_suffix(1);
    return {line_problem::none, text, 0};
}

std::string printable(std::string_view raw, std::size_t max) {
    std::string out;
    out.reserve(std::min(raw.size(), max) + 8);
    std::size_t i = 0;
    for (; i < raw.size() && out.size() < max; ++i) {
        const auto c = static_cast<unsigned char>(raw[i]);
        if (c == '\\')
            out += "\\\\";
        else if (c >= 0x20 && c < 0x7F)
            out += static_cast<char>(c);
        else if (const std::size_t n = c >= 0x80 ? utf8_sequence(raw, i) : 0;
                 n > 0 && !(c == 0xC2 && static_cast<unsigned char>(raw[i + 1]) < 0xA0) &&
                 !is_format_char(decode_utf8(raw, i, n))) {
            out.append(raw.substr(i, n));
            i += n - 1;
        } else
            out += fmt::format("\\x{:02x}", c);
    }
    if (i < raw.size())
        out += "...";
    return out;
}

}  // namespace coffee
