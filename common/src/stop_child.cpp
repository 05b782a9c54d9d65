#include <coffee/stop_child.hpp>

#include <coffee/posix.hpp>
#include <coffee/unique_fd.hpp>

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <thread>
#include <utility>

namespace coffee {

const stop_step& stop_schedule::begin(stop_plan plan, clock::time_point now) {
    if (plan.empty())
        throw std::invalid_argument{"a stop plan needs at least one step"};
    plan_ = std::move(plan);
    enter(0, now);
    return plan_.front();
}

std::optional<stop_step> stop_schedule::due(clock::time_point now) {
    if (!deadline_ || now < *deadline_ || taken_ >= plan_.size())
        return std::nullopt;
    enter(taken_, now);
    return plan_[taken_ - 1];
}

void stop_schedule::enter(std::size_t step, clock::time_point now) noexcept {
    taken_ = step + 1;
    const duration grace = plan_[step].grace;
    const bool last = taken_ == plan_.size();
    if (grace == forever || last || clock::time_point::max() - now <= grace)
        deadline_.reset();
    else
        deadline_ = now + grace;
}

namespace {

// Waits up to `grace` for `child` to exit; true once it is reaped. A pidfd
// wakes us the moment it exits; without one (old kernels), we look again
// every 10ms.
bool reaped_within(child_process& child, duration grace) {
    const auto deadline = stop_schedule::clock::now() + grace;
    const unique_fd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, child.pid(), 0U))};
    while (!child.try_wait()) {
        const auto left = std::chrono::duration_cast<duration>(deadline - stop_schedule::clock::now());
        if (left <= duration::zero())
            return false;
        if (pidfd) {
            pollfd fd{pidfd.get(), POLLIN, 0};
            const auto ms = std::min<duration::rep>(left.count() + 1, 1000);
            (void)retry_on_eintr([&] { return ::poll(&fd, 1, static_cast<int>(ms)); });
        } else {
            std::this_thread::sleep_for(std::min(left, duration{10}));
        }
    }
    return true;
}

}  // namespace

stop_result stop_child(child_process& child, const stop_plan& plan) {
    if (plan.empty())
        throw std::invalid_argument{"a stop plan needs at least one step"};
    stop_result result{0, 0, 0};
    for (std::size_t i = 0; i < plan.size() && child.running(); ++i) {
        if (child.try_wait())
            break;
        child.send_signal(plan[i].signal);
        result.steps = i + 1;
        result.last_signal = plan[i].signal;
        if (plan[i].grace == forever || i + 1 == plan.size())
            break;
        if (reaped_within(child, plan[i].grace))
            break;
    }
    result.wait_status = child.running() ? child.wait() : *child.status();
    return result;
}

}  // namespace coffee
