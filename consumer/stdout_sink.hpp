#pragma once
// The one writer of stdout, fd 1: served orders go out in writes of whole
// lines (at most PIPE_BUF to a pipe or socket, so that no kill leaves half a
// line there and no two writers' lines interleave; up to 128 KiB to a file,
// each all or nothing for the shop: a 'W' record in the journal says where
// it goes, and a write cut short is cut back), with journald's priority
// prefix when stdout is the journal, and without blocking where it must not.

#include "journal.hpp"
#include "order_sink.hpp"

#include <coffee/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace coffee::consumer {

class stdout_sink final : public order_sink {
public:
    // `orders_journal` gets the 'W' records of writes to a stdout file.
    explicit stdout_sink(journal& orders_journal);

    delivered deliver(std::string_view lines, std::uint64_t count, bool wait) override;
    [[nodiscard]] bool has_room() const override;
    [[nodiscard]] int room_fd() const override;

private:
    [[nodiscard]] std::pair<std::size_t, std::uint64_t> chunk_at_head(std::string_view text,
                                                                     std::uint64_t lines) const;
    std::string_view with_priority(std::string_view chunk);
    delivered write_chunk(std::string_view text, std::uint64_t lines, int fd);
    std::optional<std::uint64_t> note_output_write(std::string_view chunk);
    void cut_failed_write(std::uint64_t offset, std::string_view out);

    journal& journal_;
    const bool is_journal_;    // stdout is journald's stream
    const std::size_t chunk_;  // the most one write carries
    std::optional<output_file> file_;  // when stdout is a regular file
    bool append_ = false;              // ... opened with O_APPEND
    unique_fd nonblocking_;            // when stdout is a pipe: a non-blocking description of it
    std::string prefixed_;             // lines with their journal priority
    std::string note_;                 // the 'W' record of the next write
    bool note_failed_ = false;
};

// At start, before anything is served: cuts back stdout, a regular file,
// where it ends inside the last write the journal recorded (a kill stopped
// that write part-way), when those bytes are provably that write's; and
// moves an offset left past the file's end back to its end.
void cut_unfinished_write(const journal_load& loaded);

}  // namespace coffee::consumer
