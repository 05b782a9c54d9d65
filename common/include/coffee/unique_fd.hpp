#pragma once
#include <utility>

namespace coffee {

// Owns one file descriptor and closes it on destruction. Move-only.
// -1 means "owns nothing". Every descriptor in this codebase is created
// O_CLOEXEC and wrapped in a unique_fd on the line that creates it.
class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_{fd} {}

    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    unique_fd(unique_fd&& other) noexcept : fd_{other.release()} {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        reset(other.release());  // self-move safe: release() runs first
        return *this;
    }
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] explicit operator bool() const noexcept { return fd_ >= 0; }

    // Gives up ownership without closing.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

    // Closes the owned descriptor, if any, then owns `fd`.
    void reset(int fd = -1) noexcept;

private:
    int fd_ = -1;
};

struct pipe_ends {
    unique_fd read;
    unique_fd write;
};

// pipe2(O_CLOEXEC). Throws std::system_error.
[[nodiscard]] pipe_ends make_pipe();

}  // namespace coffee
