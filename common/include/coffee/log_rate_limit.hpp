#pragma once
#include <chrono>
#include <cstdint>

namespace coffee {

// Lets a burst of log lines through per interval, then counts the rest, so
// that a flood of bad input cannot drown the log (and journald's own rate
// limit cannot then swallow a genuine warning). Not thread-safe: one owner.
class log_rate_limit {
public:
    using clock = std::chrono::steady_clock;

    log_rate_limit(std::size_t burst, clock::duration interval) : burst_{burst}, interval_{interval} {}

    // True when this event may be logged now; false when it is counted as
    // suppressed instead.
    [[nodiscard]] bool allow(clock::time_point now = clock::now());

    // How many events were suppressed in intervals that are over (0 if none),
    // and forgets them. The caller logs one summary line when this is not 0;
    // calling it before each allowed line and from a periodic tick keeps the
    // summaries in order and at most one per interval.
    // `all`: the current interval's too (at exit, when no later tick comes).
    [[nodiscard]] std::uint64_t take_suppressed(clock::time_point now = clock::now(), bool all = false);

    // Suppressed in the current interval, not yet summarised.
    [[nodiscard]] std::uint64_t suppressed() const noexcept { return suppressed_; }

private:
    void roll_over(clock::time_point now);

    std::size_t burst_;
    clock::duration interval_;
    clock::time_point start_{};
    std::size_t logged_ = 0;
    std::uint64_t suppressed_ = 0;
    std::uint64_t overdue_ = 0;
};

}  // namespace coffee
