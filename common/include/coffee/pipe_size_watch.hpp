#pragma once
#include <coffee/duration.hpp>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace coffee {

// Any process that holds a pipe open, a writer included, can shrink its
// buffer with fcntl(F_SETPIPE_SZ): the orders waiting while the shop is busy
// or restarting then block their producers much sooner. This watch notices:
// every `interval` a thread reads the size (F_GETPIPE_SZ); when it is below
// `size` (by default the size the pipe had when the watch started), it sets it back
// (F_SETPIPE_SZ) and passes a message saying so, or why it could not, to
// `report` (called on the watch's thread; the program logs it as a warning).
// A bigger pipe is left alone. The descriptor is not owned and must outlive the watch; the
// destructor stops and joins the thread. Throws exit_error(71) when the
// thread cannot be started.
class pipe_size_watch {
public:
    pipe_size_watch(int fd, std::string name, duration interval, std::function<void(const std::string&)> report,
                    int size = 0);
    ~pipe_size_watch();
    pipe_size_watch(const pipe_size_watch&) = delete;
    pipe_size_watch& operator=(const pipe_size_watch&) = delete;

    // The size the pipe is kept at; 0 when fd is not a pipe (nothing is watched).
    [[nodiscard]] int size() const noexcept { return size_; }

private:
    void watch();

    int fd_;
    std::string name_;
    duration interval_;
    std::function<void(const std::string&)> report_;
    int size_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace coffee
