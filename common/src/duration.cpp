#include <coffee/duration.hpp>

#include <coffee/errors.hpp>

#include <charconv>

namespace coffee {

duration parse_duration(std::string_view text) {
    long long value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end == text.data() || value < 0)
        throw usage_error(fmt::format("invalid duration '{}': expected a number and a unit, e.g. 250ms, 4s, 1m", text));
    const std::string_view unit{end, static_cast<std::size_t>(text.data() + text.size() - end)};
    long long ms = 0;
    if (unit == "ms")
        ms = value;
    else if (unit.empty() || unit == "s")
        ms = value * 1000;
    else if (unit == "m" || unit == "min")
        ms = value * 60'000;
    else if (unit == "h")
        ms = value * 3'600'000;
    else
        throw usage_error(fmt::format("invalid duration '{}': unknown unit '{}' (use ms, s, m or h)", text, unit));
    if (value > 86'400'000 || ms > 86'400'000)
        throw usage_error(fmt::format("invalid duration '{}': longer than a day", text));
    return duration{ms};
}

std::string format_duration(duration d) {
    const auto ms = d.count();
    if (ms != 0 && ms % 3'600'000 == 0)
        return fmt::format("{}h", ms / 3'600'000);
    if (ms != 0 && ms % 60'000 == 0)
        return fmt::format("{}m", ms / 60'000);
    if (ms % 1000 == 0)
        return fmt::format("{}s", ms / 1000);
    return fmt::format("{}ms", ms);
}

}  // namespace coffee
