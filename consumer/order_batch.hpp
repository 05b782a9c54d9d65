#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace coffee::consumer {

// Orders as they travel: each one followed by LF, so that a batch is taken,
// journaled, queued and written to stdout as it is. The orders of one batch
// have consecutive journal sequence numbers, from first_seq.
struct order_batch {
    std::string text;
    std::size_t count = 0;
    std::uint64_t first_seq = 0;

    void add(std::string_view order) {
        text.append(order);
        text += '\n';
        ++count;
    }
    void clear() noexcept {
        text.clear();
        count = 0;
    }
    [[nodiscard]] bool empty() const noexcept { return count == 0; }
};

}  // namespace coffee::consumer
