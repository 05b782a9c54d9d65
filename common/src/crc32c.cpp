#include <coffee/crc32c.hpp>

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace coffee {

namespace {

constexpr std::uint32_t reflected_polynomial = 0x82F63B78U;

// Slicing-by-8 tables (Intel's "slicing-by-8" technique, as in RocksDB and
// the Linux kernel's crc32c generic code).
constexpr auto make_tables() {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1U) != 0 ? (c >> 1) ^ reflected_polynomial : c >> 1;
        t[0][i] = c;
    }
    for (std::size_t s = 1; s < 8; ++s)
        for (std::size_t i = 0; i < 256; ++i)
            t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFU];
    return t;
}

constexpr auto tables = make_tables();

std::uint32_t crc32c_portable(const unsigned char* p, std::size_t n, std::uint32_t c) noexcept {
    while (n >= 8) {
        std::uint64_t word = 0;
        std::memcpy(&word, p, 8);
        word ^= c;
        c = tables[7][word & 0xFFU] ^ tables[6][(word >> 8) & 0xFFU] ^ tables[5][(word >> 16) & 0xFFU] ^
            tables[4][(word >> 24) & 0xFFU] ^ tables[3][(word >> 32) & 0xFFU] ^ tables[2][(word >> 40) & 0xFFU] ^
            tables[1][(word >> 48) & 0xFFU] ^ tables[0][word >> 56];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = (c >> 8) ^ tables[0][(c ^ *p++) & 0xFFU];
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const unsigned char* p, std::size_t n,
                                                              std::uint32_t c) noexcept {
    std::uint64_t c64 = c;
    while (n >= 8) {
        std::uint64_t word = 0;
        std::memcpy(&word, p, 8);
        c64 = _mm_crc32_u64(c64, word);
        p += 8;
        n -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c64);
    while (n-- > 0)
        c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}

__attribute__((target("sse4.2"))) std::array<std::uint32_t, 3> crc32c_3_sse42(const unsigned char* a,
                                                                             const unsigned char* b,
                                                                             const unsigned char* c,
                                                                             std::size_t n) noexcept {
    std::uint64_t ca = ~0U;
    std::uint64_t cb = ~0U;
    std::uint64_t cc = ~0U;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t wa = 0;
        std::uint64_t wb = 0;
        std::uint64_t wc = 0;
        std::memcpy(&wa, a + i, 8);
        std::memcpy(&wb, b + i, 8);
        std::memcpy(&wc, c + i, 8);
        ca = _mm_crc32_u64(ca, wa);
        cb = _mm_crc32_u64(cb, wb);
        cc = _mm_crc32_u64(cc, wc);
    }
    auto ra = static_cast<std::uint32_t>(ca);
    auto rb = static_cast<std::uint32_t>(cb);
    auto rc = static_cast<std::uint32_t>(cc);
    for (; i < n; ++i) {
        ra = _mm_crc32_u8(ra, a[i]);
        rb = _mm_crc32_u8(rb, b[i]);
        rc = _mm_crc32_u8(rc, c[i]);
    }
    return {~ra, ~rb, ~rc};
}

const bool have_sse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    const std::uint32_t c = ~crc;
#if defined(__x86_64__)
    if (have_sse42)
        return ~crc32c_sse42(p, bytes.size(), c);
#endif
    return ~crc32c_portable(p, bytes.size(), c);
}

std::array<std::uint32_t, 3> crc32c_3(const char* a, const char* b, const char* c, std::size_t n) noexcept {
    const auto* pa = reinterpret_cast<const unsigned char*>(a);
    const auto* pb = reinterpret_cast<const unsigned char*>(b);
    const auto* pc = reinterpret_cast<const unsigned char*>(c);
#if defined(__x86_64__)
    if (have_sse42)
        return crc32c_3_sse42(pa, pb, pc, n);
#endif
    return {~crc32c_portable(pa, n, ~0U), ~crc32c_portable(pb, n, ~0U), ~crc32c_portable(pc, n, ~0U)};
}

}  // namespace coffee
