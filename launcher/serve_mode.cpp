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
#include <fstream>
#include <string>
#include <string_view>

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

}  // namespace

int run_serve(const serve_options& opts, const unique_fd& signals) {
    const std::filesystem::path fifo_path = opts.fifo.empty() ? default_fifo_path(false) : opts.fifo;
    // O_RDWR, as systemd's ListenFIFO= does: the pipe lives as long as we do,
    // whoever reads or writes it.
    const unique_fd fifo = open_fifo_for_reading(fifo_path, {.create_mode = opts.fifo_mode});
    // One supervisor per FIFO, and no consumer by hand beside it. The consumer
    // takes no lock under socket activation: we guarantee it is alone.
    const unique_fd lock = lock_fifo(fifo_path);
    // More room for orders while the consumer is down.
    detail::grow_pipe_best_effort(fifo.get());
    const unique_fd dev_null{::open("/dev/null", O_RDWR | O_CLOEXEC)};
    if (!dev_null)
        throw_system_error(errno, "open '/dev/null'");

    std::vector<std::string> argv{opts.consumer_program.empty() ? detail::find_sibling_program("coffee-consumer")
                                                                : opts.consumer_program,
                                  "--fifo", fifo_path.native()};
    argv.insert(argv.end(), opts.consumer_args.begin(), opts.consumer_args.end());
    // sd_listen_fds(3): the FIFO is fd 3; LISTEN_PID must be the consumer's
    // own pid, which child_process writes in the child before exec.
    // COFFEE_SUPERVISOR_PID: the consumer stops as on SIGTERM when we die
    // (PR_SET_PDEATHSIG, which it sets once it takes SIGTERM as a stop
    // request), so that it neither keeps the FIFO and its journal from the
    // next serve nor loses the orders in the pipe.
    const spawn_request request{
        .argv = argv,
        .fds = {{STDIN_FILENO, dev_null.get()}, {sd::listen_fds_start, fifo.get()}},
        .env = {"LISTEN_FDS=1", "LISTEN_FDNAMES=orders", fmt::format("COFFEE_SUPERVISOR_PID={}", ::getpid())},
        .pid_env = "LISTEN_PID"};

    child_process consumer;
    std::deque<clock::time_point> starts;  // within the last start_interval
    clock::time_point started_at{};
    unsigned failures_in_a_row = 0;
    int stop_signal = 0;
    std::optional<clock::time_point> restart_at;
    stop_schedule stop;  // begun by the signal that stops us
    // Waiting: the consumer failed --start-limit times in a row and is
    // retried from first_retry_delay up to max_retry_delay, until one stays
    // up for --start-interval (settled_at).
    bool waiting = false;
    duration retry_delay{};
    std::optional<int> last_status;
    std::optional<clock::time_point> settled_at;

    const auto start = [&] {
        const auto now = clock::now();
        starts.push_back(now);
        try {
            consumer = child_process::spawn(request);
        } catch (const exec_error& e) {
            throw exit_error(detail::exit_code_for_exec_errno(e.code().value()), e.what());
        }
        started_at = now;
        if (waiting) {
            settled_at = now + opts.start_interval;
            spdlog::debug("retrying: started the consumer as pid {} on '{}' (fd 3)", consumer.pid(), fifo_path.native());
        } else {
            spdlog::info("started the consumer as pid {} on '{}' (fd 3)", consumer.pid(), fifo_path.native());
        }
    };
    start();

    // Every way out passes here: serve never ends holding orders silently.
    // When the consumer ended cleanly (or asked to stop) and orders are
    // still in the FIFO, it gets one chance to move them into its journal;
    // whatever is still there then is reported at error level, and a clean
    // end becomes exit 74.
    const auto finish = [&](int code, bool drain) {
        pipe_contents left = peek_pipe_lines(fifo.get());
        if (left.bytes > 0 && drain) {
            drain_into_journal(request, signals, opts.stop_timeout);
            left = peek_pipe_lines(fifo.get());
        }
        if (left.bytes == 0)
            return code;
        spdlog::error("{} bytes ({}{} whole lines) of orders are left in the FIFO '{}': lost when it closes, unless "
                      "something else holds it open",
                      left.bytes, left.all_seen ? "" : "at least ", left.lines, fifo_path.native());
        return code == exit_ok ? exit_io : code;
    };

    for (;;) {
        std::array<pollfd, 1> fds{{{signals.get(), POLLIN, 0}}};
        const int timeout =
            detail::poll_timeout(detail::earliest(detail::earliest(restart_at, stop.deadline()), settled_at));
        if (retry_on_eintr([&] { return ::poll(fds.data(), fds.size(), timeout); }) < 0)
            throw_system_error(errno, "poll");

        bool reaped = false;
        while (const auto sig = read_signal(signals)) {
            if (*sig == SIGCHLD) {
                reaped = reaped || (consumer.running() && consumer.try_wait());
            } else if (*sig == SIGHUP) {
                spdlog::info("received SIGHUP: passing it on to the consumer");
                consumer.send_signal(SIGHUP);
            } else if (stop_signal == 0) {
                stop_signal = *sig;
                if (!consumer.running()) {
                    spdlog::info("received {} while the consumer is down: stopping", signal_name(*sig));
                    return finish(exit_ok, true);
                }
                spdlog::info("received {}: stopping the consumer (pid {})", signal_name(*sig), consumer.pid());
                consumer.send_signal(stop.begin({{*sig, opts.stop_timeout}, {SIGKILL, forever}}, clock::now()).signal);
                restart_at.reset();
                settled_at.reset();
            }
        }

        const auto now = clock::now();
        if (reaped) {
            const int status = *consumer.status();
            if (stop_signal != 0) {
                const bool graceful = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                                      (WIFSIGNALED(status) && WTERMSIG(status) == stop_signal);
                spdlog::info("the consumer (pid {}) {}: done", consumer.pid(), describe_wait_status(status));
                return finish(graceful ? exit_ok : exit_failure, true);
            }
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                spdlog::info("the consumer (pid {}) finished on its own: stopping", consumer.pid());
                return finish(exit_ok, true);
            }
            if (is_config_failure(status)) {
                spdlog::error("the consumer (pid {}) {}: a configuration problem, not restarting", consumer.pid(),
                              describe_wait_status(status));
                return finish(WEXITSTATUS(status), false);
            }
            failures_in_a_row = now - started_at < opts.start_interval ? failures_in_a_row + 1 : 1;
            while (!starts.empty() && now - starts.front() >= opts.start_interval)
                starts.pop_front();
            settled_at.reset();
            const std::string_view may_pass = fault_that_may_pass(status);
            const bool was_waiting = waiting;
            duration delay = opts.restart_delay;
            if (waiting) {
                retry_delay = std::min(retry_delay * 2, max_retry_delay);
                delay = retry_delay;
                if (status != last_status)
                    spdlog::warn("still waiting: the consumer (pid {}) {}{}{}; retrying in {}", consumer.pid(),
                                 describe_wait_status(status), may_pass.empty() ? "" : ": ", may_pass,
                                 format_duration(delay));
                else
                    spdlog::debug("the consumer (pid {}) {}; retrying in {}", consumer.pid(),
                                  describe_wait_status(status), format_duration(delay));
            } else if (starts.size() >= opts.start_limit) {
                // Giving up closes the FIFO: only when nothing waits in it
                // and the fault will not pass by waiting.
                const pipe_contents left = peek_pipe_lines(fifo.get());
                if (may_pass.empty() && left.bytes == 0) {
                    spdlog::error("the consumer (pid {}) {}, and was started {} times within {}: giving up",
                                  consumer.pid(), describe_wait_status(status), starts.size(),
                                  format_duration(opts.start_interval));
                    return finish(exit_failure, true);
                }
                waiting = true;
                retry_delay = first_retry_delay;
                delay = retry_delay;
                spdlog::warn("the consumer (pid {}) {}{}{}, and was started {} times within {}: keeping the FIFO '{}' "
                             "({}) and retrying in {}, then at doubling delays up to {}",
                             consumer.pid(), describe_wait_status(status), may_pass.empty() ? "" : ": ", may_pass,
                             starts.size(), format_duration(opts.start_interval), fifo_path.native(),
                             describe_contents(left), format_duration(delay), format_duration(max_retry_delay));
            } else {
                for (unsigned i = 1; i < failures_in_a_row && delay < opts.max_restart_delay; ++i)
                    delay *= 2;
                delay = std::min(delay, std::max(opts.max_restart_delay, opts.restart_delay));
                spdlog::warn("the consumer (pid {}) {}; restarting it in {}", consumer.pid(),
                             describe_wait_status(status), format_duration(delay));
            }
            if (waiting && (!was_waiting || status != last_status))
                notify_status(fmt::format("waiting: the consumer {}{}{}; retrying at most every {}; FIFO: {}",
                                          describe_wait_status(status), may_pass.empty() ? "" : ": ", may_pass,
                                          format_duration(max_retry_delay),
                                          describe_contents(peek_pipe_lines(fifo.get()))));
            last_status = status;
            restart_at = now + delay;
        }
        if (restart_at && now >= *restart_at) {
            restart_at.reset();
            start();
        }
        if (settled_at && now >= *settled_at && consumer.running()) {
            settled_at.reset();
            waiting = false;
            last_status.reset();
            spdlog::info("the consumer (pid {}) has been up for {}: no longer waiting", consumer.pid(),
                         format_duration(opts.start_interval));
            notify_status(fmt::format("serving: the consumer (pid {}) is up", consumer.pid()));
        }
        if (const auto step = stop.due(now); step && consumer.running()) {
            spdlog::warn("the consumer (pid {}) is still running {} after {}; sending {}", consumer.pid(),
                         format_duration(opts.stop_timeout), signal_name(stop_signal), signal_name(step->signal));
            consumer.send_signal(step->signal);
        }
    }
}

}  // namespace coffee::launcher
