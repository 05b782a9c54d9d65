#include <coffee/child_process.hpp>

#include <coffee/errors.hpp>
#include <coffee/posix.hpp>
#include <coffee/signals.hpp>
#include <coffee/unique_fd.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace coffee {

namespace {

// What the child writes to the error pipe when it cannot exec.
enum class failed_stage : int { exec = 0, setup_fds = 1 };
struct child_report {
    failed_stage stage;
    int err;
};

// Everything the child needs, built before fork(): after fork() the child of
// a multi-threaded parent may only make async-signal-safe calls, so no
// allocation, no logging, no exceptions (reproc process_fork, skalibs cspawn).
struct prepared_exec {
    std::vector<std::string> candidates;  // paths to try execve() on, in order
    std::vector<char*> argv;
    std::vector<std::string> env_storage;
    std::vector<char*> envp;
    char* pid_digits = nullptr;  // where the child writes its pid, room for 20 digits + NUL
    std::vector<fd_mapping> fds;
    std::vector<int> scratch_fds;  // one per mapping, filled in by the child
    int lowest_free_fd = 3;        // above every child fd: safe for temporary copies
    sigset_t empty_mask{};
};

std::string_view env_name(std::string_view entry) noexcept { return entry.substr(0, entry.find('=')); }

std::vector<std::string> exec_candidates(const std::string& file) {
    if (file.find('/') != std::string::npos)
        return {file};
    std::string path;
    if (const char* env_path = std::getenv("PATH"); env_path != nullptr) {
        path = env_path;
    } else {
        const std::size_t n = ::confstr(_CS_PATH, nullptr, 0);
        path.resize(n);
        (void)::confstr(_CS_PATH, path.data(), n);
        path.resize(n > 0 ? n - 1 : 0);
    }
    std::vector<std::string> out;
    std::string_view rest = path;
    for (;;) {
        const std::size_t colon = rest.find(':');
        const std::string_view dir = rest.substr(0, colon);
        // An empty entry means the current directory (execvp(3)).
        out.push_back(dir.empty() ? file : fmt::format("{}/{}", dir, file));
        if (colon == std::string_view::npos)
            break;
        rest.remove_prefix(colon + 1);
    }
    return out;
}

void prepare(prepared_exec& p, const spawn_request& request) {
    if (request.argv.empty() || request.argv.front().empty())
        throw std::invalid_argument("spawn: empty command");
    p.candidates = exec_candidates(request.argv.front());
    for (const std::string& arg : request.argv)
        p.argv.push_back(const_cast<char*>(arg.c_str()));  // execve's signature predates const
    p.argv.push_back(nullptr);

    const auto overridden = [&](std::string_view entry) {
        return std::any_of(request.env.begin(), request.env.end(),
                           [&](const std::string& change) { return env_name(change) == env_name(entry); }) ||
               (!request.pid_env.empty() && env_name(entry) == request.pid_env);
    };
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        if (!overridden(*e))
            p.env_storage.emplace_back(*e);
    }
    for (const std::string& change : request.env) {
        if (change.find('=') != std::string::npos)
            p.env_storage.push_back(change);
    }
    if (!request.pid_env.empty())
        p.env_storage.push_back(request.pid_env + "=" + std::string(21, '\0'));
    for (std::string& entry : p.env_storage)
        p.envp.push_back(entry.data());
    p.envp.push_back(nullptr);
    if (!request.pid_env.empty())
        p.pid_digits = p.env_storage.back().data() + request.pid_env.size() + 1;

    p.fds = request.fds;
    p.scratch_fds.assign(p.fds.size(), -1);
    for (const fd_mapping& m : p.fds) {
        if (m.child_fd < 0 || m.parent_fd < 0)
            throw std::invalid_argument("spawn: negative descriptor in fd mapping");
        p.lowest_free_fd = std::max(p.lowest_free_fd, m.child_fd + 1);
    }
    ::sigemptyset(&p.empty_mask);
}

// --- Runs in the child, between fork() and exec(): async-signal-safe only. ---

[[noreturn]] void report_and_exit(int error_fd, failed_stage stage, int err) noexcept {
    const child_report report{stage, err};
    (void)!::write(error_fd, &report, sizeof report);  // <= PIPE_BUF: atomic
    ::_exit(127);
}

void write_decimal(char* out, long value) noexcept {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value > 0);
    while (n > 0)
        *out++ = digits[--n];
    *out = '\0';
}

void reset_signals(const sigset_t& empty_mask) noexcept {
    // exec keeps ignored dispositions and the signal mask; the parent may
    // ignore SIGPIPE and block signals for its signalfd (reproc does the same).
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)::sigaction(sig, &dfl, nullptr);  // EINVAL for glibc's internal signals: fine
    }
    (void)::sigprocmask(SIG_SETMASK, &empty_mask, nullptr);
}

bool is_mapped(const prepared_exec& p, int child_fd) noexcept {
    return std::any_of(p.fds.begin(), p.fds.end(), [&](const fd_mapping& m) { return m.child_fd == child_fd; });
}

// Returns the error pipe's (possibly moved) descriptor.
int set_up_fds(prepared_exec& p, int error_fd) noexcept {
    // Move the error pipe above every child fd first, or a dup2() below could
    // replace it and the parent would take a failed setup for a success.
    const int moved = ::fcntl(error_fd, F_DUPFD_CLOEXEC, p.lowest_free_fd);
    if (moved < 0)
        report_and_exit(error_fd, failed_stage::setup_fds, errno);
    error_fd = moved;
    // Two passes, so that no dup2() destroys a source a later mapping needs
    // (e.g. {1 <- 2, 2 <- 1}): copy every source above the child fds, then
    // place the copies. dup2() clears FD_CLOEXEC on its target.
    for (std::size_t i = 0; i < p.fds.size(); ++i) {
        if (p.fds[i].child_fd == p.fds[i].parent_fd)
            continue;
        p.scratch_fds[i] = ::fcntl(p.fds[i].parent_fd, F_DUPFD_CLOEXEC, p.lowest_free_fd);
        if (p.scratch_fds[i] < 0)
            report_and_exit(error_fd, failed_stage::setup_fds, errno);
    }
    for (std::size_t i = 0; i < p.fds.size(); ++i) {
        const fd_mapping& m = p.fds[i];
        const int r = m.child_fd == m.parent_fd ? ::fcntl(m.child_fd, F_SETFD, 0) : ::dup2(p.scratch_fds[i], m.child_fd);
        if (r < 0)
            report_and_exit(error_fd, failed_stage::setup_fds, errno);
    }
    for (int fd = 3; fd < p.lowest_free_fd; ++fd) {
        if (!is_mapped(p, fd))
            (void)::close(fd);
    }
    // Everything above is closed by exec, whatever the flags its owner chose.
    // CLOSE_RANGE_CLOEXEC rather than closing now: the error pipe must stay
    // open until exec. Older kernels lack the flag: mark them one by one.
    if (::close_range(static_cast<unsigned>(p.lowest_free_fd), ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        rlimit limit{};
        const rlim_t max_fd = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 ? std::min<rlim_t>(limit.rlim_cur, 1U << 20) : 1024;
        for (int fd = p.lowest_free_fd; static_cast<rlim_t>(fd) < max_fd; ++fd)
            (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    return error_fd;
}

[[noreturn]] void exec_child(prepared_exec& p, int error_fd) noexcept {
    reset_signals(p.empty_mask);
    if (p.pid_digits != nullptr)
        write_decimal(p.pid_digits, static_cast<long>(::getpid()));
    error_fd = set_up_fds(p, error_fd);

    // execvp(3) semantics without its allocation: try each candidate; a
    // later executable wins over an earlier EACCES; EACCES beats ENOENT.
    int err = ENOENT;
    bool denied = false;
    for (const std::string& path : p.candidates) {
        ::execve(path.c_str(), p.argv.data(), p.envp.data());
        err = errno;
        if (err == EACCES)
            denied = true;
        else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENODEV && err != ETIMEDOUT)
            break;
    }
    report_and_exit(error_fd, failed_stage::exec, denied && err != ENOEXEC ? EACCES : err);
}

// --- End of the child's code. ---

}  // namespace

child_process child_process::spawn(const spawn_request& request) {
    prepared_exec p;
    prepare(p, request);
    pipe_ends error_pipe = make_pipe();  // O_CLOEXEC: closes itself on a successful exec

    // Pending stdio output would otherwise come out twice or out of order
    // (the child _exit()s without flushing, but exec'd programs share fds).
    (void)std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0)
        throw_system_error(errno, "fork for '{}'", request.argv.front());
    if (pid == 0)
        exec_child(p, error_pipe.write.get());

    child_process child{pid};
    // Drop our copy of the write end, or read() below would never see EOF.
    error_pipe.write.reset();
    child_report report{};
    const ssize_t n = retry_on_eintr([&] { return ::read(error_pipe.read.get(), &report, sizeof report); });
    if (n == static_cast<ssize_t>(sizeof report)) {
        (void)child.wait();
        if (report.stage == failed_stage::exec)
            throw exec_error(report.err, std::system_category(), fmt::format("cannot run '{}'", request.argv.front()));
        throw_system_error(report.err, "set up descriptors for '{}'", request.argv.front());
    }
    return child;
}

child_process::~child_process() {
    if (running()) {
        (void)::kill(pid_, SIGKILL);
        (void)retry_on_eintr([&] { return ::waitpid(pid_, nullptr, 0); });
    }
}

void child_process::send_signal(int sig) const noexcept {
    if (running())
        (void)::kill(pid_, sig);
}

void child_process::terminate() const noexcept { send_signal(SIGTERM); }

std::optional<int> child_process::try_wait() {
    if (!running())
        return status_;
    int st = 0;
    const pid_t r = retry_on_eintr([&] { return ::waitpid(pid_, &st, WNOHANG); });
    if (r < 0)
        throw_system_error(errno, "waitpid {}", pid_);
    if (r == 0)
        return std::nullopt;
    status_ = st;
    return status_;
}

int child_process::wait() {
    if (!running()) {
        if (!status_)
            throw std::logic_error("child_process::wait on an empty object");
        return *status_;
    }
    int st = 0;
    if (retry_on_eintr([&] { return ::waitpid(pid_, &st, 0); }) < 0)
        throw_system_error(errno, "waitpid {}", pid_);
    status_ = st;
    return st;
}

int exit_code_of(int wait_status) noexcept {
    if (WIFEXITED(wait_status))
        return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status))
        return 128 + WTERMSIG(wait_status);
    return exit_failure;
}

std::string describe_wait_status(int wait_status) {
    if (WIFEXITED(wait_status))
        return fmt::format("exited with status {}", WEXITSTATUS(wait_status));
    if (WIFSIGNALED(wait_status))
        return fmt::format("killed by {}{}", signal_name(WTERMSIG(wait_status)), WCOREDUMP(wait_status) ? " (core dumped)" : "");
    return fmt::format("stopped (wait status {:#x})", wait_status);
}

}  // namespace coffee
