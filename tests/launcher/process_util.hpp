#pragma once
// Running real processes from the launcher's tests: pipes on all three
// standard fds, one poll() loop, a deadline that SIGKILLs instead of hanging.
#include <coffee/child_process.hpp>
#include <coffee/unique_fd.hpp>

#include "support/scratch.hpp"

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coffee::test {

struct run_result {
    int status = -1;          // wait status
    std::string out;
    std::string err;
    bool timed_out = false;
    [[nodiscard]] int exit_code() const noexcept { return exit_code_of(status); }
};

// A child with pipes on stdin, stdout and stderr (our ends non-blocking).
struct piped_child {
    child_process process;
    unique_fd in;   // its stdin; reset() to send EOF
    unique_fd out;  // its stdout
    unique_fd err;  // its stderr
};

// Starts argv with pipes on 0, 1, 2 (or `stdin_fd` as its stdin when >= 0).
[[nodiscard]] piped_child start(const std::vector<std::string>& argv, int stdin_fd = -1,
                                const std::vector<std::string>& env = {});

// Feeds `input` (then EOF), collects stdout and stderr until both close and
// the child exits. After `timeout`: SIGKILL, timed_out = true.
run_result communicate(piped_child& child, std::string_view input = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds{30});

// start() + communicate().
run_result run(const std::vector<std::string>& argv, std::string_view input = {},
               std::chrono::milliseconds timeout = std::chrono::seconds{30});

// Streams without holding everything: `next_input` fills its buffer and
// returns false at EOF; `on_output` sees each chunk of stdout. stderr is
// collected into the result.
run_result stream(piped_child& child, const std::function<bool(std::string&)>& next_input,
                  const std::function<void(std::string_view)>& on_output,
                  std::chrono::milliseconds timeout = std::chrono::seconds{60});

// Reads lines from `fd` until `done(lines so far)` or the deadline; the
// lines accumulate in `lines` (a partial last line stays in `partial`).
bool read_lines_until(int fd, std::vector<std::string>& lines, std::string& partial,
                      const std::function<bool(const std::vector<std::string>&)>& done,
                      std::chrono::milliseconds timeout);

// Pids whose parent is `parent` (from /proc/*/stat), zombies included.
[[nodiscard]] std::vector<pid_t> children_of(pid_t parent);
// True while `pid` exists and is not a zombie.
[[nodiscard]] bool is_alive(pid_t pid);

}  // namespace coffee::test
