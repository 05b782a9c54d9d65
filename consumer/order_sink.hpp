#pragma once
// Where served orders go. The shop serves orders on three paths (straight
// from the pipe, a barista's batch, a few orders the reader serves itself),
// and each hands them to a sink, which says exactly what it delivered: the
// orders it did not deliver stay where they were (in the pipe or in the
// journal), and are never counted served.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace coffee::consumer {

// What a delivery did with the text it was given.
struct delivered {
    std::uint64_t lines = 0;  // whole lines delivered
    std::size_t bytes = 0;    // of the text they were
    int error = 0;            // errno of a failed delivery; EAGAIN with no line: no room now
};

class order_sink {
public:
    virtual ~order_sink() = default;

    // Delivers the whole lines at the head of `lines` (which holds `count`
    // lines, each ending with LF) that fit in one delivery, at least one.
    // `wait`: may block until there is room; otherwise a sink without room
    // delivers nothing and says EAGAIN. The caller serialises deliveries.
    virtual delivered deliver(std::string_view lines, std::uint64_t count, bool wait) = 0;

    // True when a delivery of one line would not block now.
    [[nodiscard]] virtual bool has_room() const = 0;
    // A descriptor whose POLLOUT says there may be room again.
    [[nodiscard]] virtual int room_fd() const = 0;
};

}  // namespace coffee::consumer
