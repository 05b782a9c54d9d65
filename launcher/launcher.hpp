#pragma once
#include <coffee/cli.hpp>
#include <coffee/duration.hpp>
#include <coffee/posix.hpp>
#include <coffee/unique_fd.hpp>

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace coffee::launcher {

enum class launch_mode { demo, pipe, serve };

enum class demo_scenario { none, rush, quiet };

// `coffee-launcher demo`: the blog post's shop as separate processes.
struct demo_options {
    demo_scenario scenario = demo_scenario::none;
    bool live = true;                  // --no-live: never the live view, summary lines instead
    duration arrival_interval{0};      // customers come one at a time, this far apart; 0: all at once
    unsigned producers = 1;
    unsigned orders = 0;  // per producer; 0: the blog post's menu, one of each
    duration brew_time = std::chrono::seconds{4};
    duration timeout = std::chrono::seconds{10};
    std::optional<unsigned> baristas;  // unset: the consumer's default
    std::string producer_program;      // empty: coffee-producer next to us, else $PATH
    std::string consumer_program;      // empty: coffee-consumer next to us, else $PATH
    duration stop_timeout = std::chrono::seconds{5};
    std::string child_log_level;       // passed on as --log-level when -q/-v/--log-level was given
};

// `coffee-launcher pipe`: any command with its stdin and stdout on pipes.
struct pipe_options {
    std::optional<std::string> input;                  // --input TEXT
    std::optional<std::filesystem::path> input_file;   // --input-file F
    std::vector<std::string> command{"cat"};
    duration wait_delay = std::chrono::seconds{2};     // output kept open after the child's exit
    duration stop_timeout = std::chrono::seconds{5};
};

// `coffee-launcher serve`: supervises a consumer on a FIFO it holds.
struct serve_options {
    std::filesystem::path fifo;  // empty: default_fifo_path(false)
    mode_t fifo_mode = 0600;
    std::string consumer_program;  // empty: coffee-consumer next to us, else $PATH
    std::vector<std::string> consumer_args;  // after "--"
    duration restart_delay = std::chrono::milliseconds{100};
    duration max_restart_delay = std::chrono::seconds{5};
    unsigned start_limit = 5;
    duration start_interval = std::chrono::seconds{10};
    duration stop_timeout = std::chrono::seconds{10};
};

struct options {
    common_options common;
    launch_mode mode = launch_mode::demo;
    demo_options demo;
    pipe_options pipe;
    serve_options serve;
};

// Parses argv: a mode, its options, and for pipe/serve what follows "--".
// Throws usage_error.
[[nodiscard]] options parse_command_line(int argc, char* argv[]);

// Runs the mode; returns the exit code.
[[nodiscard]] int run(const options& opts);

// The modes, each given the signalfd that run() set up for SIGCHLD, SIGTERM,
// SIGINT and SIGHUP (blocked; SIGPIPE ignored).
[[nodiscard]] int run_demo(const demo_options& opts, const unique_fd& signals);
[[nodiscard]] int run_pipe(const pipe_options& opts, const unique_fd& signals);
[[nodiscard]] int run_serve(const serve_options& opts, const unique_fd& signals);

// Shared by the modes.
namespace detail {

using clock = std::chrono::steady_clock;

// `name` next to our own executable (/proc/self/exe) if it is there and
// executable, else in the build tree's ../<name without "coffee-">/, else
// `name` itself, for a $PATH lookup at spawn.
[[nodiscard]] std::string find_sibling_program(const std::string& name);

// poll() timeout in ms until `deadline` (0 if passed), or -1 without one.
[[nodiscard]] int poll_timeout(std::optional<clock::time_point> deadline);
[[nodiscard]] std::optional<clock::time_point> earliest(std::optional<clock::time_point> a,
                                                        std::optional<clock::time_point> b);

// Exit code for a command that could not be exec'd, like a shell: 127 when
// it was not found, 126 when it is not executable.
[[nodiscard]] int exit_code_for_exec_errno(int err) noexcept;

// Grows a pipe we make or hold (best effort) to the most a user may ask
// for, else to at least a new pipe's size: fewer wake-ups per byte.
inline void grow_pipe_best_effort(int fd) noexcept { (void)grow_pipe(fd, user_max_pipe_size, new_pipe_size); }

}  // namespace detail

}  // namespace coffee::launcher
