#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace coffee {

// One descriptor the child gets: our `parent_fd` appears as its `child_fd`.
struct fd_mapping {
    int child_fd;
    int parent_fd;
};

// What to start. Everything is copied and prepared before fork(), so the
// child runs only async-signal-safe calls until exec.
struct spawn_request {
    // argv[0] is a path, or a name looked up in $PATH when it has no '/'
    // (as execvp does; an executable found later wins over an earlier EACCES).
    std::vector<std::string> argv;
    // The child's descriptors: fds 0, 1 and 2 are inherited unless mapped;
    // the mapped ones are added; every other descriptor is closed (close_range),
    // whatever its close-on-exec flag.
    std::vector<fd_mapping> fds = {};
    // Changes to our environment for the child: "NAME=value" sets NAME,
    // a bare "NAME" removes it.
    std::vector<std::string> env = {};
    // When not empty, the child's environment also gets <pid_env>=<its own
    // pid>, written by the child itself between fork and exec (LISTEN_PID).
    std::string pid_env = {};
};

// Thrown by spawn() when execve() itself failed: the code is its errno
// (ENOENT: not found; EACCES, ENOEXEC...: found but not executable).
class exec_error : public std::system_error {
public:
    using std::system_error::system_error;
};

// A running child. Exactly one child_process reaps a given pid: never call
// wait(-1)/waitpid(-1, ...) elsewhere, or the pid could be reused under us.
// While it is not reaped, its pid cannot be reused, so signalling is safe.
class child_process {
public:
    // Flushes stdio, builds argv/envp, fork()s and execs. In the child: the
    // signal mask is emptied and every disposition reset to SIG_DFL (exec
    // keeps both), the fds are mapped, all others closed. Throws exec_error
    // when exec fails (the child reports errno through a close-on-exec pipe
    // and _exit(127)s; it is reaped here), std::system_error for the rest,
    // std::invalid_argument for an empty argv.
    [[nodiscard]] static child_process spawn(const spawn_request& request);

    child_process() noexcept = default;
    child_process(child_process&& other) noexcept
        : pid_{std::exchange(other.pid_, -1)}, status_{std::exchange(other.status_, std::nullopt)} {}
    child_process& operator=(child_process&& other) noexcept {
        if (this != &other) {  // self-move must not kill our own child
            child_process old{std::move(*this)};  // reaps our previous child, if any
            pid_ = std::exchange(other.pid_, -1);
            status_ = std::exchange(other.status_, std::nullopt);
        }
        return *this;
    }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    // Safety net only: SIGKILL and reap, so no zombie and no hang.
    // Orderly shutdown is terminate() (or send_signal()) followed by wait().
    ~child_process();

    // The child's pid, also after it was reaped; -1 for an empty object.
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    // True until the child has been reaped.
    [[nodiscard]] bool running() const noexcept { return pid_ > 0 && !status_; }
    // The wait status once reaped (decode with WIFEXITED...), else nullopt.
    [[nodiscard]] std::optional<int> status() const noexcept { return status_; }

    // Sends `sig` if the child has not been reaped yet; else does nothing.
    void send_signal(int sig) const noexcept;
    void terminate() const noexcept;  // SIGTERM

    // Reaps the child if it has exited (WNOHANG): its wait status, or nullopt
    // while it runs. Returns the stored status once reaped.
    [[nodiscard]] std::optional<int> try_wait();
    // Blocks (EINTR-safe) until the child exits; returns its wait status.
    int wait();

private:
    explicit child_process(pid_t pid) noexcept : pid_{pid} {}
    pid_t pid_ = -1;
    std::optional<int> status_;
};

// A shell's view of a wait status: the exit code, or 128 + the signal.
[[nodiscard]] int exit_code_of(int wait_status) noexcept;

// "exited with status 3", "killed by SIGKILL".
[[nodiscard]] std::string describe_wait_status(int wait_status);

}  // namespace coffee
