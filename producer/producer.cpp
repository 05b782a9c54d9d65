#include "producer.hpp"

#include <coffee/errors.hpp>
#include <coffee/fifo.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/posix.hpp>

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <array>
#include <charconv>
#include <iterator>
#include <string_view>

namespace coffee::producer {

namespace {

constexpr std::string_view exit_codes_help = R"(
Orders come from the ORDER arguments, else from stdin, one per line ("-" as
an ORDER reads stdin there). Each order is one line of UTF-8 text of at most
4095 bytes, without control characters. Whole lines are packed into writes of
at most 4096 bytes, so orders from many producers never interleave.

Exit codes:
  0   every order was delivered
  64  usage error
  65  some orders were malformed and skipped; the others were delivered
  69  no FIFO, or no consumer reading it, within --wait
  74  the consumer went away; delivered and undelivered counts are logged
  77  permission denied on the FIFO, or its directory is another user's
  78  the path is not a FIFO (regular file, symlink, directory, socket)
)";

constexpr std::array menu{"Espresso", "Arabica", "Latte", "Cappuccino"};

// Packs whole lines into writes of at most max_line_bytes: POSIX makes such
// a write to a pipe atomic, so no other producer's line lands inside ours.
class order_sender {
public:
    explicit order_sender(unique_fd fifo) : fifo_{std::move(fifo)} { batch_.reserve(max_line_bytes); }

    // Queues one line (text without LF); writes the batch first if the line
    // would not fit. Throws std::system_error when the write fails. Only
    // orders are counted, not control lines.
    void add(std::string_view text, bool is_order = true) {
        if (batch_.size() + text.size() + 1 > max_line_bytes)
            flush();
        batch_.append(text);
        batch_ += '\n';
        batched_ += is_order ? 1 : 0;
    }

    void flush() {
        if (batch_.empty())
            return;
        write_all(fifo_.get(), batch_, "the FIFO");
        delivered_ += batched_;
        batched_ = 0;
        batch_.clear();
    }

    [[nodiscard]] std::uint64_t delivered() const noexcept { return delivered_; }
    [[nodiscard]] std::uint64_t batched() const noexcept { return batched_; }

private:
    unique_fd fifo_;
    std::string batch_;
    std::uint64_t batched_ = 0;
    std::uint64_t delivered_ = 0;
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

    void read_stdin() {
        line_reader lines;
        std::string chunk;
        std::uint64_t line_number = 0;
        for (;;) {
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
        ("finish", "send 'finish' after the orders (stops a consumer run with --until-finish)")
        ("count", "generate N orders from the menu (Espresso #1, Arabica #2, ...)", cxxopts::value<std::uint64_t>(), "N")
        ("orders", "orders", cxxopts::value<std::vector<std::string>>());
    add_common_options(spec);
    spec.parse_positional({"orders"});

    const auto result = parse_or_usage(spec, argc, argv);
    options opts;
    opts.common = read_common_options(result, spec, exit_codes_help);
    opts.fifo = read_path_option(result, "fifo");
    if (result.count("wait") > 0)
        opts.wait = parse_duration(result["wait"].as<std::string>());
    opts.finish = result.count("finish") > 0;
    if (result.count("count") > 0)
        opts.count = result["count"].as<std::uint64_t>();
    if (result.count("orders") > 0)
        opts.orders = result["orders"].as<std::vector<std::string>>();
    return opts;
}

int run(const options& opts) {
    ignore_sigpipe();  // a consumer that goes away is EPIPE, handled below
    const std::filesystem::path path = opts.fifo.empty() ? default_fifo_path(true) : opts.fifo;
    const bool use_stdin = opts.orders.empty() && opts.count == 0 && !opts.finish;

    order_sender sender{open_fifo_for_writing(path, opts.wait)};
    spdlog::debug("writing orders to '{}'", path.native());
    order_source source{sender};
    std::uint64_t generated = 0;
    std::size_t next_arg = 0;
    try {
        bool stdin_used = false;
        for (; next_arg < opts.orders.size(); ++next_arg) {
            const std::size_t i = next_arg;
            if (opts.orders[i] == "-" && !stdin_used) {
                stdin_used = true;
                source.read_stdin();
            } else {
                source.offer(opts.orders[i], fmt::format("argument {}", i + 1), false);
            }
        }
        if (use_stdin)
            source.read_stdin();
        std::string order;
        for (; generated < opts.count; ++generated) {
            order.assign(menu[generated % menu.size()]).append(" #");
            char digits[24];
            const auto end = std::to_chars(std::begin(digits), std::end(digits), generated + 1).ptr;
            sender.add(order.append(digits, end));
        }
        if (opts.finish)
            sender.add(finish_message, false);
        sender.flush();
    } catch (const std::system_error& e) {
        if (e.code().value() != EPIPE)
            throw;
        // Not sent: the failed batch and the orders not reached yet (stdin
        // is not read further; its unread lines are not counted).
        const std::size_t args_left = opts.orders.size() - std::min(next_arg + 1, opts.orders.size());
        const std::uint64_t not_sent = sender.batched() + args_left + (opts.count - generated);
        spdlog::error("the consumer went away ('{}'): delivered {} orders, {} not delivered",
                      path.native(), sender.delivered(), not_sent);
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

}  // namespace coffee::producer
