// The faults suite's seed: COFFEE_TEST_SEED replays a test's random numbers,
// and a seed that is not a number is refused rather than read as some other.
#include "shop.hpp"

#include <doctest/doctest.h>

using namespace coffee::test;
using namespace coffee::test::faults;

TEST_SUITE("faults: seed") {

TEST_CASE("a seed is a whole number from 0 to 4294967295, nothing else") {
    CHECK(parse_seed("0") == 0U);
    CHECK(parse_seed("12345") == 12345U);
    CHECK(parse_seed("4294967295") == 4294967295U);
    for (const char* bad : {"", "abc", "12x", "-1", "+1", " 1", "1 ", "4294967296", "0x10", "1.5"})
        CHECK_MESSAGE(parse_seed(bad) == std::nullopt, "\"", bad, "\" taken as a seed");
}

TEST_CASE("COFFEE_TEST_SEED=N: every generator draws the same numbers") {
    const env_guard seed{"COFFEE_TEST_SEED", "4242"};
    CHECK(test_seed() == 4242U);
    auto first = seeded_rng();
    auto again = seeded_rng();
    for (int i = 0; i < 100; ++i)
        REQUIRE(first() == again());
}

}  // TEST_SUITE
