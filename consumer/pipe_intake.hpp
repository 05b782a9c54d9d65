#pragma once
// The FIFO's reader. It looks at the pipe's head without taking from it
// (tee(2) into a private pipe) and consumes exactly the bytes it is told the
// journal or a sink holds (splice(2) to /dev/null: no copy). It also keeps
// the pipe clean for honest writers: an unfinished line (no LF) at the
// pipe's tail is cut off once quiet or old, an over-long line is dropped as
// it comes, so that neither glues itself onto the next writer's line.

#include "order_source.hpp"
#include "reject_log.hpp"

#include <coffee/posix.hpp>
#include <coffee/unique_fd.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace coffee::consumer {

// A new pipe's size on Linux (16 pages), and systemd's: the least the shop
// keeps, so that the pipe always holds an unfinished line and a page more.
inline constexpr int default_pipe_size = new_pipe_size;
// With instant brewing, the size the shop grows a FIFO it opened itself to
// (the unprivileged pipe-max-size): one take looks at all of it.
inline constexpr int instant_pipe_size = user_max_pipe_size;

// Used by the reader thread alone.
class pipe_intake final : public order_source {
public:
    using clock = std::chrono::steady_clock;

    // `fifo`: open for reading, non-blocking. `rejects` counts the lines
    // it drops.
    pipe_intake(unique_fd fifo, std::string name, reject_log& rejects);

    source_take take(std::size_t limit) override;
    void consume(std::size_t bytes) override;
    std::string release_take() override;

    [[nodiscard]] int fd() const noexcept { return fifo_.get(); }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    // The bytes in the pipe now (FIONREAD).
    [[nodiscard]] std::size_t bytes_in_pipe() const;
    // No writer is left, not even the shop.
    [[nodiscard]] bool end_of_input() const noexcept { return end_of_input_; }

    // Only an unfinished line is at the head: poll() cannot say when it
    // grows (the pipe stays readable), so the reader looks again by the
    // clock, from fragment_check_due() on.
    [[nodiscard]] std::size_t fragment_bytes() const noexcept { return fragment_bytes_; }
    [[nodiscard]] clock::time_point fragment_check_due() const noexcept { return next_fragment_check_; }
    void check_fragment(clock::time_point now);

    // The unfinished line at the pipe's tail: when it is to be cut off (the
    // end of time when there is none), and when the tail is next looked
    // at while the reader does not take.
    [[nodiscard]] clock::time_point tail_deadline() const;
    [[nodiscard]] clock::time_point tail_look_due() const noexcept { return next_tail_look_; }
    // Cuts the tail's unfinished line off when its time is up; looks at the
    // tail when `looking` and it is due.
    void watch_tail(clock::time_point now, bool looking);

private:
    std::size_t peek(std::size_t limit);
    void note_fragment(std::size_t bytes);
    void note_tail(std::string_view fresh);
    bool look_at_tail();
    [[nodiscard]] bool writer_may_wait_for_room(std::size_t in_pipe, bool due);
    void cut_tail(bool too_old);
    void drop_cut(std::string_view text);
    void discard(std::size_t bytes);

    unique_fd fifo_;
    std::string name_;
    reject_log& rejects_;
    unique_fd peek_read_;   // the private pipe tee() copies the FIFO's pages into
    unique_fd peek_write_;
    unique_fd devnull_;     // where consumed bytes go
    std::string peeked_;    // the last take's bytes
    std::string tail_bytes_;  // what look_at_tail read
    int pipe_size_ = 0;       // the size the shop keeps the pipe at
    bool fifo_writable_ = false;  // poll() says POLLOUT when the pipe has room
    bool end_of_input_ = false;

    bool discarding_ = false;  // inside an over-long line: its bytes are dropped up to its LF
    std::size_t discarded_ = 0;
    std::size_t fragment_bytes_ = 0;  // an unfinished line alone in the pipe
    clock::duration fragment_check_delay_{};
    clock::time_point next_fragment_check_{};
    unsigned short_peeks_ = 0;
    std::size_t short_peek_bytes_ = 0;

    // The pipe as a stream: positions count bytes since the shop opened it.
    std::uint64_t consumed_ = 0;   // the pipe's head: bytes taken from it so far
    std::uint64_t tail_seen_ = 0;  // looked at up to here (consumed_ <= tail_seen_)
    std::uint64_t tail_line_ = 0;  // the unfinished line at the tail starts here (== tail_seen_: none)
    clock::time_point tail_since_{};  // when its first byte was seen
    clock::time_point tail_grew_{};   // when it was last seen to grow
    clock::time_point next_tail_look_{};
    clock::duration tail_look_delay_;
    // Where unfinished lines that were cut off end, in order: the reader
    // drops the bytes of each from its line's start up to there.
    struct cut {
        std::uint64_t end;
        bool too_old;  // fragment_max_age passed; else nothing was added for fragment_timeout
    };
    std::deque<cut> cuts_;
};

}  // namespace coffee::consumer
