#pragma once
// The shop: the parts wired together, and the reader's loop. The reader
// (the thread that calls run()) takes orders from the pipe, has the journal
// record them, hands them to the baristas or serves them itself, and
// decides when to stop; the baristas' threads see only the queue, the
// counter and the board.

#include "baristas.hpp"
#include "consumer.hpp"
#include "counter.hpp"
#include "journal.hpp"
#include "lifecycle.hpp"
#include "order_queue.hpp"
#include "pipe_intake.hpp"
#include "reject_log.hpp"
#include "stdout_sink.hpp"

#include <coffee/duration.hpp>
#include <coffee/errors.hpp>
#include <coffee/unique_fd.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace coffee::consumer {

class shop {
public:
    // `fifo`: open for reading, non-blocking; `signals`: a signalfd of the
    // signals that stop the shop, blocked in every thread.
    shop(const options& opts, unique_fd fifo, std::string fifo_name, journal& orders_journal, unique_fd signals);
    shop(const shop&) = delete;
    shop& operator=(const shop&) = delete;

    // Serves until stopped; returns the exit code (0, or exit_io when
    // stdout or the journal failed).
    int run();

private:
    using clock = std::chrono::steady_clock;

    // What one turn of the loop waits for, and until when.
    struct turn {
        bool want_orders = false;     // the pipe's POLLIN
        bool want_room = false;       // stdout's POLLOUT: the last serve found it full
        bool watch_fragment = false;  // only an unfinished line at the head: look again by the clock
        bool watch_tail = false;      // look at the pipe's tail while not taking from it
        clock::time_point until;
    };

    void open_for_orders();
    void tick(clock::time_point now);
    [[nodiscard]] turn plan_turn(clock::time_point now) const;
    void wait_and_take(const turn& t, clock::time_point now);
    void handle_signals();

    [[nodiscard]] bool may_take() const;
    [[nodiscard]] bool may_serve_from_pipe() const;
    std::size_t take_orders(std::size_t limit);
    // A record of a take, appended to the journal and not yet committed.
    struct journaled {
        order_batch batch;
        std::size_t before_finish = 0;  // its orders before a 'finish'
        bool finishes = false;          // a 'finish' in it stops taking
    };
    std::size_t journal_lines(std::string_view lines, bool whole_take);
    journaled record_orders(std::string_view record, bool whole_take);
    void hand_over(std::vector<journaled>& records, std::size_t bytes);
    void queue_taken(order_batch& batch, std::size_t before_finish);
    void replay_journal();
    void feed_queue();

    void on(life_event event, std::string_view why);
    void move_pipe_to_journal();
    void journal_failed(const std::system_error& e);
    void compact_journal(bool quiet);
    int shut_down();
    void report_status(bool force);
    void notify(std::string_view state) noexcept;
    void wake() noexcept;

    const options& opts_;
    const recipe recipe_;
    const std::size_t take_limit_;    // bytes looked at in one take
    const std::size_t record_limit_;  // bytes of lines in one journal record
    journal& journal_;
    unique_fd signals_;
    unique_fd wake_;  // the baristas and the queue wake the reader
    reject_log rejects_;
    pipe_intake intake_;
    stdout_sink sink_;
    counter counter_;
    order_queue queue_;
    baristas baristas_;  // last: they leave before the parts they use go

    // The reader's own.
    lifecycle life_;
    order_batch pending_;  // taken and journaled, not yet in the queue
    bool journal_ok_ = true;
    bool stdout_full_ = false;  // serving found no room on stdout: wait for it
    std::uint64_t moved_to_journal_ = 0;
    int exit_code_ = exit_ok;
    clock::time_point deadline_ = clock::time_point::max();
    std::optional<duration> watchdog_;
    clock::time_point next_watchdog_{};
    duration status_interval_;
    std::string last_status_;
    clock::time_point last_status_time_{};
};

}  // namespace coffee::consumer
