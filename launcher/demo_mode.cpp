// coffee-launcher demo: the seed's coffee shop as separate processes that
// meet at a FIFO in a private directory.
#include "launcher.hpp"
#include "live_view.hpp"
#include "shop_watch.hpp"

#include <coffee/child_process.hpp>
#include <coffee/errors.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/menu.hpp>
#include <coffee/pipe_fill.hpp>
#include <coffee/posix.hpp>
#include <coffee/signals.hpp>
#include <coffee/stop_child.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <deque>

namespace coffee::launcher {

namespace {

using detail::clock;

// How long the consumer's output may stay open after it exited.
constexpr auto output_grace = std::chrono::seconds{2};
// How often to retry writing "finish" when the FIFO is full.
constexpr auto finish_retry = std::chrono::milliseconds{20};
// The live view's redraws; the summary lines without it; the consumer's STATUS=.
constexpr auto frame_interval = std::chrono::milliseconds{100};
constexpr auto summary_interval = std::chrono::seconds{1};
constexpr std::string_view status_interval = "100ms";

// A directory only we can enter (mkdtemp: mode 0700), removed with all it
// holds (the FIFO, the consumer's journal) when we are done.
class private_dir {
public:
    private_dir() {
        const char* tmp = std::getenv("TMPDIR");
        std::string templ = fmt::format("{}/coffee-demo.XXXXXX", tmp != nullptr && *tmp != '\0' ? tmp : "/tmp");
        if (::mkdtemp(templ.data()) == nullptr)
            throw_system_error(errno, "create a private directory '{}'", templ);
        path_ = templ;
    }
    private_dir(const private_dir&) = delete;
    private_dir& operator=(const private_dir&) = delete;
    ~private_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
        if (ec)
            spdlog::warn("remove '{}': {}", path_.native(), ec.message());
    }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

struct member {
    std::string role;  // "consumer", "producer 2"
    child_process process;
    std::vector<std::string> argv;  // a customer not started yet (--scenario quiet) starts with it
    unsigned orders = 0;
    bool started = false;
};

std::string title_of(const demo_options& opts) {
    const auto shape = fmt::format("{} customer{} x {} order{}, {} barista{}, {} a cup", opts.producers, opts.producers == 1 ? "" : "s",
                                   opts.orders == 0 ? menu.size() : opts.orders, opts.orders == 1 ? "" : "s",
                                   opts.baristas.value_or(1), opts.baristas.value_or(1) == 1 ? "" : "s", format_duration(opts.brew_time));
    switch (opts.scenario) {
    case demo_scenario::rush: return "rush hour, " + shape;
    case demo_scenario::quiet: return "a quiet afternoon, " + shape;
    case demo_scenario::none: break;
    }
    return shape;
}

// Served orders per second over the last second or so.
class rate_meter {
public:
    double update(clock::time_point now, std::uint64_t count) {
        samples_.emplace_back(now, count);
        while (samples_.size() > 2 && now - samples_[1].first >= std::chrono::seconds{1})
            samples_.pop_front();
        const auto span = std::chrono::duration<double>(now - samples_.front().first).count();
        return span > 0.05 ? static_cast<double>(count - samples_.front().second) / span : 0;
    }

private:
    std::deque<std::pair<clock::time_point, std::uint64_t>> samples_;
};

std::vector<std::string> orders_for(const demo_options& opts, unsigned producer) {
    std::vector<std::string> orders;
    if (opts.orders == 0 && opts.producers == 1) {
        orders.assign(menu.begin(), menu.end());  // exactly the seed's
        return orders;
    }
    const unsigned count = opts.orders == 0 ? static_cast<unsigned>(menu.size()) : opts.orders;
    orders.reserve(count);
    for (unsigned i = 0; i < count; ++i)
        orders.push_back(fmt::format("{} #{} for customer {}", menu[i % menu.size()], i + 1, producer));
    return orders;
}

// Writes "finish" into the FIFO without ever blocking. Returns true once it
// is written, or when there is no reader any more (nothing to finish).
bool try_send_finish(const std::filesystem::path& fifo) {
    unique_fd fd{retry_on_eintr([&] { return ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC); })};
    if (!fd)
        return errno == ENXIO;  // no consumer: nothing to finish
    const std::string line = fmt::format("{}\n", finish_message);
    const ssize_t n = retry_on_eintr([&] { return ::write(fd.get(), line.data(), line.size()); });
    if (n == static_cast<ssize_t>(line.size()))
        return true;  // <= PIPE_BUF: all or nothing
    if (n < 0 && errno == EAGAIN)
        return false;  // the pipe is full: later
    return true;       // EPIPE: the consumer is gone
}

}  // namespace

int run_demo(const demo_options& opts, const unique_fd& signals) {
    const std::string consumer_program =
        opts.consumer_program.empty() ? detail::find_sibling_program("coffee-consumer") : opts.consumer_program;
    const std::string producer_program =
        opts.producer_program.empty() ? detail::find_sibling_program("coffee-producer") : opts.producer_program;

    const private_dir dir;
    const std::filesystem::path fifo = dir.path() / "orders";
    if (::mkfifo(fifo.c_str(), 0600) != 0)
        throw_system_error(errno, "create FIFO '{}'", fifo.native());
    spdlog::info("the shop's FIFO is '{}'", fifo.native());

    // We hold the FIFO's read end (never reading it) while the consumer runs,
    // to see how full it is (FIONREAD).
    unique_fd fifo_fd{::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    if (!fifo_fd)
        throw_system_error(errno, "open FIFO '{}'", fifo.native());
    // The consumer tells us how it is doing as it would tell systemd.
    std::optional<notify_listener> notify;
    try {
        notify.emplace(dir.path() / "notify");
    } catch (const std::system_error& e) {
        spdlog::warn("{}: the demo goes on without the shop's STATUS=", e.what());
    }

    // The view (on a terminal) takes our log lines; the children's reach it
    // through a pipe.
    std::optional<live_view> view;
    pipe_ends child_logs;
    if (opts.live && stderr_can_go_live()) {
        view.emplace();
        child_logs = make_pipe();
    }
    std::string child_log_level = opts.child_log_level;
    if (child_log_level.empty() && (view || opts.scenario != demo_scenario::none))
        child_log_level = "warn";  // the view or the summary lines tell the story
    std::vector<fd_mapping> child_fds;
    if (view)
        child_fds.push_back({STDERR_FILENO, child_logs.write.get()});

    // The consumer's stdout comes to us through a pipe: we copy it to our
    // stdout and count the served orders.
    pipe_ends served = make_pipe();
    std::vector<member> members;  // declared after `dir`: children are reaped before it is removed
    std::uint64_t orders_sent = 0;
    std::uint64_t order_bytes = 0;
    std::size_t next_arrival = 1;  // the next customer to start
    std::optional<clock::time_point> arrival_at;
    const auto start_member = [&](member& m, std::vector<fd_mapping> fds, std::vector<std::string> env) {
        fds.insert(fds.end(), child_fds.begin(), child_fds.end());
        m.process = child_process::spawn({.argv = m.argv, .fds = std::move(fds), .env = std::move(env)});
        m.started = true;
        spdlog::info("started {} as pid {}", m.role, m.process.pid());
    };
    const auto start_arrivals = [&](clock::time_point now) {
        while (next_arrival < members.size() && (!arrival_at || now >= *arrival_at)) {
            start_member(members[next_arrival++], {}, {});
            arrival_at = opts.arrival_interval.count() > 0 ? std::optional{now + opts.arrival_interval} : std::nullopt;
            if (arrival_at)
                break;
        }
        if (next_arrival == members.size())
            arrival_at.reset();
    };
    const auto started = clock::now();
    try {
        member consumer_member{.role = "consumer", .process = {}, .argv = {consumer_program, "--fifo", fifo.native(), "--until-finish",
                              "--brew-time", format_duration(opts.brew_time), "--timeout", format_duration(opts.timeout)}};
        std::vector<std::string>& argv = consumer_member.argv;
        if (opts.baristas)
            argv.insert(argv.end(), {"--baristas", std::to_string(*opts.baristas)});
        if (!child_log_level.empty())
            argv.insert(argv.end(), {"--log-level", child_log_level});
        members.push_back(std::move(consumer_member));
        for (unsigned p = 1; p <= opts.producers; ++p) {
            std::vector<std::string> orders = orders_for(opts, p);
            orders_sent += orders.size();
            for (const std::string& o : orders)
                order_bytes += o.size() + 1;
            member customer{.role = fmt::format("producer {}", p), .process = {}, .argv = {producer_program, "--fifo", fifo.native()},
                            .orders = static_cast<unsigned>(orders.size())};
            if (!child_log_level.empty())
                customer.argv.insert(customer.argv.end(), {"--log-level", child_log_level});
            customer.argv.insert(customer.argv.end(), std::make_move_iterator(orders.begin()), std::make_move_iterator(orders.end()));
            members.push_back(std::move(customer));
        }
        start_member(members.front(), {{STDOUT_FILENO, served.write.get()}},
                     {notify ? fmt::format("NOTIFY_SOCKET={}", notify->path().native()) : "NOTIFY_SOCKET",
                      fmt::format("COFFEE_STATUS_INTERVAL={}", status_interval)});
        served.write.reset();
        start_arrivals(started);
    } catch (const exec_error& e) {
        spdlog::error("{}", e.what());
        return detail::exit_code_for_exec_errno(e.code().value());  // children: SIGKILLed and reaped
    }
    child_logs.write.reset();
    set_nonblocking(served.read.get(), true);
    if (child_logs.read)
        set_nonblocking(child_logs.read.get(), true);

    child_process& consumer = members.front().process;
    const auto producers_running = [&] {
        return next_arrival < members.size() ||
               std::any_of(members.begin() + 1, members.end(), [](const member& m) { return m.process.running(); });
    };
    std::uint64_t served_orders = 0;
    bool stdout_ok = true;
    bool finish_sent = false;
    int stop_signal = 0;
    const stop_plan plan{{SIGTERM, opts.stop_timeout}, {SIGKILL, forever}};
    stop_schedule stop;  // one for all the children: they are stopped together
    std::optional<clock::time_point> drain_deadline;
    std::optional<clock::time_point> finish_deadline;
    std::vector<char> chunk(64 * 1024);

    const auto stop_all = [&] {
        next_arrival = members.size();  // customers not here yet stay away
        arrival_at.reset();
        if (!stop.started())
            (void)stop.begin(plan, clock::now());
        for (member& m : members)
            m.process.send_signal(plan.front().signal);
    };

    // What the view or the summary lines show.
    consumer_report report;
    rate_meter rate;
    std::optional<pipe_fill> last_fill;
    (void)rate.update(started, 0);
    auto next_tick = started + (view ? clock::duration{frame_interval} : clock::duration{summary_interval});
    const auto snapshot = [&](clock::time_point now) {
        if (fifo_fd)
            last_fill = measure_pipe(fifo_fd.get());
        demo_snapshot s{.title = title_of(opts),
                        .elapsed = std::chrono::duration_cast<duration>(now - started),
                        .fifo = fifo.native(),
                        .pipe = last_fill,
                        .bytes_per_order = orders_sent > 0 ? static_cast<double>(order_bytes) / static_cast<double>(orders_sent) : 32.0,
                        .customers = {},
                        .consumer_pid = consumer.pid(),
                        .consumer_running = consumer.running(),
                        .shop = report,
                        .baristas = opts.baristas.value_or(1),
                        .served = served_orders,
                        .ordered = orders_sent,
                        .per_second = rate.update(now, served_orders),
                        .stopping = stop_signal != 0};
        for (std::size_t i = 1; i < members.size(); ++i) {
            const member& m = members[i];
            customer_view c{.name = fmt::format("customer {}", i), .pid = m.started ? m.process.pid() : -1, .orders = m.orders};
            if (!m.started)
                c.state = customer_state::not_yet_here;
            else if (m.process.running())
                c.state = blocked_in_pipe_write(m.process.pid()).value_or(false) ? customer_state::blocked : customer_state::ordering;
            else
                c = {.name = c.name, .pid = c.pid, .state = customer_state::done, .orders = c.orders, .wait_status = *m.process.status()};
            s.customers.push_back(std::move(c));
        }
        return s;
    };
    const auto show = [&](clock::time_point now) {
        if (view)
            view->draw(snapshot(now));
        else
            spdlog::info("{}", summary_line(snapshot(now)));
    };

    while (std::any_of(members.begin(), members.end(), [](const member& m) { return m.process.running(); }) || served.read) {
        std::array<pollfd, 4> fds{{{signals.get(), POLLIN, 0},
                                   {served.read ? served.read.get() : -1, POLLIN, 0},
                                   {notify ? notify->fd() : -1, POLLIN, 0},
                                   {child_logs.read ? child_logs.read.get() : -1, POLLIN, 0}}};
        const int timeout = detail::poll_timeout(detail::earliest(
            detail::earliest(detail::earliest(stop.deadline(), drain_deadline), detail::earliest(finish_deadline, arrival_at)), next_tick));
        if (retry_on_eintr([&] { return ::poll(fds.data(), fds.size(), timeout); }) < 0)
            throw_system_error(errno, "poll");
        if (fds[2].revents != 0)
            (void)notify->receive(report);
        if (fds[3].revents != 0) {
            const ssize_t r = retry_on_eintr([&] { return ::read(child_logs.read.get(), chunk.data(), chunk.size()); });
            if (r > 0)
                view->print_above({chunk.data(), static_cast<std::size_t>(r)}, false);
            else if (r == 0 || errno != EAGAIN)
                child_logs.read.reset();
        }

        if (fds[0].revents != 0) {
            while (const auto sig = read_signal(signals)) {
                if (*sig == SIGCHLD) {
                    for (member& m : members) {
                        if (m.process.running() && m.process.try_wait())
                            spdlog::info("{} (pid {}) {}", m.role, m.process.pid(), describe_wait_status(*m.process.status()));
                    }
                } else if (stop_signal == 0) {
                    stop_signal = *sig;
                    spdlog::info("received {}: stopping the children", signal_name(*sig));
                    stop_all();
                }
            }
        }
        if (served.read && fds[1].revents != 0) {
            const ssize_t r = retry_on_eintr([&] { return ::read(served.read.get(), chunk.data(), chunk.size()); });
            if (r > 0) {
                const std::string_view data{chunk.data(), static_cast<std::size_t>(r)};
                served_orders += static_cast<std::uint64_t>(std::count(data.begin(), data.end(), '\n'));
                if (view && view->holds_stdout()) {
                    view->print_above(data, true);
                } else if (stdout_ok) {
                    try {
                        write_all(STDOUT_FILENO, data, "stdout");
                    } catch (const std::system_error& e) {
                        spdlog::warn("{}; the served orders are still counted", e.what());
                        stdout_ok = false;
                    }
                }
            } else if (r == 0 || errno != EAGAIN) {
                served.read.reset();
                drain_deadline.reset();
            }
        }

        if (!consumer.running()) {
            if (fifo_fd) {
                last_fill = measure_pipe(fifo_fd.get());
                fifo_fd.reset();  // a customer blocked in write() gets EPIPE, as without us
            }
            if (served.read && !drain_deadline)
                drain_deadline = clock::now() + output_grace;
            // Without a shop, producers would only wait for their --wait.
            if (!finish_sent && stop_signal == 0 && producers_running() && !stop.started()) {
                spdlog::error("the consumer stopped before the producers were done; stopping them");
                stop_all();
            }
        } else if (!finish_sent && stop_signal == 0 && !producers_running()) {
            finish_sent = try_send_finish(fifo);
            finish_deadline = finish_sent ? std::nullopt : std::optional{clock::now() + finish_retry};
            if (finish_sent)
                spdlog::info("every producer is done: sent '{}'", finish_message);
        }

        const auto now = clock::now();
        if (arrival_at && now >= *arrival_at)
            start_arrivals(now);
        if (now >= next_tick) {
            show(now);
            next_tick = now + (view ? clock::duration{frame_interval} : clock::duration{summary_interval});
        }
        if (drain_deadline && now >= *drain_deadline) {
            spdlog::warn("the consumer's output is still open {} after it exited; not waiting longer",
                         format_duration(std::chrono::duration_cast<duration>(output_grace)));
            served.read.reset();
            drain_deadline.reset();
        }
        if (const auto step = stop.due(now)) {
            for (member& m : members) {
                if (m.process.running()) {
                    spdlog::warn("{} (pid {}) still running after {}; sending {}", m.role, m.process.pid(),
                                 format_duration(opts.stop_timeout), signal_name(step->signal));
                    m.process.send_signal(step->signal);
                }
            }
        }
    }

    // What the children logged last, the last picture, then the summary:
    // one line per child, then the orders.
    while (child_logs.read) {
        const ssize_t r = retry_on_eintr([&] { return ::read(child_logs.read.get(), chunk.data(), chunk.size()); });
        if (r <= 0)
            break;
        view->print_above({chunk.data(), static_cast<std::size_t>(r)}, false);
    }
    show(clock::now());
    view.reset();  // the terminal as it was, before the summary
    bool all_ok = true;
    for (const member& m : members) {
        if (!m.started) {
            std::fprintf(stderr, "coffee-launcher: %s never came: the shop was closing\n", m.role.c_str());
            continue;
        }
        const int status = *m.process.status();
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        // During our own shutdown, a child stopped by our SIGTERM did as told;
        // so did one stopped by the signal we got (Ctrl-C reaches the whole
        // foreground process group).
        const bool stopped_by_us = stop_signal != 0 && WIFSIGNALED(status) &&
                                   (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == stop_signal);
        all_ok = all_ok && ok;
        std::fprintf(stderr, "coffee-launcher: %s (pid %d) %s%s\n", m.role.c_str(), static_cast<int>(m.process.pid()),
                     describe_wait_status(status).c_str(), ok || stopped_by_us ? "" : "  <- failed");
    }
    std::fprintf(stderr, "coffee-launcher: %llu of %llu orders served\n", static_cast<unsigned long long>(served_orders),
                 static_cast<unsigned long long>(orders_sent));
    if (served_orders < orders_sent && stop_signal == 0)
        spdlog::warn("{} order{} not served (the consumer's --timeout {} came first?): they wait in its journal, "
                     "which goes with the demo's directory",
                     orders_sent - served_orders, orders_sent - served_orders == 1 ? " was" : "s were",
                     format_duration(opts.timeout));
    if (stop_signal != 0)
        return 128 + stop_signal;
    return all_ok ? exit_ok : exit_failure;
}

}  // namespace coffee::launcher
