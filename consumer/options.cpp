// The consumer's command line and its --help.
#include "consumer.hpp"

#include <coffee/cli.hpp>
#include <coffee/consumer_exit_codes.hpp>
#include <coffee/errors.hpp>
#include <coffee/fifo.hpp>

#include <string>
#include <vector>

namespace coffee::consumer {

namespace {

constexpr std::string_view about_help = R"(
Reads orders, one per line, from the FIFO; each of N baristas takes one,
logs "Processing order: ORDER", brews it for --brew-time, and writes the
order text as one line to stdout. Under systemd (LISTEN_FDS) the FIFO is
inherited as fd 3. An order leaves the pipe only once it is on stdout or in
the journal (where it is marked served once its line is on stdout); with
--brew-time 0 orders go straight from the pipe to stdout; a start serves the
journal's unserved orders first. SIGTERM, SIGINT, --timeout and 'finish'
(with --until-finish) stop gracefully: orders being brewed finish; the
others, and the whole lines still in the pipe, wait in the journal.
)";

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
        ("journal", "the order journal: every order taken from the pipe, until served (default: $STATE_DIRECTORY/journal, else FIFO.journal)",
         cxxopts::value<std::string>(), "PATH")
        ("sync", "make each take durable in the journal (one fdatasync) before its orders leave the pipe")
        ("queue-size", "orders read ahead of the baristas (default: 1024 with --brew-time 0, else 2 per barista)",
         cxxopts::value<std::size_t>(), "N")
        ("fifo-mode", "mode of a FIFO the shop creates (default 0600; no read bits for group or others)", cxxopts::value<std::string>(), "MODE")
        ("allow-world-writable", "accept an existing FIFO that everyone may write to");
    add_common_options(spec);

    // --backlog is the old name of --journal, still accepted for old configs.
    // Only there may an old text backlog sit at the journal's path: anything
    // else there that is not a journal is damage, reported and never served.
    bool backlog_option = false;
    std::vector<std::string> args(argv, argv + argc);
    for (std::string& arg : args) {
        if (arg == "--backlog")
            arg = "--journal";
        else if (arg.starts_with("--backlog="))
            arg = "--journal=" + arg.substr(10);
        else if (arg == "--")
            break;
        else
            continue;
        backlog_option = true;
    }
    std::vector<char*> renamed;
    for (std::string& arg : args)
        renamed.push_back(arg.data());
    renamed.push_back(nullptr);
    const auto result = parse_or_usage(spec, argc, renamed.data());
    if (!result.unmatched().empty())
        throw usage_error(fmt::format("unexpected argument '{}'", result.unmatched().front()));
    options opts;
    opts.common = read_common_options(result, spec, help_epilogue(about_help, consumer_exit_codes));
    opts.journal_may_be_old_backlog = backlog_option;
    opts.fifo = read_path_option(result, "fifo");
    opts.journal = read_path_option(result, "journal");
    opts.sync = result.count("sync") > 0;
    if (result.count("baristas") > 0)
        opts.baristas = result["baristas"].as<unsigned>();
    if (opts.baristas < 1 || opts.baristas > 256)
        throw usage_error(fmt::format("--baristas: {} is not between 1 and 256", opts.baristas));
    if (result.count("brew-time") > 0)
        opts.brew_time = parse_duration(result["brew-time"].as<std::string>());
    if (result.count("timeout") > 0)
        opts.timeout = parse_duration(result["timeout"].as<std::string>());
    opts.until_finish = result.count("until-finish") > 0;
    // Orders taken ahead wait in the journal, not in the pipe, where another
    // consumer could not take them. Take ahead only as far as keeps the
    // baristas busy.
    opts.queue_size = opts.instant() ? 1024 : 2 * std::size_t{opts.baristas};
    if (result.count("queue-size") > 0)
        opts.queue_size = result["queue-size"].as<std::size_t>();
    if (opts.queue_size < 1 || opts.queue_size > 65536)
        throw usage_error(fmt::format("--queue-size: {} is not between 1 and 65536", opts.queue_size));
    if (result.count("fifo-mode") > 0)
        opts.fifo_mode = parse_fifo_mode(result["fifo-mode"].as<std::string>());
    opts.allow_world_writable = result.count("allow-world-writable") > 0;
    return opts;
}

}  // namespace coffee::consumer
