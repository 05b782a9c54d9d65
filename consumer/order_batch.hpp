#pragma once
#include <algorithm>
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
    // Removes the orders in the first `bytes` (whole lines) of text.
    void drop_head(std::size_t bytes) {
        const auto lines = static_cast<std::size_t>(
            std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bytes), '\n'));
        text.erase(0, bytes);
        count -= lines;
        first_seq += lines;
    }
};

}  // namespace coffee::consumer
