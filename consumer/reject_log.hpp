#pragma once
// Lines the shop refuses (malformed, over-long, unfinished and cut off):
// each is counted, and warned of in a burst, then in one summary per
// interval, so that a flood of bad lines cannot flood the log.

#include <coffee/line_protocol.hpp>
#include <coffee/log_rate_limit.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace coffee::consumer {

class reject_log {
public:
    // Counts one refused line; true when its warning may be logged now
    // (having logged how many were not).
    bool count_one();
    // Counts and warns of a line check_line refused: `raw` (without its LF,
    // empty when it was dropped as it came), `bytes` long with its LF.
    void malformed(const checked_line& check, std::string_view raw, std::size_t bytes);
    // Logs how many warnings were held back, when the interval is up (or
    // `all`: at the end).
    void flush(bool all = false);
    [[nodiscard]] std::uint64_t count() const noexcept { return rejected_; }

private:
    // A burst of warnings, then one summary per interval.
    static constexpr std::size_t burst = 10;
    static constexpr auto interval = std::chrono::seconds{10};

    std::uint64_t rejected_ = 0;
    log_rate_limit warnings_{burst, interval};
};

}  // namespace coffee::consumer
