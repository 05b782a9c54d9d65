// coffee-launcher demo: the seed's coffee shop as separate processes that
// meet at a FIFO in a private directory.
#include "launcher.hpp"

#include <coffee/child_process.hpp>
#include <coffee/errors.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/posix.hpp>
#include <coffee/signals.hpp>

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

namespace coffee::launcher {

namespace {

using detail::clock;

constexpr std::array menu{"Espresso", "Arabica", "Latte", "Cappuccino"};
// How long the consumer's output may stay open after it exited.
constexpr auto output_grace = std::chrono::seconds{2};
// How often to retry writing "finish" when the FIFO is full.
constexpr auto finish_retry = std::chrono::milliseconds{20};

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

    // The consumer's stdout comes to us through a pipe: we copy it to our
    // stdout and count the served orders.
    pipe_ends served = make_pipe();
    std::vector<member> members;  // declared after `dir`: children are reaped before it is removed
    std::uint64_t orders_sent = 0;
    try {
        std::vector<std::string> argv{consumer_program, "--fifo", fifo.native(), "--until-finish",
                                      "--brew-time", format_duration(opts.brew_time), "--timeout", format_duration(opts.timeout)};
        if (opts.baristas)
            argv.insert(argv.end(), {"--baristas", std::to_string(*opts.baristas)});
        if (!opts.child_log_level.empty())
            argv.insert(argv.end(), {"--log-level", opts.child_log_level});
        members.push_back({"consumer", child_process::spawn({.argv = argv, .fds = {{STDOUT_FILENO, served.write.get()}}})});
        served.write.reset();
        for (unsigned p = 1; p <= opts.producers; ++p) {
            std::vector<std::string> orders = orders_for(opts, p);
            orders_sent += orders.size();
            argv = {producer_program, "--fifo", fifo.native()};
            if (!opts.child_log_level.empty())
                argv.insert(argv.end(), {"--log-level", opts.child_log_level});
            argv.insert(argv.end(), std::make_move_iterator(orders.begin()), std::make_move_iterator(orders.end()));
            members.push_back({fmt::format("producer {}", p), child_process::spawn({.argv = argv})});
        }
    } catch (const exec_error& e) {
        spdlog::error("{}", e.what());
        return detail::exit_code_for_exec_errno(e.code().value());  // children: SIGKILLed and reaped
    }
    for (const member& m : members)
        spdlog::info("started {} as pid {}", m.role, m.process.pid());
    set_nonblocking(served.read.get(), true);

    child_process& consumer = members.front().process;
    const auto producers_running = [&] {
        return std::any_of(members.begin() + 1, members.end(), [](const member& m) { return m.process.running(); });
    };
    std::uint64_t served_orders = 0;
    bool stdout_ok = true;
    bool finish_sent = false;
    int stop_signal = 0;
    std::optional<clock::time_point> kill_deadline;
    std::optional<clock::time_point> drain_deadline;
    std::optional<clock::time_point> finish_deadline;
    std::vector<char> chunk(64 * 1024);

    const auto stop_all = [&](int sig) {
        for (member& m : members)
            m.process.send_signal(sig);
        if (!kill_deadline)
            kill_deadline = clock::now() + opts.stop_timeout;
    };

    while (std::any_of(members.begin(), members.end(), [](const member& m) { return m.process.running(); }) || served.read) {
        std::array<pollfd, 2> fds{{{signals.get(), POLLIN, 0}, {served.read.get(), POLLIN, 0}}};
        const nfds_t n = served.read ? 2 : 1;
        const int timeout = detail::poll_timeout(detail::earliest(detail::earliest(kill_deadline, drain_deadline), finish_deadline));
        if (retry_on_eintr([&] { return ::poll(fds.data(), n, timeout); }) < 0)
            throw_system_error(errno, "poll");

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
                    stop_all(SIGTERM);
                }
            }
        }
        if (n == 2 && fds[1].revents != 0) {
            const ssize_t r = retry_on_eintr([&] { return ::read(served.read.get(), chunk.data(), chunk.size()); });
            if (r > 0) {
                const std::string_view data{chunk.data(), static_cast<std::size_t>(r)};
                served_orders += static_cast<std::uint64_t>(std::count(data.begin(), data.end(), '\n'));
                if (stdout_ok) {
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
            if (served.read && !drain_deadline)
                drain_deadline = clock::now() + output_grace;
            // Without a shop, producers would only wait for their --wait.
            if (!finish_sent && stop_signal == 0 && producers_running() && !kill_deadline) {
                spdlog::error("the consumer stopped before the producers were done; stopping them");
                stop_all(SIGTERM);
            }
        } else if (!finish_sent && stop_signal == 0 && !producers_running()) {
            finish_sent = try_send_finish(fifo);
            finish_deadline = finish_sent ? std::nullopt : std::optional{clock::now() + finish_retry};
            if (finish_sent)
                spdlog::info("every producer is done: sent '{}'", finish_message);
        }

        const auto now = clock::now();
        if (drain_deadline && now >= *drain_deadline) {
            spdlog::warn("the consumer's output is still open {} after it exited; not waiting longer",
                         format_duration(std::chrono::duration_cast<duration>(output_grace)));
            served.read.reset();
            drain_deadline.reset();
        }
        if (kill_deadline && now >= *kill_deadline) {
            for (member& m : members) {
                if (m.process.running()) {
                    spdlog::warn("{} (pid {}) still running after {}; sending SIGKILL", m.role, m.process.pid(),
                                 format_duration(opts.stop_timeout));
                    m.process.send_signal(SIGKILL);
                }
            }
            kill_deadline.reset();
        }
    }

    // The summary: one line per child, then the orders.
    bool all_ok = true;
    for (const member& m : members) {
        const int status = *m.process.status();
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        // During our own shutdown, a child stopped by our SIGTERM did as told.
        const bool stopped_by_us = stop_signal != 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM;
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
