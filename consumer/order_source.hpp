#pragma once
// Where orders come from. A source hands out the whole lines at its head
// and lets go of them only when told to: when the journal or a sink holds
// them (or they are dropped on purpose), so that an order that left its
// source is always somewhere.

#include <cstddef>
#include <string>
#include <string_view>

namespace coffee::consumer {

// What a take found at the source's head.
struct source_take {
    std::string_view lines{};  // whole lines, each ending with LF; empty: none now
    std::size_t dropped = 0;  // bytes let go of before them on purpose (malformed, cut off, over-long)
    bool at_start = false;    // `lines` begins the buffer release_take() hands out
};

class order_source {
public:
    virtual ~order_source() = default;

    // The whole lines at the head, up to about `limit` bytes, without
    // letting go of them; valid until the next take.
    virtual source_take take(std::size_t limit) = 0;
    // Lets go of exactly `bytes` at the head: they were taken, and the
    // journal or a sink holds them now.
    virtual void consume(std::size_t bytes) = 0;
    // The buffer the last take's lines are in, moved out (no copy); the
    // take's view is no longer valid.
    virtual std::string release_take() = 0;
};

}  // namespace coffee::consumer
