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
#include <optional>
#include <string_view>
#include <vector>

namespace coffee::launcher {

namespace {

using detail::clock;

constexpr std::string_view blog_greeting = "Hello from child!\n";
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
        in.text = blog_greeting;
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

// The descriptors one poll() watches, and which of them are ready. Each fd
// is polled only when we have something to do with it, so a ready fd we
// cannot serve never makes poll() spin.
struct poll_set {
    static constexpr std::size_t capacity = 3;  // signals, one fd each way
    static constexpr std::size_t none = capacity;  // an index for a fd not watched this time
    std::array<pollfd, capacity> fds{};
    std::size_t count = 0;
    std::size_t to_child = none, source = none, from_child = none, to_stdout = none;

    std::size_t add(int fd, short events) noexcept {
        fds[count] = {fd, events, 0};
        return count++;
    }
    [[nodiscard]] bool ready(std::size_t i) const noexcept { return i < count && fds[i].revents != 0; }
};

// COMMAND between two anonymous pipes: our input source feeds its stdin,
// its stdout is copied to ours, and the signals we get are passed on to it.
class relay {
public:
    relay(const pipe_options& opts, const unique_fd& signals);
    relay(const relay&) = delete;
    relay& operator=(const relay&) = delete;

    [[nodiscard]] int run() {
        if (const auto failed = start())
            return *failed;
        while (child_.running() || from_child_.read || !out_buf_.empty())
            step();
        return finish();
    }

private:
    [[nodiscard]] std::optional<int> start();
    void step();
    [[nodiscard]] poll_set wait_for_events() const;
    void on_signals();
    void feed_child();
    void read_source();
    void read_child_output();
    void write_stdout();
    void on_time(clock::time_point now);
    void close_input();
    void close_output();
    [[nodiscard]] int finish();

    const pipe_options& opts_;
    const unique_fd& signals_;
    // Before the child exists, and destroyed after it is reaped.
    left_behind_reaper reaper_;
    input_source source_;
    // to_child_.write is open while we feed the child, from_child_.read
    // while we drain it.
    pipe_ends to_child_;
    pipe_ends from_child_;
    child_process child_;
    unique_fd out_private_;
    int out_fd_ = STDOUT_FILENO;
    std::string_view text_left_;
    buffer in_buf_;
    buffer out_buf_{chunk_bytes};
    bool source_done_;
    bool input_failed_ = false;
    std::optional<clock::time_point> drain_deadline_;  // after the child exited
    stop_schedule stop_;  // begun by the first signal we pass on that stops
};

relay::relay(const pipe_options& opts, const unique_fd& signals)
    : opts_{opts},
      signals_{signals},
      source_{choose_input(opts)},
      to_child_{make_pipe()},
      from_child_{make_pipe()},
      text_left_{source_.text},
      in_buf_{source_.fd >= 0 ? chunk_bytes : 0},
      source_done_{source_.fd < 0} {
    detail::grow_pipe_best_effort(to_child_.write.get());
    detail::grow_pipe_best_effort(from_child_.read.get());
}

// Returns our exit code when COMMAND cannot be started.
std::optional<int> relay::start() {
    try {
        child_ = child_process::spawn(
            {.argv = opts_.command,
             .fds = {{STDIN_FILENO, to_child_.read.get()}, {STDOUT_FILENO, from_child_.write.get()}}});
    } catch (const exec_error& e) {
        spdlog::error("{}", e.what());
        return detail::exit_code_for_exec_errno(e.code().value());
    }
    spdlog::debug("started '{}' as pid {}", quoted_command(opts_.command), child_.pid());
    // The child has its own copies now; ours would keep EOF from ever coming.
    to_child_.read.reset();
    from_child_.write.reset();
    // Only our ends: O_NONBLOCK lives in the open file description, and the
    // child's ends are other descriptions.
    set_nonblocking(to_child_.write.get(), true);
    set_nonblocking(from_child_.read.get(), true);
    out_private_ = private_stdout();
    if (out_private_)
        out_fd_ = out_private_.get();
    return std::nullopt;
}

void relay::step() {
    if (to_child_.write && source_done_ && in_buf_.empty() && text_left_.empty())
        close_input();  // the child sees EOF on its stdin
    const poll_set polled = wait_for_events();
    if (polled.ready(0))
        on_signals();
    // The child's exit, just handled, may have closed its stdin.
    if (polled.ready(polled.to_child) && to_child_.write)
        feed_child();
    if (polled.ready(polled.source))
        read_source();
    if (polled.ready(polled.from_child))
        read_child_output();
    if (polled.ready(polled.to_stdout))
        write_stdout();
    on_time(clock::now());
}

poll_set relay::wait_for_events() const {
    poll_set p;
    (void)p.add(signals_.get(), POLLIN);
    if (to_child_.write) {
        if (!in_buf_.empty() || !text_left_.empty())
            p.to_child = p.add(to_child_.write.get(), POLLOUT);
        else if (!source_done_)
            p.source = p.add(source_.fd, POLLIN);
    }
    if (!out_buf_.empty())
        p.to_stdout = p.add(out_fd_, POLLOUT);
    else if (from_child_.read)
        p.from_child = p.add(from_child_.read.get(), POLLIN);
    const int timeout = detail::poll_timeout(detail::earliest(drain_deadline_, stop_.deadline()));
    if (retry_on_eintr([&] { return ::poll(p.fds.data(), p.count, timeout); }) < 0)
        throw_system_error(errno, "poll");
    return p;
}

// Signals are passed on to COMMAND; the first that stops it begins our
// stop (SIGKILL after --stop-timeout). SIGCHLD reaps.
void relay::on_signals() {
    bool child_changed = false;
    while (const auto sig = read_signal(signals_)) {
        if (*sig == SIGCHLD) {
            child_changed = true;
            reaper_.reap_exited(child_.pid());
            continue;
        }
        spdlog::info("received {}, passing it on to pid {}", signal_name(*sig), child_.pid());
        child_.send_signal(*sig);
        if (*sig != SIGHUP && !stop_.started() && child_.running())
            (void)stop_.begin({{*sig, opts_.stop_timeout}, {SIGKILL, forever}}, clock::now());
    }
    if (child_changed && child_.running() && child_.try_wait()) {
        // Nobody reads our input any more. The output may still come from
        // something the child left behind; wait for it, but not forever
        // (Go's exec.Cmd.WaitDelay).
        close_input();
        drain_deadline_ = clock::now() + opts_.wait_delay;
    }
}

void relay::feed_child() {
    const std::string_view data = in_buf_.empty() ? text_left_ : in_buf_.pending();
    const ssize_t w = retry_on_eintr([&] { return ::write(to_child_.write.get(), data.data(), data.size()); });
    if (w > 0) {
        if (in_buf_.empty())
            text_left_.remove_prefix(static_cast<std::size_t>(w));
        else
            in_buf_.consume(static_cast<std::size_t>(w));
    } else if (w < 0 && errno != EAGAIN) {
        // EPIPE: the child closed its stdin (like `head`); not an error.
        if (errno != EPIPE)
            spdlog::warn("write to the command's stdin: {}", std::strerror(errno));
        close_input();
        source_done_ = true;
    }
}

void relay::read_source() {
    const ssize_t r = in_buf_.fill_from(source_.fd);
    if (r == 0) {
        source_done_ = true;
    } else if (r < 0 && errno != EAGAIN) {
        spdlog::error("read {}: {}", source_.name, std::strerror(errno));
        input_failed_ = true;
        source_done_ = true;
    }
}

void relay::read_child_output() {
    const ssize_t r = out_buf_.fill_from(from_child_.read.get());
    if (r == 0 || (r < 0 && errno != EAGAIN)) {
        if (r < 0)
            spdlog::warn("read the command's output: {}", std::strerror(errno));
        close_output();
    }
}

void relay::write_stdout() {
    const std::string_view data = out_buf_.pending();
    const ssize_t w = retry_on_eintr([&] { return ::write(out_fd_, data.data(), data.size()); });
    if (w > 0) {
        out_buf_.consume(static_cast<std::size_t>(w));
    } else if (w < 0 && errno != EAGAIN) {
        // Our reader went away (`| head`): close the child's output too, so
        // it gets SIGPIPE as in a shell pipeline.
        if (errno != EPIPE)
            spdlog::error("write to stdout: {}", std::strerror(errno));
        close_output();
        out_buf_.clear();
    }
}

// The timers: the wait for output after COMMAND exited, the next step of
// our stop.
void relay::on_time(clock::time_point now) {
    if (drain_deadline_ && now >= *drain_deadline_ && from_child_.read) {
        spdlog::warn("'{}' exited but its output is still open after {} (a process it left behind?); not waiting longer",
                     opts_.command.front(), format_duration(opts_.wait_delay));
        close_output();
    }
    if (const auto step = stop_.due(now); step && child_.running()) {
        spdlog::warn("pid {} still running {} after the signal; sending {}", child_.pid(),
                     format_duration(opts_.stop_timeout), signal_name(step->signal));
        child_.send_signal(step->signal);
    }
}

void relay::close_input() {
    to_child_.write.reset();
    in_buf_.clear();
    text_left_ = {};
}

void relay::close_output() {
    from_child_.read.reset();
    drain_deadline_.reset();
}

// COMMAND's exit status is ours; a clean exit after our input failed to
// read is exit 74.
int relay::finish() {
    const int status = *child_.status();
    reaper_.reap();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        spdlog::debug("'{}' {}", opts_.command.front(), describe_wait_status(status));
    if (input_failed_ && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return exit_io;
    return exit_code_of(status);
}

}  // namespace

int run_pipe(const pipe_options& opts, const unique_fd& signals) {
    return relay{opts, signals}.run();
}

}  // namespace coffee::launcher
