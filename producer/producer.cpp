#include "producer.hpp"

#include <coffee/errors.hpp>
#include <coffee/fifo.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/menu.hpp>
#include <coffee/posix.hpp>
#include <coffee/producer_exit_codes.hpp>

#include <spdlog/spdlog.h>

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <charconv>
#include <iterator>
#include <string_view>

namespace coffee::producer {

namespace {

constexpr std::string_view about_help = R"(
Orders come from the ORDER arguments, else from stdin, one per line ("-" as
an ORDER reads stdin there). Each order is one line of UTF-8 text of at most
4095 bytes, without control characters. Whole lines are packed into writes of
at most 4096 bytes, so orders from many producers never interleave.
--finish sends "finish" after the orders; with no ORDER and no --count it
reads stdin's orders first, unless stdin is a terminal.
)";

// Packs whole lines into writes of at most max_line_bytes: POSIX makes such
// a write to a pipe atomic, so no other producer's line lands inside ours.
// Once the consumer has gone away (EPIPE), or a write has waited longer than
// `write_timeout` for room in the pipe, nothing more is written: every order
// offered from then on, and the batch that failed, is counted as not
// delivered, so the final count is exact.
class order_sender {
public:
    // write_timeout: zero waits in write() as long as the pipe stays full
    // (backpressure, where `coffee-launcher demo` shows a customer blocked);
    // otherwise the descriptor is non-blocking and a full pipe is waited for
    // in poll(), for at most that long.
    order_sender(unique_fd fifo, duration write_timeout) : fifo_{std::move(fifo)}, write_timeout_{write_timeout} {
        batch_.reserve(max_line_bytes);
        if (write_timeout_.count() > 0)
            set_nonblocking(fifo_.get(), true);
    }

    // Queues one line (text without LF); writes the batch first if the line
    // would not fit. Throws std::system_error when a write fails other than
    // with EPIPE. Only orders are counted, not control lines.
    void add(std::string_view text, bool is_order = true) {
        if (gone_) {
            not_delivered_ += is_order ? 1 : 0;
            return;
        }
        if (batch_.size() + text.size() + 1 > max_line_bytes)
            flush();
        if (gone_) {
            not_delivered_ += is_order ? 1 : 0;
            return;
        }
        batch_.append(text);
        batch_ += '\n';
        batched_ += is_order ? 1 : 0;
    }

    // Orders known not to be sent without going through add(): --count's rest.
    void skip(std::uint64_t orders) noexcept { not_delivered_ += orders; }

    void flush() {
        if (batch_.empty())
            return;
        try {
            if (write_batch()) {
                delivered_ += batched_;
            } else {
                gone_ = stalled_ = true;
                not_delivered_ += batched_;
            }
        } catch (const std::system_error& e) {
            if (e.code().value() != EPIPE)
                throw;
            gone_ = true;
            not_delivered_ += batched_;
        }
        batched_ = 0;
        batch_.clear();
    }

    // True when nothing more is written: the consumer went away or stalled.
    [[nodiscard]] bool consumer_gone() const noexcept { return gone_; }
    // True when it is because a write waited longer than the write timeout.
    [[nodiscard]] bool stalled() const noexcept { return stalled_; }
    [[nodiscard]] std::uint64_t delivered() const noexcept { return delivered_; }
    [[nodiscard]] std::uint64_t not_delivered() const noexcept { return not_delivered_; }

private:
    // Writes the batch, waiting for room while the pipe is full: false when
    // the write timeout passed first (nothing of it written). At most PIPE_BUF
    // bytes: a write to a pipe takes all of it or none (EAGAIN, EPIPE).
    bool write_batch() {
        using clock = std::chrono::steady_clock;
        const auto deadline = clock::now() + write_timeout_;
        for (;;) {
            const ssize_t n = retry_on_eintr([&] { return ::write(fifo_.get(), batch_.data(), batch_.size()); });
            if (n == static_cast<ssize_t>(batch_.size()))
                return true;
            if (n >= 0)  // a pipe never takes part of a write of at most PIPE_BUF bytes
                throw_system_error(EIO, "write to the FIFO: {} of {} bytes written", n, batch_.size());
            if (errno != EAGAIN)
                throw_system_error(errno, "write to the FIFO");
            // EAGAIN: non-blocking, so there is a write timeout.
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now());
            if (left.count() <= 0)
                return false;
            const int wait_ms = static_cast<int>(std::min<std::chrono::milliseconds::rep>(left.count(), 60000));
            pollfd room{fifo_.get(), POLLOUT, 0};
            if (retry_on_eintr([&] { return ::poll(&room, 1, wait_ms); }) < 0)
                throw_system_error(errno, "poll the FIFO");
        }
    }

    unique_fd fifo_;
    duration write_timeout_;
    std::string batch_;
    std::uint64_t batched_ = 0;
    std::uint64_t delivered_ = 0;
    std::uint64_t not_delivered_ = 0;
    bool gone_ = false;
    bool stalled_ = false;
};

// Where the orders come from, and what became of them.
class order_source {
public:
    explicit order_source(order_sender& sender) : sender_{sender} {}

    // Checks one order and queues it, or logs why not. `where` names it for
    // the user: "argument 2", "stdin line 7".
    void offer(std::string_view raw, const std::string& where, bool skip_empty) {
        const checked_line line = check_line(raw);
        if (line.problem != line_problem::none) {
            reject(where, fmt::format("{} (at byte {}): '{}'", describe(line.problem), line.offset, printable(raw)));
        } else if (line.text.empty()) {
            if (!skip_empty)
                reject(where, "the order is empty");
        } else if (line.text == finish_message) {
            reject(where, "'finish' is the shop's control message, not an order; use --finish");
        } else {
            sender_.add(line.text);
        }
    }

    // Reads stdin to its end. When the consumer goes away meanwhile, the rest
    // is still read, to count what is not delivered, unless stdin is a
    // terminal (nobody would ever type its end).
    void read_stdin() {
        line_reader lines;
        std::string chunk;
        std::uint64_t line_number = 0;
        const bool terminal = ::isatty(STDIN_FILENO) == 1;
        for (;;) {
            if (sender_.consumer_gone() && terminal)
                return;
            chunk.clear();
            if (read_some(STDIN_FILENO, chunk, 65536, "stdin") == 0)
                break;
            lines.feed(chunk, [&](const line_reader::line& line) {
                ++line_number;
                const std::string where = fmt::format("stdin line {}", line_number);
                if (line.check.problem == line_problem::too_long)
                    reject(where, fmt::format("longer than 4096 bytes ({} bytes)", line.bytes));
                else
                    offer(line.raw, where, true);
            });
            // Send what this read gave us now: a person typing orders sees
            // each one served, and a file still fills 4096-byte writes.
            sender_.flush();
        }
        if (lines.mid_line()) {  // the last line had no LF: still a line
            const std::string where = fmt::format("stdin line {}", line_number + 1);
            if (lines.partial().empty())
                reject(where, "longer than 4096 bytes");
            else
                offer(std::string{lines.partial()}, where, true);
        }
    }

    [[nodiscard]] std::uint64_t rejected() const noexcept { return rejected_; }

private:
    void reject(const std::string& where, const std::string& why) {
        ++rejected_;
        spdlog::error("{}: {}; skipping it", where, why);
    }

    order_sender& sender_;
    std::uint64_t rejected_ = 0;
};

}  // namespace

options parse_command_line(int argc, char* argv[]) {
    cxxopts::Options spec{"coffee-producer", "Hands coffee orders to the shop through its FIFO."};
    spec.custom_help("[OPTION...]").positional_help("[ORDER...]");
    spec.add_options()
        ("fifo", "the shop's FIFO (default: $COFFEE_FIFO, else the per-user or system shop)", cxxopts::value<std::string>(), "PATH")
        ("wait", "how long to wait for the FIFO and a consumer (default 5s)", cxxopts::value<std::string>(), "DUR")
        ("write-timeout", "give up when the full pipe takes nothing for DUR (default: wait as long as it stays full)",
         cxxopts::value<std::string>(), "DUR")
        ("allow-other-owner", "deliver to another user's FIFO in a directory others may write to (as /tmp)")
        ("finish", "send 'finish' after the orders (stops a consumer run with --until-finish)")
        ("count", "generate N orders from the menu (Espresso #1, Arabica #2, ...)", cxxopts::value<std::uint64_t>(), "N")
        ("orders", "orders", cxxopts::value<std::vector<std::string>>());
    add_common_options(spec);
    spec.parse_positional({"orders"});

    const auto result = parse_or_usage(spec, argc, argv);
    options opts;
    opts.common = read_common_options(result, spec, help_epilogue(about_help, producer_exit_codes));
    opts.fifo = read_path_option(result, "fifo");
    if (result.count("wait") > 0)
        opts.wait = parse_duration(result["wait"].as<std::string>());
    if (result.count("write-timeout") > 0) {
        opts.write_timeout = parse_duration(result["write-timeout"].as<std::string>());
        if (opts.write_timeout <= duration::zero())
            throw usage_error("--write-timeout must be more than 0 (leave it out to wait while the pipe stays full)");
    }
    opts.allow_other_owner = result.count("allow-other-owner") > 0;
    opts.finish = result.count("finish") > 0;
    if (result.count("count") > 0)
        opts.count = result["count"].as<std::uint64_t>();
    if (result.count("orders") > 0)
        opts.orders = result["orders"].as<std::vector<std::string>>();
    return opts;
}

namespace {

// The orders named on the command line, in order; "-" (its first time) is
// where stdin's are read.
void offer_arguments(order_source& source, const std::vector<std::string>& orders) {
    bool stdin_used = false;
    for (std::size_t i = 0; i < orders.size(); ++i) {
        if (orders[i] == "-" && !stdin_used) {
            stdin_used = true;
            source.read_stdin();
        } else {
            source.offer(orders[i], fmt::format("argument {}", i + 1), false);
        }
    }
}

// --count N: "Espresso #1", "Arabica #2"... round the menu.
void send_from_menu(order_sender& sender, std::uint64_t count) {
    std::string order;
    for (std::uint64_t generated = 0; generated < count; ++generated) {
        if (sender.consumer_gone()) {
            sender.skip(count - generated);
            return;
        }
        order.assign(menu[generated % menu.size()]).append(" #");
        char digits[24];
        const auto end = std::to_chars(std::begin(digits), std::end(digits), generated + 1).ptr;
        sender.add(order.append(digits, end));
    }
}

// What was delivered, and our exit code.
int report(const options& opts, const std::filesystem::path& path, const order_sender& sender,
           const order_source& source) {
    if (sender.stalled()) {
        spdlog::error("the FIFO '{}' took nothing for {} (--write-timeout): delivered {} orders, {} not delivered{}",
                      path.native(), format_duration(opts.write_timeout), sender.delivered(), sender.not_delivered(),
                      opts.finish ? ", nor finish" : "");
        return exit_tempfail;
    }
    if (sender.consumer_gone()) {
        spdlog::error("the consumer went away ('{}'): delivered {} orders, {} not delivered{}", path.native(),
                      sender.delivered(), sender.not_delivered(), opts.finish ? ", nor finish" : "");
        return exit_io;
    }
    spdlog::info("delivered {} orders to '{}'{}", sender.delivered(), path.native(),
                 opts.finish ? " and finish" : "");
    if (source.rejected() > 0) {
        spdlog::error("{} malformed orders were skipped", source.rejected());
        return exit_data;
    }
    return exit_ok;
}

}  // namespace

int run(const options& opts) {
    ignore_sigpipe();  // a consumer that goes away is EPIPE, handled below
    const std::filesystem::path path = opts.fifo.empty() ? default_fifo_path(true) : opts.fifo;
    // `... | coffee-producer --finish` sends the piped orders, then finish;
    // at a terminal, --finish alone sends just finish.
    const bool use_stdin = opts.orders.empty() && opts.count == 0 && (!opts.finish || ::isatty(STDIN_FILENO) != 1);

    order_sender sender{open_fifo_for_writing(path, opts.wait, opts.allow_other_owner), opts.write_timeout};
    spdlog::debug("writing orders to '{}'", path.native());
    order_source source{sender};
    offer_arguments(source, opts.orders);
    if (use_stdin)
        source.read_stdin();
    send_from_menu(sender, opts.count);
    if (opts.finish)
        sender.add(finish_message, false);
    sender.flush();
    return report(opts, path, sender, source);
}

}  // namespace coffee::producer
