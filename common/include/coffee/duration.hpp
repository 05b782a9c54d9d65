#pragma once
#include <chrono>
#include <string>
#include <string_view>

namespace coffee {

using duration = std::chrono::milliseconds;

// Parses a non-negative duration: an integer followed by a unit, "ms", "s",
// "m" or "h" ("250ms", "4s", "1m"). A bare integer means seconds ("0", "10").
// Throws usage_error naming the text when it is not one, or when it exceeds
// a day.
[[nodiscard]] duration parse_duration(std::string_view text);

// "250ms", "4s", "1m", "0s": the shortest exact form.
[[nodiscard]] std::string format_duration(duration d);

}  // namespace coffee
