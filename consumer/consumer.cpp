#include "consumer.hpp"

#include "backlog.hpp"
#include "order_queue.hpp"

#include <coffee/errors.hpp>
#include <coffee/fifo.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/pipe_size_watch.hpp>
#include <coffee/posix.hpp>
#include <coffee/sd_daemon.hpp>
#include <coffee/signals.hpp>

#include <spdlog/spdlog.h>

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

namespace coffee::consumer {

namespace {

using clock = std::chrono::steady_clock;

constexpr std::string_view exit_codes_help = R"(
Reads orders, one per line, from the FIFO; each of N baristas takes one,
logs "Processing order: ORDER", brews it for --brew-time, and writes the
order text as one line to stdout. Under systemd (LISTEN_FDS) the FIFO is
inherited as fd 3. SIGTERM, SIGINT and --timeout stop gracefully: orders
being brewed finish; orders read but not brewed are saved to the backlog
file, which the next start serves first.

Exit codes:
  0   stopped as asked (signal, --timeout, finish, end of input)
  64  usage error
  74  stdout, the FIFO or the backlog failed
  75  another consumer already reads this FIFO
  77  the FIFO, its lock file or a directory on its path is not ours or
      root's, or others may change it; or the FIFO is readable by others
  78  the path is not a FIFO
)";

// How much to read at once. With instant brewing, reads as big as the
// default pipe (16 pages) keep up with any producer. When brewing takes
// time, reading ahead buys nothing, and an order still in the pipe survives
// a crash of the consumer (the pipe is held by systemd or the supervisor)
// while one in our memory does not: so read one PIPE_BUF at a time.
constexpr std::size_t instant_read_chunk = 65536;
constexpr std::size_t brewing_read_chunk = max_line_bytes;
constexpr auto status_interval = std::chrono::seconds{1};

class shop {
public:
    shop(const options& opts, unique_fd fifo, std::string fifo_name, std::filesystem::path backlog, unique_fd signals)
        : opts_{opts}, fifo_{std::move(fifo)}, fifo_name_{std::move(fifo_name)}, backlog_{std::move(backlog)},
          signals_{std::move(signals)}, wake_{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)},
          queue_{opts.queue_size, [this] { wake(); }},
          read_chunk_{opts.brew_time.count() == 0 ? instant_read_chunk : brewing_read_chunk} {
        if (!wake_)
            throw_system_error(errno, "eventfd");
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
    void barista();
    void handle_signals();
    void read_orders();
    void take_line(const line_reader::line& line);
    void feed_queue();
    void finish(std::string_view why);
    void stop(std::string_view why);
    void complete_line();
    void drop_unfinished_line();
    int shut_down();
    void report_status(bool force);
    void notify(std::string_view state) noexcept;

    const options& opts_;
    unique_fd fifo_;
    std::string fifo_name_;
    std::filesystem::path backlog_;
    unique_fd signals_;
    unique_fd wake_;
    order_queue queue_;
    std::size_t read_chunk_;
    std::vector<std::thread> baristas_;

    // Reader-thread state.
    phase phase_ = phase::taking_orders;
    line_reader lines_;
    std::string chunk_;
    order_batch pending_;   // read, not yet in the queue
    order_batch leftover_;  // read after we stopped taking orders
    std::uint64_t rejected_ = 0;
    int exit_code_ = exit_ok;
    std::string last_status_;
    clock::time_point last_status_time_{};

    // Shared with the baristas.
    std::atomic<std::uint64_t> served_{0};
    std::atomic<bool> output_failed_{false};
    std::mutex output_mutex_;
};

int shop::run() {
    std::size_t backlog_rejected = 0;
    pending_ = take_backlog(backlog_, backlog_rejected);
    if (!pending_.empty() || backlog_rejected > 0)
        spdlog::info("serving {} orders from the backlog '{}' first ({} unreadable lines dropped)", pending_.count,
                     backlog_.native(), backlog_rejected);

    for (unsigned i = 0; i < opts_.baristas; ++i)
        baristas_.emplace_back([this] { barista(); });

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
        if (output_failed_ && phase_ != phase::stopping) {
            exit_code_ = exit_io;
            stop("stdout failed");
        }
        if (queue_.baristas_left() == opts_.baristas)
            break;
        feed_queue();
        const auto now = clock::now();
        if (phase_ != phase::stopping && now >= deadline)
            stop(fmt::format("--timeout {} reached", format_duration(opts_.timeout)));
        if (watchdog && now >= next_watchdog) {
            notify("WATCHDOG=1");
            next_watchdog = now + *watchdog / 2;
        }
        report_status(false);

        std::array<pollfd, 3> fds{pollfd{signals_.get(), POLLIN, 0}, pollfd{wake_.get(), POLLIN, 0},
                                  pollfd{fifo_.get(), POLLIN, 0}};
        const bool want_orders = phase_ == phase::taking_orders && pending_.empty();
        auto wait_until = now + status_interval;
        if (phase_ != phase::stopping)
            wait_until = std::min(wait_until, deadline);
        if (watchdog)
            wait_until = std::min(wait_until, next_watchdog);
        const auto wait_ms = std::chrono::ceil<std::chrono::milliseconds>(std::max(wait_until - now, clock::duration::zero()));
        const int ready = retry_on_eintr([&] {
            return ::poll(fds.data(), want_orders ? 3 : 2, static_cast<int>(wait_ms.count()));
        });
        if (ready < 0)
            throw_system_error(errno, "poll");

        if ((fds[0].revents & POLLIN) != 0)
            handle_signals();
        if ((fds[1].revents & POLLIN) != 0) {
            std::uint64_t count = 0;
            (void)!::read(wake_.get(), &count, sizeof count);
        }
        if (want_orders && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            try {
                read_orders();
            } catch (const std::system_error& e) {
                spdlog::error("{}", e.what());
                exit_code_ = exit_io;
                stop("cannot read orders");
            }
        }
    }
    return shut_down();
}

void shop::barista() {
    const bool brewing_takes_time = opts_.brew_time.count() > 0;
    // One order at a time while brewing takes time; otherwise a whole batch
    // as it was read, so that the queue's lock is taken per read, not per order.
    const std::size_t batch_size = brewing_takes_time ? 1 : std::numeric_limits<std::size_t>::max();
    order_batch batch;
    while (queue_.pop(batch, batch_size)) {
        if (brewing_takes_time || spdlog::should_log(spdlog::level::info)) {
            std::string_view rest = batch.text;
            while (!rest.empty()) {
                const std::size_t lf = rest.find('\n');
                spdlog::info("Processing order: {}", printable(rest.substr(0, lf), max_order_bytes));
                if (brewing_takes_time)
                    std::this_thread::sleep_for(opts_.brew_time);
                rest.remove_prefix(lf + 1);
            }
        }
        try {
            // One write per batch (per order when brewing takes time): a
            // reader of stdout sees each order as soon as it is served.
            const std::lock_guard lock{output_mutex_};
            if (output_failed_)
                throw std::system_error(EPIPE, std::system_category(), "stdout failed earlier");
            write_all(STDOUT_FILENO, batch.text, "stdout");
        } catch (const std::system_error& e) {
            if (!output_failed_.exchange(true))
                spdlog::error("cannot write served orders: {}", e.what());
            queue_.put_back(std::move(batch));  // not served: they go to the backlog
            break;
        }
        served_ += batch.count;
        batch.clear();
    }
    queue_.barista_left();
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

void shop::read_orders() {
    chunk_.clear();
    const long n = read_some(fifo_.get(), chunk_, read_chunk_, fmt::format("FIFO '{}'", fifo_name_));
    if (n < 0)
        return;  // EAGAIN: someone else was quicker, or a spurious wake-up
    if (n == 0) {
        finish("end of input");
        return;
    }
    lines_.feed(chunk_, [this](const line_reader::line& line) { take_line(line); });
    complete_line();
}

void shop::take_line(const line_reader::line& line) {
    const checked_line& check = line.check;
    if (check.problem == line_problem::too_long) {
        ++rejected_;  // its bytes are gone: the reader never holds more than one line's worth
        spdlog::warn("malformed line ({} bytes) {}, ignoring", line.bytes, describe(check.problem));
        return;
    }
    if (check.problem != line_problem::none) {
        ++rejected_;
        spdlog::warn("malformed line ({} bytes) {} at byte {}: '{}', ignoring", line.bytes, describe(check.problem),
                     check.offset, printable(line.raw));
        return;
    }
    if (check.text.empty())
        return;
    if (check.text == finish_message) {
        if (phase_ == phase::taking_orders && opts_.until_finish)
            finish("received 'finish'");
        else if (phase_ == phase::taking_orders)
            spdlog::info("received 'finish', ignoring it: not started with --until-finish");
        return;
    }
    (phase_ == phase::taking_orders ? pending_ : leftover_).add(check.text);
}

void shop::feed_queue() {
    if (phase_ == phase::stopping)
        return;
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
    drop_unfinished_line();
}

void shop::stop(std::string_view why) {
    if (phase_ == phase::stopping)
        return;
    const bool was_taking = phase_ == phase::taking_orders;
    phase_ = phase::stopping;
    queue_.close(false);
    spdlog::info("{}: stopping; orders being brewed will finish, the others go to the backlog", why);
    notify("STOPPING=1");
    if (was_taking)
        drop_unfinished_line();
}

// A read may end inside a line whose rest is still in the pipe: a producer
// writes whole lines in one atomic write, so the rest is there already. Read
// on, one byte at a time so as to take nothing past its LF, until the line
// is complete. Between two reads we then never hold half a line, so even a
// kill -9 cannot leave the tail of one in the pipe for the next consumer to
// serve as an order; and a stop saves whole lines to the backlog.
void shop::complete_line() {
    char byte = 0;
    for (std::size_t i = 0; i < max_line_bytes && lines_.mid_line(); ++i) {
        const ssize_t n = retry_on_eintr([&] { return ::read(fifo_.get(), &byte, 1); });
        if (n <= 0)
            break;
        lines_.feed({&byte, 1}, [this](const line_reader::line& line) { take_line(line); });
    }
}

// Bytes without an LF after them (a writer that does not speak the protocol)
// end with us.
void shop::drop_unfinished_line() {
    complete_line();
    if (lines_.mid_line())
        spdlog::warn("dropping {} bytes of an unfinished line (no LF after them)", lines_.pending_bytes());
}

int shop::shut_down() {
    for (std::thread& barista : baristas_)
        barista.join();
    baristas_.clear();
    order_batch rest = queue_.take_rest();
    rest.append(std::move(pending_));
    rest.append(std::move(leftover_));
    if (!rest.empty()) {
        try {
            save_backlog(backlog_, rest);
            spdlog::info("saved {} orders not yet brewed to the backlog '{}'", rest.count, backlog_.native());
        } catch (const std::system_error& e) {
            spdlog::error("{}; these {} orders are lost:\n{}", e.what(), rest.count, rest.text);
            exit_code_ = exit_io;
        }
    }
    report_status(true);
    spdlog::info("closed: served {} orders, rejected {} lines", served_.load(), rejected_);
    return exit_code_;
}

void shop::report_status(bool force) {
    const auto now = clock::now();
    if (!force && now - last_status_time_ < status_interval)
        return;
    std::string status = fmt::format("STATUS=served {}, waiting {}, rejected {}", served_.load(),
                                     queue_.size() + pending_.count, rejected_);
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

// $STATE_DIRECTORY may list several directories, separated by colons.
std::filesystem::path default_backlog(const std::filesystem::path& fifo_path) {
    if (const char* state = std::getenv("STATE_DIRECTORY"); state != nullptr && *state != '\0') {
        const std::string_view dirs{state};
        return std::filesystem::path{dirs.substr(0, dirs.find(':'))} / "backlog";
    }
    return fifo_path.native() + ".backlog";
}

// The path behind an inherited descriptor, for logs and the backlog's name.
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
        ("backlog", "where unbrewed orders wait across a stop (default: $STATE_DIRECTORY/backlog, else FIFO.backlog)",
         cxxopts::value<std::string>(), "PATH")
        ("queue-size", "orders read ahead of the baristas (default: 1024 with --brew-time 0, else 2 per barista)",
         cxxopts::value<std::size_t>(), "N")
        ("fifo-mode", "mode of a FIFO the shop creates (default 0600; no read bits for group or others)", cxxopts::value<std::string>(), "MODE")
        ("allow-world-writable", "accept an existing FIFO that everyone may write to");
    add_common_options(spec);

    const auto result = parse_or_usage(spec, argc, argv);
    if (!result.unmatched().empty())
        throw usage_error(fmt::format("unexpected argument '{}'", result.unmatched().front()));
    options opts;
    opts.common = read_common_options(result, spec, exit_codes_help);
    opts.fifo = read_path_option(result, "fifo");
    opts.backlog = read_path_option(result, "backlog");
    if (result.count("baristas") > 0)
        opts.baristas = result["baristas"].as<unsigned>();
    if (opts.baristas < 1 || opts.baristas > 256)
        throw usage_error(fmt::format("--baristas: {} is not between 1 and 256", opts.baristas));
    if (result.count("brew-time") > 0)
        opts.brew_time = parse_duration(result["brew-time"].as<std::string>());
    if (result.count("timeout") > 0)
        opts.timeout = parse_duration(result["timeout"].as<std::string>());
    opts.until_finish = result.count("until-finish") > 0;
    // Orders read ahead are lost if the consumer is killed; the pipe keeps
    // the others. Read ahead only as far as keeps the baristas busy.
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

    std::filesystem::path fifo_path = opts.fifo;
    unique_fd fifo;
    unique_fd lock;
    if (!inherited.empty()) {
        if (inherited.size() > 1)
            spdlog::warn("socket activation passed {} descriptors; using the first, fd 3", inherited.size());
        check_is_fifo(inherited.front().get(), "inherited fd 3 (LISTEN_FDS)");
        fifo = std::move(inherited.front());
        set_nonblocking(fifo.get(), true);
        if (fifo_path.empty())
            fifo_path = path_of_fd(fifo.get());
        // No lock: the supervisor (systemd, coffee-launcher serve) starts one
        // consumer per FIFO, and a lock any writer could take would only let
        // a customer keep the shop closed.
    } else {
        if (fifo_path.empty())
            fifo_path = default_fifo_path(false);
        fifo = open_fifo_for_reading(fifo_path, {opts.fifo_mode, opts.allow_world_writable});
        // One shop per FIFO: a second consumer would take half of the orders.
        lock = lock_fifo(fifo_path);
    }
    const std::filesystem::path backlog = !opts.backlog.empty() ? opts.backlog : default_backlog(fifo_path);
    const int fifo_fd = fifo.get();
    shop coffee_shop{opts, std::move(fifo), fifo_path.native(), backlog, std::move(signals)};
    // Any writer can shrink the pipe; set it back (destroyed before the shop).
    const pipe_size_watch pipe_size{fifo_fd, fmt::format("'{}'", fifo_path.native()), std::chrono::seconds{1},
                                    [](const std::string& message) { spdlog::warn("{}", message); }};
    return coffee_shop.run();
}

}  // namespace coffee::consumer
