#include "shop.hpp"

#include "order_lines.hpp"

#include <coffee/errors.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/pipe_fill.hpp>
#include <coffee/posix.hpp>
#include <coffee/sd_daemon.hpp>
#include <coffee/signals.hpp>

#include <spdlog/spdlog.h>

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <utility>

namespace coffee::consumer {

namespace {

// How much to take from the pipe at once. With instant brewing, the shop
// grows a FIFO it opened itself to 1 MiB (the unprivileged pipe-max-size),
// and one tee() looks at all of it: fewer wake-ups for the reader and for
// the writers it unblocks. Mostly it is served straight from the pipe
// (counter::serve_from); what goes the journal's way is journaled and spliced
// out in records of at most 64 KiB of lines (instant_record), each appended
// before its own bytes leave the pipe, so a kill between the two serves at
// most 64 KiB again (docs/design.md, "Duplicates"); the baristas get it in batches of
// up to 4 records, so that memory stays bounded. When brewing takes time, taking
// ahead serves no one sooner: take one PIPE_BUF at a time.
// With --sync a take is one record and one commit (group commit: one
// fdatasync for all of it), so a kill between the commit and the take
// serves that take again (up to the pipe's 1 MiB).
constexpr std::size_t instant_take = instant_pipe_size;
constexpr std::size_t instant_record = 65536;

constexpr std::size_t brewing_take = max_line_bytes;
std::size_t record_limit(const options& opts) {
    if (!opts.instant())
        return brewing_take;
    return opts.sync ? instant_take : instant_record;
}
// The journal is emptied whenever nothing is in flight and it has grown past
// compact_bytes (or the shop is quiet); while orders are in flight it is
// rewritten with the unserved ones once it passes twice its size after the
// last rewrite plus compact_bytes. Past hold_bytes the reader waits for the
// baristas to catch up.
constexpr std::uint64_t compact_bytes = 1U << 20;
constexpr std::uint64_t hold_bytes = 64U << 20;

timespec timespec_of(std::chrono::nanoseconds ns) {
    return {static_cast<time_t>(ns.count() / 1'000'000'000), static_cast<long>(ns.count() % 1'000'000'000)};
}

}  // namespace

shop::shop(const options& opts, unique_fd fifo, std::string fifo_name, journal& orders_journal, unique_fd signals)
    : opts_{opts}, recipe_{opts.brew_time, spdlog::should_log(spdlog::level::info)},
      take_limit_{opts.instant() ? instant_take : brewing_take},
      record_limit_{record_limit(opts)}, journal_{orders_journal},
      signals_{std::move(signals)}, wake_{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)},
      intake_{std::move(fifo), std::move(fifo_name), rejects_}, sink_{orders_journal},
      counter_{sink_, orders_journal, [this] { wake(); }}, queue_{opts.queue_size, [this] { wake(); }},
      baristas_{opts.baristas, recipe_, queue_, counter_}, status_interval_{status_interval_from_env()} {
    if (!wake_)
        throw_system_error(errno, "eventfd");
}

int shop::run() {
    open_for_orders();
    for (;;) {
        // Before the exit test: the last barista may have left because stdout failed.
        if (counter_.failed() && !life_.stopping()) {
            exit_code_ = exit_io;
            on(counter_.output_failed() ? life_event::stdout_failed : life_event::journal_failed,
               counter_.output_failed() ? "stdout failed" : "the journal failed");
        }
        if (queue_.baristas_left() == opts_.baristas)
            break;
        replay_journal();
        feed_queue();
        const auto now = clock::now();
        tick(now);
        wait_and_take(plan_turn(now), now);
        if (intake_.end_of_input())
            on(life_event::end_of_input, "end of input");
    }
    return shut_down();
}

// Says what the journal held, starts the baristas, and tells the supervisor
// the shop is ready.
void shop::open_for_orders() {
    const journal_load& loaded = journal_.loaded();
    const std::string& path = journal_.path().native();
    if (loaded.unfinished_rewrite)
        spdlog::info("journal '{}': removed a rewrite of it that a kill cut short (the journal itself is whole)", path);
    for (const journal_damage& d : loaded.damage)
        spdlog::warn("journal '{}': {} bytes at offset {} are not valid records ({}); skipped, not served", path,
                     d.bytes, d.offset, d.reason);
    if (loaded.damaged_stretches > loaded.damage.size())
        spdlog::warn("journal '{}': {} more damaged stretches; {} bytes skipped in all", path,
                     loaded.damaged_stretches - loaded.damage.size(), loaded.damaged_bytes);
    if (loaded.unserved > 0)
        spdlog::info("serving {} unserved orders from the journal '{}' first", loaded.unserved, path);

    baristas_.start();
    const auto started = clock::now();
    if (opts_.timeout.count() > 0)
        deadline_ = started + opts_.timeout;
    watchdog_ = sd::watchdog_interval();
    next_watchdog_ = started;
    spdlog::info("open for orders on '{}': {} barista{}, brew time {}{}", intake_.name(), opts_.baristas,
                 opts_.baristas == 1 ? "" : "s", format_duration(opts_.brew_time),
                 opts_.timeout.count() > 0 ? fmt::format(", closing after {}", format_duration(opts_.timeout)) : "");
    notify("READY=1");
}

// What is due by the clock: the --timeout, the watchdog, the status, held
// back warnings, compacting the journal.
void shop::tick(clock::time_point now) {
    if (!life_.stopping() && now >= deadline_)
        on(life_event::timeout, fmt::format("--timeout {} reached", format_duration(opts_.timeout)));
    if (watchdog_ && now >= next_watchdog_) {
        notify("WATCHDOG=1");
        next_watchdog_ = now + *watchdog_ / 2;
    }
    report_status(false);
    rejects_.flush();
    compact_journal(false);
}

shop::turn shop::plan_turn(clock::time_point now) const {
    const bool taking = may_take();
    turn t;
    t.want_room = taking && stdout_full_;
    t.want_orders = taking && intake_.fragment_bytes() == 0 && !stdout_full_;
    t.watch_fragment = taking && intake_.fragment_bytes() > 0 && !stdout_full_;
    // The pipe's tail is looked at while the reader does not wait for new
    // bytes (which it looks at as it takes them).
    t.watch_tail = life_.taking() && !intake_.end_of_input() && !t.want_orders;
    t.until = now + status_interval_;
    if (!life_.stopping())
        t.until = std::min(t.until, deadline_);
    if (watchdog_)
        t.until = std::min(t.until, next_watchdog_);
    if (t.watch_fragment)
        t.until = std::min(t.until, intake_.fragment_check_due());
    if (life_.taking())
        t.until = std::min(t.until, intake_.tail_deadline());
    if (t.watch_tail)
        t.until = std::min(t.until, intake_.tail_look_due());
    // More of the journal to replay and nothing left to hand over: go on
    // at once (nothing else would wake us before the status interval).
    if (life_.taking() && journal_ok_ && journal_.replaying() && pending_.empty())
        t.until = now;
    return t;
}

void shop::wait_and_take(const turn& t, clock::time_point now) {
    std::array<pollfd, 3> fds{pollfd{signals_.get(), POLLIN, 0}, pollfd{wake_.get(), POLLIN, 0},
                              t.want_room ? pollfd{sink_.room_fd(), POLLOUT, 0} : pollfd{intake_.fd(), POLLIN, 0}};
    const timespec timeout = timespec_of(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(t.until - now, clock::duration::zero())));
    const nfds_t watched = t.want_orders || t.want_room ? 3 : 2;
    const int ready = retry_on_eintr([&] { return ::ppoll(fds.data(), watched, &timeout, nullptr); });
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
    if (t.want_room && fds[2].revents != 0)
        stdout_full_ = false;  // room, or an error that the next write reports
    try {
        if (life_.taking())
            intake_.watch_tail(clock::now(), t.watch_tail);
        if (t.want_orders && life_.taking() && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
            take_orders(take_limit_);
        else if (t.watch_fragment && life_.taking())
            intake_.check_fragment(clock::now());
    } catch (const std::system_error& e) {
        // Only the journal throws from here once the pipe was peeked;
        // a failed tee/read of the FIFO lands here too.
        journal_failed(e);
    }
}

void shop::handle_signals() {
    while (const auto sig = read_signal(signals_)) {
        if (*sig == SIGHUP)
            spdlog::info("SIGHUP: nothing to reload, ignoring");
        else if (life_.stopping())
            spdlog::info("{}: already stopping, waiting for the orders being brewed", signal_name(*sig));
        else
            on(life_event::signal, signal_name(*sig));
    }
}

// The reader takes from the pipe only when what it took before is in the
// queue, the journal works, has nothing left to replay, and is not too
// big for the baristas to catch up.
bool shop::may_take() const {
    return life_.taking() && pending_.empty() && journal_ok_ && !journal_.replaying() && !intake_.end_of_input() &&
           journal_.bytes() < hold_bytes;
}

// Orders may be served straight from the pipe when brewing is instant and
// no order is in flight anywhere else, so that none is overtaken; not with
// --sync, whose promise is that every order is on disk before it leaves
// the pipe.
bool shop::may_serve_from_pipe() const {
    return recipe_.instant() && !opts_.sync && life_.taking() && pending_.empty() && !journal_.replaying() &&
           queue_.idle() && journal_.in_flight() == 0;
}

// Takes the whole lines at the head of the pipe, up to about `limit` bytes:
// serves them straight from it when they are orders as they stand and
// nothing else is in flight, else has the journal record them first
// (journal_lines). Whatever happens to the process, every order that left
// the pipe is on stdout or in the journal. Returns the bytes consumed (0:
// nothing whole was there). Throws system_error (nothing of the record
// being written consumed) when the journal fails.
std::size_t shop::take_orders(std::size_t limit) {
    const source_take take = intake_.take(limit);
    if (take.lines.empty())
        return take.dropped;
    if (std::uint64_t count = 0; may_serve_from_pipe() && orders_as_they_stand(take.lines, count)) {
        brew(take.lines, recipe_);
        const counter::from_source served = counter_.serve_from(intake_, take.lines, count);
        stdout_full_ = served.no_room;
        return take.dropped + served.consumed;
    }
    return take.dropped + journal_lines(take.lines, take.at_start && take.lines.size() <= record_limit_);
}

// Records `lines` in the journal, one record of at most record_limit_
// bytes of lines at a time, and consumes them: without --sync each record
// as soon as it is appended (a kill in between serves one record again),
// with --sync all of them after the one commit that makes them durable.
// `whole_take`: `lines` is all of the take, one record.
std::size_t shop::journal_lines(std::string_view lines, bool whole_take) {
    std::vector<journaled> records;
    std::size_t recorded = 0;  // appended, not yet handed over
    std::size_t taken = 0;
    try {
        // After a 'finish' (or a stop) the shop moves on, and the pipe is
        // taken again from its head: the take's bytes are no longer ours.
        while (!lines.empty() && (records.empty() || !records.back().finishes)) {
            std::size_t end = lines.size();
            if (end > record_limit_) {
                end = lines.rfind('\n', record_limit_ - 1) + 1;
                if (end == 0)
                    end = lines.find('\n') + 1;
            }
            const std::string_view record = lines.substr(0, end);
            lines.remove_prefix(end);
            records.push_back(record_orders(record, whole_take));
            recorded += record.size();
            if (!opts_.sync) {
                hand_over(records, recorded);
                taken += std::exchange(recorded, 0);
                records.clear();
            }
        }
    } catch (const std::system_error&) {
        hand_over(records, recorded);  // what was recorded before the failure
        throw;
    }
    hand_over(records, recorded);
    return taken + recorded;
}

// Records the orders among `record` (whole lines at the head of the pipe)
// in the journal. Throws system_error: nothing of it recorded.
shop::journaled shop::record_orders(std::string_view record, bool whole_take) {
    const bool stop_at_finish = life_.taking() && opts_.until_finish;
    journaled out;
    const judged_lines judged =
        judge_lines(record, stop_at_finish, out.batch,
                    [this](const checked_line& check, std::string_view raw) { rejects_.malformed(check, raw, raw.size() + 1); });
    if (judged.verbatim && whole_take) {
        out.batch.text = intake_.release_take();  // no copy
        out.batch.text.resize(record.size());
    } else if (judged.verbatim) {
        out.batch.text.assign(record);
    }
    if (judged.finishes > 0 && life_.taking() && !opts_.until_finish)
        spdlog::info("received 'finish', ignoring it: not started with --until-finish");
    journal_.append_orders(out.batch);
    out.before_finish = judged.before_finish;
    out.finishes = stop_at_finish && judged.finishes > 0;
    return out;
}

// Group commit: one journal commit (with --sync, one fdatasync) covers
// every record of a take; only then do their `bytes` leave the pipe, and
// their orders join pending_. Throws system_error from the commit: nothing
// consumed, and the records wait in the journal too (served again, at
// worst, at the next start).
void shop::hand_over(std::vector<journaled>& records, std::size_t bytes) {
    if (bytes == 0)
        return;
    journal_.commit();
    intake_.consume(bytes);
    for (journaled& r : records) {
        if (life_.taking())
            queue_taken(r.batch, r.before_finish);
        else
            moved_to_journal_ += r.batch.count;
        if (r.finishes)
            on(life_event::finish_received, "received 'finish'");
    }
}

// The first `before_finish` orders of a journaled batch join pending_;
// orders after 'finish' wait in the journal for the next start.
void shop::queue_taken(order_batch& batch, std::size_t before_finish) {
    if (before_finish == 0)
        return;
    std::string_view text = batch.text;
    if (before_finish < batch.count) {
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
}

void shop::replay_journal() {
    if (!journal_.replaying() || !life_.taking() || !pending_.empty())
        return;
    try {
        (void)journal_.replay(pending_, record_limit_);
    } catch (const std::system_error& e) {
        journal_failed(e);
    }
}

void shop::feed_queue() {
    if (life_.stopping())
        return;
    if (!pending_.empty() && recipe_.instant() && queue_.idle() && sink_.has_room()) {
        // Instant brewing, every barista idle and room on stdout: serve
        // here what stdout takes now, without waiting for room (signals and
        // the watchdog wait on the reader), and hand only the rest to a
        // barista. A hand-off would add a thread wake-up (tens of
        // microseconds on a busy machine) to each order's latency, and keep
        // orders in flight, so that the journal is rewritten instead of
        // emptied.
        const std::size_t served = counter_.serve_head(pending_);
        brew(std::string_view{pending_.text}.substr(0, served), recipe_);
        if (served == pending_.text.size())
            pending_.clear();
        else
            pending_.drop_head(served);
    }
    if (!pending_.empty() && !queue_.full())
        queue_.push(std::move(pending_));
    if (life_.state() == life::draining && pending_.empty())
        queue_.close(true);
}

// Moves the shop on as the lifecycle's table says.
void shop::on(life_event event, std::string_view why) {
    const life was = life_.state();
    const life_step step = life_.on(event);
    if (step.next == was)
        return;
    if (step.close_queue)
        queue_.close(false);
    if (step.next == life::draining)
        spdlog::info("{}: taking no more orders; serving the {} accepted", why, queue_.size() + pending_.count);
    else
        spdlog::info("{}: stopping; orders being brewed will finish, the others wait in the journal", why);
    notify("STOPPING=1");
    if (step.empty_pipe)
        move_pipe_to_journal();
}

// At a stop, the whole lines in the pipe at that moment move to the journal,
// so that a stop loses nothing even when no one else holds the FIFO open.
void shop::move_pipe_to_journal() {
    if (!journal_ok_ || intake_.end_of_input())
        return;
    try {
        const std::size_t there = intake_.bytes_in_pipe();
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
        if (intake_.fragment_bytes() > 0)
            spdlog::info("left {} bytes of an unfinished line in the pipe", intake_.fragment_bytes());
    } catch (const std::system_error& e) {
        journal_failed(e);
    }
}

void shop::journal_failed(const std::system_error& e) {
    spdlog::error("{}", e.what());
    journal_ok_ = false;
    exit_code_ = exit_io;
    on(life_event::journal_failed, "cannot record orders");
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

int shop::shut_down() {
    baristas_.join();
    rejects_.flush(true);
    const std::uint64_t waiting = journal_.in_flight();
    if (journal_ok_ && !counter_.served_unrecorded() && waiting == 0) {
        try {
            (void)journal_.compact();
        } catch (const std::system_error& e) {
            spdlog::warn("{}", e.what());
        }
    }
    if (exit_code_ != exit_ok) {
        spdlog::error("{} orders wait in the journal '{}' and {} in the pipe '{}'", waiting, journal_.path().native(),
                      peek_pipe_lines(intake_.fd()).lines, intake_.name());
    } else if (waiting > 0) {
        spdlog::info("{} orders wait in the journal '{}' for the next start", waiting, journal_.path().native());
    }
    report_status(true);
    spdlog::info("closed: served {} orders, rejected {} lines", counter_.served(), rejects_.count());
    return exit_code_;
}

void shop::report_status(bool force) {
    const auto now = clock::now();
    if (!force && now - last_status_time_ < status_interval_)
        return;
    std::string status = format_status({.served = counter_.served(),
                                        .waiting = queue_.size() + pending_.count,
                                        .rejected = rejects_.count(),
                                        .pipe = measure_pipe(intake_.fd()),
                                        .baristas = baristas_.board().snapshot()});
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

void shop::wake() noexcept {
    const std::uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
}

}  // namespace coffee::consumer
