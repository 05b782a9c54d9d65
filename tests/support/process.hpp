#pragma once
// Test support: start the built programs as real child processes, with
// their stdio in files or pipes, and wait for them with a deadline.
#include "scratch.hpp"

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace coffee::test {

struct spawn_options {
    std::filesystem::path stdin_file{};   // empty: /dev/null
    std::filesystem::path stdout_file{};  // empty: /dev/null
    int stdout_fd = -1;  // when set, stdout is this descriptor (its offset and flags), not stdout_file
    std::filesystem::path stderr_file{};  // empty: /dev/null
    std::map<std::string, std::string> env{};  // added to (or replacing in) our environment
    std::vector<std::string> unset_env{};
};

// A started child. The destructor SIGKILLs and reaps it if still running.
class process {
public:
    process(const std::vector<std::string>& argv, const spawn_options& options = {});
    ~process();
    process(process&& other) noexcept;
    process(const process&) = delete;
    process& operator=(const process&) = delete;
    process& operator=(process&&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    void kill(int sig) const;
    // Exit code, or 128+signal; std::nullopt if still running at the deadline.
    std::optional<int> wait_for(std::chrono::milliseconds timeout);
    // Like wait_for, but fails the test (and kills the child) on timeout.
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds{30});

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

// Runs to completion; returns the exit code (or 128+signal).
int run(const std::vector<std::string>& argv, const spawn_options& options = {},
        std::chrono::milliseconds timeout = std::chrono::seconds{30});

// Polls `condition` every `every` (10 ms unless a test must act within a
// moment of the event) until it holds or `timeout` passes.
template <typename F>
bool eventually(F&& condition, std::chrono::milliseconds timeout = std::chrono::seconds{10},
                std::chrono::microseconds every = std::chrono::milliseconds{10});

// Waits until our child `pid` has stopped (SIGSTOP), all of its threads:
// what waitpid(WUNTRACED) reports, read with WNOWAIT so that its owner still
// reaps it. False if it exited instead, or at the deadline.
[[nodiscard]] bool wait_stopped(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds{10});

}  // namespace coffee::test

#include <thread>

template <typename F>
bool coffee::test::eventually(F&& condition, std::chrono::milliseconds timeout, std::chrono::microseconds every) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(every);
    }
    return true;
}
