#include "process.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <utility>

extern char** environ;

namespace coffee::test {

namespace {

int decode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

void add_redirect(posix_spawn_file_actions_t& actions, int fd, const std::filesystem::path& path, int flags) {
    const std::string target = path.empty() ? "/dev/null" : path.native();
    if (const int err = ::posix_spawn_file_actions_addopen(&actions, fd, target.c_str(), flags, 0644); err != 0)
        throw std::system_error(err, std::system_category(), "posix_spawn_file_actions_addopen");
}

}  // namespace

process::process(const std::vector<std::string>& argv, const spawn_options& options) {
    std::map<std::string, std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string entry{*e};
        const auto eq = entry.find('=');
        env[entry.substr(0, eq)] = eq == std::string::npos ? "" : entry.substr(eq + 1);
    }
    for (const auto& [key, value] : options.env)
        env[key] = value;
    for (const auto& key : options.unset_env)
        env.erase(key);
    std::vector<std::string> env_strings;
    for (const auto& [key, value] : env)
        env_strings.push_back(key + "=" + value);
    std::vector<char*> envp;
    for (auto& s : env_strings)
        envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = argv;
    std::vector<char*> argvp;
    for (auto& s : args)
        argvp.push_back(s.data());
    argvp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    add_redirect(actions, 0, options.stdin_file, O_RDONLY);
    if (options.stdout_fd >= 0)
        ::posix_spawn_file_actions_adddup2(&actions, options.stdout_fd, 1);
    else
        add_redirect(actions, 1, options.stdout_file, O_WRONLY | O_CREAT | O_APPEND);
    add_redirect(actions, 2, options.stderr_file, O_WRONLY | O_CREAT | O_APPEND);
    // The child starts with default signal dispositions and an empty mask.
    posix_spawnattr_t attr;
    ::posix_spawnattr_init(&attr);
    sigset_t all;
    sigset_t none;
    ::sigfillset(&all);
    ::sigemptyset(&none);
    ::posix_spawnattr_setsigdefault(&attr, &all);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    const int err = ::posix_spawn(&pid_, argvp[0], &actions, &attr, argvp.data(), envp.data());
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
    if (err != 0)
        throw std::system_error(err, std::system_category(), "posix_spawn " + argv.front());
}

process::process(process&& other) noexcept
    : pid_{std::exchange(other.pid_, -1)}, status_{std::exchange(other.status_, std::nullopt)} {}

process::~process() {
    if (pid_ > 0 && !status_) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

void process::kill(int sig) const {
    if (pid_ > 0 && !status_)
        ::kill(pid_, sig);
}

std::optional<int> process::wait_for(std::chrono::milliseconds timeout) {
    if (status_)
        return status_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            status_ = decode(status);
            return status_;
        }
        if (r < 0 && errno != EINTR)
            throw std::system_error(errno, std::system_category(), "waitpid");
        if (std::chrono::steady_clock::now() >= deadline)
            return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
}

int process::wait(std::chrono::milliseconds timeout) {
    const auto status = wait_for(timeout);
    if (!status) {
        kill(SIGKILL);
        (void)wait_for(std::chrono::seconds{5});
        FAIL("process ", pid_, " did not exit within ", timeout.count(), " ms");
    }
    return *status;
}

bool wait_stopped(pid_t pid, std::chrono::milliseconds timeout) {
    siginfo_t info{};
    const bool reported = eventually(
        [&] {
            info.si_pid = 0;
            return ::waitid(P_PID, static_cast<id_t>(pid), &info, WSTOPPED | WEXITED | WNOHANG | WNOWAIT) == 0 &&
                   info.si_pid == pid;
        },
        timeout, std::chrono::milliseconds{1});
    return reported && info.si_code == CLD_STOPPED;
}

int run(const std::vector<std::string>& argv, const spawn_options& options, std::chrono::milliseconds timeout) {
    process p{argv, options};
    return p.wait(timeout);
}

}  // namespace coffee::test
