// coffee-launcher demo: the blog post's coffee shop as separate processes
// that meet at a FIFO in a private directory.
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
        orders.assign(menu.begin(), menu.end());  // one of each, as in the blog post
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

// One run of the demo: the shop's private FIFO, its consumer and customers,
// and what we show of them, in the steps run() names.
class demo {
public:
    demo(const demo_options& opts, const unique_fd& signals);
    demo(const demo&) = delete;
    demo& operator=(const demo&) = delete;

    [[nodiscard]] int run() {
        cast();
        if (const auto failed = start())
            return *failed;
        while (running())
            step();
        return finish();
    }

private:
    void open_view();
    void cast();
    [[nodiscard]] std::optional<int> start();
    [[nodiscard]] bool running() const;
    void step();
    [[nodiscard]] int finish();

    void start_member(member& m, std::vector<fd_mapping> fds, std::vector<std::string> env);
    void start_arrivals(clock::time_point now);
    [[nodiscard]] bool producers_running() const;
    void stop_all();
    void on_signals();
    void copy_served();
    void copy_child_logs();
    void watch_consumer();
    void on_time(clock::time_point now);
    [[nodiscard]] demo_snapshot snapshot(clock::time_point now);
    void show(clock::time_point now);
    [[nodiscard]] bool report_members() const;
    [[nodiscard]] clock::duration tick_interval() const {
        return view_ ? clock::duration{frame_interval} : clock::duration{summary_interval};
    }

    const demo_options& opts_;
    const unique_fd& signals_;
    const std::string consumer_program_;
    const std::string producer_program_;
    const private_dir dir_;
    const std::filesystem::path fifo_;
    // We hold the FIFO's read end (never reading it) while the consumer runs,
    // to see how full it is (FIONREAD).
    unique_fd fifo_fd_;
    // The consumer tells us how it is doing as it would tell systemd.
    std::optional<notify_listener> notify_;
    // The view (on a terminal) takes our log lines; the children's reach it
    // through a pipe.
    std::optional<live_view> view_;
    pipe_ends child_logs_;
    std::string child_log_level_;
    std::vector<fd_mapping> child_fds_;
    // The consumer's stdout comes to us through a pipe: we copy it to our
    // stdout and count the served orders.
    pipe_ends served_;
    std::vector<member> members_;  // declared after `dir_`: children are reaped before it is removed
    std::uint64_t orders_sent_ = 0;
    std::uint64_t order_bytes_ = 0;
    std::size_t next_arrival_ = 1;  // the next customer to start
    std::optional<clock::time_point> arrival_at_;
    clock::time_point started_;

    std::uint64_t served_orders_ = 0;
    bool stdout_ok_ = true;
    bool finish_sent_ = false;
    int stop_signal_ = 0;
    const stop_plan plan_;
    stop_schedule stop_;  // one for all the children: they are stopped together
    std::optional<clock::time_point> drain_deadline_;
    std::optional<clock::time_point> finish_deadline_;
    std::vector<char> chunk_ = std::vector<char>(64 * 1024);

    // What the view or the summary lines show.
    consumer_report report_;
    rate_meter rate_;
    std::optional<pipe_fill> last_fill_;
    clock::time_point next_tick_;
};

demo::demo(const demo_options& opts, const unique_fd& signals)
    : opts_{opts},
      signals_{signals},
      consumer_program_{opts.consumer_program.empty() ? detail::find_sibling_program("coffee-consumer") : opts.consumer_program},
      producer_program_{opts.producer_program.empty() ? detail::find_sibling_program("coffee-producer") : opts.producer_program},
      fifo_{dir_.path() / "orders"},
      plan_{{SIGTERM, opts.stop_timeout}, {SIGKILL, forever}} {
    if (::mkfifo(fifo_.c_str(), 0600) != 0)
        throw_system_error(errno, "create FIFO '{}'", fifo_.native());
    spdlog::info("the shop's FIFO is '{}'", fifo_.native());
    fifo_fd_.reset(::open(fifo_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!fifo_fd_)
        throw_system_error(errno, "open FIFO '{}'", fifo_.native());
    try {
        notify_.emplace(dir_.path() / "notify");
    } catch (const std::system_error& e) {
        spdlog::warn("{}: the demo goes on without the shop's STATUS=", e.what());
    }
    open_view();
    served_ = make_pipe();
}

void demo::open_view() {
    if (opts_.live && stderr_can_go_live()) {
        view_.emplace();
        child_logs_ = make_pipe();
    }
    child_log_level_ = opts_.child_log_level;
    if (child_log_level_.empty() && (view_ || opts_.scenario != demo_scenario::none))
        child_log_level_ = "warn";  // the view or the summary lines tell the story
    if (view_)
        child_fds_.push_back({STDERR_FILENO, child_logs_.write.get()});
}

// The consumer first, then one producer per customer, not started yet.
void demo::cast() {
    member consumer{.role = "consumer", .process = {}, .argv = {consumer_program_, "--fifo", fifo_.native(), "--until-finish",
                    "--brew-time", format_duration(opts_.brew_time), "--timeout", format_duration(opts_.timeout)}};
    if (opts_.baristas)
        consumer.argv.insert(consumer.argv.end(), {"--baristas", std::to_string(*opts_.baristas)});
    if (!child_log_level_.empty())
        consumer.argv.insert(consumer.argv.end(), {"--log-level", child_log_level_});
    members_.push_back(std::move(consumer));
    for (unsigned p = 1; p <= opts_.producers; ++p) {
        std::vector<std::string> orders = orders_for(opts_, p);
        orders_sent_ += orders.size();
        for (const std::string& o : orders)
            order_bytes_ += o.size() + 1;
        member customer{.role = fmt::format("producer {}", p), .process = {}, .argv = {producer_program_, "--fifo", fifo_.native()},
                        .orders = static_cast<unsigned>(orders.size())};
        if (!child_log_level_.empty())
            customer.argv.insert(customer.argv.end(), {"--log-level", child_log_level_});
        customer.argv.insert(customer.argv.end(), std::make_move_iterator(orders.begin()), std::make_move_iterator(orders.end()));
        members_.push_back(std::move(customer));
    }
}

// The consumer, and the customers who come at once. An exit code when one
// could not be started.
std::optional<int> demo::start() {
    started_ = clock::now();
    try {
        start_member(members_.front(), {{STDOUT_FILENO, served_.write.get()}},
                     {notify_ ? fmt::format("NOTIFY_SOCKET={}", notify_->path().native()) : "NOTIFY_SOCKET",
                      fmt::format("COFFEE_STATUS_INTERVAL={}", status_interval)});
        served_.write.reset();
        start_arrivals(started_);
    } catch (const exec_error& e) {
        spdlog::error("{}", e.what());
        return detail::exit_code_for_exec_errno(e.code().value());  // children: SIGKILLed and reaped
    }
    child_logs_.write.reset();
    set_nonblocking(served_.read.get(), true);
    if (child_logs_.read)
        set_nonblocking(child_logs_.read.get(), true);
    (void)rate_.update(started_, 0);
    next_tick_ = started_ + tick_interval();
    return std::nullopt;
}

void demo::start_member(member& m, std::vector<fd_mapping> fds, std::vector<std::string> env) {
    fds.insert(fds.end(), child_fds_.begin(), child_fds_.end());
    m.process = child_process::spawn({.argv = m.argv, .fds = std::move(fds), .env = std::move(env)});
    m.started = true;
    spdlog::info("started {} as pid {}", m.role, m.process.pid());
}

void demo::start_arrivals(clock::time_point now) {
    while (next_arrival_ < members_.size() && (!arrival_at_ || now >= *arrival_at_)) {
        start_member(members_[next_arrival_++], {}, {});
        arrival_at_ = opts_.arrival_interval.count() > 0 ? std::optional{now + opts_.arrival_interval} : std::nullopt;
        if (arrival_at_)
            break;
    }
    if (next_arrival_ == members_.size())
        arrival_at_.reset();
}

bool demo::producers_running() const {
    return next_arrival_ < members_.size() ||
           std::any_of(members_.begin() + 1, members_.end(), [](const member& m) { return m.process.running(); });
}

void demo::stop_all() {
    next_arrival_ = members_.size();  // customers not here yet stay away
    arrival_at_.reset();
    if (!stop_.started())
        (void)stop_.begin(plan_, clock::now());
    for (member& m : members_)
        m.process.send_signal(plan_.front().signal);
}

bool demo::running() const {
    return std::any_of(members_.begin(), members_.end(), [](const member& m) { return m.process.running(); }) || served_.read;
}

// One wait for whatever comes first, and what follows from it.
void demo::step() {
    std::array<pollfd, 4> fds{{{signals_.get(), POLLIN, 0},
                               {served_.read ? served_.read.get() : -1, POLLIN, 0},
                               {notify_ ? notify_->fd() : -1, POLLIN, 0},
                               {child_logs_.read ? child_logs_.read.get() : -1, POLLIN, 0}}};
    const int timeout = detail::poll_timeout(detail::earliest(
        detail::earliest(detail::earliest(stop_.deadline(), drain_deadline_), detail::earliest(finish_deadline_, arrival_at_)),
        next_tick_));
    if (retry_on_eintr([&] { return ::poll(fds.data(), fds.size(), timeout); }) < 0)
        throw_system_error(errno, "poll");
    if (fds[2].revents != 0)
        (void)notify_->receive(report_);
    if (fds[3].revents != 0)
        copy_child_logs();
    if (fds[0].revents != 0)
        on_signals();
    if (served_.read && fds[1].revents != 0)
        copy_served();
    watch_consumer();
    on_time(clock::now());
}

void demo::copy_child_logs() {
    const ssize_t r = retry_on_eintr([&] { return ::read(child_logs_.read.get(), chunk_.data(), chunk_.size()); });
    if (r > 0)
        view_->print_above({chunk_.data(), static_cast<std::size_t>(r)}, false);
    else if (r == 0 || errno != EAGAIN)
        child_logs_.read.reset();
}

void demo::on_signals() {
    while (const auto sig = read_signal(signals_)) {
        if (*sig == SIGCHLD) {
            for (member& m : members_) {
                if (m.process.running() && m.process.try_wait())
                    spdlog::info("{} (pid {}) {}", m.role, m.process.pid(), describe_wait_status(*m.process.status()));
            }
        } else if (stop_signal_ == 0) {
            stop_signal_ = *sig;
            spdlog::info("received {}: stopping the children", signal_name(*sig));
            stop_all();
        }
    }
}

void demo::copy_served() {
    const ssize_t r = retry_on_eintr([&] { return ::read(served_.read.get(), chunk_.data(), chunk_.size()); });
    if (r > 0) {
        const std::string_view data{chunk_.data(), static_cast<std::size_t>(r)};
        served_orders_ += static_cast<std::uint64_t>(std::count(data.begin(), data.end(), '\n'));
        if (view_ && view_->holds_stdout()) {
            view_->print_above(data, true);
        } else if (stdout_ok_) {
            try {
                write_all(STDOUT_FILENO, data, "stdout");
            } catch (const std::system_error& e) {
                spdlog::warn("{}; the served orders are still counted", e.what());
                stdout_ok_ = false;
            }
        }
    } else if (r == 0 || errno != EAGAIN) {
        served_.read.reset();
        drain_deadline_.reset();
    }
}

// A consumer gone early stops the customers; the customers all done, it
// gets "finish".
void demo::watch_consumer() {
    child_process& consumer = members_.front().process;
    if (!consumer.running()) {
        if (fifo_fd_) {
            last_fill_ = measure_pipe(fifo_fd_.get());
            fifo_fd_.reset();  // a customer blocked in write() gets EPIPE, as without us
        }
        if (served_.read && !drain_deadline_)
            drain_deadline_ = clock::now() + output_grace;
        // Without a shop, producers would only wait for their --wait.
        if (!finish_sent_ && stop_signal_ == 0 && producers_running() && !stop_.started()) {
            spdlog::error("the consumer stopped before the producers were done; stopping them");
            stop_all();
        }
    } else if (!finish_sent_ && stop_signal_ == 0 && !producers_running()) {
        finish_sent_ = try_send_finish(fifo_);
        finish_deadline_ = finish_sent_ ? std::nullopt : std::optional{clock::now() + finish_retry};
        if (finish_sent_)
            spdlog::info("every producer is done: sent '{}'", finish_message);
    }
}

// Arrivals, the picture, and the deadlines that are due.
void demo::on_time(clock::time_point now) {
    if (arrival_at_ && now >= *arrival_at_)
        start_arrivals(now);
    if (now >= next_tick_) {
        show(now);
        next_tick_ = now + tick_interval();
    }
    if (drain_deadline_ && now >= *drain_deadline_) {
        spdlog::warn("the consumer's output is still open {} after it exited; not waiting longer",
                     format_duration(std::chrono::duration_cast<duration>(output_grace)));
        served_.read.reset();
        drain_deadline_.reset();
    }
    if (const auto step = stop_.due(now)) {
        for (member& m : members_) {
            if (m.process.running()) {
                spdlog::warn("{} (pid {}) still running after {}; sending {}", m.role, m.process.pid(),
                             format_duration(opts_.stop_timeout), signal_name(step->signal));
                m.process.send_signal(step->signal);
            }
        }
    }
}

demo_snapshot demo::snapshot(clock::time_point now) {
    if (fifo_fd_)
        last_fill_ = measure_pipe(fifo_fd_.get());
    const child_process& consumer = members_.front().process;
    demo_snapshot s{.title = title_of(opts_),
                    .elapsed = std::chrono::duration_cast<duration>(now - started_),
                    .fifo = fifo_.native(),
                    .pipe = last_fill_,
                    .bytes_per_order = orders_sent_ > 0 ? static_cast<double>(order_bytes_) / static_cast<double>(orders_sent_) : 32.0,
                    .customers = {},
                    .consumer_pid = consumer.pid(),
                    .consumer_running = consumer.running(),
                    .shop = report_,
                    .baristas = opts_.baristas.value_or(1),
                    .served = served_orders_,
                    .ordered = orders_sent_,
                    .per_second = rate_.update(now, served_orders_),
                    .stopping = stop_signal_ != 0};
    for (std::size_t i = 1; i < members_.size(); ++i) {
        const member& m = members_[i];
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
}

void demo::show(clock::time_point now) {
    if (view_)
        view_->draw(snapshot(now));
    else
        spdlog::info("{}", summary_line(snapshot(now)));
}

// What the children logged last, the last picture, then the summary: one
// line per child, then the orders.
int demo::finish() {
    while (child_logs_.read) {
        const ssize_t r = retry_on_eintr([&] { return ::read(child_logs_.read.get(), chunk_.data(), chunk_.size()); });
        if (r <= 0)
            break;
        view_->print_above({chunk_.data(), static_cast<std::size_t>(r)}, false);
    }
    show(clock::now());
    view_.reset();  // the terminal as it was, before the summary
    const bool all_ok = report_members();
    std::fprintf(stderr, "coffee-launcher: %llu of %llu orders served\n", static_cast<unsigned long long>(served_orders_),
                 static_cast<unsigned long long>(orders_sent_));
    if (served_orders_ < orders_sent_ && stop_signal_ == 0)
        spdlog::warn("{} order{} not served (the consumer's --timeout {} came first?): they wait in its journal, "
                     "which goes with the demo's directory",
                     orders_sent_ - served_orders_, orders_sent_ - served_orders_ == 1 ? " was" : "s were",
                     format_duration(opts_.timeout));
    if (stop_signal_ != 0)
        return 128 + stop_signal_;
    return all_ok ? exit_ok : exit_failure;
}

// One line per child; true when each exited 0.
bool demo::report_members() const {
    bool all_ok = true;
    for (const member& m : members_) {
        if (!m.started) {
            std::fprintf(stderr, "coffee-launcher: %s never came: the shop was closing\n", m.role.c_str());
            continue;
        }
        const int status = *m.process.status();
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        // During our own shutdown, a child stopped by our SIGTERM did as told;
        // so did one stopped by the signal we got (Ctrl-C reaches the whole
        // foreground process group).
        const bool stopped_by_us = stop_signal_ != 0 && WIFSIGNALED(status) &&
                                   (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == stop_signal_);
        all_ok = all_ok && ok;
        std::fprintf(stderr, "coffee-launcher: %s (pid %d) %s%s\n", m.role.c_str(), static_cast<int>(m.process.pid()),
                     describe_wait_status(status).c_str(), ok || stopped_by_us ? "" : "  <- failed");
    }
    return all_ok;
}

}  // namespace

int run_demo(const demo_options& opts, const unique_fd& signals) { return demo{opts, signals}.run(); }

}  // namespace coffee::launcher
