#pragma once
#include <cstddef>
#include <string>
#include <string_view>

// The line protocol, v1 (docs/design.md "The line protocol"): one order per
// LF-terminated line of UTF-8 text, at most max_line_bytes including the LF.
namespace coffee {

// PIPE_BUF on Linux: a write() of at most this many bytes to a pipe is atomic.
inline constexpr std::size_t max_line_bytes = 4096;
// The longest order text: the line minus its LF.
inline constexpr std::size_t max_order_bytes = max_line_bytes - 1;
// The control line that stops a consumer started with --until-finish.
inline constexpr std::string_view finish_message = "finish";

// What is wrong with a line; `none` when it is fine.
enum class line_problem { none, too_long, nul_byte, control_char, invalid_utf8 };

// "longer than 4096 bytes", "contains a NUL byte", ...
[[nodiscard]] std::string_view describe(line_problem p) noexcept;

// The result of checking one line (without its LF).
struct checked_line {
    line_problem problem = line_problem::none;
    std::string_view text;  // normalised: CR before LF dropped, blanks trimmed; empty = ignore
    std::size_t offset = 0; // where the problem is, in the raw line
};

// Drops one trailing CR, trims spaces and tabs at both ends, then checks the
// length, UTF-8 validity and control characters (anything below 0x20 but TAB,
// DEL, and U+0080..U+009F). Pure; `text` views into `raw`.
[[nodiscard]] checked_line check_line(std::string_view raw) noexcept;

// For logs: about `max` bytes of `raw` (up to 3 more, so as not to cut a
// UTF-8 character), with control characters, invalid bytes, backslashes and
// the characters that change how a log line looks rather than what it says
// (bidi controls such as U+202E, zero-width and other format characters,
// U+2028/U+2029) escaped byte by byte (\x00, \\, \xe2\x80\xae), and "..."
// when cut.
[[nodiscard]] std::string printable(std::string_view raw, std::size_t max = 80);

// Splits a byte stream into lines without ever holding more than
// max_line_bytes of a partial line. Survives partial reads, over-long lines
// (discarded up to their LF, reported once), and any bytes at all.
class line_reader {
public:
    // One line as it comes off the stream.
    struct line {
        checked_line check;      // check_line() of the raw text, or too_long
        std::string_view raw;    // the raw line without LF (empty for too_long)
        std::size_t bytes = 0;   // its full length including LF
    };

    // Feeds `bytes`; calls on_line(const line&) for every complete line,
    // including empty and bad ones (the caller decides). Views passed to
    // on_line are valid only during the call.
    template <typename F>
    void feed(std::string_view bytes, F&& on_line);

    // Bytes of an unfinished line held (0..max_order_bytes), or, while
    // discarding an over-long line, how many of it were dropped so far.
    [[nodiscard]] std::size_t pending_bytes() const noexcept { return discarding_ ? discarded_ : partial_.size(); }
    // True if some bytes of the current line were read and no LF yet.
    [[nodiscard]] bool mid_line() const noexcept { return discarding_ || !partial_.empty(); }
    // The held start of an unfinished line (empty while discarding).
    [[nodiscard]] std::string_view partial() const noexcept { return partial_; }

private:
    std::string partial_;
    bool discarding_ = false;
    std::size_t discarded_ = 0;
};

template <typename F>
void line_reader::feed(std::string_view bytes, F&& on_line) {
    while (!bytes.empty()) {
        const std::size_t lf = bytes.find('\n');
        const std::string_view piece = bytes.substr(0, lf);  // whole rest if no LF
        if (discarding_) {
            discarded_ += piece.size();
        } else if (partial_.size() + piece.size() > max_order_bytes) {
            discarding_ = true;
            discarded_ = partial_.size() + piece.size();
            partial_.clear();
        } else if (lf != std::string_view::npos && partial_.empty()) {
            on_line(line{check_line(piece), piece, piece.size() + 1});  // zero-copy fast path
        } else {
            partial_.append(piece);
            if (lf != std::string_view::npos) {
                on_line(line{check_line(partial_), partial_, partial_.size() + 1});
                partial_.clear();
            }
        }
        if (lf == std::string_view::npos)
            return;
        if (discarding_) {
            const std::string_view head{};
            on_line(line{checked_line{line_problem::too_long, head, max_order_bytes}, head, discarded_ + 1});
            discarding_ = false;
            discarded_ = 0;
        }
        bytes.remove_prefix(lf + 1);
    }
}

}  // namespace coffee
