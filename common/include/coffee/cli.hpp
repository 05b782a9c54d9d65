#pragma once
#include <spdlog/common.h>

// cxxopts splits the value of a vector option (our ORDER arguments) at this
// character, ',' by default: "Latte, oat milk" would be two orders. An
// argument is one value whatever it contains, and no argv string holds a NUL.
// Every user of cxxopts includes it through this header (checked below), so
// the whole program agrees on it.
#ifdef CXXOPTS_HPP_INCLUDED
#error "include <coffee/cli.hpp> instead of <cxxopts.hpp>"
#endif
#define CXXOPTS_VECTOR_DELIMITER '\0'
#include <cxxopts.hpp>

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

// The command-line conventions the three programs share: --help, --version,
// -q, -v, --log-level, usage errors as exit 64, and one place that maps
// exceptions to exit codes.
namespace coffee {

// Adds --help, --version, -q/--quiet, -v/--verbose and --log-level.
void add_common_options(cxxopts::Options& options);

// What the shared options asked for.
struct common_options {
    spdlog::level::level_enum log_level = spdlog::level::info;
    bool show_help = false;
    bool show_version = false;
    std::string help_text;
};

// Parses argv; cxxopts' errors become usage_error (their type changed names
// between cxxopts versions; this is the one place that knows).
[[nodiscard]] cxxopts::ParseResult parse_or_usage(cxxopts::Options& options, int argc, char* argv[]);

// Reads the options add_common_options() added. Throws usage_error.
// exit_codes_help: what --help prints after the options (help_epilogue).
[[nodiscard]] common_options read_common_options(const cxxopts::ParseResult& result, const cxxopts::Options& options,
                                                 std::string_view exit_codes_help);

// `about`, then "Exit codes:" and `exit_codes`: the list generated from the
// EXIT STATUS section of the program's man page (<coffee/PROGRAM_exit_codes.hpp>).
[[nodiscard]] std::string help_epilogue(std::string_view about, std::string_view exit_codes);

// The value of a path option such as --fifo: empty when it was not given.
// Throws usage_error when it was given empty.
[[nodiscard]] std::filesystem::path read_path_option(const cxxopts::ParseResult& result, const std::string& name);

// --fifo-mode: an octal mode up to 0777 that lets the owner read (the shop
// reads its FIFO) and nobody else (orders are customers' data: no read bit
// for group or others). Throws usage_error naming the text otherwise.
[[nodiscard]] mode_t parse_fifo_mode(const std::string& text);

// The whole of a program's main(): makes fds 0-2 valid, parses (usage_error
// -> "program: message (see --help)" and exit 64), prints --help/--version,
// sets up logging, then runs and maps what escapes to an exit code
// (exit_error -> its code; system_error -> 77 for EACCES/EPERM, else 74;
// anything else -> 1), logging it once.
template <typename Options>
int program_main(std::string_view program, int argc, char* argv[],
                 const std::function<Options(int, char*[])>& parse,
                 const std::function<int(const Options&)>& run);

namespace detail {
int report_usage_error(std::string_view program, const std::exception& e);
bool handle_help_and_version(std::string_view program, const common_options& common);
void start_logging(std::string_view program, const common_options& common);
int exit_code_for_exception(std::exception_ptr error);
void prepare_std_fds();
}  // namespace detail

template <typename Options>
int program_main(std::string_view program, int argc, char* argv[],
                 const std::function<Options(int, char*[])>& parse,
                 const std::function<int(const Options&)>& run) {
    detail::prepare_std_fds();
    Options opts;
    try {
        opts = parse(argc, argv);
    } catch (const std::exception& e) {
        return detail::report_usage_error(program, e);
    }
    if (detail::handle_help_and_version(program, opts.common))
        return 0;
    detail::start_logging(program, opts.common);
    try {
        return run(opts);
    } catch (...) {
        return detail::exit_code_for_exception(std::current_exception());
    }
}

}  // namespace coffee
