#include "order_lines.hpp"

#include <coffee/line_protocol.hpp>

// Functions built twice by GCC, for AVX2 and plain x86-64, the loader
// picking one (an ifunc); clang 14 ignores target_clones and builds one. Not under ThreadSanitizer, which runs the loader's choice
// before it is initialised, and crashes at start.
#if defined(__SANITIZE_THREAD__)
#define COFFEE_AVX2_CLONES
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define COFFEE_AVX2_CLONES
#endif
#endif
#ifndef COFFEE_AVX2_CLONES
#define COFFEE_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#endif

namespace coffee::consumer {

// True when every byte of `lines` is printable ASCII (0x20..0x7E) or LF.
// Looks at 32 bytes at a time without branching on each, which the compiler
// turns into vector compares.
bool plain_lines(std::string_view lines) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(lines.data());
    const std::size_t n = lines.size();
    const auto bad = [](unsigned char c) {
        return static_cast<unsigned char>(static_cast<unsigned char>(c - 0x20U) > 0x5EU && c != '\n');
    };
    constexpr std::size_t block = 32;
    std::size_t i = 0;
    for (; i + block <= n; i += block) {
        unsigned char any = 0;
        for (std::size_t k = 0; k < block; ++k)
            any |= bad(p[i + k]);
        if (any != 0)
            return false;
    }
    unsigned char any = 0;
    for (; i < n; ++i)
        any |= bad(p[i]);
    return any == 0;
}

// The LFs in `text`. Counted in blocks of 64 bytes into a byte, which the
// compiler turns into vector compares (std::count widens every byte to 64
// bits first, and was a tenth of the consumer's time).
std::uint64_t count_lines(std::string_view text) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    constexpr std::size_t block = 64;
    std::uint64_t count = 0;
    std::size_t i = 0;
    for (; i + block <= n; i += block) {
        unsigned char in_block = 0;
        for (std::size_t k = 0; k < block; ++k)
            in_block = static_cast<unsigned char>(in_block + (p[i + k] == '\n' ? 1 : 0));
        count += in_block;
    }
    for (; i < n; ++i)
        count += p[i] == '\n' ? 1 : 0;
    return count;
}

// True when every line of `lines` (whole lines, ending with LF) is an order
// exactly as it stands, as plain_order says; `count` is then how many there
// are. One pass that looks at each byte and the one before it, 64 at a time
// into byte-wide flags and counts (vector compares), instead of a search
// per line: printable ASCII or LF, no empty line, no blank next to an LF,
// and a line that starts with 'f' is looked at: is it 'finish'? Lines too
// long cannot hide: when every stretch of 2048 bytes holds an LF, no line
// is longer than 4094 bytes (a take with longer lines is simply not "as it
// stands" here, and goes the journal's way). Built twice, for AVX2 (32
// bytes a compare; the loader picks it where the CPU has it) and for plain
// x86-64: AVX2 saved a tenth of the consumer's CPU time at 2 M orders.
// One function, its checks as lambdas: the compiler sees the whole block
// loop and vectorises it.
COFFEE_AVX2_CLONES
bool orders_as_they_stand(std::string_view lines, std::uint64_t& count) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(lines.data());
    const std::size_t n = lines.size();
    constexpr std::string_view finish_line = "finish\n";
    static_assert(finish_line.substr(0, finish_line.size() - 1) == finish_message);
    const auto not_plain = [](unsigned char c) {
        return static_cast<unsigned char>(static_cast<unsigned char>(c - 0x20U) > 0x5EU && c != '\n');
    };
    // Byte i (i >= 1): is it an LF; is anything wrong there; may a line
    // 'finish' start there?
    const auto lf_at = [p](std::size_t i) { return static_cast<unsigned char>(p[i] == '\n'); };
    const auto bad_at = [p, not_plain](std::size_t i) {
        const unsigned char c = p[i];
        const unsigned char prev = p[i - 1];
        return static_cast<unsigned char>(not_plain(c) | ((c == '\n') & (prev == '\n' || prev == ' ')) |
                                          ((c == ' ') & (prev == '\n')));
    };
    const auto f_at = [p](std::size_t i) { return static_cast<unsigned char>((p[i] == 'f') & (p[i - 1] == '\n')); };
    const auto finish_at = [&](std::size_t i) { return f_at(i) != 0 && lines.substr(i).starts_with(finish_line); };

    if (n == 0 || p[0] == '\n' || p[0] == ' ' || not_plain(p[0]) != 0 || lines.starts_with(finish_line))
        return false;
    static_assert(2 * 2048 - 2 <= max_order_bytes);
    constexpr std::size_t block = 64;
    constexpr std::size_t blocks_per_stretch = 2048 / block;
    count = 0;
    std::uint64_t stretch_lfs = 0;
    std::size_t blocks = 0;
    std::size_t i = 1;
    for (; i + block <= n; i += block) {
        unsigned char lfs = 0;
        unsigned char bad = 0;
        unsigned char f = 0;
        for (std::size_t k = 0; k < block; ++k) {
            lfs = static_cast<unsigned char>(lfs + lf_at(i + k));
            bad |= bad_at(i + k);
            f |= f_at(i + k);
        }
        if (bad != 0)
            return false;
        for (std::size_t k = 0; f != 0 && k < block; ++k) {
            if (finish_at(i + k))
                return false;
        }
        stretch_lfs += lfs;
        if (++blocks == blocks_per_stretch) {
            if (stretch_lfs == 0)
                return false;
            count += stretch_lfs;
            stretch_lfs = 0;
            blocks = 0;
        }
    }
    for (; i < n; ++i) {
        if (bad_at(i) != 0 || finish_at(i))
            return false;
        stretch_lfs += lf_at(i);
    }
    count += stretch_lfs;  // the last stretch ends with the last LF
    return true;
}

}  // namespace coffee::consumer
