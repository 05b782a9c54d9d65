#pragma once
// What coffee-launcher demo watches while the shop works: the consumer's
// sd_notify(3) messages, and whether a customer sleeps in write().
#include <coffee/unique_fd.hpp>

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace coffee::launcher {

// What the consumer last said (READY=1, STOPPING=1, STATUS= and the
// X_COFFEE_* fields of consumer/status.hpp).
struct consumer_report {
    bool ready = false;
    bool stopping = false;
    std::string status;                      // the STATUS= text, as systemctl status shows it
    std::optional<std::uint64_t> waiting;    // orders read from the pipe, not yet brewed
    std::vector<std::string> baristas;       // each one's order, "" when idle

    // Applies one notify message (newline-separated VAR=VALUE lines).
    void apply(std::string_view message);
};

// systemd's side of NOTIFY_SOCKET: a datagram socket bound to `path`
// (close-on-exec, non-blocking), removed on destruction.
class notify_listener {
public:
    explicit notify_listener(std::filesystem::path path);
    ~notify_listener();
    notify_listener(const notify_listener&) = delete;
    notify_listener& operator=(const notify_listener&) = delete;

    [[nodiscard]] int fd() const noexcept { return sock_.get(); }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

    // Applies every message waiting on the socket; false when there was none.
    bool receive(consumer_report& report);

private:
    std::filesystem::path path_;
    unique_fd sock_;
};

// Whether a running process sleeps in a write() to a pipe. Reads
// /proc/PID/wchan (the kernel function it sleeps in: "pipe_write", since
// Linux 6.x "anon_pipe_write"); when that says nothing ("0": no kallsyms, or
// a kernel that hides it), /proc/PID/syscall (the system call it is in, with
// its arguments: SYS_write) together with its state in /proc/PID/stat ('S');
// nullopt when neither can be read (the process is gone, or /proc is not
// ours to read).
[[nodiscard]] std::optional<bool> blocked_in_pipe_write(pid_t pid);

}  // namespace coffee::launcher
