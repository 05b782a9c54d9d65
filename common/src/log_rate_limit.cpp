#include <coffee/log_rate_limit.hpp>

#include <utility>

namespace coffee {

void log_rate_limit::roll_over(clock::time_point now) {
    if (now - start_ < interval_)
        return;
    overdue_ += suppressed_;
    suppressed_ = 0;
    logged_ = 0;
    start_ = now;
}

bool log_rate_limit::allow(clock::time_point now) {
    roll_over(now);
    if (logged_ < burst_) {
        ++logged_;
        return true;
    }
    ++suppressed_;
    return false;
}

std::uint64_t log_rate_limit::take_suppressed(clock::time_point now, bool all) {
    roll_over(now);
    if (all)
        overdue_ += std::exchange(suppressed_, 0);
    return std::exchange(overdue_, 0);
}

}  // namespace coffee
