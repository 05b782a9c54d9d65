// coffee-launcher pipe: COMMAND with stdin and stdout on anonymous pipes,
// fed and drained by one poll() loop (CPython's communicate() design), so
// neither direction can deadlock whatever the sizes.
#include "launcher.hpp"

#include <coffee/child_process.hpp>
#include <coffee/errors.hpp>
#include <coffee/posix.hpp>
#include <coffee/signals.hpp>
#include <coffee/stop_child.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

namespace coffee::launcher {

namespace {

using detail::clock;

constexpr std::string_view seed_greeting = "Hello from child!\n";
constexpr std::size_t chunk_bytes = 256 * 1024;

// Bytes read from one fd and not yet written to the next.
class buffer {
public:
    explicit buffer(std::size_t capacity) : data_(capacity) {}
    [[nodiscard]] bool empty() const noexcept { return begin_ == end_; }
    [[nodiscard]] std::string_view pending() const noexcept { return {data_.data() + begin_, end_ - begin_}; }
    void consume(std::size_t n) noexcept {
        begin_ += n;
        if (begin_ == end_)
            begin_ = end_ = 0;
    }
    // Reads once into the (empty) buffer: bytes read, 0 at EOF, -1 with errno.
    ssize_t fill_from(int fd) noexcept {
        const ssize_t n = retry_on_eintr([&] { return ::read(fd, data_.data(), data_.size()); });
        if (n > 0) {
            begin_ = 0;
            end_ = static_cast<std::size_t>(n);
        }
        return n;
    }
    void clear() noexcept { begin_ = end_ = 0; }

private:
    std::vector<char> data_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

// Our stdout, as a descriptor we may make non-blocking: for a pipe, a second
// open file description of it (reopen_pipe_nonblocking). Other kinds stay as
// they are: files never block, and a terminal is written after POLLOUT.
unique_fd private_stdout() { return reopen_pipe_nonblocking(STDOUT_FILENO, O_WRONLY); }

// Where the input comes from: text in memory, or a descriptor.
struct input_source {
    std::string text;      // used when fd < 0
    unique_fd owned;       // --input-file
    int fd = -1;           // the descriptor to read, if any
    std::string name;      // for messages
};

input_source choose_input(const pipe_options& opts) {
    input_source in;
    if (opts.input) {
        in.text = *opts.input;
    } else if (opts.input_file) {
        in.owned = unique_fd{retry_on_eintr([&] { return ::open(opts.input_file->c_str(), O_RDONLY | O_CLOEXEC); })};
        if (!in.owned)
            throw_system_error(errno, "open input file '{}'", opts.input_file->native());
        in.fd = in.owned.get();
        in.name = fmt::format("'{}'", opts.input_file->native());
    } else if (::isatty(STDIN_FILENO) == 0) {
        in.fd = STDIN_FILENO;
        in.name = "stdin";
    } else {
        in.text = seed_greeting;
    }
    return in;
}

// What COMMAND leaves behind must not outlive us. We are a child subreaper
// (PR_SET_CHILD_SUBREAPER), so its orphaned descendants, even those that
// left its process group or session, become our children; once COMMAND has
// been reaped, every child we still have is one of those: SIGKILL and reap
// it, until none is left (killing one may orphan its own children to us).
class left_behind_reaper {
public:
    left_behind_reaper() noexcept { (void)::prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL); }
    ~left_behind_reaper() { reap(); }
    left_behind_reaper(const left_behind_reaper&) = delete;
    left_behind_reaper& operator=(const left_behind_reaper&) = delete;

    // Orphans that already exited, reaped as they go (on SIGCHLD), so that a
    // command that keeps leaving short-lived processes behind does not fill
    // the process table with zombies. `command` is the command's own pid,
    // which its child_process reaps.
    void reap_exited(pid_t command) noexcept {
        try {
            for (const pid_t pid : children_of(::getpid()))
                if (pid != command)
                    (void)retry_on_eintr([&] { return ::waitpid(pid, nullptr, WNOHANG); });
        } catch (const std::exception& e) {
            spdlog::debug("reaping what the command left behind: {}", e.what());
        }
    }

    void reap() noexcept {
        try {
            for (int round = 0; round < 1000; ++round) {
                const std::vector<pid_t> children = children_of(::getpid());
                if (children.empty())
                    return;
                for (const pid_t pid : children) {
                    spdlog::debug("pid {}, left behind by the command, is killed", pid);
                    (void)::kill(pid, SIGKILL);
                    (void)retry_on_eintr([&] { return ::waitpid(pid, nullptr, 0); });
                }
            }
        } catch (const std::exception& e) {
            spdlog::warn("cannot stop what the command left behind: {}", e.what());
        }
    }
};

std::string quoted_command(const std::vector<std::string>& command) {
    std::string out;
    for (const std::string& arg : command)
        out += (out.empty() ? "" : " ") + arg;
    return out;
}

}  // namespace

int run_pipe(const pipe_options& opts, const unique_fd& signals) {
    // Before the child exists, and destroyed after it is reaped.
    left_behind_reaper reaper;
    input_source source = choose_input(opts);
    pipe_ends to_child = make_pipe();
    pipe_ends from_child = make_pipe();
    detail::grow_pipe_best_effort(to_child.write.get());
    detail::grow_pipe_best_effort(from_child.read.get());

    child_process child;
    try {
        child = child_process::spawn({.argv = opts.command,
                                      .fds = {{STDIN_FILENO, to_child.read.get()}, {STDOUT_FILENO, from_child.write.get()}}});
    } catch (const exec_error& e) {
        spdlog::error("{}", e.what());
        return detail::exit_code_for_exec_errno(e.code().value());
    }
    spdlog::debug("started '{}' as pid {}", quoted_command(opts.command), child.pid());
    // The child has its own copies now; ours would keep EOF from ever coming.
    to_child.read.reset();
    from_child.write.reset();
    // Only our ends: O_NONBLOCK lives in the open file description, and the
    // child's ends are other descriptions.
    set_nonblocking(to_child.write.get(), true);
    set_nonblocking(from_child.read.get(), true);

    unique_fd out_private = private_stdout();
    const int out_fd = out_private ? out_private.get() : STDOUT_FILENO;

    unique_fd& in_pipe = to_child.write;   // open while we feed the child
    unique_fd& out_pipe = from_child.read; // open while we drain it
    std::string_view text_left = source.text;
    buffer in_buf{source.fd >= 0 ? chunk_bytes : 0};
    buffer out_buf{chunk_bytes};
    bool source_done = source.fd < 0;
    bool input_failed = false;
    std::optional<clock::time_point> drain_deadline;  // after the child exited
    stop_schedule stop;  // begun by the first signal we pass on that stops

    const auto close_input = [&] {
        in_pipe.reset();
        in_buf.clear();
        text_left = {};
    };

    while (child.running() || out_pipe || !out_buf.empty()) {
        if (in_pipe && source_done && in_buf.empty() && text_left.empty())
            close_input();  // the child sees EOF on its stdin

        // Each fd is polled only when we have something to do with it, so a
        // ready fd we cannot serve never makes poll() spin.
        std::array<pollfd, 4> fds{};
        std::size_t n = 0;
        fds[n++] = {signals.get(), POLLIN, 0};
        const std::size_t none = fds.size();
        std::size_t i_in = none, i_src = none, i_out = none, i_dst = none;
        if (in_pipe) {
            if (!in_buf.empty() || !text_left.empty()) {
                i_in = n;
                fds[n++] = {in_pipe.get(), POLLOUT, 0};
            } else if (!source_done) {
                i_src = n;
                fds[n++] = {source.fd, POLLIN, 0};
            }
        }
        if (!out_buf.empty()) {
            i_dst = n;
            fds[n++] = {out_fd, POLLOUT, 0};
        } else if (out_pipe) {
            i_out = n;
            fds[n++] = {out_pipe.get(), POLLIN, 0};
        }
        const int timeout = detail::poll_timeout(detail::earliest(drain_deadline, stop.deadline()));
        if (retry_on_eintr([&] { return ::poll(fds.data(), n, timeout); }) < 0)
            throw_system_error(errno, "poll");
        const auto ready = [&](std::size_t i) { return i != none && fds[i].revents != 0; };

        bool child_changed = false;
        if (ready(0)) {
            while (const auto sig = read_signal(signals)) {
                if (*sig == SIGCHLD) {
                    child_changed = true;  // reaped below
                    reaper.reap_exited(child.pid());
                    continue;
                }
                spdlog::info("received {}, passing it on to pid {}", signal_name(*sig), child.pid());
                child.send_signal(*sig);
                if (*sig != SIGHUP && !stop.started() && child.running())
                    (void)stop.begin({{*sig, opts.stop_timeout}, {SIGKILL, forever}}, clock::now());
            }
        }
        if (child_changed && child.running() && child.try_wait()) {
            // Nobody reads our input any more. The output may still come from
            // something the child left behind; wait for it, but not forever
            // (Go's exec.Cmd.WaitDelay).
            close_input();
            drain_deadline = clock::now() + opts.wait_delay;
        }
        // in_pipe: the exit branch above may just have closed it.
        if (ready(i_in) && in_pipe) {
            const std::string_view data = in_buf.empty() ? text_left : in_buf.pending();
            const ssize_t w = retry_on_eintr([&] { return ::write(in_pipe.get(), data.data(), data.size()); });
            if (w > 0) {
                if (in_buf.empty())
                    text_left.remove_prefix(static_cast<std::size_t>(w));
                else
                    in_buf.consume(static_cast<std::size_t>(w));
            } else if (w < 0 && errno != EAGAIN) {
                // EPIPE: the child closed its stdin (like `head`); not an error.
                if (errno != EPIPE)
                    spdlog::warn("write to the command's stdin: {}", std::strerror(errno));
                close_input();
                source_done = true;
            }
        }
        if (ready(i_src)) {
            const ssize_t r = in_buf.fill_from(source.fd);
            if (r == 0) {
                source_done = true;
            } else if (r < 0 && errno != EAGAIN) {
                spdlog::error("read {}: {}", source.name, std::strerror(errno));
                input_failed = true;
                source_done = true;
            }
        }
        if (ready(i_out)) {
            const ssize_t r = out_buf.fill_from(out_pipe.get());
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                if (r < 0)
                    spdlog::warn("read the command's output: {}", std::strerror(errno));
                out_pipe.reset();
                drain_deadline.reset();
            }
        }
        if (ready(i_dst)) {
            const std::string_view data = out_buf.pending();
            const ssize_t w = retry_on_eintr([&] { return ::write(out_fd, data.data(), data.size()); });
            if (w > 0) {
                out_buf.consume(static_cast<std::size_t>(w));
            } else if (w < 0 && errno != EAGAIN) {
                // Our reader went away (`| head`): close the child's output
                // too, so it gets SIGPIPE as in a shell pipeline.
                if (errno != EPIPE)
                    spdlog::error("write to stdout: {}", std::strerror(errno));
                out_pipe.reset();
                out_buf.clear();
                drain_deadline.reset();
            }
        }

        const auto now = clock::now();
        if (drain_deadline && now >= *drain_deadline && out_pipe) {
            spdlog::warn("'{}' exited but its output is still open after {} (a process it left behind?); not waiting longer",
                         opts.command.front(), format_duration(opts.wait_delay));
            out_pipe.reset();
            drain_deadline.reset();
        }
        if (const auto step = stop.due(now); step && child.running()) {
            spdlog::warn("pid {} still running {} after the signal; sending {}", child.pid(), format_duration(opts.stop_timeout),
                         signal_name(step->signal));
            child.send_signal(step->signal);
        }
    }

    const int status = *child.status();
    reaper.reap();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        spdlog::debug("'{}' {}", opts.command.front(), describe_wait_status(status));
    if (input_failed && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return exit_io;
    return exit_code_of(status);
}

}  // namespace coffee::launcher
