#pragma once
// Order lines as the hot path sees them: pure code over bytes, no
// descriptors. Which whole lines may be served exactly as they stand, and
// how many lines a text holds. Every line these call an order is one that
// check_line (line_protocol) accepts unchanged.

#include <coffee/line_protocol.hpp>

#include <cstdint>
#include <string_view>

namespace coffee::consumer {

// True when every byte of `lines` is printable ASCII (0x20..0x7E) or LF.
bool plain_lines(std::string_view lines) noexcept;

// The LFs in `text`.
std::uint64_t count_lines(std::string_view text) noexcept;

// True when `raw` (a line without its LF, from a take of plain_lines) is an
// order exactly as it stands: what check_line would say, without looking at
// each byte again. Inline: it is asked once per line.
inline bool plain_order(std::string_view raw) noexcept {
    return !raw.empty() && raw.size() <= max_order_bytes && raw.front() != ' ' && raw.back() != ' ' &&
           raw != finish_message;
}

// True when every line of `lines` (whole lines, ending with LF) is an order
// exactly as it stands; `count` is then how many there are. False says only
// "not all of them": the caller judges such lines one by one.
bool orders_as_they_stand(std::string_view lines, std::uint64_t& count) noexcept;

}  // namespace coffee::consumer
