#include <coffee/cli.hpp>

#include <coffee/errors.hpp>
#include <coffee/logging.hpp>
#include <coffee/posix.hpp>

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdio>

#ifndef COFFEE_VERSION
#define COFFEE_VERSION "unknown"
#endif

namespace coffee {

void add_common_options(cxxopts::Options& options) {
    options.add_options("Logging and help")
        ("log-level", "trace, debug, info, warn, error, critical or off (default info)", cxxopts::value<std::string>(), "LEVEL")
        ("q,quiet", "only warnings and errors (--log-level warn)")
        ("v,verbose", "debug messages too (--log-level debug)")
        ("h,help", "print this help and exit")
        ("version", "print the version and exit");
}

cxxopts::ParseResult parse_or_usage(cxxopts::Options& options, int argc, char* argv[]) {
    try {
        return options.parse(argc, argv);
    } catch (const cxxopts::exceptions::exception& e) {
        throw usage_error(e.what());
    }
}

common_options read_common_options(const cxxopts::ParseResult& result, const cxxopts::Options& options,
                                   std::string_view exit_codes_help) {
    common_options common;
    common.show_help = result.count("help") > 0;
    common.show_version = result.count("version") > 0;
    if (common.show_help)
        common.help_text = options.help() + std::string{exit_codes_help};
    const std::size_t level_options = result.count("log-level") + result.count("quiet") + result.count("verbose");
    if (level_options > 1)
        throw usage_error("--log-level, --quiet and --verbose exclude each other");
    if (result.count("log-level") > 0)
        common.log_level = parse_log_level(result["log-level"].as<std::string>());
    else if (result.count("quiet") > 0)
        common.log_level = spdlog::level::warn;
    else if (result.count("verbose") > 0)
        common.log_level = spdlog::level::debug;
    return common;
}

std::string help_epilogue(std::string_view about, std::string_view exit_codes) {
    return fmt::format("{}\nExit codes:\n{}", about, exit_codes);
}

std::filesystem::path read_path_option(const cxxopts::ParseResult& result, const std::string& name) {
    if (result.count(name) == 0)
        return {};
    std::filesystem::path path = result[name].as<std::string>();
    if (path.empty())
        throw usage_error(fmt::format("--{}: the path is empty", name));
    return path;
}

mode_t parse_fifo_mode(const std::string& text) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
    if (ec != std::errc{} || end != text.data() + text.size() || text.empty() || value > 0777)
        throw usage_error(fmt::format("--fifo-mode: '{}' is not an octal mode like 0600 or 0620", text));
    if ((value & 0400U) == 0)
        throw usage_error(fmt::format("--fifo-mode: {:04o} does not let the shop itself read", value));
    if ((value & 0044U) != 0)
        throw usage_error(fmt::format("--fifo-mode: {:04o} lets {} read the orders; only the shop may (e.g. 0600, 0620)",
                                      value, (value & 0004U) != 0 ? "everyone" : "the group"));
    return static_cast<mode_t>(value);
}

namespace detail {

void prepare_std_fds() { ensure_std_fds_open(); }

int report_usage_error(std::string_view program, const std::exception& e) {
    std::fprintf(stderr, "%.*s: %s (see --help)\n", static_cast<int>(program.size()), program.data(), e.what());
    return exit_usage;
}

bool handle_help_and_version(std::string_view program, const common_options& common) {
    if (common.show_help) {
        std::fputs(common.help_text.c_str(), stdout);
        return true;
    }
    if (common.show_version) {
        std::printf("%.*s %s\n", static_cast<int>(program.size()), program.data(), COFFEE_VERSION);
        return true;
    }
    return false;
}

void start_logging(std::string_view program, const common_options& common) { init_logging(program, common.log_level); }

int exit_code_for_exception(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const exit_error& e) {
        spdlog::error("{}", e.what());
        return e.code();
    } catch (const usage_error& e) {
        spdlog::error("{}", e.what());
        return exit_usage;
    } catch (const std::system_error& e) {
        spdlog::error("{}", e.what());
        return exit_code_for(e);
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return exit_failure;
    }
}

}  // namespace detail

}  // namespace coffee
