// libFuzzer target over the consumer's one-pass line check (order_lines),
// differential against check_line on the same bytes, both ways:
// - orders_as_they_stand(lines, count) true: every line is an order exactly
//   as it stands (printable ASCII, check_line finds no problem and changes
//   nothing, not empty, not 'finish'), and count is the number of lines;
// - false: some line is not such an order, or some line holds 2048 bytes
//   or more (a stretch of 2048 bytes with no LF: its documented reason to
//   refuse lines it could take).
// plain_lines, plain_order and count_lines against a byte-by-byte reference.
// Every invariant failure is a __builtin_trap(), kept by libFuzzer as a crash.
//
// The shop builds orders_as_they_stand twice (target_clones), for AVX2 and
// for plain x86-64, and the loader picks one. Here both are checked on
// every input: order_lines.cpp as linked in, and order_lines.cpp compiled
// once more below without its clones (the plain x86-64 build), in a
// namespace of its own. Under GCC (tests/fuzz/replay.cpp, over the corpus)
// the linked one is the loader's choice: the AVX2 clone where the CPU has
// it. clang 14, which builds libFuzzer targets, builds no clones (it
// ignores target_clones), so the fuzzing itself runs the plain build.
//
// Input layout: byte 0 picks a length to pad one line to (near 2048 and
// near max_order_bytes) and how many times the whole text repeats (up to
// 8, for inputs past 4 KiB and other alignments); byte 1 which line is
// padded; byte 2 the padding byte; the rest is the lines (an LF is added
// at the end when missing: the function takes whole lines only).
#include <order_lines.hpp>

#include <coffee/line_protocol.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace plain_x86_64 {
using namespace ::coffee;  // what order_lines.cpp finds in coffee, it finds here
#define COFFEE_AVX2_CLONES
#include <order_lines.cpp>
#undef COFFEE_AVX2_CLONES
}  // namespace plain_x86_64

namespace {

void check(bool ok) {
    if (!ok)
        __builtin_trap();
}

bool plain_byte(unsigned char c) { return c >= 0x20 && c <= 0x7E; }

bool reference_plain_lines(std::string_view bytes) {
    return std::all_of(bytes.begin(), bytes.end(),
                       [](char c) { return c == '\n' || plain_byte(static_cast<unsigned char>(c)); });
}

// An order exactly as it stands, as the shop's slow path would judge it.
bool served_as_it_stands(std::string_view raw) {
    const bool plain =
        std::all_of(raw.begin(), raw.end(), [](char c) { return plain_byte(static_cast<unsigned char>(c)); });
    const coffee::checked_line c = coffee::check_line(raw);
    return plain && c.problem == coffee::line_problem::none && c.text == raw && !raw.empty() &&
           raw != coffee::finish_message;
}

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const std::size_t lf = text.find('\n');
        lines.push_back(text.substr(0, lf));
        text.remove_prefix(lf + 1);
    }
    return lines;
}

void check_whole_lines(std::string_view text) {
    const std::vector<std::string_view> lines = split_lines(text);
    const bool all_orders = std::all_of(lines.begin(), lines.end(), served_as_it_stands);
    const bool a_long_line =
        std::any_of(lines.begin(), lines.end(), [](std::string_view l) { return l.size() >= 2048; });

    std::uint64_t count = 0;
    const bool taken = coffee::consumer::orders_as_they_stand(text, count);
    std::uint64_t plain_count = 0;
    const bool plain_taken = plain_x86_64::coffee::consumer::orders_as_they_stand(text, plain_count);
    check(plain_taken == taken && (!taken || plain_count == count));
    if (taken) {
        check(all_orders);
        check(count == lines.size());
    } else {
        check(!all_orders || a_long_line);
    }

    check(coffee::consumer::plain_lines(text) == reference_plain_lines(text));
    check(coffee::consumer::count_lines(text) == lines.size());
    if (reference_plain_lines(text)) {
        for (const std::string_view line : lines)
            check(coffee::consumer::plain_order(line) == served_as_it_stands(line));
    }
}

// The text to check, from the fuzzer's bytes (see the layout above).
std::string whole_lines(std::string_view input) {
    constexpr std::array<std::size_t, 16> pad_to{0,    1,    63,   64,   2046, 2047, 2048, 2049,
                                                 4093, 4094, 4095, 4096, 4097, 2111, 6000, 8191};
    const auto byte = [&](std::size_t i) { return i < input.size() ? static_cast<unsigned char>(input[i]) : 0U; };
    const std::size_t length = pad_to[byte(0) & 0x0FU];
    const std::size_t repeat = ((byte(0) >> 4) & 0x07U) + 1;
    const std::size_t which = byte(1);
    const char pad = byte(2) == 0 ? 'x' : static_cast<char>(byte(2));
    std::string lines{input.substr(std::min<std::size_t>(input.size(), 3))};
    if (lines.empty() || lines.back() != '\n')
        lines += '\n';

    if (length > 0) {
        // Line `which` (counted round) grows in its middle to `length` bytes.
        const std::size_t n = static_cast<std::size_t>(std::count(lines.begin(), lines.end(), '\n'));
        std::size_t start = 0;
        for (std::size_t k = which % n; k > 0; --k)
            start = lines.find('\n', start) + 1;
        const std::size_t size = lines.find('\n', start) - start;
        if (size < length)
            lines.insert(start + size / 2, length - size, pad);
    }
    std::string text;
    for (std::size_t k = 0; k < repeat; ++k)
        text += lines;
    return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input{reinterpret_cast<const char*>(data), size};

    // Any bytes at all, at any alignment: plain_lines and count_lines take them.
    for (std::size_t skip = 0; skip < 3 && skip <= input.size(); ++skip) {
        const std::string_view bytes = input.substr(skip);
        check(coffee::consumer::plain_lines(bytes) == reference_plain_lines(bytes));
        check(coffee::consumer::count_lines(bytes) ==
              static_cast<std::uint64_t>(std::count(bytes.begin(), bytes.end(), '\n')));
    }

    const std::string text = whole_lines(input);
    check_whole_lines(text);
    // And the lines at another alignment, after a first line of 1..63 bytes.
    const std::size_t shift = (input.empty() ? 0U : static_cast<unsigned char>(input[0]) % 63U) + 1;
    check_whole_lines(std::string(shift, 'a') + "\n" + text);
    return 0;
}
