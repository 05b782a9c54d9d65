#include "pipe_intake.hpp"

#include <coffee/duration.hpp>
#include <coffee/errors.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/logging.hpp>
#include <coffee/posix.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

namespace coffee::consumer {

namespace {

using clock = pipe_intake::clock;

// An unfinished line (no LF) at the pipe's tail, wherever that is, is cut
// off once nothing has been added to it for fragment_timeout, or once it is
// fragment_max_age old, so that it is not glued onto the next writer's line:
// its bytes are dropped when the reader reaches them, and what was written
// after the cut starts a new line. An honest writer writes whole lines, at
// most PIPE_BUF in one atomic write(), and never leaves one unfinished; a
// writer of bigger writes (cat of a file) leaves a line unfinished between
// two pieces of one write() for microseconds while the pipe has room, and
// for as long as the pipe is full, during which its line is not timed.
constexpr auto fragment_timeout = std::chrono::milliseconds{500};
constexpr auto fragment_max_age = std::chrono::seconds{2};
// While the reader is not taking (the baristas are busy, stdout is full), it
// looks at the pipe's tail this often when it changed, ever less often (up
// to tail_look_slowest) while it did not.
constexpr auto tail_look_fastest = std::chrono::milliseconds{5};
constexpr auto tail_look_slowest = std::chrono::milliseconds{50};

// Moves `bytes` from the pipe `from` to /dev/null without copying them (a
// read where splice cannot: EINVAL). Returns how many it moved and the
// errno that stopped it short (EIO: the pipe held fewer), or 0.
std::pair<std::size_t, int> drop_bytes(int from, int devnull, std::size_t bytes) {
    std::size_t moved = 0;
    while (moved < bytes) {
        ssize_t n = ::splice(from, nullptr, devnull, nullptr, bytes - moved, SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EINVAL) {
            std::array<char, 65536> sink{};
            n = retry_on_eintr([&] { return ::read(from, sink.data(), std::min(bytes - moved, sink.size())); });
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return {moved, n < 0 ? errno : EIO};
        moved += static_cast<std::size_t>(n);
    }
    return {moved, 0};
}

// Reads `size` bytes of the private pipe, which holds them, into `into`.
void read_exactly(int from, std::string& into, std::size_t size) {
    into.resize(size);
    for (std::size_t got = 0; got < size;) {
        const ssize_t r = retry_on_eintr([&] { return ::read(from, into.data() + got, size - got); });
        if (r <= 0)
            throw_system_error(r < 0 ? errno : EIO, "read the private pipe");
        got += static_cast<std::size_t>(r);
    }
}

}  // namespace

pipe_intake::pipe_intake(unique_fd fifo, std::string name, reject_log& rejects)
    : fifo_{std::move(fifo)}, name_{std::move(name)}, rejects_{rejects},
      devnull_{::open("/dev/null", O_WRONLY | O_CLOEXEC)}, tail_look_delay_{tail_look_fastest} {
    if (!devnull_)
        throw_system_error(errno, "open /dev/null");
    auto [peek_read, peek_write] = make_pipe();
    peek_read_ = std::move(peek_read);
    peek_write_ = std::move(peek_write);
    set_nonblocking(peek_write_.get(), true);
    // As large as the FIFO can be, so that one tee() sees all of it; a
    // smaller private pipe only means smaller takes.
    (void)grow_pipe(peek_write_.get(), user_max_pipe_size, default_pipe_size);
    pipe_size_ = std::max(::fcntl(fifo_.get(), F_GETPIPE_SZ), default_pipe_size);
    fifo_writable_ = (::fcntl(fifo_.get(), F_GETFL) & O_ACCMODE) == O_RDWR;
}

// The whole lines at the pipe's head, up to about `limit` bytes, dropping
// first what is to be dropped there: the rest of an over-long line, an
// unfinished line that was cut off. No take reaches past a cut: what
// follows it starts a new line. An unfinished line alone at the head is
// left there, and watched (note_fragment).
source_take pipe_intake::take(std::size_t limit) {
    const bool to_cut = !cuts_.empty() && cuts_.front().end - consumed_ <= limit;
    if (to_cut)
        limit = static_cast<std::size_t>(cuts_.front().end - consumed_);
    const std::size_t n = peek(limit);
    if (n == 0)
        return {};
    const bool at_cut = to_cut && n == limit;
    std::string_view bytes = peeked_;
    std::size_t dropped = 0;
    if (discarding_) {
        const std::size_t lf = bytes.find('\n');
        if (lf == std::string_view::npos) {
            consume(n);
            discarded_ += n;
            if (at_cut)
                drop_cut({});
            return {.dropped = n};
        }
        rejects_.malformed(checked_line{line_problem::too_long, {}, max_order_bytes}, {}, discarded_ + lf + 1);
        discarding_ = false;
        discarded_ = 0;
        dropped = lf + 1;
        consume(dropped);
        bytes.remove_prefix(dropped);
    }
    const std::size_t last_lf = bytes.rfind('\n');
    if (last_lf != std::string_view::npos) {
        fragment_bytes_ = 0;
        return {.lines = bytes.substr(0, last_lf + 1), .dropped = dropped, .at_start = dropped == 0};
    }
    if (dropped > 0)
        return {.dropped = dropped};
    if (at_cut) {
        consume(n);
        drop_cut(peeked_);
    } else if (n > max_order_bytes) {
        // A line's worth without an LF: an over-long line. Drop it as it
        // comes, in big reads, never byte by byte.
        discard(n);
    } else {
        note_fragment(n);
        return {};
    }
    return {.dropped = n};
}

std::string pipe_intake::release_take() { return std::move(peeked_); }

void pipe_intake::discard(std::size_t bytes) {
    consume(bytes);
    discarding_ = true;
    discarded_ = bytes;
}

std::size_t pipe_intake::bytes_in_pipe() const {
    int n = 0;
    if (::ioctl(fifo_.get(), FIONREAD, &n) != 0)
        throw_system_error(errno, "FIONREAD on FIFO '{}'", name_);
    return static_cast<std::size_t>(std::max(n, 0));
}

// Copies up to `limit` bytes from the head of the FIFO into peeked_ without
// consuming them: tee(2) duplicates the pipe's pages into our private pipe,
// which is then drained. Returns the count; 0 if the pipe is empty.
std::size_t pipe_intake::peek(std::size_t limit) {
    const ssize_t n = ::tee(fifo_.get(), peek_write_.get(), limit, SPLICE_F_NONBLOCK);
    if (n < 0) {
        if (errno == EAGAIN)
            return 0;
        throw_system_error(errno, "tee from FIFO '{}'", name_);
    }
    if (n == 0) {
        end_of_input_ = true;  // no writer left, not even us (an inherited read-only fd)
        return 0;
    }
    const auto size = static_cast<std::size_t>(n);
    read_exactly(peek_read_.get(), peeked_, size);
    if (consumed_ + size > tail_seen_)
        note_tail(std::string_view{peeked_}.substr(static_cast<std::size_t>(tail_seen_ - consumed_)));
    return size;
}

// Consumes exactly `bytes` from the FIFO: they are already recorded (or
// dropped on purpose). splice to /dev/null moves no data.
void pipe_intake::consume(std::size_t bytes) {
    const auto [moved, err] = drop_bytes(fifo_.get(), devnull_.get(), bytes);
    consumed_ += moved;
    if (err != 0)
        throw_system_error(err, "take {} bytes from FIFO '{}'", bytes - moved, name_);
    if (consumed_ > tail_seen_)
        tail_seen_ = tail_line_ = consumed_;  // never: what is taken was peeked, and so seen
}

// Only an unfinished line is in the pipe. The pipe stays readable, so
// poll() cannot tell us when its writer adds to it, and a writer blocked in
// a big write() does not wake an edge-triggered epoll either: look at the
// pipe's size again after 100 us, then ever less often (up to 20 ms). A
// writer in the middle of a line (cat of a big file) is seen at once; a
// fragment nobody finishes costs some 30 wake-ups before it is dropped.
void pipe_intake::note_fragment(std::size_t bytes) {
    if (bytes_in_pipe() > bytes) {
        // tee() saw only part of the pipe. Usually the writer is adding to
        // it: look again at once. If three looks in a row see the same bytes,
        // the pipe holds more pieces than our private pipe can take (a writer
        // that splices tiny pieces into a pipe it made bigger): that line
        // cannot be checked whole, so it is dropped like an over-long one.
        fragment_bytes_ = 0;
        short_peeks_ = bytes == short_peek_bytes_ ? short_peeks_ + 1 : 1;
        short_peek_bytes_ = bytes;
        if (short_peeks_ >= 3) {
            discard(bytes);
            short_peeks_ = 0;
        }
        return;
    }
    short_peeks_ = 0;
    const auto now = clock::now();
    if (bytes != fragment_bytes_) {
        fragment_bytes_ = bytes;
        fragment_check_delay_ = std::chrono::microseconds{100};
    }
    next_fragment_check_ = now + fragment_check_delay_;
}

// The fragment's time is kept by watch_tail, which cuts it off.
void pipe_intake::check_fragment(clock::time_point now) {
    if (now < next_fragment_check_)
        return;
    if (!cuts_.empty() || bytes_in_pipe() != fragment_bytes_) {
        fragment_bytes_ = 0;  // it grew, or was cut off: take again
        return;
    }
    fragment_check_delay_ = std::min<clock::duration>(2 * fragment_check_delay_, std::chrono::milliseconds{20});
    next_fragment_check_ = now + fragment_check_delay_;
}

// `fresh`: the bytes of the pipe from tail_seen_ on, just looked at. Notes
// where the unfinished line at the tail starts, and when it appeared and grew.
void pipe_intake::note_tail(std::string_view fresh) {
    if (fresh.empty())
        return;
    const auto now = clock::now();
    const bool was_open = tail_line_ < tail_seen_;
    const std::size_t lf = fresh.rfind('\n');
    if (lf != std::string_view::npos)
        tail_line_ = tail_seen_ + lf + 1;
    tail_seen_ += fresh.size();
    if (tail_line_ == tail_seen_)
        return;
    if (!was_open || lf != std::string_view::npos)
        tail_since_ = now;
    tail_grew_ = now;
}

// Looks at the bytes the pipe holds beyond tail_seen_ (the reader's takes
// see only the pipe's head): tee(2) of the whole pipe into the private pipe,
// which drops the part seen already unread (splice to /dev/null) and reads
// the rest. False when it saw nothing new (the private pipe may be smaller
// than the FIFO).
bool pipe_intake::look_at_tail() {
    const ssize_t n = ::tee(fifo_.get(), peek_write_.get(), std::size_t{1} << 30, SPLICE_F_NONBLOCK);
    if (n < 0 && errno != EAGAIN)
        throw_system_error(errno, "tee from FIFO '{}'", name_);
    if (n <= 0)
        return false;  // empty, or no writer left: the reader sees that
    const auto size = static_cast<std::size_t>(n);
    const std::size_t seen = std::min(size, static_cast<std::size_t>(tail_seen_ - consumed_));
    if (const int err = drop_bytes(peek_read_.get(), devnull_.get(), seen).second; err != 0)
        throw_system_error(err, "drain the private pipe");
    const std::size_t fresh = size - seen;
    read_exactly(peek_read_.get(), tail_bytes_, fresh);
    note_tail(tail_bytes_);
    return fresh > 0;
}

// When the unfinished line at the tail is to be cut off: nothing added to
// it for fragment_timeout, or fragment_max_age since it appeared; the end
// of time when there is none.
clock::time_point pipe_intake::tail_deadline() const {
    if (tail_line_ == tail_seen_)
        return clock::time_point::max();
    return std::min(tail_grew_ + fragment_timeout, tail_since_ + fragment_max_age);
}

// Cuts off the unfinished line at the pipe's tail once its time is up, as of
// what was last seen of it (bytes written since then start a new line); then,
// when `looking`, looks at what the pipe holds beyond what was seen: at once
// after a change, then ever less often while there is none. A line is not
// timed while the pipe is seen full (its writer may be waiting for room in
// the middle of a big write()): its time starts again when it has room.
void pipe_intake::watch_tail(clock::time_point now, bool looking) {
    bool look = looking && now >= next_tail_look_;
    // A line is quiet when its writer added nothing, not when the shop was
    // late to look (a loaded machine): before cutting, see what is there.
    if (tail_line_ < tail_seen_ && now >= tail_deadline() && consumed_ + bytes_in_pipe() > tail_seen_ && look_at_tail()) {
        tail_look_delay_ = tail_look_fastest;
        next_tail_look_ = now + tail_look_delay_;
        look = false;
    }
    const bool due = now >= tail_deadline();
    if (tail_line_ < tail_seen_ && (look || due)) {
        if (writer_may_wait_for_room(bytes_in_pipe(), due)) {
            tail_since_ = now;
            tail_grew_ = now;
        } else if (due) {
            cut_tail(now - tail_since_ >= fragment_max_age);
        }
    }
    if (!look)
        return;
    const std::size_t in_pipe = bytes_in_pipe();
    if (consumed_ + in_pipe > tail_seen_ && look_at_tail()) {
        tail_look_delay_ = tail_look_fastest;
    } else {
        tail_look_delay_ = std::min<clock::duration>(2 * tail_look_delay_, tail_look_slowest);
    }
    next_tail_look_ = now + tail_look_delay_;
}

// True when the writer of the unfinished line at the tail may be waiting for
// room to go on with it: the pipe is full, the line is no longer than a
// line may be, and lines ahead of it will be taken, making room. A pipe full
// with only the line was shrunk (a pipe the shop keeps holds a line and a
// page more): when the line is `due` to be cut off, the pipe is set back
// instead, and the writer goes on.
bool pipe_intake::writer_may_wait_for_room(std::size_t in_pipe, bool due) {
    if (tail_line_ < consumed_ || tail_seen_ - tail_line_ > max_order_bytes)
        return false;
    pollfd room{fifo_.get(), POLLOUT, 0};
    if (fifo_writable_ && ::poll(&room, 1, 0) != 0)
        return false;
    const int size = ::fcntl(fifo_.get(), F_GETPIPE_SZ);
    if (!fifo_writable_ && (size <= 0 || in_pipe + max_line_bytes <= static_cast<std::size_t>(size)))
        return false;
    if (tail_line_ > consumed_)
        return true;
    if (!due || size <= 0 || size >= pipe_size_)
        return false;
    const bool restored = ::fcntl(fifo_.get(), F_SETPIPE_SZ, pipe_size_) >= 0;
    spdlog::warn("the pipe of '{}' was shrunk to {} bytes, full with an unfinished line (F_SETPIPE_SZ); {}", name_,
                 size, restored ? fmt::format("set it back to {}", pipe_size_) : fmt::format("cannot set it back: {}", std::strerror(errno)));
    return restored;
}

// Cuts the unfinished line at the tail off where it ends now: bytes written
// after this start a new line. Its bytes are dropped when the reader reaches
// them, or now when it has taken them already (an over-long line, dropped as
// it came).
void pipe_intake::cut_tail(bool too_old) {
    spdlog::debug("cut off the unfinished line at the tail of the pipe: bytes {} to {} of its stream ({})", tail_line_,
                  tail_seen_, too_old ? "too old" : "quiet");
    tail_line_ = tail_seen_;
    fragment_bytes_ = 0;  // the reader takes again, and drops it
    if (tail_seen_ == consumed_ && !discarding_)
        return;  // never: only an over-long line is taken without its LF
    cuts_.push_back({tail_seen_, too_old});
    if (tail_seen_ == consumed_)
        drop_cut({});
}

// The reader reached the first cut, and consumed the bytes before it:
// `text`, with those of an over-long line dropped earlier.
void pipe_intake::drop_cut(std::string_view text) {
    const bool too_old = cuts_.front().too_old;
    cuts_.pop_front();
    const std::size_t bytes = discarding_ ? discarded_ : text.size();
    discarding_ = false;
    discarded_ = 0;
    if (!rejects_.count_one())
        return;
    const std::string why = too_old ? fmt::format("{} since it began", format_duration(fragment_max_age))
                                    : fmt::format("nothing more for {}", format_duration(fragment_timeout));
    if (text.size() < bytes)
        spdlog::warn("dropped {} bytes of an unfinished line longer than {} bytes (no LF, {})", bytes, max_line_bytes, why);
    else
        spdlog::warn("dropped {} bytes of an unfinished line (no LF, {}): '{}'", bytes, why, printable(text));
}

}  // namespace coffee::consumer
