#include <coffee/pipe_size_watch.hpp>

#include <coffee/errors.hpp>

#include <fmt/format.h>

#include <fcntl.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

namespace coffee {

pipe_size_watch::pipe_size_watch(int fd, std::string name, duration interval,
                                 std::function<void(const std::string&)> report, int size)
    : fd_{fd}, name_{std::move(name)}, interval_{interval}, report_{std::move(report)},
      size_{size > 0 ? size : std::max(::fcntl(fd, F_GETPIPE_SZ), 0)} {
    if (size_ <= 0)
        return;
    try {
        thread_ = std::thread{[this] { watch(); }};
    } catch (const std::system_error& e) {
        throw exit_error(exit_oserr, fmt::format("cannot start the thread that watches the size of the pipe of {}: {} "
                                                 "(a limit on processes or memory? ulimit -u, ulimit -v)",
                                                 name_, e.code().message()));
    }
}

pipe_size_watch::~pipe_size_watch() {
    {
        const std::lock_guard lock{mutex_};
        stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

void pipe_size_watch::watch() {
    std::unique_lock lock{mutex_};
    while (!wake_.wait_for(lock, interval_, [this] { return stop_; })) {
        const int now = ::fcntl(fd_, F_GETPIPE_SZ);
        if (now < 0 || now >= size_)
            continue;
        const bool restored = ::fcntl(fd_, F_SETPIPE_SZ, size_) >= 0;
        report_(fmt::format("the pipe of {} was shrunk from {} to {} bytes by another process (F_SETPIPE_SZ); {}", name_,
                            size_, now, restored ? "set it back" : fmt::format("cannot set it back: {}", std::strerror(errno))));
    }
}

}  // namespace coffee
