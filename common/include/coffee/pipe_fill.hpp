#pragma once
#include <cstddef>
#include <optional>
#include <string>

namespace coffee {

// How full a pipe (or FIFO) is: bytes unread, FIONREAD, of its capacity,
// F_GETPIPE_SZ. A writer of n <= PIPE_BUF bytes blocks while fewer than n
// are free (on Linux, while no page of the buffer is free for them).
struct pipe_fill {
    std::size_t unread = 0;
    std::size_t capacity = 0;
};

// The fill of the pipe behind `fd`, any end, without reading it; nullopt
// when `fd` is not a pipe.
[[nodiscard]] std::optional<pipe_fill> measure_pipe(int fd) noexcept;

// "61/64 KiB": whole KiB rounded up, so that a pipe with a few bytes in it
// never reads as empty and only a full one reads as full; "N/M bytes" for a
// capacity that is not a whole number of KiB.
[[nodiscard]] std::string describe_fill(const pipe_fill& fill);

// What is unread in the pipe behind `fd`, counted without taking it: tee(2)
// duplicates the bytes into a private pipe, where the LFs are counted.
struct pipe_contents {
    std::size_t bytes = 0;
    std::size_t lines = 0;  // whole lines among the bytes looked at
    bool all_seen = true;   // false when the private pipe could not take them all
};
[[nodiscard]] pipe_contents peek_pipe_lines(int fd);

}  // namespace coffee
