#pragma once
// The baristas: threads that take orders from the queue, brew them (log
// "Processing order: ORDER", then wait the brew time) and serve them at the
// counter. They see only the queue, the counter and the board, each safe
// to use from any thread; the rest of the shop is the reader's.

#include "counter.hpp"
#include "order_queue.hpp"
#include "status.hpp"

#include <coffee/duration.hpp>

#include <string_view>
#include <thread>
#include <vector>

namespace coffee::consumer {

// How an order is brewed.
struct recipe {
    duration brew_time;
    bool log_each = true;  // "Processing order: ORDER" at info level (asked once: the level is set by then)

    [[nodiscard]] bool instant() const noexcept { return brew_time.count() == 0; }
};

// Brews each of `lines` (whole lines): logs it and waits the brew time.
void brew(std::string_view lines, const recipe& how);

class baristas {
public:
    baristas(unsigned count, const recipe& how, order_queue& queue, counter& serving)
        : count_{count}, recipe_{how}, queue_{queue}, counter_{serving}, board_{count} {}
    baristas(const baristas&) = delete;
    baristas& operator=(const baristas&) = delete;
    // Those still at work leave after the order in hand.
    ~baristas();

    // Throws exit_error (exit_oserr) when a thread cannot be started; the
    // ones started leave with the shop.
    void start();
    // Waits for every barista to leave (the queue was closed).
    void join();

    [[nodiscard]] const barista_board& board() const noexcept { return board_; }

private:
    void work(unsigned index);

    unsigned count_;
    recipe recipe_;
    order_queue& queue_;
    counter& counter_;
    barista_board board_;
    std::vector<std::thread> threads_;
};

}  // namespace coffee::consumer
