#pragma once
// Order lines judged: pure code over bytes, no descriptors. Which whole
// lines may be served exactly as they stand (the hot path), how many lines a
// text holds, and the orders among any lines (the journal's path). Every
// line these call an order is one that check_line (line_protocol) accepts,
// unchanged or normalised by it.

#include "order_batch.hpp"

#include <coffee/line_protocol.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
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

// What judge_lines found among some whole lines.
struct judged_lines {
    // Every line was an order exactly as it stands: batch.text was left
    // empty, for the caller to fill with the lines in one move (the common
    // case costs no copy).
    bool verbatim = true;
    // The orders before the first 'finish', when asked to stop there;
    // else all of them.
    std::size_t before_finish = 0;
    std::size_t finishes = 0;  // 'finish' lines: not orders
};

// A line check_line refuses, without its LF.
using reject_line = std::function<void(const checked_line& check, std::string_view raw)>;

// Appends the orders among `lines` (whole lines, each ending with LF) to
// `batch`, as check_line normalises them; empty lines and 'finish' are
// not orders, and each malformed line goes to `reject`.
judged_lines judge_lines(std::string_view lines, bool stop_at_finish, order_batch& batch, const reject_line& reject);

}  // namespace coffee::consumer
