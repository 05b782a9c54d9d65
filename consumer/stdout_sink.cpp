#include "stdout_sink.hpp"

#include "journal_format.hpp"
#include "order_lines.hpp"

#include <coffee/line_protocol.hpp>
#include <coffee/logging.hpp>
#include <coffee/posix.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace coffee::consumer {

namespace {

// stdout gets whole lines in writes of at most PIPE_BUF bytes when it is a
// pipe or socket, so that no kill leaves half a line there and no two
// writers' lines interleave; a file gets bigger writes, each all or nothing
// for the shop (note_output_write, cut_unfinished_write).
constexpr std::size_t pipe_output_chunk = max_line_bytes;
constexpr std::size_t file_output_chunk = 131072;
static_assert(file_output_chunk <= journal_format::max_output_write, "a 'W' record describes one output chunk");
// What journald reads as "info" (sd-daemon(3)); it strips one such prefix.
constexpr std::string_view journal_priority = "<6>";

std::size_t stdout_chunk() {
    struct stat st{};
    if (::fstat(STDOUT_FILENO, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
        return file_output_chunk;
    return pipe_output_chunk;
}

// The bytes of stdout, a regular file, from `offset` to `end` (at most one
// output chunk), or nullopt when they cannot be read. Stdout is open for
// writing only (`>> file`): they are read through a second, read-only open
// of the same file, /proc/self/fd/1.
std::optional<std::string> read_output(std::uint64_t offset, std::uint64_t end) {
    if (end < offset || end - offset > file_output_chunk)
        return std::nullopt;
    const unique_fd in{::open("/proc/self/fd/1", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)};
    struct stat out{};
    struct stat again{};
    if (!in || ::fstat(STDOUT_FILENO, &out) != 0 || ::fstat(in.get(), &again) != 0 || again.st_dev != out.st_dev ||
        again.st_ino != out.st_ino)
        return std::nullopt;
    std::string bytes(static_cast<std::size_t>(end - offset), '\0');
    std::size_t got = 0;
    while (got < bytes.size()) {
        const ssize_t n = retry_on_eintr([&] {
            return ::pread(in.get(), bytes.data() + got, bytes.size() - got, static_cast<off_t>(offset + got));
        });
        if (n <= 0) {
            if (n == 0)
                errno = ENODATA;  // it shrank
            return std::nullopt;
        }
        got += static_cast<std::size_t>(n);
    }
    return bytes;
}

// Cuts a stdout that is a regular file back to `offset`, the start of a
// write that did not finish, when it still ends at `end`, where its bytes
// from `offset` were found to be that write's. The file offset moves back
// first (without O_APPEND): a kill between the two leaves the file as it
// was, to be cut by the next start, never an offset past its end, where
// the next write would leave a run of NUL bytes. True when it did.
bool cut_output_back(std::uint64_t offset, std::uint64_t end) {
    const auto at = static_cast<off_t>(offset);
    struct stat st{};
    if (::fstat(STDOUT_FILENO, &st) != 0)
        return false;
    if (static_cast<std::uint64_t>(st.st_size) != end) {
        errno = EAGAIN;  // someone else wrote to it since: those bytes are not ours to cut
        return false;
    }
    if ((::fcntl(STDOUT_FILENO, F_GETFL) & O_APPEND) == 0 && ::lseek(STDOUT_FILENO, 0, SEEK_CUR) > at &&
        ::lseek(STDOUT_FILENO, at, SEEK_SET) != at)
        return false;
    return ::ftruncate(STDOUT_FILENO, at) == 0;
}

// Without O_APPEND, a stdout file whose offset is past its end (left so by
// whoever shares the descriptor) would get a run of NUL bytes before our
// first line: start at its end instead.
void no_hole_before_output() {
    struct stat st{};
    if (::fstat(STDOUT_FILENO, &st) != 0 || !S_ISREG(st.st_mode) ||
        (::fcntl(STDOUT_FILENO, F_GETFL) & O_APPEND) != 0)
        return;
    const off_t at = ::lseek(STDOUT_FILENO, 0, SEEK_CUR);
    if (at <= st.st_size)
        return;
    if (::lseek(STDOUT_FILENO, st.st_size, SEEK_SET) == st.st_size)
        spdlog::warn("stdout: its offset {} is past its end {}; writing at its end, not after {} NUL bytes", at,
                     st.st_size, at - st.st_size);
    else
        spdlog::warn("stdout: its offset {} is past its end {}, and it cannot be moved back: {}", at, st.st_size,
                     std::strerror(errno));
}

// When stdout is a pipe: a descriptor of its own for it, non-blocking, so
// that the reader learns that the pipe is full from the write itself (a
// write of at most PIPE_BUF to a pipe is all or nothing) instead of asking
// poll() first: one system call less per order in a quiet shop. Opening
// /proc/self/fd/1 gives a new open file description of the same pipe;
// stdout's own, shared with whoever started us, keeps its flags. Invalid
// (poll first, then) for anything else, or without /proc.
unique_fd stdout_nonblocking() { return reopen_pipe_nonblocking(STDOUT_FILENO, O_WRONLY); }

}  // namespace

// A consumer killed in the middle of a big write() to a stdout file left
// part of it there: the kernel stops such a write at a page boundary, in
// the middle of a line. When stdout ends inside the last write the journal
// recorded, that part is cut off again, and its orders (none was recorded
// served) are served again, whole: but only when the bytes are provably
// that write's. The same file (device, inode, and birth time or inode
// generation: not a file that got the inode number later), ending at a page
// boundary inside the write, and holding there the write's first bytes
// (the CRC-32C of each page of them). Anything else, such as
// another writer's bytes after ours, is left alone, and said so: the orders
// are served again after it.
void cut_unfinished_write(const journal_load& loaded) {
    no_hole_before_output();
    const std::optional<output_write>& last = loaded.last_output_write;
    struct stat st{};
    if (!last || ::fstat(STDOUT_FILENO, &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::uint64_t>(st.st_dev) != last->file.device ||
        static_cast<std::uint64_t>(st.st_ino) != last->file.inode)
        return;
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size <= last->offset || size >= last->offset + last->length)
        return;
    const auto leave = [&](std::string_view why) {
        spdlog::warn("stdout ends {} bytes into the last write the previous consumer began at offset {}, but {}; "
                     "left alone (its orders are served again after them)",
                     size - last->offset, last->offset, why);
    };
    const std::optional<output_file> now = output_file::of(STDOUT_FILENO);
    if (!now || !now->same_as(last->file)) {
        leave(now && (now->has_birth || now->has_generation)
                  ? "it is not the file that write went to (another file has its inode number now)"
                  : "this file system cannot tell whether it is the file that write went to");
        return;
    }
    if (!last->may_stop_at(size)) {
        leave("a kill stops a write at a page boundary, and this end is none: the bytes there may not be ours");
        return;
    }
    const std::optional<std::string> tail = read_output(last->offset, size);
    if (!tail || !last->began_with(*tail)) {
        leave(tail ? "those bytes are not the ones that write began with (another writer's?)"
                   : fmt::format("they cannot be read: {}", std::strerror(errno)));
        return;
    }
    if (cut_output_back(last->offset, size))
        spdlog::warn("stdout: cut off the {} bytes at offset {} that the previous consumer wrote of {} when it died; "
                     "those orders are served again",
                     size - last->offset, last->offset, last->length);
    else
        spdlog::warn("stdout: cannot cut off the {} bytes at offset {} of an unfinished write: {}",
                     size - last->offset, last->offset, std::strerror(errno));
}

stdout_sink::stdout_sink(journal& orders_journal)
    : journal_{orders_journal}, is_journal_{is_journal_stream(STDOUT_FILENO)}, chunk_{stdout_chunk()},
      nonblocking_{stdout_nonblocking()} {
    if (struct stat out{}; ::fstat(STDOUT_FILENO, &out) == 0 && S_ISREG(out.st_mode)) {
        file_ = output_file::of(STDOUT_FILENO);
        append_ = (::fcntl(STDOUT_FILENO, F_GETFL) & O_APPEND) != 0;
    }
}

// Without `wait`, a pipe with no room takes nothing: the write itself says
// so on our non-blocking description of it (a write of at most PIPE_BUF to a
// pipe is all or nothing), or poll() first where there is none. A file
// always has room.
delivered stdout_sink::deliver(std::string_view lines, std::uint64_t count, bool wait) {
    if (!wait && nonblocking_)
        return write_chunk(lines, count, nonblocking_.get());
    if (!wait && chunk_ != file_output_chunk && !has_room())
        return {0, 0, EAGAIN};
    return write_chunk(lines, count, STDOUT_FILENO);
}

int stdout_sink::room_fd() const { return STDOUT_FILENO; }

// The whole lines at the head of `text` (which holds `lines` lines) that
// fit in one output chunk, at least one: their bytes and their count. On
// journald's stream each line takes its priority prefix too.
std::pair<std::size_t, std::uint64_t> stdout_sink::chunk_at_head(std::string_view text, std::uint64_t lines) const {
    if (is_journal_) {
        const std::size_t per_line = journal_priority.size();
        std::size_t end = 0;
        std::uint64_t taken = 0;
        while (end < text.size()) {
            const std::size_t line_end = text.find('\n', end) + 1;
            if (taken > 0 && line_end + per_line * (taken + 1) > chunk_)
                break;
            end = line_end;
            ++taken;
        }
        return {end, taken};
    }
    if (text.size() <= chunk_)
        return {text.size(), lines};
    // The whole lines in the first chunk_ bytes (at least one line).
    std::size_t end = text.rfind('\n', chunk_ - 1) + 1;
    if (end == 0)
        end = text.find('\n') + 1;
    return {end, count_lines(text.substr(0, end))};
}

// `chunk` with journald's priority before each line. An order "<0>panic"
// must not set its own priority: journald strips exactly one "<N>"
// (sd-daemon(3)), ours.
std::string_view stdout_sink::with_priority(std::string_view chunk) {
    prefixed_.clear();
    for (std::size_t at = 0; at < chunk.size();) {
        const std::size_t line_end = chunk.find('\n', at) + 1;
        prefixed_ += journal_priority;
        prefixed_.append(chunk.substr(at, line_end - at));
        at = line_end;
    }
    return prefixed_;
}

// Writes the chunk at the head of `text` (see chunk_at_head), retrying
// short writes. On failure: a file is cut back to where the write began,
// and none of its lines counts (were the cut to fail, they are served
// again: a duplicate, never a loss); a socket keeps what went out, and its
// whole lines count.
delivered stdout_sink::write_chunk(std::string_view text, std::uint64_t lines, int fd) {
    const auto [end, chunk_lines] = chunk_at_head(text, lines);
    const std::string_view chunk = is_journal_ ? with_priority(text.substr(0, end)) : text.substr(0, end);
    const std::optional<std::uint64_t> file_offset = note_output_write(chunk);
    std::size_t written_bytes = 0;
    while (written_bytes < chunk.size()) {
        const ssize_t n = retry_on_eintr(
            [&] { return ::write(fd, chunk.data() + written_bytes, chunk.size() - written_bytes); });
        if (n < 0) {
            const int err = errno;
            if (file_offset) {
                if (written_bytes > 0)
                    cut_failed_write(*file_offset, chunk.substr(0, written_bytes));
                return {0, 0, err};
            }
            // A socket keeps what went out: the whole lines among it are served.
            const std::string_view out = chunk.substr(0, written_bytes);
            const std::uint64_t done = count_lines(out.substr(0, out.rfind('\n') + 1));
            // The bytes of `text` those lines were (without our prefixes).
            std::size_t bytes = 0;
            for (std::uint64_t i = 0; i < done; ++i)
                bytes = text.find('\n', bytes) + 1;
            return {done, bytes, err};
        }
        written_bytes += static_cast<std::size_t>(n);
    }
    return {chunk_lines, end, 0};
}

// When stdout is a regular file: records in the journal where the next
// write goes (the file's offset, or its end with O_APPEND) and what it
// holds, and returns that offset. A write to a file is all or nothing for
// us: one that fails part-way is cut back to this offset (cut_failed_write),
// and one that a kill stops part-way is cut back by the next start
// (cut_unfinished_write), each only where the bytes there are provably
// this write's.
std::optional<std::uint64_t> stdout_sink::note_output_write(std::string_view chunk) {
    if (!file_)
        return std::nullopt;
    off_t offset = 0;
    if (append_) {
        struct stat st{};
        offset = ::fstat(STDOUT_FILENO, &st) == 0 ? st.st_size : -1;
    } else {
        offset = ::lseek(STDOUT_FILENO, 0, SEEK_CUR);
    }
    if (offset < 0)
        return std::nullopt;
    journal_format::encode_output_write(note_, *file_, static_cast<std::uint64_t>(offset), chunk);
    if (const int err = journal_.note_output_write(note_); err != 0 && !std::exchange(note_failed_, true))
        spdlog::warn("cannot record stdout's writes in the journal '{}': {}; a kill in the middle of a write may "
                     "leave an unfinished line at the end of stdout",
                     journal_.path().native(), std::strerror(err));
    return static_cast<std::uint64_t>(offset);
}

// A write to a stdout file at `offset` failed after `out`: cuts that
// part off again, when the file ends with exactly it there (with O_APPEND,
// another writer may have written in between, or after it).
void stdout_sink::cut_failed_write(std::uint64_t offset, std::string_view out) {
    const std::uint64_t end = offset + out.size();
    if (read_output(offset, end) == out && cut_output_back(offset, end))
        return;
    spdlog::warn("stdout: the {} bytes written at offset {} before the write failed are left there (not provably "
                 "all ours at the end of the file, or not cut: {}); their orders are served again",
                 out.size(), offset, std::strerror(errno));
}

// True when a write of up to PIPE_BUF bytes to stdout would not block now
// (poll's POLLOUT on a pipe means that much room).
bool stdout_sink::has_room() const {
    pollfd out{STDOUT_FILENO, POLLOUT, 0};
    return ::poll(&out, 1, 0) == 1 && (out.revents & POLLOUT) != 0;
}

}  // namespace coffee::consumer
