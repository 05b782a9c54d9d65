#include <coffee/unique_fd.hpp>

#include <coffee/errors.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace coffee {

void unique_fd::reset(int fd) noexcept {
    if (fd_ >= 0) {
        // Never retry close() on EINTR: on Linux the descriptor is already
        // gone, and a retry may close one another thread just opened.
        (void)::close(fd_);
    }
    fd_ = fd;
}

pipe_ends make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw_system_error(errno, "pipe2");
    return {unique_fd{fds[0]}, unique_fd{fds[1]}};
}

}  // namespace coffee
