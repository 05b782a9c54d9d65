#include "process_util.hpp"

#include <coffee/errors.hpp>
#include <coffee/posix.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace coffee::test {

namespace {

using clock = std::chrono::steady_clock;

int ms_until(clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

// Reads what is there; false at EOF or error.
bool drain(unique_fd& fd, std::string& into) {
    char buf[65536];
    const ssize_t n = retry_on_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
    if (n > 0) {
        into.append(buf, static_cast<std::size_t>(n));
        return true;
    }
    if (n < 0 && errno == EAGAIN)
        return true;
    fd.reset();
    return false;
}

}  // namespace

piped_child start(const std::vector<std::string>& argv, int stdin_fd, const std::vector<std::string>& env) {
    ignore_sigpipe();  // a child that exits before reading all its input is no reason to die
    pipe_ends in = make_pipe();
    pipe_ends out = make_pipe();
    pipe_ends err = make_pipe();
    piped_child c;
    c.process = child_process::spawn({.argv = argv,
                                      .fds = {{STDIN_FILENO, stdin_fd >= 0 ? stdin_fd : in.read.get()},
                                              {STDOUT_FILENO, out.write.get()},
                                              {STDERR_FILENO, err.write.get()}},
                                      .env = env});
    if (stdin_fd < 0) {
        c.in = std::move(in.write);
        set_nonblocking(c.in.get(), true);
    }
    c.out = std::move(out.read);
    c.err = std::move(err.read);
    set_nonblocking(c.out.get(), true);
    set_nonblocking(c.err.get(), true);
    return c;
}

run_result stream(piped_child& child, const std::function<bool(std::string&)>& next_input,
                  const std::function<void(std::string_view)>& on_output, std::chrono::milliseconds timeout) {
    run_result result;
    const auto deadline = clock::now() + timeout;
    std::string pending;
    std::size_t offset = 0;
    bool input_done = !child.in;
    std::string out_chunk;
    for (;;) {
        if (child.in && offset == pending.size()) {
            pending.clear();
            offset = 0;
            if (input_done || !next_input(pending)) {
                input_done = true;
                child.in.reset();
            }
        }
        if (!child.in && !child.out && !child.err)
            break;
        std::array<pollfd, 3> fds{{{child.in ? child.in.get() : -1, POLLOUT, 0},
                                   {child.out ? child.out.get() : -1, POLLIN, 0},
                                   {child.err ? child.err.get() : -1, POLLIN, 0}}};
        const int r = retry_on_eintr([&] { return ::poll(fds.data(), fds.size(), ms_until(deadline)); });
        if (r == 0) {
            result.timed_out = true;
            break;
        }
        if (fds[0].revents != 0) {
            const ssize_t n = retry_on_eintr([&] { return ::write(child.in.get(), pending.data() + offset, pending.size() - offset); });
            if (n > 0)
                offset += static_cast<std::size_t>(n);
            else if (n < 0 && errno != EAGAIN)
                child.in.reset();
        }
        if (fds[1].revents != 0) {
            out_chunk.clear();
            drain(child.out, out_chunk);
            if (!out_chunk.empty())
                on_output(out_chunk);
        }
        if (fds[2].revents != 0)
            drain(child.err, result.err);
    }
    if (result.timed_out) {
        child.process.send_signal(SIGKILL);
        child.in.reset();
        child.out.reset();
        child.err.reset();
    }
    result.status = child.process.wait();
    return result;
}

run_result communicate(piped_child& child, std::string_view input, std::chrono::milliseconds timeout) {
    std::string out;
    bool given = false;
    run_result r = stream(
        child,
        [&](std::string& buf) {
            if (given || input.empty())
                return false;
            buf.assign(input);
            given = true;
            return true;
        },
        [&](std::string_view chunk) { out.append(chunk); }, timeout);
    r.out = std::move(out);
    return r;
}

run_result run(const std::vector<std::string>& argv, std::string_view input, std::chrono::milliseconds timeout) {
    piped_child c = start(argv);
    return communicate(c, input, timeout);
}

bool read_lines_until(int fd, std::vector<std::string>& lines, std::string& partial,
                      const std::function<bool(const std::vector<std::string>&)>& done, std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    while (!done(lines)) {
        pollfd p{fd, POLLIN, 0};
        if (retry_on_eintr([&] { return ::poll(&p, 1, ms_until(deadline)); }) <= 0)
            return false;
        char buf[65536];
        const ssize_t n = retry_on_eintr([&] { return ::read(fd, buf, sizeof buf); });
        if (n == 0)
            return done(lines);
        if (n < 0) {
            if (errno == EAGAIN)
                continue;
            return false;
        }
        partial.append(buf, static_cast<std::size_t>(n));
        for (std::size_t lf; (lf = partial.find('\n')) != std::string::npos;) {
            lines.push_back(partial.substr(0, lf));
            partial.erase(0, lf + 1);
        }
    }
    return true;
}

std::vector<pid_t> children_of(pid_t parent) { return coffee::children_of(parent); }

bool is_alive(pid_t pid) {
    const std::string text = read_file(fmt::format("/proc/{}/stat", pid));
    const std::size_t close_paren = text.rfind(')');
    return close_paren != std::string::npos && close_paren + 2 < text.size() && text[close_paren + 2] != 'Z';
}

}  // namespace coffee::test
