#pragma once
// Test support: what is in a pipe (or FIFO) without reading it, and writing
// into one whose end is non-blocking.
#include <chrono>
#include <string_view>

namespace coffee::test {

// The bytes unread in the pipe behind `fd` (any end: FIONREAD); -1 when
// `fd` is not a pipe.
[[nodiscard]] int unread_bytes(int fd);

// True while the pipe behind `fd` holds more than its capacity less PIPE_BUF
// bytes: a writer of large writes (a cat) has filled it. A writer of whole
// batches of at most PIPE_BUF bytes (the producer) can block with fewer bytes
// in it, as the kernel counts room in pages.
[[nodiscard]] bool pipe_full(int fd);

// Writes all of `bytes` to the non-blocking `fd`, waiting in poll() for
// room while the pipe is full. False on an error or at the deadline.
[[nodiscard]] bool write_all(int fd, std::string_view bytes,
                             std::chrono::milliseconds timeout = std::chrono::seconds{120});

}  // namespace coffee::test
