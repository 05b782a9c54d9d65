// coffee-launcher serve: plays systemd's part (coffee-consumer.socket and
// .service) where there is no systemd. We hold the FIFO, so orders written
// while the consumer is down or restarting wait in the pipe; while a fault
// keeps the consumer from starting, we keep the FIFO and retry.
#include "launcher.hpp"

#include <coffee/child_process.hpp>
#include <coffee/errors.hpp>
#include <coffee/fifo.hpp>
#include <coffee/pipe_fill.hpp>
#include <coffee/posix.hpp>
#include <coffee/sd_daemon.hpp>
#include <coffee/signals.hpp>
#include <coffee/stop_child.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coffee::launcher {

namespace {

using detail::clock;

// Once the consumer failed --start-limit times within --start-interval (and
// serve does not give up), it is retried after these delays: the first,
// doubled at each failure up to the last.
constexpr duration first_retry_delay = std::chrono::seconds{1};
constexpr duration max_retry_delay = std::chrono::seconds{30};

// Exit codes that mean "fix the configuration": restarting cannot help
// (the unit's RestartPreventExitStatus).
bool is_config_failure(int status) noexcept {
    if (!WIFEXITED(status))
        return false;
    const int code = WEXITSTATUS(status);
    return code == exit_usage || code == exit_noperm || code == exit_config || code == 126 || code == 127;
}

// Failures that may pass by waiting: the journal's disk full or read-only,
// or another I/O error (74); the journal still locked by a consumer that is
// finishing (75); killed by SIGKILL (the OOM killer, a memory cgroup). Empty
// for the others.
std::string_view fault_that_may_pass(int status) noexcept {
    if (WIFEXITED(status) && WEXITSTATUS(status) == exit_io)
        return "an I/O error (a full or read-only disk?)";
    if (WIFEXITED(status) && WEXITSTATUS(status) == exit_tempfail)
        return "its journal or FIFO is busy (a consumer still finishing?)";
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        return "killed (out of memory?)";
    return {};
}

std::string describe_contents(const pipe_contents& left) {
    if (left.bytes == 0)
        return "empty";
    return fmt::format("{} bytes, {}{} whole lines of orders wait in it", left.bytes, left.all_seen ? "" : "at least ",
                       left.lines);
}

// STATUS= for a unit that runs serve (NotifyAccess=main or all); nothing
// without $NOTIFY_SOCKET.
void notify_status(const std::string& status) noexcept {
    try {
        (void)sd::notify("STATUS=" + status);
    } catch (const std::exception& e) {
        spdlog::debug("sd_notify: {}", e.what());
    }
}

// True once `pid` blocks SIGTERM: the consumer then takes it as a stop
// request (signalfd) instead of dying of it.
bool blocks_sigterm(pid_t pid) {
    std::ifstream status{fmt::format("/proc/{}/status", pid)};
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("SigBlk:", 0) == 0)
            return (std::stoull(line.substr(7), nullptr, 16) & (1ULL << (SIGTERM - 1))) != 0;
    }
    return false;
}

// The drain pass: the consumer is started once more and asked to stop as
// soon as it can take the request, which makes it move the whole lines in
// the pipe into its journal (the consumer's stop path). Bounded by
// `stop_timeout`, then SIGKILL. Signals to us meanwhile are not lost: a
// stop request was already being carried out.
void drain_into_journal(const spawn_request& request, const unique_fd& signals, duration stop_timeout) {
    child_process consumer;
    try {
        consumer = child_process::spawn(request);
    } catch (const std::system_error& e) {
        spdlog::error("cannot start the consumer to take the orders left in the FIFO: {}", e.what());
        return;
    }
    spdlog::info("started the consumer once more as pid {} to move the orders left in the FIFO into its journal",
                 consumer.pid());
    const auto deadline = clock::now() + stop_timeout;
    bool asked = false;
    for (;;) {
        std::array<pollfd, 1> fds{{{signals.get(), POLLIN, 0}}};
        if (retry_on_eintr([&] { return ::poll(fds.data(), fds.size(), 5); }) < 0)
            throw_system_error(errno, "poll");
        while (const auto sig = read_signal(signals)) {
            if (*sig == SIGCHLD && consumer.try_wait()) {
                spdlog::info("the consumer (pid {}) {}", consumer.pid(), describe_wait_status(*consumer.status()));
                return;
            }
        }
        if (!asked && blocks_sigterm(consumer.pid())) {
            consumer.send_signal(SIGTERM);
            asked = true;
        }
        if (clock::now() >= deadline) {
            spdlog::warn("the consumer (pid {}) did not stop within {}; sending SIGKILL", consumer.pid(),
                         format_duration(stop_timeout));
            (void)stop_child(consumer, {{SIGKILL, forever}});
            return;
        }
    }
}

// The consumer under our care, restarted as systemd's Restart=on-failure
// would: after a failure it comes back after --restart-delay, doubled at
// each failure in a row up to --max-restart-delay; once it was started
// --start-limit times within --start-interval, serve gives up if nothing
// waits in the FIFO and the fault will not pass by waiting, and otherwise
// keeps the FIFO and retries (first_retry_delay up to max_retry_delay)
// until one start stays up for --start-interval.
class supervisor {
public:
    supervisor(const serve_options& opts, const unique_fd& signals);
    supervisor(const supervisor&) = delete;
    supervisor& operator=(const supervisor&) = delete;

    [[nodiscard]] int run() {
        start();
        for (;;) {
            wait_for_signals();
            if (const auto code = read_signals())
                return *code;
            const auto now = clock::now();
            if (std::exchange(exited_, false)) {
                if (const auto code = on_exit(*consumer_.status(), now))
                    return *code;
            }
            on_time(now);
        }
    }

private:
    void start();
    void wait_for_signals() const;
    [[nodiscard]] std::optional<int> read_signals();
    [[nodiscard]] std::optional<int> on_exit(int status, clock::time_point now);
    [[nodiscard]] std::optional<int> on_failure(int status, clock::time_point now);
    [[nodiscard]] std::optional<int> begin_waiting(int status, std::string_view may_pass);
    [[nodiscard]] duration next_retry(int status, std::string_view may_pass);
    [[nodiscard]] duration restart_delay() const;
    void on_time(clock::time_point now);
    [[nodiscard]] int finish(int code, bool drain);

    const serve_options& opts_;
    const unique_fd& signals_;
    const std::filesystem::path fifo_path_;
    // O_RDWR, as systemd's ListenFIFO= does: the pipe lives as long as we
    // do, whoever reads or writes it.
    const unique_fd fifo_;
    // One supervisor per FIFO, and no consumer by hand beside it. The
    // consumer takes no lock under socket activation: we guarantee it is
    // alone.
    const unique_fd lock_;
    const unique_fd dev_null_;
    spawn_request request_;

    child_process consumer_;
    bool exited_ = false;                   // reaped, not yet handled
    std::deque<clock::time_point> starts_;  // within the last start_interval
    clock::time_point started_at_{};
    unsigned failures_in_a_row_ = 0;
    std::optional<clock::time_point> restart_at_;
    int stop_signal_ = 0;
    stop_schedule stop_;  // begun by the signal that stops us
    // Waiting: see the class comment; settled_at_ is when the present start
    // will have stayed up long enough.
    bool waiting_ = false;
    duration retry_delay_{};
    std::optional<int> last_status_;
    std::optional<clock::time_point> settled_at_;
};

supervisor::supervisor(const serve_options& opts, const unique_fd& signals)
    : opts_{opts},
      signals_{signals},
      fifo_path_{opts.fifo.empty() ? default_fifo_path(false) : opts.fifo},
      fifo_{open_fifo_for_reading(fifo_path_, {.create_mode = opts.fifo_mode})},
      lock_{lock_fifo(fifo_path_)},
      dev_null_{::open("/dev/null", O_RDWR | O_CLOEXEC)} {
    if (!dev_null_)
        throw_system_error(errno, "open '/dev/null'");
    // More room for orders while the consumer is down.
    detail::grow_pipe_best_effort(fifo_.get());

    std::vector<std::string> argv{opts.consumer_program.empty() ? detail::find_sibling_program("coffee-consumer")
                                                                : opts.consumer_program,
                                  "--fifo", fifo_path_.native()};
    argv.insert(argv.end(), opts.consumer_args.begin(), opts.consumer_args.end());
    // sd_listen_fds(3): the FIFO is fd 3; LISTEN_PID must be the consumer's
    // own pid, which child_process writes in the child before exec.
    // COFFEE_SUPERVISOR_PID: the consumer stops as on SIGTERM when we die
    // (PR_SET_PDEATHSIG, which it sets once it takes SIGTERM as a stop
    // request), so that it neither keeps the FIFO and its journal from the
    // next serve nor loses the orders in the pipe.
    request_ = {.argv = std::move(argv),
                .fds = {{STDIN_FILENO, dev_null_.get()}, {sd::listen_fds_start, fifo_.get()}},
                .env = {"LISTEN_FDS=1", "LISTEN_FDNAMES=orders", fmt::format("COFFEE_SUPERVISOR_PID={}", ::getpid())},
                .pid_env = "LISTEN_PID"};
}

void supervisor::start() {
    const auto now = clock::now();
    starts_.push_back(now);
    try {
        consumer_ = child_process::spawn(request_);
    } catch (const exec_error& e) {
        throw exit_error(detail::exit_code_for_exec_errno(e.code().value()), e.what());
    }
    started_at_ = now;
    if (waiting_) {
        settled_at_ = now + opts_.start_interval;
        spdlog::debug("retrying: started the consumer as pid {} on '{}' (fd 3)", consumer_.pid(), fifo_path_.native());
    } else {
        spdlog::info("started the consumer as pid {} on '{}' (fd 3)", consumer_.pid(), fifo_path_.native());
    }
}

void supervisor::wait_for_signals() const {
    std::array<pollfd, 1> fds{{{signals_.get(), POLLIN, 0}}};
    const int timeout =
        detail::poll_timeout(detail::earliest(detail::earliest(restart_at_, stop_.deadline()), settled_at_));
    if (retry_on_eintr([&] { return ::poll(fds.data(), fds.size(), timeout); }) < 0)
        throw_system_error(errno, "poll");
}

// SIGCHLD reaps, SIGHUP is passed on, the first stop signal begins the
// stop. Returns our exit code when a stop finds the consumer down.
std::optional<int> supervisor::read_signals() {
    while (const auto sig = read_signal(signals_)) {
        if (*sig == SIGCHLD) {
            exited_ = exited_ || (consumer_.running() && consumer_.try_wait());
        } else if (*sig == SIGHUP) {
            spdlog::info("received SIGHUP: passing it on to the consumer");
            consumer_.send_signal(SIGHUP);
        } else if (stop_signal_ == 0) {
            stop_signal_ = *sig;
            if (!consumer_.running()) {
                spdlog::info("received {} while the consumer is down: stopping", signal_name(*sig));
                return finish(exit_ok, true);
            }
            spdlog::info("received {}: stopping the consumer (pid {})", signal_name(*sig), consumer_.pid());
            consumer_.send_signal(stop_.begin({{*sig, opts_.stop_timeout}, {SIGKILL, forever}}, clock::now()).signal);
            restart_at_.reset();
            settled_at_.reset();
        }
    }
    return std::nullopt;
}

// Returns our exit code when this exit ends serve.
std::optional<int> supervisor::on_exit(int status, clock::time_point now) {
    if (stop_signal_ != 0) {
        const bool graceful = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                              (WIFSIGNALED(status) && WTERMSIG(status) == stop_signal_);
        spdlog::info("the consumer (pid {}) {}: done", consumer_.pid(), describe_wait_status(status));
        return finish(graceful ? exit_ok : exit_failure, true);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        spdlog::info("the consumer (pid {}) finished on its own: stopping", consumer_.pid());
        return finish(exit_ok, true);
    }
    if (is_config_failure(status)) {
        spdlog::error("the consumer (pid {}) {}: a configuration problem, not restarting", consumer_.pid(),
                      describe_wait_status(status));
        return finish(WEXITSTATUS(status), false);
    }
    return on_failure(status, now);
}

// A failure that restarting may cure: schedules the next start, or gives up.
std::optional<int> supervisor::on_failure(int status, clock::time_point now) {
    failures_in_a_row_ = now - started_at_ < opts_.start_interval ? failures_in_a_row_ + 1 : 1;
    while (!starts_.empty() && now - starts_.front() >= opts_.start_interval)
        starts_.pop_front();
    settled_at_.reset();
    const std::string_view may_pass = fault_that_may_pass(status);
    const bool was_waiting = waiting_;
    duration delay{};
    if (waiting_) {
        delay = next_retry(status, may_pass);
    } else if (starts_.size() >= opts_.start_limit) {
        if (const auto code = begin_waiting(status, may_pass))
            return code;
        delay = retry_delay_;
    } else {
        delay = restart_delay();
        spdlog::warn("the consumer (pid {}) {}; restarting it in {}", consumer_.pid(), describe_wait_status(status),
                     format_duration(delay));
    }
    if (waiting_ && (!was_waiting || status != last_status_))
        notify_status(fmt::format("waiting: the consumer {}{}{}; retrying at most every {}; FIFO: {}",
                                  describe_wait_status(status), may_pass.empty() ? "" : ": ", may_pass,
                                  format_duration(max_retry_delay), describe_contents(peek_pipe_lines(fifo_.get()))));
    last_status_ = status;
    restart_at_ = now + delay;
    return std::nullopt;
}

// The start limit is reached. Giving up closes the FIFO: only when nothing
// waits in it and the fault will not pass by waiting (returns our exit
// code then); otherwise we begin waiting.
std::optional<int> supervisor::begin_waiting(int status, std::string_view may_pass) {
    const pipe_contents left = peek_pipe_lines(fifo_.get());
    if (may_pass.empty() && left.bytes == 0) {
        spdlog::error("the consumer (pid {}) {}, and was started {} times within {}: giving up", consumer_.pid(),
                      describe_wait_status(status), starts_.size(), format_duration(opts_.start_interval));
        return finish(exit_failure, true);
    }
    waiting_ = true;
    retry_delay_ = first_retry_delay;
    spdlog::warn("the consumer (pid {}) {}{}{}, and was started {} times within {}: keeping the FIFO '{}' ({}) and "
                 "retrying in {}, then at doubling delays up to {}",
                 consumer_.pid(), describe_wait_status(status), may_pass.empty() ? "" : ": ", may_pass,
                 starts_.size(), format_duration(opts_.start_interval), fifo_path_.native(), describe_contents(left),
                 format_duration(retry_delay_), format_duration(max_retry_delay));
    return std::nullopt;
}

// Another failure while waiting: the delay doubles; a new kind of failure
// is worth a warning, the same one again only a debug line.
duration supervisor::next_retry(int status, std::string_view may_pass) {
    retry_delay_ = std::min(retry_delay_ * 2, max_retry_delay);
    if (status != last_status_)
        spdlog::warn("still waiting: the consumer (pid {}) {}{}{}; retrying in {}", consumer_.pid(),
                     describe_wait_status(status), may_pass.empty() ? "" : ": ", may_pass,
                     format_duration(retry_delay_));
    else
        spdlog::debug("the consumer (pid {}) {}; retrying in {}", consumer_.pid(), describe_wait_status(status),
                      format_duration(retry_delay_));
    return retry_delay_;
}

// --restart-delay, doubled for each failure in a row, up to
// --max-restart-delay (never below --restart-delay).
duration supervisor::restart_delay() const {
    duration delay = opts_.restart_delay;
    for (unsigned i = 1; i < failures_in_a_row_ && delay < opts_.max_restart_delay; ++i)
        delay *= 2;
    return std::min(delay, std::max(opts_.max_restart_delay, opts_.restart_delay));
}

// The timers: a restart due, a retried start that has settled, the next
// step of our stop.
void supervisor::on_time(clock::time_point now) {
    if (restart_at_ && now >= *restart_at_) {
        restart_at_.reset();
        start();
    }
    if (settled_at_ && now >= *settled_at_ && consumer_.running()) {
        settled_at_.reset();
        waiting_ = false;
        last_status_.reset();
        spdlog::info("the consumer (pid {}) has been up for {}: no longer waiting", consumer_.pid(),
                     format_duration(opts_.start_interval));
        notify_status(fmt::format("serving: the consumer (pid {}) is up", consumer_.pid()));
    }
    if (const auto step = stop_.due(now); step && consumer_.running()) {
        spdlog::warn("the consumer (pid {}) is still running {} after {}; sending {}", consumer_.pid(),
                     format_duration(opts_.stop_timeout), signal_name(stop_signal_), signal_name(step->signal));
        consumer_.send_signal(step->signal);
    }
}

// Every way out passes here: serve never ends holding orders silently.
// When the consumer ended cleanly (or asked to stop) and orders are still
// in the FIFO, it gets one chance to move them into its journal; whatever
// is still there then is reported at error level, and a clean end becomes
// exit 74.
int supervisor::finish(int code, bool drain) {
    pipe_contents left = peek_pipe_lines(fifo_.get());
    if (left.bytes > 0 && drain) {
        drain_into_journal(request_, signals_, opts_.stop_timeout);
        left = peek_pipe_lines(fifo_.get());
    }
    if (left.bytes == 0)
        return code;
    spdlog::error("{} bytes ({}{} whole lines) of orders are left in the FIFO '{}': lost when it closes, unless "
                  "something else holds it open",
                  left.bytes, left.all_seen ? "" : "at least ", left.lines, fifo_path_.native());
    return code == exit_ok ? exit_io : code;
}

}  // namespace

int run_serve(const serve_options& opts, const unique_fd& signals) {
    return supervisor{opts, signals}.run();
}

}  // namespace coffee::launcher
