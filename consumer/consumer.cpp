#include "consumer.hpp"

#include "journal.hpp"
#include "old_backlog.hpp"
#include "order_lines.hpp"
#include "order_queue.hpp"
#include "status.hpp"

#include <coffee/errors.hpp>
#include <coffee/fifo.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/log_rate_limit.hpp>
#include <coffee/logging.hpp>
#include <coffee/pipe_fill.hpp>
#include <coffee/pipe_size_watch.hpp>
#include <coffee/posix.hpp>
#include <coffee/safe_path.hpp>
#include <coffee/sd_daemon.hpp>
#include <coffee/signals.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <cstdlib>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace coffee::consumer {

namespace {

using clock = std::chrono::steady_clock;

constexpr std::string_view exit_codes_help = R"(
Reads orders, one per line, from the FIFO; each of N baristas takes one,
logs "Processing order: ORDER", brews it for --brew-time, and writes the
order text as one line to stdout. Under systemd (LISTEN_FDS) the FIFO is
inherited as fd 3. An order leaves the pipe only once it is on stdout or in
the journal (where it is marked served once its line is on stdout); with
--brew-time 0 orders go straight from the pipe to stdout; a start serves the
journal's unserved orders first. SIGTERM, SIGINT, --timeout and 'finish'
(with --until-finish) stop gracefully: orders being brewed finish; the
others, and the whole lines still in the pipe, wait in the journal.

Exit codes:
  0   stopped as asked (signal, --timeout, finish, end of input)
  64  usage error
  71  a barista or watch thread could not be started (a limit on processes or
      memory: ulimit -u, ulimit -v); nothing was taken from the pipe
  74  stdout, the FIFO or the journal failed (the log says how many orders wait)
  75  another consumer already reads this FIFO or uses this journal
  77  the FIFO, its lock file, the journal or a directory on their paths is
      not ours or root's, or others may change it; or the FIFO is readable
      by others
  78  the path is not a FIFO, or the journal is not a regular file
)";

// How much to take from the pipe at once. With instant brewing, the shop
// grows a FIFO it opened itself to 1 MiB (the unprivileged pipe-max-size),
// and one tee() looks at all of it: fewer wake-ups for the reader and for
// the writers it unblocks. Mostly it is served straight from the pipe
// (serve_from_pipe); what goes the journal's way is journaled and spliced
// out in records of at most 64 KiB of lines (instant_record), each appended
// before its own bytes leave the pipe, so a kill between the two serves at
// most 64 KiB again (README "Duplicates"); the baristas get it in batches of
// up to 4 records, so that memory stays bounded. When brewing takes time, taking
// ahead serves no one sooner: take one PIPE_BUF at a time.
constexpr std::size_t instant_take = std::size_t{1} << 20;
constexpr std::size_t instant_record = 65536;
constexpr std::size_t brewing_take = max_line_bytes;
// stdout gets whole lines in writes of at most PIPE_BUF bytes when it is a
// pipe or socket, so that no kill leaves half a line there and no two
// writers' lines interleave; a file gets bigger writes, each all or nothing
// for the shop (note_output_write, cut_unfinished_write).
constexpr std::size_t pipe_output_chunk = max_line_bytes;
constexpr std::size_t file_output_chunk = 131072;
static_assert(file_output_chunk <= journal_format::max_output_write, "a 'W' record describes one output chunk");
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
// A new pipe's size on Linux (16 pages), and systemd's: the least the shop
// keeps, so that the pipe always holds an unfinished line and a page more.
constexpr int default_pipe_size = 65536;
// Malformed-line warnings: a burst, then one summary per interval.
constexpr std::size_t warning_burst = 10;
constexpr auto warning_interval = std::chrono::seconds{10};
// The journal is emptied whenever nothing is in flight and it has grown past
// compact_bytes (or the shop is quiet); while orders are in flight it is
// rewritten with the unserved ones once it passes twice its size after the
// last rewrite plus compact_bytes. Past hold_bytes the reader waits for the
// baristas to catch up.
constexpr std::uint64_t compact_bytes = 1U << 20;
constexpr std::uint64_t hold_bytes = 64U << 20;
// What journald reads as "info" (sd-daemon(3)); it strips one such prefix.
constexpr std::string_view journal_priority = "<6>";

std::size_t stdout_chunk() {
    struct stat st{};
    if (::fstat(STDOUT_FILENO, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
        return file_output_chunk;
    return pipe_output_chunk;
}

// The bytes of stdout, a regular file, from `offset` to `end` (at most one
// output chunk), or nullopt when they cannot be read. Stdout is open for
// writing only (`>> file`): they are read through a second, read-only open
// of the same file, /proc/self/fd/1.
std::optional<std::string> read_output(std::uint64_t offset, std::uint64_t end) {
    if (end < offset || end - offset > file_output_chunk)
        return std::nullopt;
    const unique_fd in{::open("/proc/self/fd/1", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)};
    struct stat out{};
    struct stat again{};
    if (!in || ::fstat(STDOUT_FILENO, &out) != 0 || ::fstat(in.get(), &again) != 0 || again.st_dev != out.st_dev ||
        again.st_ino != out.st_ino)
        return std::nullopt;
    std::string bytes(static_cast<std::size_t>(end - offset), '\0');
    std::size_t got = 0;
    while (got < bytes.size()) {
        const ssize_t n = retry_on_eintr([&] {
            return ::pread(in.get(), bytes.data() + got, bytes.size() - got, static_cast<off_t>(offset + got));
        });
        if (n <= 0) {
            if (n == 0)
                errno = ENODATA;  // it shrank
            return std::nullopt;
        }
        got += static_cast<std::size_t>(n);
    }
    return bytes;
}

// Cuts a stdout that is a regular file back to `offset`, the start of a
// write that did not finish, when it still ends at `end`, where its bytes
// from `offset` were found to be that write's. The file offset moves back
// first (without O_APPEND): a kill between the two leaves the file as it
// was, to be cut by the next start, never an offset past its end, where
// the next write would leave a run of NUL bytes. True when it did.
bool cut_output_back(std::uint64_t offset, std::uint64_t end) {
    const auto at = static_cast<off_t>(offset);
    struct stat st{};
    if (::fstat(STDOUT_FILENO, &st) != 0)
        return false;
    if (static_cast<std::uint64_t>(st.st_size) != end) {
        errno = EAGAIN;  // someone else wrote to it since: those bytes are not ours to cut
        return false;
    }
    if ((::fcntl(STDOUT_FILENO, F_GETFL) & O_APPEND) == 0 && ::lseek(STDOUT_FILENO, 0, SEEK_CUR) > at &&
        ::lseek(STDOUT_FILENO, at, SEEK_SET) != at)
        return false;
    return ::ftruncate(STDOUT_FILENO, at) == 0;
}

// Without O_APPEND, a stdout file whose offset is past its end (left so by
// whoever shares the descriptor) would get a run of NUL bytes before our
// first line: start at its end instead.
void no_hole_before_output() {
    struct stat st{};
    if (::fstat(STDOUT_FILENO, &st) != 0 || !S_ISREG(st.st_mode) ||
        (::fcntl(STDOUT_FILENO, F_GETFL) & O_APPEND) != 0)
        return;
    const off_t at = ::lseek(STDOUT_FILENO, 0, SEEK_CUR);
    if (at <= st.st_size)
        return;
    if (::lseek(STDOUT_FILENO, st.st_size, SEEK_SET) == st.st_size)
        spdlog::warn("stdout: its offset {} is past its end {}; writing at its end, not after {} NUL bytes", at,
                     st.st_size, at - st.st_size);
    else
        spdlog::warn("stdout: its offset {} is past its end {}, and it cannot be moved back: {}", at, st.st_size,
                     std::strerror(errno));
}

// A consumer killed in the middle of a big write() to a stdout file left
// part of it there: the kernel stops such a write at a page boundary, in
// the middle of a line. When stdout ends inside the last write the journal
// recorded, that part is cut off again, and its orders (none was recorded
// served) are served again, whole: but only when the bytes are provably
// that write's. The same file (device, inode, and birth time or inode
// generation: not a file that got the inode number later), ending at a page
// boundary inside the write, and holding there the write's first bytes
// (the CRC-32C of each page of them). Anything else, such as
// another writer's bytes after ours, is left alone, and said so: the orders
// are served again after it.
void cut_unfinished_write(const journal_load& loaded) {
    no_hole_before_output();
    const std::optional<output_write>& last = loaded.last_output_write;
    struct stat st{};
    if (!last || ::fstat(STDOUT_FILENO, &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::uint64_t>(st.st_dev) != last->file.device ||
        static_cast<std::uint64_t>(st.st_ino) != last->file.inode)
        return;
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size <= last->offset || size >= last->offset + last->length)
        return;
    const auto leave = [&](std::string_view why) {
        spdlog::warn("stdout ends {} bytes into the last write the previous consumer began at offset {}, but {}; "
                     "left alone (its orders are served again after them)",
                     size - last->offset, last->offset, why);
    };
    const std::optional<output_file> now = output_file::of(STDOUT_FILENO);
    if (!now || !now->same_as(last->file)) {
        leave(now && (now->has_birth || now->has_generation)
                  ? "it is not the file that write went to (another file has its inode number now)"
                  : "this file system cannot tell whether it is the file that write went to");
        return;
    }
    if (!last->may_stop_at(size)) {
        leave("a kill stops a write at a page boundary, and this end is none: the bytes there may not be ours");
        return;
    }
    const std::optional<std::string> tail = read_output(last->offset, size);
    if (!tail || !last->began_with(*tail)) {
        leave(tail ? "those bytes are not the ones that write began with (another writer's?)"
                   : fmt::format("they cannot be read: {}", std::strerror(errno)));
        return;
    }
    if (cut_output_back(last->offset, size))
        spdlog::warn("stdout: cut off the {} bytes at offset {} that the previous consumer wrote of {} when it died; "
                     "those orders are served again",
                     size - last->offset, last->offset, last->length);
    else
        spdlog::warn("stdout: cannot cut off the {} bytes at offset {} of an unfinished write: {}",
                     size - last->offset, last->offset, std::strerror(errno));
}

// When stdout is a pipe: a descriptor of its own for it, non-blocking, so
// that the reader learns that the pipe is full from the write itself (a
// write of at most PIPE_BUF to a pipe is all or nothing) instead of asking
// poll() first: one system call less per order in a quiet shop. Opening
// /proc/self/fd/1 gives a new open file description of the same pipe;
// stdout's own, shared with whoever started us, keeps its flags. Invalid
// (poll first, then) for anything else, or without /proc.
unique_fd stdout_nonblocking() { return reopen_pipe_nonblocking(STDOUT_FILENO, O_WRONLY); }

class shop {
public:
    shop(const options& opts, unique_fd fifo, std::string fifo_name, journal& orders_journal, unique_fd signals)
        : opts_{opts}, fifo_{std::move(fifo)}, fifo_name_{std::move(fifo_name)}, journal_{orders_journal},
          signals_{std::move(signals)}, wake_{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)},
          devnull_{::open("/dev/null", O_WRONLY | O_CLOEXEC)}, queue_{opts.queue_size, [this] { wake(); }},
          take_limit_{opts.brew_time.count() == 0 ? instant_take : brewing_take},
          record_limit_{opts.brew_time.count() == 0 ? instant_record : brewing_take},
          stdout_is_journal_{is_journal_stream(STDOUT_FILENO)}, output_chunk_{stdout_chunk()},
          stdout_nonblocking_{stdout_nonblocking()},
          status_interval_{status_interval_from_env()}, board_{opts.baristas} {
        if (!wake_)
            throw_system_error(errno, "eventfd");
        if (!devnull_)
            throw_system_error(errno, "open /dev/null");
        if (struct stat out{}; ::fstat(STDOUT_FILENO, &out) == 0 && S_ISREG(out.st_mode)) {
            stdout_file_ = output_file::of(STDOUT_FILENO);
            stdout_append_ = (::fcntl(STDOUT_FILENO, F_GETFL) & O_APPEND) != 0;
        }
        auto [peek_read, peek_write] = make_pipe();
        peek_read_ = std::move(peek_read);
        peek_write_ = std::move(peek_write);
        set_nonblocking(peek_write_.get(), true);
        // As large as the FIFO can be, so that one tee() sees all of it; a
        // smaller private pipe only means smaller takes.
        (void)::fcntl(peek_write_.get(), F_SETPIPE_SZ, 1 << 20);
        pipe_size_ = std::max(::fcntl(fifo_.get(), F_GETPIPE_SZ), default_pipe_size);
        fifo_writable_ = (::fcntl(fifo_.get(), F_GETFL) & O_ACCMODE) == O_RDWR;
    }
    shop(const shop&) = delete;
    shop& operator=(const shop&) = delete;

    ~shop() {
        queue_.close(false);
        for (std::thread& barista : baristas_)
            barista.join();
    }

    int run();

private:
    enum class phase { taking_orders, draining, stopping };

    void wake() noexcept {
        const std::uint64_t one = 1;
        (void)!::write(wake_.get(), &one, sizeof one);
    }
    void barista(unsigned index);
    struct written {
        std::uint64_t lines;  // written whole
        std::size_t bytes;    // of the text they were
        int error;            // errno of a failed write, or 0
    };

    bool brew(const order_batch& batch);
    void log_orders(std::string_view lines) const;
    [[nodiscard]] bool stdout_writable() const;
    void serve(const order_batch& batch);
    std::size_t serve_from_pipe(std::string_view lines, std::uint64_t count);
    [[nodiscard]] bool may_serve_from_pipe() const;
    written write_chunk(std::string_view text, std::uint64_t lines, int fd = STDOUT_FILENO);
    void output_error(int err);
    std::optional<std::uint64_t> note_output_write(std::string_view chunk);
    void cut_failed_write(std::uint64_t offset, std::string_view out);
    void handle_signals();
    std::size_t take_orders(std::size_t limit);
    bool take_lines(std::string_view lines, bool whole_peek);
    std::size_t peek(std::size_t limit);
    void consume(std::size_t bytes);
    std::size_t pipe_bytes() const;
    bool parse_lines(std::string_view lines, order_batch& batch, std::size_t& before_finish, bool& saw_finish);
    void reject(std::string_view what, const checked_line& check, std::string_view raw, std::size_t bytes);
    void note_fragment(std::size_t bytes);
    void check_fragment(clock::time_point now);
    void note_tail(std::string_view fresh);
    bool look_at_tail();
    void watch_tail(clock::time_point now, bool looking);
    [[nodiscard]] bool writer_may_wait_for_room(std::size_t in_pipe, bool due);
    [[nodiscard]] clock::time_point tail_deadline() const;
    void cut_tail(bool too_old);
    void drop_cut(std::string_view text);
    void replay_journal();
    void feed_queue();
    void finish(std::string_view why);
    void stop(std::string_view why);
    void move_pipe_to_journal();
    void journal_failed(const std::system_error& e);
    void compact_journal(bool quiet);
    void flush_warnings(bool all = false);
    int shut_down();
    void report_status(bool force);
    void notify(std::string_view state) noexcept;

    const options& opts_;
    unique_fd fifo_;
    std::string fifo_name_;
    journal& journal_;
    unique_fd signals_;
    unique_fd wake_;
    unique_fd devnull_;
    unique_fd peek_read_;
    unique_fd peek_write_;
    order_queue queue_;
    std::size_t take_limit_;
    std::size_t record_limit_;
    bool stdout_is_journal_;
    std::size_t output_chunk_;
    std::optional<output_file> stdout_file_;  // when stdout is a regular file
    bool stdout_append_ = false;
    // Whether each order is logged at info level: the level is set before
    // the shop opens, and asked once (not for every take of a quiet shop).
    const bool log_each_order_ = spdlog::should_log(spdlog::level::info);
    unique_fd stdout_nonblocking_;  // when stdout is a pipe (stdout_nonblocking())
    std::vector<std::thread> baristas_;
    duration status_interval_;

    // Reader-thread state.
    phase phase_ = phase::taking_orders;
    std::string peeked_;
    order_batch pending_;  // taken and journaled, not yet in the queue
    bool discarding_ = false;  // inside an over-long line: its bytes are dropped up to its LF
    std::size_t discarded_ = 0;
    std::size_t fragment_bytes_ = 0;  // an unfinished line alone in the pipe
    // The pipe as a stream: positions count bytes since the shop opened it.
    std::uint64_t consumed_ = 0;   // the pipe's head: bytes taken from it so far
    std::uint64_t tail_seen_ = 0;  // looked at up to here (consumed_ <= tail_seen_)
    std::uint64_t tail_line_ = 0;  // the unfinished line at the tail starts here (== tail_seen_: none)
    clock::time_point tail_since_{};  // when its first byte was seen
    clock::time_point tail_grew_{};   // when it was last seen to grow
    clock::time_point next_tail_look_{};
    clock::duration tail_look_delay_{tail_look_fastest};
    // Where unfinished lines that were cut off end, in order: the reader
    // drops the bytes of each from its line's start up to there.
    struct cut {
        std::uint64_t end;
        bool too_old;  // fragment_max_age passed; else nothing was added for fragment_timeout
    };
    std::deque<cut> cuts_;
    std::string tail_bytes_;  // what look_at_tail read
    int pipe_size_ = 0;       // the size the shop keeps the pipe at (run())
    bool fifo_writable_ = false;  // poll() says POLLOUT when the pipe has room
    clock::duration fragment_check_delay_{};
    unsigned short_peeks_ = 0;
    std::size_t short_peek_bytes_ = 0;
    clock::time_point next_fragment_check_{};
    bool journal_ok_ = true;
    bool end_of_input_ = false;
    bool stdout_full_ = false;  // serve_from_pipe found no room on stdout: wait for it
    std::uint64_t rejected_ = 0;
    std::uint64_t moved_to_journal_ = 0;
    log_rate_limit warnings_{warning_burst, warning_interval};
    int exit_code_ = exit_ok;
    std::string last_status_;
    clock::time_point last_status_time_{};

    // Shared with the baristas.
    std::atomic<std::uint64_t> served_{0};
    std::atomic<bool> output_failed_{false};
    std::atomic<bool> served_unrecorded_{false};  // the journal failed under a barista
    std::atomic<bool> output_note_failed_{false};
    std::mutex output_mutex_;
    std::string prefixed_;  // under output_mutex_: lines with their journal priority
    std::string output_note_;  // under output_mutex_: the 'W' record of the next write
    barista_board board_;
};

int shop::run() {
    const journal_load& loaded = journal_.loaded();
    if (loaded.unfinished_rewrite)
        spdlog::info("journal '{}': removed a rewrite of it that a kill cut short (the journal itself is whole)",
                     journal_.path().native());
    for (const journal_damage& d : loaded.damage)
        spdlog::warn("journal '{}': {} bytes at offset {} are not valid records ({}); skipped, not served",
                     journal_.path().native(), d.bytes, d.offset, d.reason);
    if (loaded.damaged_stretches > loaded.damage.size())
        spdlog::warn("journal '{}': {} more damaged stretches; {} bytes skipped in all", journal_.path().native(),
                     loaded.damaged_stretches - loaded.damage.size(), loaded.damaged_bytes);
    if (loaded.unserved > 0)
        spdlog::info("serving {} unserved orders from the journal '{}' first", loaded.unserved, journal_.path().native());

    for (unsigned i = 0; i < opts_.baristas; ++i) {
        try {
            baristas_.emplace_back([this, i] { barista(i); });
        } catch (const std::system_error& e) {
            // Nothing taken yet; the ones started stop with the shop.
            throw exit_error(exit_oserr, fmt::format("cannot start barista thread {} of {}: {} (a limit on processes "
                                                     "or memory? ulimit -u, ulimit -v)",
                                                     i + 1, opts_.baristas, e.code().message()));
        }
    }

    const auto started = clock::now();
    const auto deadline = opts_.timeout.count() > 0 ? started + opts_.timeout : clock::time_point::max();
    const auto watchdog = sd::watchdog_interval();
    auto next_watchdog = started;
    spdlog::info("open for orders on '{}': {} barista{}, brew time {}{}", fifo_name_, opts_.baristas,
                 opts_.baristas == 1 ? "" : "s", format_duration(opts_.brew_time),
                 opts_.timeout.count() > 0 ? fmt::format(", closing after {}", format_duration(opts_.timeout)) : "");
    notify("READY=1");

    for (;;) {
        // Before the exit test: the last barista may have left because stdout failed.
        if ((output_failed_ || served_unrecorded_) && phase_ != phase::stopping) {
            exit_code_ = exit_io;
            stop(output_failed_ ? "stdout failed" : "the journal failed");
        }
        if (queue_.baristas_left() == opts_.baristas)
            break;
        replay_journal();
        feed_queue();
        const auto now = clock::now();
        if (phase_ != phase::stopping && now >= deadline)
            stop(fmt::format("--timeout {} reached", format_duration(opts_.timeout)));
        if (watchdog && now >= next_watchdog) {
            notify("WATCHDOG=1");
            next_watchdog = now + *watchdog / 2;
        }
        report_status(false);
        flush_warnings();
        compact_journal(false);

        const bool taking = phase_ == phase::taking_orders && pending_.empty() && journal_ok_ &&
                            !journal_.replaying() && !end_of_input_ && journal_.bytes() < hold_bytes;
        const bool want_room = taking && stdout_full_;
        const bool want_orders = taking && fragment_bytes_ == 0 && !stdout_full_;
        const bool watch_fragment = taking && fragment_bytes_ > 0 && !stdout_full_;
        std::array<pollfd, 3> fds{pollfd{signals_.get(), POLLIN, 0}, pollfd{wake_.get(), POLLIN, 0},
                                  want_room ? pollfd{STDOUT_FILENO, POLLOUT, 0} : pollfd{fifo_.get(), POLLIN, 0}};
        auto wait_until = now + status_interval_;
        if (phase_ != phase::stopping)
            wait_until = std::min(wait_until, deadline);
        if (watchdog)
            wait_until = std::min(wait_until, next_watchdog);
        if (watch_fragment)
            wait_until = std::min(wait_until, next_fragment_check_);
        // The pipe's tail is looked at while the reader does not wait for
        // new bytes (which it looks at as it takes them).
        const bool watch_tail_now = phase_ == phase::taking_orders && !end_of_input_ && !want_orders;
        if (phase_ == phase::taking_orders)
            wait_until = std::min(wait_until, tail_deadline());
        if (watch_tail_now)
            wait_until = std::min(wait_until, next_tail_look_);
        // More of the journal to replay and nothing left to hand over: go on
        // at once (nothing else would wake us before the status interval).
        if (phase_ == phase::taking_orders && journal_ok_ && journal_.replaying() && pending_.empty())
            wait_until = now;
        const auto wait_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(wait_until - now, clock::duration::zero()));
        const timespec timeout{static_cast<time_t>(wait_ns.count() / 1'000'000'000),
                               static_cast<long>(wait_ns.count() % 1'000'000'000)};
        const int ready =
            retry_on_eintr([&] { return ::ppoll(fds.data(), want_orders || want_room ? 3 : 2, &timeout, nullptr); });
        if (ready < 0)
            throw_system_error(errno, "ppoll");
        if (ready == 0)
            compact_journal(true);

        if ((fds[0].revents & POLLIN) != 0)
            handle_signals();
        if ((fds[1].revents & POLLIN) != 0) {
            std::uint64_t count = 0;
            (void)!::read(wake_.get(), &count, sizeof count);
        }
        if (want_room && fds[2].revents != 0)
            stdout_full_ = false;  // room, or an error that the next write reports
        try {
            if (phase_ == phase::taking_orders)
                watch_tail(clock::now(), watch_tail_now);
            if (want_orders && phase_ == phase::taking_orders && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
                take_orders(take_limit_);
            else if (watch_fragment && phase_ == phase::taking_orders)
                check_fragment(clock::now());
        } catch (const std::system_error& e) {
            // Only the journal throws from here once the pipe was peeked;
            // a failed tee/read of the FIFO lands here too.
            journal_failed(e);
        }
        if (end_of_input_)
            finish("end of input");
    }
    return shut_down();
}

void shop::barista(unsigned index) {
    // One order at a time while brewing takes time; otherwise a whole batch
    // as it was taken, so that the queue's lock is taken per take, not per order.
    const std::size_t batch_size = opts_.brew_time.count() > 0 ? 1 : std::numeric_limits<std::size_t>::max();
    order_batch batch;
    while (queue_.pop(batch, batch_size)) {
        board_.brewing(index, std::string_view{batch.text}.substr(0, batch.text.find('\n')));
        const bool served = brew(batch);
        board_.idle(index);
        queue_.done();
        if (!served)
            break;
        batch.clear();
    }
    board_.idle(index);
    queue_.barista_left();
}

// Logs and brews the orders, then serves them. False when stdout or the
// journal has failed: the orders not served wait in the journal.
bool shop::brew(const order_batch& batch) {
    log_orders(batch.text);
    const std::lock_guard lock{output_mutex_};
    if (output_failed_ || served_unrecorded_)
        return false;
    serve(batch);
    return !output_failed_ && !served_unrecorded_;
}

// "Processing order: ORDER" for each of `lines`, each after its brew time.
void shop::log_orders(std::string_view lines) const {
    const bool brewing_takes_time = opts_.brew_time.count() > 0;
    if (!brewing_takes_time && !log_each_order_)
        return;
    while (!lines.empty()) {
        const std::size_t lf = lines.find('\n');
        spdlog::info("Processing order: {}", printable(lines.substr(0, lf), max_order_bytes));
        if (brewing_takes_time)
            std::this_thread::sleep_for(opts_.brew_time);
        lines.remove_prefix(lf + 1);
    }
}

// Writes the batch's lines to stdout in writes of whole lines, at most
// PIPE_BUF bytes each, and marks each write's orders served in the journal
// once it is all out. On failure, exactly the orders whose lines went out
// whole are marked served; the others stay unserved in the journal.
// Called with output_mutex_ held.
void shop::serve(const order_batch& batch) {
    std::string_view rest = batch.text;
    std::uint64_t seq = batch.first_seq;
    while (!rest.empty()) {
        const written out = write_chunk(rest, batch.first_seq + batch.count - seq);
        try {
            journal_.mark_served(seq, out.lines);
        } catch (const std::system_error& e) {
            if (!served_unrecorded_.exchange(true))
                spdlog::error("cannot record served orders: {}; {} orders on stdout may be served again", e.what(),
                              out.lines);
            wake();
            return;
        }
        served_ += out.lines;
        seq += out.lines;
        if (out.error != 0) {
            output_error(out.error);
            return;
        }
        rest.remove_prefix(out.bytes);
    }
}

// Instant brewing with nothing in flight: whole lines that are orders
// exactly as they stand are served straight from the pipe, a write at a
// time: each write's lines go to stdout, then exactly their bytes are
// consumed. They never leave the pipe unserved, so they need no journal
// record: the pipe is their record until they are on stdout. A kill between
// the write and the consume serves that write's lines again. Stops early,
// leaving the rest in the pipe, when stdout fails, or is a pipe without
// room: then stdout_full_ is set, and the reader waits for room on stdout
// instead of orders (it never blocks in write(); and the orders wait in the
// pipe, so a slow stdout needs no journal either). Returns the bytes
// consumed.
std::size_t shop::serve_from_pipe(std::string_view lines, std::uint64_t count) {
    log_orders(lines);
    const std::lock_guard lock{output_mutex_};
    std::size_t consumed = 0;
    const bool poll_first = output_chunk_ != file_output_chunk && !stdout_nonblocking_;
    while (consumed < lines.size()) {
        if (poll_first && !stdout_writable()) {
            stdout_full_ = true;
            break;
        }
        const written out =
            write_chunk(lines.substr(consumed), count, stdout_nonblocking_ ? stdout_nonblocking_.get() : STDOUT_FILENO);
        if (out.error == EAGAIN && out.bytes == 0) {
            stdout_full_ = true;  // a write of at most PIPE_BUF to a pipe is all or nothing
            break;
        }
        consume(out.bytes);
        consumed += out.bytes;
        count -= out.lines;
        served_ += out.lines;
        if (out.error != 0) {
            output_error(out.error);
            break;
        }
    }
    return consumed;
}

// Writes the whole lines at the head of `text` (which holds `lines` lines)
// that fit in one output chunk, at least one line, retrying short writes.
// On failure: a file is cut back to where the write began, and none of its
// lines counts (were the cut to fail, they are served again: a duplicate,
// never a loss); a socket keeps what went out, and its whole lines count.
// Called with output_mutex_ held.
shop::written shop::write_chunk(std::string_view text, std::uint64_t lines, int fd) {
    std::size_t end = 0;
    if (stdout_is_journal_) {
        const std::size_t per_line = journal_priority.size();
        lines = 0;
        while (end < text.size()) {
            const std::size_t line_end = text.find('\n', end) + 1;
            if (lines > 0 && line_end + per_line * (lines + 1) > output_chunk_)
                break;
            end = line_end;
            ++lines;
        }
    } else if (text.size() <= output_chunk_) {
        end = text.size();  // all `lines` lines
    } else {
        // The whole lines in the first output_chunk_ bytes (at least one line).
        end = text.rfind('\n', output_chunk_ - 1) + 1;
        if (end == 0)
            end = text.find('\n') + 1;
        lines = count_lines(text.substr(0, end));
    }
    std::string_view chunk = text.substr(0, end);
    if (stdout_is_journal_) {
        // An order "<0>panic" must not set its own priority: journald
        // strips exactly one "<N>" (sd-daemon(3)), ours.
        prefixed_.clear();
        for (std::size_t at = 0; at < chunk.size();) {
            const std::size_t line_end = chunk.find('\n', at) + 1;
            prefixed_ += journal_priority;
            prefixed_.append(chunk.substr(at, line_end - at));
            at = line_end;
        }
        chunk = prefixed_;
    }
    const std::optional<std::uint64_t> file_offset = note_output_write(chunk);
    std::size_t written_bytes = 0;
    while (written_bytes < chunk.size()) {
        const ssize_t n = retry_on_eintr(
            [&] { return ::write(fd, chunk.data() + written_bytes, chunk.size() - written_bytes); });
        if (n < 0) {
            const int err = errno;
            if (file_offset) {
                if (written_bytes > 0)
                    cut_failed_write(*file_offset, chunk.substr(0, written_bytes));
                return {0, 0, err};
            }
            // A socket keeps what went out: the whole lines among it are served.
            const std::string_view out = chunk.substr(0, written_bytes);
            const std::uint64_t done = count_lines(out.substr(0, out.rfind('\n') + 1));
            // The bytes of `text` those lines were (without our prefixes).
            std::size_t bytes = 0;
            for (std::uint64_t i = 0; i < done; ++i)
                bytes = text.find('\n', bytes) + 1;
            return {done, bytes, err};
        }
        written_bytes += static_cast<std::size_t>(n);
    }
    return {lines, end, 0};
}

void shop::output_error(int err) {
    if (!output_failed_.exchange(true))
        spdlog::error("cannot write served orders: write to stdout: {}", std::strerror(err));
    wake();
}

// When stdout is a regular file: records in the journal where the next
// write goes (the file's offset, or its end with O_APPEND) and what it
// holds, and returns that offset. A write to a file is all or nothing for
// us: one that fails part-way is cut back to this offset (cut_failed_write),
// and one that a kill stops part-way is cut back by the next start
// (cut_unfinished_write), each only where the bytes there are provably
// this write's.
std::optional<std::uint64_t> shop::note_output_write(std::string_view chunk) {
    if (!stdout_file_)
        return std::nullopt;
    off_t offset = 0;
    if (stdout_append_) {
        struct stat st{};
        offset = ::fstat(STDOUT_FILENO, &st) == 0 ? st.st_size : -1;
    } else {
        offset = ::lseek(STDOUT_FILENO, 0, SEEK_CUR);
    }
    if (offset < 0)
        return std::nullopt;
    journal_format::encode_output_write(output_note_, *stdout_file_, static_cast<std::uint64_t>(offset), chunk);
    if (const int err = journal_.note_output_write(output_note_); err != 0 && !output_note_failed_.exchange(true))
        spdlog::warn("cannot record stdout's writes in the journal '{}': {}; a kill in the middle of a write may "
                     "leave an unfinished line at the end of stdout",
                     journal_.path().native(), std::strerror(err));
    return static_cast<std::uint64_t>(offset);
}

// A write to a stdout file at `offset` failed after `out`: cuts that
// part off again, when the file ends with exactly it there (with O_APPEND,
// another writer may have written in between, or after it).
void shop::cut_failed_write(std::uint64_t offset, std::string_view out) {
    const std::uint64_t end = offset + out.size();
    if (read_output(offset, end) == out && cut_output_back(offset, end))
        return;
    spdlog::warn("stdout: the {} bytes written at offset {} before the write failed are left there (not provably "
                 "all ours at the end of the file, or not cut: {}); their orders are served again",
                 out.size(), offset, std::strerror(errno));
}

// True when a write of up to PIPE_BUF bytes to stdout would not block now
// (poll's POLLOUT on a pipe means that much room).
bool shop::stdout_writable() const {
    pollfd out{STDOUT_FILENO, POLLOUT, 0};
    return ::poll(&out, 1, 0) == 1 && (out.revents & POLLOUT) != 0;
}

void shop::handle_signals() {
    while (const auto sig = read_signal(signals_)) {
        if (*sig == SIGHUP) {
            spdlog::info("SIGHUP: nothing to reload, ignoring");
        } else if (phase_ == phase::stopping) {
            spdlog::info("{}: already stopping, waiting for the orders being brewed", signal_name(*sig));
        } else {
            stop(signal_name(*sig));
        }
    }
}

std::size_t shop::pipe_bytes() const {
    int n = 0;
    if (::ioctl(fifo_.get(), FIONREAD, &n) != 0)
        throw_system_error(errno, "FIONREAD on FIFO '{}'", fifo_name_);
    return static_cast<std::size_t>(std::max(n, 0));
}

// Copies up to `limit` bytes from the head of the FIFO into peeked_ without
// consuming them: tee(2) duplicates the pipe's pages into our private pipe,
// which is then drained. Returns the count; 0 if the pipe is empty.
std::size_t shop::peek(std::size_t limit) {
    const ssize_t n = ::tee(fifo_.get(), peek_write_.get(), limit, SPLICE_F_NONBLOCK);
    if (n < 0) {
        if (errno == EAGAIN)
            return 0;
        throw_system_error(errno, "tee from FIFO '{}'", fifo_name_);
    }
    if (n == 0) {
        end_of_input_ = true;  // no writer left, not even us (an inherited read-only fd)
        return 0;
    }
    const auto size = static_cast<std::size_t>(n);
    peeked_.resize(size);
    for (std::size_t got = 0; got < size;) {
        const ssize_t r = retry_on_eintr([&] { return ::read(peek_read_.get(), peeked_.data() + got, size - got); });
        if (r <= 0)
            throw_system_error(r < 0 ? errno : EIO, "read the private pipe");
        got += static_cast<std::size_t>(r);
    }
    if (consumed_ + size > tail_seen_)
        note_tail(std::string_view{peeked_}.substr(static_cast<std::size_t>(tail_seen_ - consumed_)));
    return size;
}

// Consumes exactly `bytes` from the FIFO: they are already recorded (or
// dropped on purpose). splice to /dev/null moves no data.
void shop::consume(std::size_t bytes) {
    while (bytes > 0) {
        ssize_t n = ::splice(fifo_.get(), nullptr, devnull_.get(), nullptr, bytes, SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EINVAL) {
            std::array<char, 65536> sink{};
            n = retry_on_eintr([&] { return ::read(fifo_.get(), sink.data(), std::min(bytes, sink.size())); });
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            throw_system_error(n < 0 ? errno : EIO, "take {} bytes from FIFO '{}'", bytes, fifo_name_);
        bytes -= static_cast<std::size_t>(n);
        consumed_ += static_cast<std::uint64_t>(n);
    }
    if (consumed_ > tail_seen_)
        tail_seen_ = tail_line_ = consumed_;  // never: what is taken was peeked, and so seen
}

// Takes the whole lines at the head of the pipe, up to about `limit` bytes:
// peeks at them, records the valid orders in the journal, and only then
// consumes exactly their bytes, one record of at most record_limit_ bytes
// of lines at a time. Whatever happens to the process, the pipe then holds
// whole lines only, and every order that left it is in the journal. Returns
// the bytes consumed (0: nothing whole was there). Throws system_error
// (nothing of the record being written consumed) when the journal fails.
std::size_t shop::take_orders(std::size_t limit) {
    // No take reaches past a cut: the unfinished line that ends there is
    // dropped first, and what follows it starts a new line.
    const bool to_cut = !cuts_.empty() && cuts_.front().end - consumed_ <= limit;
    if (to_cut)
        limit = static_cast<std::size_t>(cuts_.front().end - consumed_);
    const std::size_t n = peek(limit);
    if (n == 0)
        return 0;
    const bool at_cut = to_cut && n == limit;
    std::string_view bytes = peeked_;
    std::size_t taken = 0;
    if (discarding_) {
        const std::size_t lf = bytes.find('\n');
        if (lf == std::string_view::npos) {
            consume(n);
            discarded_ += n;
            if (at_cut)
                drop_cut({});
            return n;
        }
        discarded_ += lf;
        reject("malformed line", checked_line{line_problem::too_long, {}, max_order_bytes}, {}, discarded_ + 1);
        discarding_ = false;
        taken = lf + 1;
        consume(taken);
        bytes.remove_prefix(taken);
    }
    const std::size_t last_lf = bytes.rfind('\n');
    if (last_lf == std::string_view::npos) {
        if (taken > 0)
            return taken;
        if (at_cut) {
            consume(n);
            drop_cut(peeked_);
            return n;
        }
        if (n > max_order_bytes) {
            // A line's worth without an LF: an over-long line. Drop it as it
            // comes, in big reads, never byte by byte.
            consume(n);
            discarding_ = true;
            discarded_ = n;
            return n;
        }
        note_fragment(n);
        return 0;
    }
    std::string_view lines = bytes.substr(0, last_lf + 1);
    fragment_bytes_ = 0;
    if (std::uint64_t count = 0; may_serve_from_pipe() && orders_as_they_stand(lines, count)) {
        return taken + serve_from_pipe(lines, count);
    }
    const bool whole_peek = taken == 0 && lines.size() <= record_limit_;  // lines is all of peeked_
    while (!lines.empty()) {
        std::size_t end = lines.size();
        if (end > record_limit_) {
            end = lines.rfind('\n', record_limit_ - 1) + 1;
            if (end == 0)
                end = lines.find('\n') + 1;
        }
        const std::string_view record = lines.substr(0, end);
        lines.remove_prefix(end);
        taken += record.size();
        // After 'finish' (or a stop) the phase changed and the pipe was
        // taken again from its head: peeked_ is no longer ours.
        if (!take_lines(record, whole_peek))
            break;
    }
    return taken;
}

// Records the orders among `lines` (whole lines at the head of the pipe) in
// the journal, then consumes their bytes, and queues them as pending_.
// False when a 'finish' among them changed the phase (the pipe was then
// taken from its head again, and peeked_ was overwritten).
bool shop::take_lines(std::string_view lines, bool whole_peek) {
    order_batch batch;
    std::size_t before_finish = 0;
    bool saw_finish = false;
    if (parse_lines(lines, batch, before_finish, saw_finish)) {
        if (whole_peek) {
            batch.text = std::move(peeked_);  // no copy
            batch.text.resize(lines.size());
            peeked_.clear();
        } else {
            batch.text.assign(lines);
        }
    }
    journal_.append_orders(batch);  // throws: nothing consumed, nothing lost
    consume(lines.size());
    if (phase_ == phase::taking_orders && before_finish > 0) {
        std::string_view text = batch.text;
        if (before_finish < batch.count) {
            // Orders after 'finish' wait in the journal for the next start.
            std::size_t end = 0;
            for (std::size_t i = 0; i < before_finish; ++i)
                end = batch.text.find('\n', end) + 1;
            text = text.substr(0, end);
        }
        if (pending_.empty()) {
            if (before_finish == batch.count) {
                pending_ = std::move(batch);
            } else {
                pending_.text.assign(text);
                pending_.count = before_finish;
                pending_.first_seq = batch.first_seq;
            }
        } else {
            // The records of one take have consecutive sequence numbers.
            pending_.text.append(text);
            pending_.count += before_finish;
        }
        // A big take goes to the baristas a record at a time, so that no
        // one holds more than a record: the queue overshoots its capacity
        // by at most one take, and memory stays bounded by it.
        if (pending_.text.size() >= 4 * record_limit_)
            queue_.push(std::move(pending_));
    } else if (phase_ != phase::taking_orders) {
        moved_to_journal_ += batch.count;
    }
    if (saw_finish) {
        finish("received 'finish'");
        return false;
    }
    return true;
}

// Appends the orders among `lines` (whole lines) to `batch`. Returns true
// when every line was an order exactly as it stands: batch.text is then left
// empty, for the caller to fill with `lines` in one move (the common case
// costs no copy).
bool shop::parse_lines(std::string_view lines, order_batch& batch, std::size_t& before_finish, bool& saw_finish) {
    const std::string_view all = lines;
    bool verbatim = true;
    std::size_t verbatim_end = 0;
    const auto copy_out = [&] {
        if (verbatim) {
            batch.text.assign(all.substr(0, verbatim_end));
            verbatim = false;
        }
    };
    // Orders are mostly printable ASCII: then a line is an order exactly as
    // it stands when it is not empty, not too long, has no blank at either
    // end and is not 'finish' (what check_line would say, without looking
    // at each byte again).
    const bool plain = plain_lines(all);
    while (!lines.empty()) {
        const std::size_t lf = lines.find('\n');
        const std::string_view raw = lines.substr(0, lf);
        lines.remove_prefix(lf + 1);
        if (plain && plain_order(raw)) {
            if (verbatim) {
                verbatim_end += raw.size() + 1;
                ++batch.count;
            } else {
                batch.add(raw);
            }
            if (!saw_finish)
                before_finish = batch.count;
            continue;
        }
        const checked_line check = check_line(raw);
        if (check.problem != line_problem::none) {
            copy_out();
            reject("malformed line", check, raw, raw.size() + 1);
            continue;
        }
        if (check.text.empty() || check.text == finish_message) {
            copy_out();
            if (check.text.empty())
                continue;
            if (phase_ == phase::taking_orders && !saw_finish && opts_.until_finish)
                saw_finish = true;
            else if (phase_ == phase::taking_orders && !opts_.until_finish)
                spdlog::info("received 'finish', ignoring it: not started with --until-finish");
            continue;
        }
        if (verbatim && check.text.size() == raw.size()) {
            verbatim_end += raw.size() + 1;
            ++batch.count;
        } else {
            copy_out();
            batch.add(check.text);
        }
        if (!saw_finish)
            before_finish = batch.count;
    }
    return verbatim;
}

void shop::reject(std::string_view what, const checked_line& check, std::string_view raw, std::size_t bytes) {
    ++rejected_;
    if (!warnings_.allow())
        return;
    flush_warnings();
    if (check.problem == line_problem::too_long)
        spdlog::warn("{} ({} bytes) {}, ignoring", what, bytes, describe(check.problem));
    else
        spdlog::warn("{} ({} bytes) {} at byte {}: '{}', ignoring", what, bytes, describe(check.problem), check.offset,
                     printable(raw));
}

void shop::flush_warnings(bool all) {
    if (const std::uint64_t n = warnings_.take_suppressed(clock::now(), all); n > 0)
        spdlog::warn("{} more malformed lines were not logged (at most {} per {})", n, warning_burst,
                     format_duration(warning_interval));
}

// Only an unfinished line is in the pipe. The pipe stays readable, so
// poll() cannot tell us when its writer adds to it, and a writer blocked in
// a big write() does not wake an edge-triggered epoll either: look at the
// pipe's size again after 100 us, then ever less often (up to 20 ms). A
// writer in the middle of a line (cat of a big file) is seen at once; a
// fragment nobody finishes costs some 30 wake-ups before it is dropped.
void shop::note_fragment(std::size_t bytes) {
    if (pipe_bytes() > bytes) {
        // tee() saw only part of the pipe. Usually the writer is adding to
        // it: look again at once. If three looks in a row see the same bytes,
        // the pipe holds more pieces than our private pipe can take (a writer
        // that splices tiny pieces into a pipe it made bigger): that line
        // cannot be checked whole, so it is dropped like an over-long one.
        fragment_bytes_ = 0;
        short_peeks_ = bytes == short_peek_bytes_ ? short_peeks_ + 1 : 1;
        short_peek_bytes_ = bytes;
        if (short_peeks_ >= 3) {
            consume(bytes);
            discarding_ = true;
            discarded_ = bytes;
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
void shop::check_fragment(clock::time_point now) {
    if (now < next_fragment_check_)
        return;
    if (!cuts_.empty() || pipe_bytes() != fragment_bytes_) {
        fragment_bytes_ = 0;  // it grew, or was cut off: take again
        return;
    }
    fragment_check_delay_ = std::min<clock::duration>(2 * fragment_check_delay_, std::chrono::milliseconds{20});
    next_fragment_check_ = now + fragment_check_delay_;
}

// `fresh`: the bytes of the pipe from tail_seen_ on, just looked at. Notes
// where the unfinished line at the tail starts, and when it appeared and grew.
void shop::note_tail(std::string_view fresh) {
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
bool shop::look_at_tail() {
    const ssize_t n = ::tee(fifo_.get(), peek_write_.get(), std::size_t{1} << 30, SPLICE_F_NONBLOCK);
    if (n < 0 && errno != EAGAIN)
        throw_system_error(errno, "tee from FIFO '{}'", fifo_name_);
    if (n <= 0)
        return false;  // empty, or no writer left: the reader sees that
    const auto size = static_cast<std::size_t>(n);
    std::size_t skip = std::min(size, static_cast<std::size_t>(tail_seen_ - consumed_));
    while (skip > 0) {
        ssize_t r = ::splice(peek_read_.get(), nullptr, devnull_.get(), nullptr, skip, 0);
        if (r < 0 && errno == EINVAL) {
            std::array<char, 65536> sink{};
            r = ::read(peek_read_.get(), sink.data(), std::min(skip, sink.size()));
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            throw_system_error(r < 0 ? errno : EIO, "drain the private pipe");
        skip -= static_cast<std::size_t>(r);
    }
    const std::size_t fresh = size - std::min(size, static_cast<std::size_t>(tail_seen_ - consumed_));
    tail_bytes_.resize(fresh);
    for (std::size_t got = 0; got < fresh;) {
        const ssize_t r = retry_on_eintr([&] { return ::read(peek_read_.get(), tail_bytes_.data() + got, fresh - got); });
        if (r <= 0)
            throw_system_error(r < 0 ? errno : EIO, "read the private pipe");
        got += static_cast<std::size_t>(r);
    }
    note_tail(tail_bytes_);
    return fresh > 0;
}

// When the unfinished line at the tail is to be cut off: nothing added to
// it for fragment_timeout, or fragment_max_age since it appeared; the end
// of time when there is none.
clock::time_point shop::tail_deadline() const {
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
void shop::watch_tail(clock::time_point now, bool looking) {
    bool look = looking && now >= next_tail_look_;
    // A line is quiet when its writer added nothing, not when the shop was
    // late to look (a loaded machine): before cutting, see what is there.
    if (tail_line_ < tail_seen_ && now >= tail_deadline() && consumed_ + pipe_bytes() > tail_seen_ && look_at_tail()) {
        tail_look_delay_ = tail_look_fastest;
        next_tail_look_ = now + tail_look_delay_;
        look = false;
    }
    const bool due = now >= tail_deadline();
    if (tail_line_ < tail_seen_ && (look || due)) {
        if (writer_may_wait_for_room(pipe_bytes(), due)) {
            tail_since_ = now;
            tail_grew_ = now;
        } else if (due) {
            cut_tail(now - tail_since_ >= fragment_max_age);
        }
    }
    if (!look)
        return;
    const std::size_t in_pipe = pipe_bytes();
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
bool shop::writer_may_wait_for_room(std::size_t in_pipe, bool due) {
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
    spdlog::warn("the pipe of '{}' was shrunk to {} bytes, full with an unfinished line (F_SETPIPE_SZ); {}", fifo_name_,
                 size, restored ? fmt::format("set it back to {}", pipe_size_) : fmt::format("cannot set it back: {}", std::strerror(errno)));
    return restored;
}

// Cuts the unfinished line at the tail off where it ends now: bytes written
// after this start a new line. Its bytes are dropped when the reader reaches
// them, or now when it has taken them already (an over-long line, dropped as
// it came).
void shop::cut_tail(bool too_old) {
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
void shop::drop_cut(std::string_view text) {
    const bool too_old = cuts_.front().too_old;
    cuts_.pop_front();
    const std::size_t bytes = discarding_ ? discarded_ : text.size();
    discarding_ = false;
    discarded_ = 0;
    ++rejected_;
    if (!warnings_.allow())
        return;
    flush_warnings();
    const std::string why = too_old ? fmt::format("{} since it began", format_duration(fragment_max_age))
                                    : fmt::format("nothing more for {}", format_duration(fragment_timeout));
    if (text.size() < bytes)
        spdlog::warn("dropped {} bytes of an unfinished line longer than {} bytes (no LF, {})", bytes, max_line_bytes, why);
    else
        spdlog::warn("dropped {} bytes of an unfinished line (no LF, {}): '{}'", bytes, why, printable(text));
}

// Orders may be served straight from the pipe (serve_from_pipe) when brewing
// is instant and no order is in flight anywhere else, so that none is
// overtaken; not with --sync, whose promise is that every order is on disk
// before it leaves the pipe.
bool shop::may_serve_from_pipe() const {
    return opts_.brew_time.count() == 0 && !opts_.sync && phase_ == phase::taking_orders && pending_.empty() &&
           !journal_.replaying() && queue_.idle() && journal_.in_flight() == 0;
}

void shop::replay_journal() {
    if (!journal_.replaying() || phase_ != phase::taking_orders || !pending_.empty())
        return;
    try {
        (void)journal_.replay(pending_, record_limit_);
    } catch (const std::system_error& e) {
        journal_failed(e);
    }
}

void shop::feed_queue() {
    if (phase_ == phase::stopping)
        return;
    if (!pending_.empty() && opts_.brew_time.count() == 0 && pending_.text.size() <= max_line_bytes &&
        queue_.idle() && stdout_writable()) {
        // Instant brewing, a few orders, every barista idle and room on
        // stdout: serve here. Handing the orders to a barista would only add
        // a thread wake-up (tens of microseconds on a busy machine) to each
        // order's latency. Only when stdout has room, so that the reader
        // never blocks in write() (signals and the watchdog wait on it).
        (void)brew(pending_);
        pending_.clear();
    }
    if (!pending_.empty() && !queue_.full())
        queue_.push(std::move(pending_));
    if (phase_ == phase::draining && pending_.empty())
        queue_.close(true);
}

void shop::finish(std::string_view why) {
    if (phase_ != phase::taking_orders)
        return;
    phase_ = phase::draining;
    spdlog::info("{}: taking no more orders; serving the {} accepted", why, queue_.size() + pending_.count);
    notify("STOPPING=1");
    move_pipe_to_journal();
}

void shop::stop(std::string_view why) {
    if (phase_ == phase::stopping)
        return;
    const bool was_taking = phase_ == phase::taking_orders;
    phase_ = phase::stopping;
    queue_.close(false);
    spdlog::info("{}: stopping; orders being brewed will finish, the others wait in the journal", why);
    notify("STOPPING=1");
    if (was_taking)
        move_pipe_to_journal();
}

// At a stop, the whole lines in the pipe at that moment move to the journal,
// so that a stop loses nothing even when no one else holds the FIFO open.
void shop::move_pipe_to_journal() {
    if (!journal_ok_ || end_of_input_)
        return;
    try {
        const std::size_t there = pipe_bytes();
        const std::uint64_t before = moved_to_journal_;
        for (std::size_t moved = 0; moved < there;) {
            const std::size_t n = take_orders(there - moved + max_line_bytes);
            if (n == 0)
                break;
            moved += n;
        }
        if (moved_to_journal_ > before)
            spdlog::info("moved {} orders from the pipe to the journal '{}'", moved_to_journal_ - before,
                         journal_.path().native());
        if (fragment_bytes_ > 0)
            spdlog::info("left {} bytes of an unfinished line in the pipe", fragment_bytes_);
    } catch (const std::system_error& e) {
        journal_failed(e);
    }
}

void shop::journal_failed(const std::system_error& e) {
    spdlog::error("{}", e.what());
    journal_ok_ = false;
    exit_code_ = exit_io;
    stop("cannot record orders");
}

void shop::compact_journal(bool quiet) {
    if (!journal_ok_ || journal_.replaying())
        return;
    const std::uint64_t size = journal_.bytes();
    if (size == 0 || (!quiet && size < compact_bytes))
        return;
    try {
        if (journal_.compact())
            spdlog::debug("journal '{}' emptied ({} bytes, nothing in flight)", journal_.path().native(), size);
        else if (journal_.rewrite(compact_bytes))
            spdlog::debug("journal '{}' rewritten with its unserved orders: {} bytes, was {}", journal_.path().native(),
                          journal_.bytes(), size);
    } catch (const std::system_error& e) {
        spdlog::warn("{}", e.what());  // it only stays bigger
    }
}

// How many whole lines wait in the pipe (for the last words of a failed stop).
int shop::shut_down() {
    for (std::thread& barista : baristas_)
        barista.join();
    baristas_.clear();
    flush_warnings(true);
    const std::uint64_t waiting = journal_.in_flight();
    if (journal_ok_ && !served_unrecorded_ && waiting == 0) {
        try {
            (void)journal_.compact();
        } catch (const std::system_error& e) {
            spdlog::warn("{}", e.what());
        }
    }
    if (exit_code_ != exit_ok) {
        spdlog::error("{} orders wait in the journal '{}' and {} in the pipe '{}'", waiting, journal_.path().native(),
                      peek_pipe_lines(fifo_.get()).lines, fifo_name_);
    } else if (waiting > 0) {
        spdlog::info("{} orders wait in the journal '{}' for the next start", waiting, journal_.path().native());
    }
    report_status(true);
    spdlog::info("closed: served {} orders, rejected {} lines", served_.load(), rejected_);
    return exit_code_;
}

void shop::report_status(bool force) {
    const auto now = clock::now();
    if (!force && now - last_status_time_ < status_interval_)
        return;
    std::string status = format_status({.served = served_.load(),
                                        .waiting = queue_.size() + pending_.count,
                                        .rejected = rejected_,
                                        .pipe = measure_pipe(fifo_.get()),
                                        .baristas = board_.snapshot()});
    if (status != last_status_ || force) {
        notify(status);
        last_status_ = std::move(status);
    }
    last_status_time_ = now;
}

void shop::notify(std::string_view state) noexcept {
    try {
        (void)sd::notify(state);
    } catch (const std::exception& e) {
        spdlog::debug("sd_notify: {}", e.what());
    }
}

// Sets the pipe's size to at least `wanted` bytes (a bigger one is kept) and
// returns the size it has: the size to keep it at. What a writer shrank it to
// while no consumer ran is not kept. 1 MiB may be more than the user may
// have (pipe-user-pages-soft): then at least a new pipe's size.
int keep_pipe_size(int fd, const std::filesystem::path& name, int wanted) {
    const int size = ::fcntl(fd, F_GETPIPE_SZ);
    if (size < 0 || size >= wanted)
        return std::max(size, 0);
    int set = ::fcntl(fd, F_SETPIPE_SZ, wanted);
    if (set < 0 && wanted > default_pipe_size && size < default_pipe_size)
        set = ::fcntl(fd, F_SETPIPE_SZ, default_pipe_size);
    if (set < 0)
        spdlog::warn("the pipe of '{}' holds {} bytes; cannot set it to {}: {}", name.native(), size, wanted,
                     std::strerror(errno));
    else if (size < default_pipe_size)
        spdlog::warn("the pipe of '{}' was shrunk to {} bytes (F_SETPIPE_SZ) before the shop opened; set it to {}",
                     name.native(), size, set);
    return set < 0 ? size : set;
}

// $STATE_DIRECTORY, when set and not empty (systemd's StateDirectory=).
std::optional<std::string_view> state_directory() {
    const char* state = std::getenv("STATE_DIRECTORY");
    if (state == nullptr || *state == '\0')
        return std::nullopt;
    return std::string_view{state};
}

// $STATE_DIRECTORY may list several directories, separated by colons.
std::filesystem::path default_journal(const std::filesystem::path& fifo_path) {
    if (const auto dirs = state_directory())
        return std::filesystem::path{dirs->substr(0, dirs->find(':'))} / "journal";
    return fifo_path.native() + ".journal";
}

// Under coffee-launcher serve ($COFFEE_SUPERVISOR_PID, its pid): the death
// of the supervisor sends us SIGTERM (PR_SET_PDEATHSIG), so that we stop as
// asked, moving the pipe's whole lines into the journal, instead of keeping
// the FIFO and the journal's lock from the next supervisor. Called once
// SIGTERM is blocked, so it comes through the signalfd; a supervisor that
// died before is seen by getppid(), and the SIGTERM sent here instead.
void watch_supervisor() {
    const char* value = std::getenv("COFFEE_SUPERVISOR_PID");
    if (value == nullptr)
        return;
    char* end = nullptr;
    const long supervisor = std::strtol(value, &end, 10);
    if (end == value || *end != '\0' || supervisor < 1 || supervisor > std::numeric_limits<pid_t>::max()) {
        spdlog::warn("ignoring COFFEE_SUPERVISOR_PID='{}': not a pid", printable(value));
    } else if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        throw_system_error(errno, "prctl PR_SET_PDEATHSIG");
    } else if (::getppid() != static_cast<pid_t>(supervisor)) {
        spdlog::warn("the supervisor (pid {}) is gone: stopping", supervisor);
        (void)::kill(::getpid(), SIGTERM);
    }
    (void)::unsetenv("COFFEE_SUPERVISOR_PID");  // no thread yet
}

// The path behind an inherited descriptor, for logs and the journal's name.
std::filesystem::path path_of_fd(int fd) {
    std::error_code ec;
    auto path = std::filesystem::read_symlink(fmt::format("/proc/self/fd/{}", fd), ec);
    return ec ? std::filesystem::path{} : path;
}

}  // namespace

options parse_command_line(int argc, char* argv[]) {
    cxxopts::Options spec{"coffee-consumer", "The coffee shop: baristas brew the orders read from a FIFO."};
    spec.add_options()
        ("fifo", "the FIFO to read (default: $COFFEE_FIFO, else /run/coffee-shop/orders for root, else $XDG_RUNTIME_DIR/coffee-shop/orders)",
         cxxopts::value<std::string>(), "PATH")
        ("baristas", "how many orders are brewed at once (default 1)", cxxopts::value<unsigned>(), "N")
        ("brew-time", "how long one order takes (default 4s; 0 allowed)", cxxopts::value<std::string>(), "DUR")
        ("timeout", "close the shop after this long (default: never)", cxxopts::value<std::string>(), "DUR")
        ("until-finish", "close the shop after the line 'finish', once the accepted orders are served")
        ("journal", "the order journal: every order taken from the pipe, until served (default: $STATE_DIRECTORY/journal, else FIFO.journal)",
         cxxopts::value<std::string>(), "PATH")
        ("sync", "make each journal write durable (fdatasync) before its orders leave the pipe")
        ("queue-size", "orders read ahead of the baristas (default: 1024 with --brew-time 0, else 2 per barista)",
         cxxopts::value<std::size_t>(), "N")
        ("fifo-mode", "mode of a FIFO the shop creates (default 0600; no read bits for group or others)", cxxopts::value<std::string>(), "MODE")
        ("allow-world-writable", "accept an existing FIFO that everyone may write to");
    add_common_options(spec);

    // --backlog is the old name of --journal, still accepted for old configs.
    // Only there may an old text backlog sit at the journal's path: anything
    // else there that is not a journal is damage, reported and never served.
    bool backlog_option = false;
    std::vector<std::string> args(argv, argv + argc);
    for (std::string& arg : args) {
        if (arg == "--backlog")
            arg = "--journal";
        else if (arg.starts_with("--backlog="))
            arg = "--journal=" + arg.substr(10);
        else if (arg == "--")
            break;
        else
            continue;
        backlog_option = true;
    }
    std::vector<char*> renamed;
    for (std::string& arg : args)
        renamed.push_back(arg.data());
    renamed.push_back(nullptr);
    const auto result = parse_or_usage(spec, argc, renamed.data());
    if (!result.unmatched().empty())
        throw usage_error(fmt::format("unexpected argument '{}'", result.unmatched().front()));
    options opts;
    opts.common = read_common_options(result, spec, exit_codes_help);
    opts.journal_may_be_old_backlog = backlog_option;
    opts.fifo = read_path_option(result, "fifo");
    opts.journal = read_path_option(result, "journal");
    opts.sync = result.count("sync") > 0;
    if (result.count("baristas") > 0)
        opts.baristas = result["baristas"].as<unsigned>();
    if (opts.baristas < 1 || opts.baristas > 256)
        throw usage_error(fmt::format("--baristas: {} is not between 1 and 256", opts.baristas));
    if (result.count("brew-time") > 0)
        opts.brew_time = parse_duration(result["brew-time"].as<std::string>());
    if (result.count("timeout") > 0)
        opts.timeout = parse_duration(result["timeout"].as<std::string>());
    opts.until_finish = result.count("until-finish") > 0;
    // Orders taken ahead wait in the journal, not in the pipe, where another
    // consumer could not take them. Take ahead only as far as keeps the
    // baristas busy.
    opts.queue_size = opts.brew_time.count() == 0 ? 1024 : 2 * std::size_t{opts.baristas};
    if (result.count("queue-size") > 0)
        opts.queue_size = result["queue-size"].as<std::size_t>();
    if (opts.queue_size < 1 || opts.queue_size > 65536)
        throw usage_error(fmt::format("--queue-size: {} is not between 1 and 65536", opts.queue_size));
    if (result.count("fifo-mode") > 0)
        opts.fifo_mode = parse_fifo_mode(result["fifo-mode"].as<std::string>());
    opts.allow_world_writable = result.count("allow-world-writable") > 0;
    return opts;
}

int run(const options& opts) {
    ignore_sigpipe();  // a closed stdout is EPIPE, handled by the baristas
    // The inherited descriptors first: the signalfd below would otherwise
    // land on a closed fd 3 and be taken for the FIFO.
    std::vector<unique_fd> inherited = sd::take_listen_fds();
    // Before any thread starts, so that every thread inherits the mask.
    unique_fd signals = block_and_watch({SIGTERM, SIGINT, SIGHUP});
    watch_supervisor();

    std::filesystem::path fifo_path = opts.fifo;
    unique_fd fifo;
    unique_fd lock;
    int pipe_size = 0;
    if (!inherited.empty()) {
        if (inherited.size() > 1)
            spdlog::warn("socket activation passed {} descriptors; using the first, fd 3", inherited.size());
        check_is_fifo(inherited.front().get(), "inherited fd 3 (LISTEN_FDS)");
        check_open_for_reading(inherited.front().get(), "inherited fd 3 (LISTEN_FDS)");
        fifo = std::move(inherited.front());
        set_nonblocking(fifo.get(), true);
        if (fifo_path.empty()) {
            fifo_path = path_of_fd(fifo.get());
            // An anonymous pipe ("pipe:[N]") or a FIFO since removed has no
            // path to keep the journal beside, and the working directory is
            // no place for it.
            const bool named = fifo_path.is_absolute() && !fifo_path.native().ends_with(" (deleted)");
            if (!named && opts.journal.empty() && !state_directory())
                throw exit_error(exit_config,
                                 fmt::format("inherited fd 3 (LISTEN_FDS) is '{}', not a FIFO with a path beside which the "
                                             "journal could live; give --journal PATH, or set $STATE_DIRECTORY "
                                             "(StateDirectory= in the unit)",
                                             fifo_path.empty() ? std::string{"?"} : fifo_path.native()));
        }
        // No lock: the supervisor (systemd, coffee-launcher serve) starts one
        // consumer per FIFO, and a lock any writer could take would only let
        // a customer keep the shop closed.
        pipe_size = keep_pipe_size(fifo.get(), fifo_path, default_pipe_size);
    } else {
        if (fifo_path.empty())
            fifo_path = default_fifo_path(false);
        fifo = open_fifo_for_reading(fifo_path, {opts.fifo_mode, opts.allow_world_writable});
        // One shop per FIFO: a second consumer would take half of the orders.
        lock = lock_fifo(fifo_path);
        // With instant brewing, a bigger pipe means fewer, bigger takes and
        // fewer wake-ups (as coffee-launcher serve does). An inherited FIFO
        // keeps the size its supervisor gave it (PipeSize=), if not smaller.
        pipe_size = keep_pipe_size(fifo.get(), fifo_path,
                                   opts.brew_time.count() == 0 ? static_cast<int>(instant_take) : default_pipe_size);
    }
    const std::filesystem::path journal_path = !opts.journal.empty() ? opts.journal : default_journal(fifo_path);
    // The journal's directory must be one nobody else can change, as the FIFO's.
    check_safe_directory(journal_path.has_parent_path() ? journal_path.parent_path() : std::filesystem::path{"."});
    std::optional<journal> orders_journal;
    try {
        const std::filesystem::path aside =
            opts.journal_may_be_old_backlog ? set_aside_old_backlog(journal_path) : std::filesystem::path{};
        orders_journal.emplace(journal_path, opts.sync);
        if (!aside.empty())
            import_old_backlog(*orders_journal, aside);
        if (opts.journal.empty())
            import_old_backlog(*orders_journal, default_old_backlog(fifo_path));
    } catch (const std::system_error& e) {
        // A read-only or full disk: nothing was taken, say what waits.
        throw exit_error(exit_code_for(e), fmt::format("{}; {} orders wait in the pipe '{}'", e.what(),
                                                       peek_pipe_lines(fifo.get()).lines, fifo_path.native()));
    }
    cut_unfinished_write(orders_journal->loaded());
    const int fifo_fd = fifo.get();
    shop coffee_shop{opts, std::move(fifo), fifo_path.native(), *orders_journal, std::move(signals)};
    // Any writer can shrink the pipe; set it back (destroyed before the shop).
    const pipe_size_watch pipe_size_kept{fifo_fd, fmt::format("'{}'", fifo_path.native()), std::chrono::seconds{1},
                                         [](const std::string& message) { spdlog::warn("{}", message); }, pipe_size};
    return coffee_shop.run();
}

}  // namespace coffee::consumer
