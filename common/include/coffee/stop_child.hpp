#pragma once
#include <coffee/child_process.hpp>
#include <coffee/duration.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <vector>

namespace coffee {

// A grace period with no end: the step waits until the child exits.
inline constexpr duration forever = duration::max();

// One step of stopping a child: send `signal`, then give it `grace` to exit.
struct stop_step {
    int signal;
    duration grace;
};

// The steps in order, e.g. {{SIGTERM, 5s}, {SIGKILL, forever}}.
using stop_plan = std::vector<stop_step>;

// Where a stop stands, for a caller whose own poll() loop reaps the children
// and serves other descriptors meanwhile. It sends nothing itself: the
// caller sends each step's signal to whichever children it is stopping.
class stop_schedule {
public:
    using clock = std::chrono::steady_clock;

    // Starts at the plan's first step and returns it. Throws
    // std::invalid_argument for an empty plan.
    const stop_step& begin(stop_plan plan, clock::time_point now);
    [[nodiscard]] bool started() const noexcept { return taken_ > 0; }
    // When the current step's grace ends: nullopt before begin() and while
    // a step waits forever (as the last one usually does).
    [[nodiscard]] std::optional<clock::time_point> deadline() const noexcept { return deadline_; }
    // The next step, once the current one's grace has passed at `now`;
    // nullopt before that and after the last step.
    [[nodiscard]] std::optional<stop_step> due(clock::time_point now);
    // How many steps have begun (0 before begin()).
    [[nodiscard]] std::size_t steps_taken() const noexcept { return taken_; }

private:
    void enter(std::size_t step, clock::time_point now) noexcept;
    stop_plan plan_;
    std::size_t taken_ = 0;
    std::optional<clock::time_point> deadline_;
};

// How a stop ended.
struct stop_result {
    int wait_status;   // decode with WIFEXITED...; describe_wait_status()
    std::size_t steps; // signals sent: 0 when the child had already exited
    int last_signal;   // the last one sent, 0 when none was
};

// Carries out `plan` on `child`, blocking: each step's signal, then up to
// its grace for the child to exit, until it is reaped (a last step with a
// finite grace is waited out forever, so the child is always reaped).
// Throws std::invalid_argument for an empty plan.
stop_result stop_child(child_process& child, const stop_plan& plan);

}  // namespace coffee
