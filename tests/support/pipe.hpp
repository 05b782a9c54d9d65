#pragma once
// Test support: what is in a pipe (or FIFO) without reading it, and writing
// into one whose end is non-blocking.
#include <chrono>
#include <string_view>

namespace coffee::test {

// The bytes unread in the pipe behind `fd` (any end: FIONREAD); -1 when
// `fd` is not a pipe.
[[nodiscard]] int unread_bytes(int fd);

// True while the pipe behind `fd` has no room for a write of PIPE_BUF bytes:
// a writer of whole batches (the producer, a cat) blocks there.
[[nodiscard]] bool pipe_full(int fd);

// Writes all of `bytes` to the non-blocking `fd`, waiting in poll() for
// room while the pipe is full. False on an error or at the deadline.
[[nodiscard]] bool write_all(int fd, std::string_view bytes,
                             std::chrono::milliseconds timeout = std::chrono::seconds{120});

}  // namespace coffee::test
