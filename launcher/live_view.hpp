#pragma once
// coffee-launcher demo's view of the shop at work: a frame redrawn in place
// on a terminal, or one summary line per second for a log.
#include "shop_watch.hpp"

#include <coffee/duration.hpp>
#include <coffee/pipe_fill.hpp>

#include <spdlog/logger.h>

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace coffee::launcher {

enum class customer_state { not_yet_here, ordering, blocked, done };

struct customer_view {
    std::string name;  // "customer 2"
    pid_t pid = -1;
    customer_state state = customer_state::not_yet_here;
    unsigned orders = 0;
    int wait_status = 0;  // when done
};

// Everything one frame or summary line shows.
struct demo_snapshot {
    std::string title;          // "rush hour: ..." (the scenario), or the demo's shape
    duration elapsed{};
    std::string fifo;
    std::optional<pipe_fill> pipe;
    double bytes_per_order = 32;  // to say roughly how many orders the pipe holds
    std::vector<customer_view> customers;
    pid_t consumer_pid = -1;
    bool consumer_running = false;
    consumer_report shop;
    unsigned baristas = 0;        // how many the consumer runs (0: unknown)
    std::uint64_t served = 0;
    std::uint64_t ordered = 0;
    double per_second = 0;
    bool stopping = false;        // we were asked to stop (Ctrl-C, SIGTERM)
};

// True when the pipe has no room for one more atomic write of PIPE_BUF
// bytes: a customer writing a batch that size now blocks.
[[nodiscard]] bool pipe_full(const pipe_fill& fill) noexcept;

// The frame's lines, each at most `width` columns, at most `height` lines;
// SGR colours when `color`.
[[nodiscard]] std::vector<std::string> render_frame(const demo_snapshot& s, unsigned width, unsigned height, bool color);

// One line that tells the same story, for logs:
// "3.0s pipe 16/16 KiB (~520 orders) FULL, customers 3 blocked 1 ordering 0 done,
//  baristas 2/2 busy, served 230/1200 (115/s)".
[[nodiscard]] std::string summary_line(const demo_snapshot& s);

// Whether the demo may draw live on stderr: it is a terminal that can move
// the cursor (TERM is set and not "dumb").
[[nodiscard]] bool stderr_can_go_live();

// The live view on stderr's terminal, at the bottom of what scrolls by.
// While it lives, log lines (ours: spdlog's default logger is redirected
// here; the children's: pass them to print_above) and, when stdout is the
// same terminal, the served orders are printed above the frame. It only
// writes escape sequences, never changes the terminal's settings: the
// destructor leaves the last frame on screen, resets the colours and shows
// the cursor again, whatever ends the demo (normal exit, Ctrl-C, SIGTERM:
// they arrive on the signalfd and unwind to here).
class live_view {
public:
    live_view();
    ~live_view();
    live_view(const live_view&) = delete;
    live_view& operator=(const live_view&) = delete;

    // Whether stdout is a terminal too, so that what goes to it must pass
    // through print_above.
    [[nodiscard]] bool holds_stdout() const noexcept { return stdout_is_terminal_; }

    // Text for stdout (served orders) or stderr (log lines) to appear above
    // the frame at the next draw.
    void print_above(std::string_view text, bool to_stdout);

    // Erases the last frame, prints what came in, draws `s`.
    void draw(const demo_snapshot& s);

private:
    void erase();
    void put(int fd, std::string_view text);

    bool color_;
    bool stdout_is_terminal_;
    bool broken_ = false;    // the terminal went away: stop drawing
    unsigned lines_drawn_ = 0;
    std::string above_out_;
    std::shared_ptr<std::string> above_err_;  // shared with the log sink
    std::shared_ptr<spdlog::logger> saved_logger_;
};

}  // namespace coffee::launcher
