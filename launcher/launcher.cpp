#include "launcher.hpp"

#include <coffee/errors.hpp>
#include <coffee/launcher_exit_codes.hpp>
#include <coffee/posix.hpp>
#include <coffee/signals.hpp>

#include <spdlog/common.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

namespace coffee::launcher {

namespace {

constexpr std::string_view general_help = R"(coffee-launcher: starts the coffee shop's processes with fork/exec and wires them with pipes.

Usage:
  coffee-launcher demo  [--scenario rush|quiet] [--no-live] [--producers N] [--orders M]
                        [--brew-time DUR] [--timeout DUR] [--baristas K]
  coffee-launcher pipe  [--input TEXT | --input-file F] [-- COMMAND ARGS...]
  coffee-launcher serve [--fifo PATH] [--restart-delay DUR] [--start-limit N] [-- CONSUMER OPTIONS...]
  coffee-launcher MODE --help

demo   the blog post's shop: a private FIFO, one coffee-consumer, N coffee-producers;
       sends "finish" once every producer is done, prints a summary per child.
       On a terminal, a live view shows the pipe fill, customers block and
       baristas brew; --scenario rush or quiet shows a morning rush or a quiet
       afternoon.
pipe   runs COMMAND (default: cat) with its stdin and stdout on pipes; feeds it
       --input, --input-file, our stdin when it is not a terminal, else the
       blog post's "Hello from child!"; copies its output to our stdout.
serve  holds the shop's FIFO open and supervises coffee-consumer on it
       (socket activation: the FIFO is fd 3, LISTEN_FDS=1), restarting it
       when it crashes; orders wait in the pipe while it is down.

Durations: 250ms, 4s, 1m. Logs go to stderr; --log-level, -q, -v.
)";

constexpr std::string_view demo_help = R"(
Served orders go to stdout (the consumer's output, through a pipe); logs and
the summary (one line per child: pid and exit status) go to stderr.

Scenarios (explicit options still win):
  rush   8 customers order 425 coffees each at once; 2 baristas, 5ms a cup:
         the pipe (64 KiB) fills, customers block in write(), then it drains
  quiet  8 customers come one at a time, 600ms apart, 1 coffee each;
         2 baristas, 400ms a cup: the baristas wait on an empty pipe

When stderr is a terminal (TERM set, not "dumb"), a live view is redrawn
there 10 times a second, served orders and logs scrolling above it; NO_COLOR
turns its colours off. Otherwise, or with --no-live, one summary line a
second goes to the log (info). With a view or a scenario, the children log
warnings only, unless --log-level, -q or -v says otherwise.
)";

constexpr std::string_view pipe_help = R"(
COMMAND is looked up in $PATH unless it contains a '/'. The input and the
output are binary-safe and may be of any size in both directions.
)";

constexpr std::string_view serve_help = R"(
The consumer runs as: coffee-consumer --fifo PATH CONSUMER OPTIONS..., with the
FIFO as fd 3 and LISTEN_FDS=1, LISTEN_PID, LISTEN_FDNAMES=orders. It is
restarted when it crashes or fails, after --restart-delay (doubling up to 5s
while it keeps failing). After --start-limit failed starts within
--start-interval, serve waits: it keeps the FIFO and retries after 1s,
doubling up to 30s, until a consumer stays up for --start-interval. It gives
up (exit 1) only when the FIFO is empty and the failure is not one that may
pass: the consumer's exit 74 (a full or read-only disk...) or 75 (its journal
still locked), and SIGKILL (out of memory), are always waited out. The
consumer stops as on SIGTERM when serve dies. SIGTERM and SIGINT stop it
gracefully (then SIGKILL after --stop-timeout); SIGHUP is forwarded.

Serve never ends holding orders silently. When it is about to end (the
consumer finished on its own or stopped) and orders are still in the FIFO, it
starts the consumer once more and asks it to stop (SIGTERM) as soon as it can
take the request, which moves the pipe's whole lines into the consumer's
journal. Whatever is still in the FIFO then is logged at error level (bytes
and whole lines) and serve exits 74.
)";

// Splits argv at the first "--": what is before goes to cxxopts.
struct split_args {
    std::vector<char*> own;
    std::vector<std::string> after;
    bool has_separator = false;
};

split_args split_at_separator(int argc, char* argv[], int first) {
    split_args out;
    out.own.push_back(argv[0]);
    int i = first;
    for (; i < argc; ++i) {
        if (std::string_view{argv[i]} == "--") {
            out.has_separator = true;
            ++i;
            break;
        }
        out.own.push_back(argv[i]);
    }
    for (; i < argc; ++i)
        out.after.emplace_back(argv[i]);
    return out;
}

void reject_positionals(const cxxopts::ParseResult& result, std::string_view hint) {
    if (!result.unmatched().empty())
        throw usage_error(fmt::format("unexpected argument '{}'{}", result.unmatched().front(), hint));
}

duration duration_option(const cxxopts::ParseResult& result, const std::string& name, duration fallback) {
    return result.count(name) > 0 ? parse_duration(result[name].as<std::string>()) : fallback;
}

template <typename T>
T positive_option(const cxxopts::ParseResult& result, const std::string& name, T fallback, T max) {
    if (result.count(name) == 0)
        return fallback;
    const T value = result[name].template as<T>();
    if (value < 1 || value > max)
        throw usage_error(fmt::format("--{} must be between 1 and {}", name, max));
    return value;
}

cxxopts::ParseResult parse_mode_options(cxxopts::Options& o, std::vector<char*>& args) {
    o.allow_unrecognised_options();  // unmatched positionals are reported by reject_positionals()
    add_common_options(o);
    return parse_or_usage(o, static_cast<int>(args.size()), args.data());
}

void check_no_unknown_options(const cxxopts::ParseResult& result) {
    for (const std::string& arg : result.unmatched()) {
        if (arg.size() > 1 && arg.front() == '-')
            throw usage_error(fmt::format("unknown option '{}'", arg));
    }
}

// The scenario's shape; options given after it on the command line or
// before it change it.
void apply_scenario(demo_options& d, const std::string& name) {
    using namespace std::chrono_literals;
    if (name == "rush") {
        d.scenario = demo_scenario::rush;
        d.producers = 8;
        d.orders = 425;
        d.baristas = 2;
        d.brew_time = 5ms;
        d.timeout = 60s;
    } else if (name == "quiet") {
        d.scenario = demo_scenario::quiet;
        d.producers = 8;
        d.orders = 1;
        d.baristas = 2;
        d.brew_time = 400ms;
        d.arrival_interval = 600ms;
        d.timeout = 60s;
    } else {
        throw usage_error(fmt::format("unknown --scenario '{}': use rush or quiet", name));
    }
}

void parse_demo(options& opts, int argc, char* argv[]) {
    cxxopts::Options o{"coffee-launcher demo", "Runs the blog post's coffee shop as separate processes over a private FIFO."};
    o.add_options()
        ("scenario", "rush or quiet: see below", cxxopts::value<std::string>(), "NAME")
        ("no-live", "no live view, even on a terminal: one summary line a second instead")
        ("producers", "number of coffee-producer processes (default 1)", cxxopts::value<unsigned>(), "N")
        ("orders", "orders per producer (default: the menu, Espresso Arabica Latte Cappuccino)", cxxopts::value<unsigned>(), "M")
        ("brew-time", "the consumer's brew time per order (default 4s)", cxxopts::value<std::string>(), "DUR")
        ("timeout", "the consumer's --timeout (default 10s)", cxxopts::value<std::string>(), "DUR")
        ("baristas", "the consumer's --baristas (default: the consumer's)", cxxopts::value<unsigned>(), "K")
        ("producer", "producer program (default coffee-producer next to us, else $PATH)", cxxopts::value<std::string>(), "PATH")
        ("consumer", "consumer program (default coffee-consumer next to us, else $PATH)", cxxopts::value<std::string>(), "PATH")
        ("stop-timeout", "after SIGTERM/SIGINT, how long children get before SIGKILL (default 5s)", cxxopts::value<std::string>(), "DUR");
    split_args args = split_at_separator(argc, argv, 2);
    if (args.has_separator)
        throw usage_error("demo takes no command after '--'");
    const auto result = parse_mode_options(o, args.own);
    opts.common = read_common_options(result, o, help_epilogue(demo_help, launcher_demo_exit_codes));
    check_no_unknown_options(result);
    reject_positionals(result, "");
    demo_options& d = opts.demo;
    if (result.count("scenario") > 0)
        apply_scenario(d, result["scenario"].as<std::string>());
    d.live = result.count("no-live") == 0;
    d.producers = positive_option<unsigned>(result, "producers", d.producers, 1000);
    d.orders = positive_option<unsigned>(result, "orders", d.orders, 10'000'000);
    d.brew_time = duration_option(result, "brew-time", d.brew_time);
    d.timeout = duration_option(result, "timeout", d.timeout);
    if (result.count("baristas") > 0)
        d.baristas = positive_option<unsigned>(result, "baristas", 1, 1000);
    if (result.count("producer") > 0)
        d.producer_program = result["producer"].as<std::string>();
    if (result.count("consumer") > 0)
        d.consumer_program = result["consumer"].as<std::string>();
    d.stop_timeout = duration_option(result, "stop-timeout", d.stop_timeout);
    if (result.count("log-level") + result.count("quiet") + result.count("verbose") > 0) {
        const auto name = spdlog::level::to_string_view(opts.common.log_level);
        d.child_log_level.assign(name.data(), name.size());
    }
}

void parse_pipe(options& opts, int argc, char* argv[]) {
    cxxopts::Options o{"coffee-launcher pipe", "Runs COMMAND with its stdin and stdout on anonymous pipes."};
    o.custom_help("[--input TEXT | --input-file F] [OPTIONS...]");
    o.positional_help("[-- COMMAND ARGS...]");
    o.add_options()
        ("input", "what to write to the command's stdin", cxxopts::value<std::string>(), "TEXT")
        ("input-file", "a file to copy to the command's stdin", cxxopts::value<std::string>(), "F")
        ("wait-delay", "after the command exits, how long a process it left behind may keep its output open (default 2s)",
         cxxopts::value<std::string>(), "DUR")
        ("stop-timeout", "after SIGTERM/SIGINT, how long the command gets before SIGKILL (default 5s)", cxxopts::value<std::string>(), "DUR");
    split_args args = split_at_separator(argc, argv, 2);
    const auto result = parse_mode_options(o, args.own);
    opts.common = read_common_options(result, o, help_epilogue(pipe_help, launcher_pipe_exit_codes));
    check_no_unknown_options(result);
    reject_positionals(result, " (put the command after '--')");
    pipe_options& p = opts.pipe;
    if (result.count("input") > 0 && result.count("input-file") > 0)
        throw usage_error("--input and --input-file exclude each other");
    if (result.count("input") > 0)
        p.input = result["input"].as<std::string>();
    if (result.count("input-file") > 0)
        p.input_file = result["input-file"].as<std::string>();
    if (args.has_separator) {
        if (args.after.empty())
            throw usage_error("no command after '--'");
        p.command = std::move(args.after);
    }
    p.wait_delay = duration_option(result, "wait-delay", p.wait_delay);
    p.stop_timeout = duration_option(result, "stop-timeout", p.stop_timeout);
}

void parse_serve(options& opts, int argc, char* argv[]) {
    cxxopts::Options o{"coffee-launcher serve", "Holds the shop's FIFO and supervises coffee-consumer on it."};
    o.positional_help("[-- CONSUMER OPTIONS...]");
    o.add_options()
        ("fifo", "the FIFO (default: $COFFEE_FIFO, else the per-user or system shop's)", cxxopts::value<std::string>(), "PATH")
        ("fifo-mode", "mode when creating the FIFO (default 0600)", cxxopts::value<std::string>(), "MODE")
        ("consumer", "consumer program (default coffee-consumer next to us, else $PATH)", cxxopts::value<std::string>(), "PATH")
        ("restart-delay", "first delay before a restart (default 100ms); doubles while it keeps failing", cxxopts::value<std::string>(), "DUR")
        ("start-limit", "failed starts per --start-interval before waiting, or giving up with the FIFO empty (default 5)", cxxopts::value<unsigned>(), "N")
        ("start-interval", "the window of --start-limit (default 10s; more than 0)", cxxopts::value<std::string>(), "DUR")
        ("stop-timeout", "after SIGTERM/SIGINT, how long the consumer gets before SIGKILL (default 10s)", cxxopts::value<std::string>(), "DUR");
    split_args args = split_at_separator(argc, argv, 2);
    const auto result = parse_mode_options(o, args.own);
    opts.common = read_common_options(result, o, help_epilogue(serve_help, launcher_serve_exit_codes));
    check_no_unknown_options(result);
    reject_positionals(result, " (put consumer options after '--')");
    serve_options& s = opts.serve;
    s.fifo = read_path_option(result, "fifo");
    if (result.count("fifo-mode") > 0)
        s.fifo_mode = parse_fifo_mode(result["fifo-mode"].as<std::string>());
    if (result.count("consumer") > 0)
        s.consumer_program = result["consumer"].as<std::string>();
    s.consumer_args = std::move(args.after);
    s.restart_delay = duration_option(result, "restart-delay", s.restart_delay);
    s.start_limit = positive_option<unsigned>(result, "start-limit", s.start_limit, 1000);
    s.start_interval = duration_option(result, "start-interval", s.start_interval);
    if (s.start_interval.count() == 0)
        throw usage_error("--start-interval must be longer than 0 (0 would turn the start limit off)");
    s.stop_timeout = duration_option(result, "stop-timeout", s.stop_timeout);
}

}  // namespace

options parse_command_line(int argc, char* argv[]) {
    options opts;
    const std::string_view first = argc > 1 ? std::string_view{argv[1]} : std::string_view{};
    if (first == "-h" || first == "--help") {
        opts.common.show_help = true;
        opts.common.help_text = std::string{general_help};
        return opts;
    }
    if (first == "--version") {
        opts.common.show_version = true;
        return opts;
    }
    if (first == "demo") {
        opts.mode = launch_mode::demo;
        parse_demo(opts, argc, argv);
    } else if (first == "pipe") {
        opts.mode = launch_mode::pipe;
        parse_pipe(opts, argc, argv);
    } else if (first == "serve") {
        opts.mode = launch_mode::serve;
        parse_serve(opts, argc, argv);
    } else if (first.empty()) {
        throw usage_error("missing mode: demo, pipe or serve");
    } else {
        throw usage_error(fmt::format("unknown mode '{}': use demo, pipe or serve", first));
    }
    return opts;
}

int run(const options& opts) {
    // Writes to a pipe whose reader left must fail with EPIPE, not kill us.
    // Children get SIGPIPE back: child_process resets every disposition.
    ignore_sigpipe();
    // Blocked before any child exists; children get an empty mask.
    const unique_fd signals = block_and_watch({SIGCHLD, SIGTERM, SIGINT, SIGHUP});
    switch (opts.mode) {
    case launch_mode::demo: return run_demo(opts.demo, signals);
    case launch_mode::pipe: return run_pipe(opts.pipe, signals);
    case launch_mode::serve: return run_serve(opts.serve, signals);
    }
    return exit_failure;
}

namespace detail {

std::string find_sibling_program(const std::string& name) {
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        // Installed: side by side. Build tree: build/launcher/coffee-launcher
        // next to build/consumer/coffee-consumer.
        const std::string role = name.substr(name.find('-') + 1);
        for (const auto& candidate : {self.parent_path() / name, self.parent_path().parent_path() / role / name}) {
            if (::access(candidate.c_str(), X_OK) == 0)
                return candidate.native();
        }
    }
    return name;
}

int poll_timeout(std::optional<clock::time_point> deadline) {
    if (!deadline)
        return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - clock::now()).count();
    return static_cast<int>(std::clamp<decltype(left)>(left, 0, 60'000));
}

std::optional<clock::time_point> earliest(std::optional<clock::time_point> a, std::optional<clock::time_point> b) {
    if (!a)
        return b;
    if (!b)
        return a;
    return std::min(*a, *b);
}

int exit_code_for_exec_errno(int err) noexcept { return err == ENOENT || err == ENOTDIR ? 127 : 126; }

}  // namespace detail

}  // namespace coffee::launcher
