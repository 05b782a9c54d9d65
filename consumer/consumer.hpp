#pragma once
#include <coffee/cli.hpp>
#include <coffee/duration.hpp>

#include <sys/types.h>

#include <cstddef>
#include <filesystem>

namespace coffee::consumer {

struct options {
    common_options common;
    std::filesystem::path fifo;     // empty: inherited fd 3, else default_fifo_path(false)
    std::filesystem::path journal;  // empty: $STATE_DIRECTORY/journal, else <fifo>.journal
    bool journal_may_be_old_backlog = false;  // given as --backlog: a text backlog there is migrated
    bool sync = false;              // fdatasync each journal append before taking the orders
    unsigned baristas = 1;
    duration brew_time = std::chrono::seconds{4};
    duration timeout{0};            // 0: no deadline
    bool until_finish = false;
    std::size_t queue_size = 1024;  // parse_command_line: 1024 if brewing is instant, else 2 per barista
    mode_t fifo_mode = 0600;
    bool allow_world_writable = false;

    // Orders are served as soon as they are read (--brew-time 0).
    [[nodiscard]] bool instant() const noexcept { return brew_time.count() == 0; }
};

// Parses argv (options.cpp). Throws usage_error.
[[nodiscard]] options parse_command_line(int argc, char* argv[]);

// Runs the shop until it is stopped (signal, --timeout, finish, EOF).
// Returns the exit code: 0, or 74 when stdout or the journal failed.
// Throws exit_error / system_error when it cannot start.
[[nodiscard]] int run(const options& opts);

}  // namespace coffee::consumer
