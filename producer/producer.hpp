#pragma once
#include <coffee/cli.hpp>
#include <coffee/duration.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace coffee::producer {

struct options {
    common_options common;
    std::filesystem::path fifo;          // empty: default_fifo_path(true)
    duration wait = std::chrono::seconds{5};
    duration write_timeout{};            // --write-timeout: zero waits while the pipe stays full
    bool allow_other_owner = false;      // --allow-other-owner
    bool finish = false;
    std::uint64_t count = 0;             // --count: generated orders
    std::vector<std::string> orders;     // ORDER arguments; "-" is stdin
};

// Parses argv. Throws usage_error.
[[nodiscard]] options parse_command_line(int argc, char* argv[]);

// Sends the orders; returns the exit code (0, 65 bad orders, 74 consumer
// went away, 75 the pipe took nothing for write_timeout). Throws exit_error /
// system_error for the rest.
[[nodiscard]] int run(const options& opts);

}  // namespace coffee::producer
