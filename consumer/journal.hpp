#pragma once
#include "order_queue.hpp"

#include <coffee/unique_fd.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// The consumer's write-ahead order journal (README "The journal").
//
// A file of records, each:
//   magic   4 bytes  C0 FF EE 4A ("\xC0\xFF\xEEJ": never in a valid order line)
//   type    1 byte   'O' orders, 'S' served, 'W' a write to stdout
//   zero    3 bytes
//   length  4 bytes  little-endian, bytes of payload (at most max_payload)
//   crc     4 bytes  little-endian CRC-32C of type, zero, length and payload
//   payload          first_seq (8 bytes, little-endian), then
//                    'O': one or more orders, each followed by LF; the i-th
//                         has sequence number first_seq + i
//                    'S': count (8 bytes): orders first_seq .. first_seq +
//                         count - 1 were written whole to stdout
//                    'W': (first_seq 0) a write to a stdout that is a
//                         regular file, recorded before the write: device,
//                         inode, offset, length (8 bytes each; the length at
//                         most max_output_write), which of birth time and
//                         generation follow (4: bit 0, bit 1), birth time's
//                         nanoseconds (4), seconds (8), inode generation (8),
//                         then the CRC-32C (4 each) of each piece of the
//                         write that ends at a file offset inside it that is
//                         a multiple of output_page: the first from the
//                         write's start, the others a page each
// An order is unserved while no 'S' record covers its number. A torn or
// corrupt record fails its length or checksum; the reader skips to the next
// magic that starts a valid record and reports the bytes it skipped.
// Order numbers only grow through the file: an 'O' record whose first_seq
// is below the end of the 'O' record before it is a copy (a page written
// over another), reported as damage and never served again.
namespace coffee::consumer {

namespace journal_format {
inline constexpr std::string_view magic{"\xC0\xFF\xEE" "J", 4};
inline constexpr std::size_t header_bytes = 16;
inline constexpr std::size_t seq_bytes = 8;
inline constexpr std::size_t max_payload = (std::size_t{1} << 20) + seq_bytes;
inline constexpr char orders = 'O';
inline constexpr char served = 'S';
inline constexpr char output_write = 'W';
// A 'W' record's payload after first_seq, without its CRCs.
inline constexpr std::size_t output_write_bytes = 56;
// The longest write a 'W' record describes (the consumer's output chunk to
// a file), and the pages at whose file offsets a kill stops a write to a
// file (4 KiB, or a multiple of it: those are multiples of 4 KiB too).
inline constexpr std::size_t max_output_write = 131072;
inline constexpr std::size_t output_page = 4096;

// One whole record. `body` is the orders' text ('O') or the 8-byte count ('S').
[[nodiscard]] std::string encode(char type, std::uint64_t first_seq, std::string_view body);
// The 8-byte little-endian form of n, and back.
[[nodiscard]] std::string le64(std::uint64_t n);
[[nodiscard]] std::uint64_t read_le64(std::string_view bytes) noexcept;
}  // namespace journal_format

// Bytes of a journal that are not valid records.
struct journal_damage {
    std::uint64_t offset = 0;
    std::uint64_t bytes = 0;
    std::string reason;
};

// Reads the valid records of a journal file in order, with bounded memory
// (one record plus a read buffer), whatever the file holds.
class journal_scanner {
public:
    struct record {
        char type = 0;
        std::uint64_t offset = 0;
        std::uint64_t first_seq = 0;
        std::string_view body;  // valid until the next call to next()
    };

    // Reads fd (with pread, not moving its offset) from 0 to `end`.
    journal_scanner(int fd, std::uint64_t end, std::uint64_t start = 0) : fd_{fd}, end_{end}, pos_{start} {}
    void extend(std::uint64_t end) noexcept { end_ = end; }

    // The next valid record, or nullopt at the end. Each damaged stretch
    // passed on the way is given to on_damage once; an 'O' record that
    // repeats order numbers is one. Throws system_error.
    std::optional<record> next(const std::function<void(const journal_damage&)>& on_damage);

private:
    std::size_t ensure(std::uint64_t pos, std::size_t n);  // bytes available at pos, up to n
    [[nodiscard]] std::string_view at(std::uint64_t pos, std::size_t n) const;
    std::uint64_t find_magic(std::uint64_t from);
    std::string check(std::uint64_t pos, std::size_t& payload);  // empty: valid

    int fd_;
    std::uint64_t end_;
    std::uint64_t pos_ = 0;
    std::string buffer_;
    std::uint64_t buffer_offset_ = 0;
    std::uint64_t next_magic_ = 0;  // where find_magic last found one
    std::uint64_t next_order_seq_ = 0;  // after the last 'O' record passed on
};

// A regular file that stdout writes to, named beyond its inode number,
// which a file made after this one is removed may get again: by its birth
// time and its inode generation, where the file system keeps them (ext4
// both, tmpfs the birth time).
struct output_file {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    bool has_birth = false;
    std::int64_t birth_sec = 0;
    std::uint32_t birth_nsec = 0;
    bool has_generation = false;
    std::uint64_t generation = 0;

    // The file open at fd (fstat, statx, FS_IOC_GETVERSION); nullopt when
    // it cannot be told.
    static std::optional<output_file> of(int fd);
    // True when both name the same file by more than device and inode.
    [[nodiscard]] bool same_as(const output_file& other) const noexcept;
};

// Where a write to a stdout that is a regular file goes ('W' record).
struct output_write {
    output_file file;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    // The CRC-32C of each piece of the write that ends at a file offset
    // inside it that is a multiple of output_page, in order: the first from
    // `offset`, the others a page each.
    std::vector<std::uint32_t> page_crcs;

    // True when `end` is where a kill may have stopped the write part-way:
    // a multiple of output_page inside it.
    [[nodiscard]] bool may_stop_at(std::uint64_t end) const noexcept;
    // True when `bytes`, found in the file from `offset`, are the write's
    // first bytes, as far as their CRCs tell; they must end where it may
    // stop.
    [[nodiscard]] bool began_with(std::string_view bytes) const noexcept;
};

namespace journal_format {
// Into `out` (its memory reused), the payload after first_seq of the 'W'
// record of writing `bytes` at `offset` to `file`.
void encode_output_write(std::string& out, const output_file& file, std::uint64_t offset, std::string_view bytes);
// A 'W' record's payload after first_seq; nullopt when it is not a valid one
// (a length of 0 or past max_output_write, or the wrong number of CRCs).
[[nodiscard]] std::optional<consumer::output_write> decode_output_write(std::string_view body);
}  // namespace journal_format

// What opening a journal found in it.
struct journal_load {
    std::uint64_t file_bytes = 0;
    std::uint64_t orders = 0;    // valid order records' orders
    std::uint64_t unserved = 0;  // of those, not marked served
    std::uint64_t damaged_bytes = 0;
    std::vector<journal_damage> damage;  // the first few stretches, for the log
    std::uint64_t damaged_stretches = 0;
    std::optional<output_write> last_output_write;  // the last 'W' record
    bool unfinished_rewrite = false;  // a rewrite that a kill interrupted was removed
};

// The journal file, shared by the reader (appends orders) and the baristas
// (mark them served). Thread-safe.
class journal {
public:
    // Opens (creates 0600) the journal at `path` and takes its lock. Refuses
    // at once, without opening it blocking or touching it: a symlink, FIFO,
    // device, directory or socket (exit_error 78), a file owned by someone
    // else, with other hard links, or with any permission for group or
    // others (77); another consumer using it (75).
    // sync: fdatasync each order record before append_orders returns.
    // Then scans it (see load()). Throws exit_error / system_error.
    journal(std::filesystem::path path, bool sync);

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] const journal_load& loaded() const noexcept { return load_; }

    // The next orders not yet served from what was in the file when it was
    // opened, in order, up to about max_bytes (consecutive sequence numbers).
    // False when there are no more.
    bool replay(order_batch& out, std::size_t max_bytes);
    [[nodiscard]] bool replaying() const noexcept { return !replay_done_; }

    // Records the orders of `batch` (text and count), giving them sequence
    // numbers (batch.first_seq is set). On failure, a partly written record
    // is cut off again and system_error is thrown: nothing was recorded.
    void append_orders(order_batch& batch);

    // Records orders from elsewhere (an old backlog file) so that they are
    // served with the journal's own unserved ones, after them. Throws
    // system_error.
    void adopt(order_batch& batch);
    // fdatasync. Throws system_error.
    void sync();

    // Records that orders first..first+count-1 are served. Throws system_error.
    void mark_served(std::uint64_t first, std::uint64_t count);

    // Records, before a write to a stdout that is a regular file, where it
    // goes and what it holds (`body`, from journal_format::
    // encode_output_write): a kill in the middle of a big write() to a file
    // stops it at a page boundary, and the next start cuts off the
    // unfinished line when it can prove the bytes are that write's (see
    // loaded().last_output_write). Best effort: returns the error, or 0.
    int note_output_write(std::string_view body) noexcept;

    // Orders recorded and not yet marked served. Takes no lock: only the
    // reader's own appends raise it, so the reader never sees it 0 too early.
    [[nodiscard]] std::uint64_t in_flight() const noexcept { return in_flight_.load(std::memory_order_acquire); }
    [[nodiscard]] std::uint64_t bytes() const;

    // Empties the file when no order is in flight and the replay is over.
    // Returns true when it did. Throws system_error.
    bool compact();

    // Rewrites a busy journal: once orders are in flight, the replay is over
    // and the file has grown past twice its size after the last rewrite
    // plus `slack`. The unserved orders (with their numbers) and the last
    // 'W' record go to a new file beside it (rewrite_path()), locked; then
    // what the baristas appended meanwhile; then it is renamed over the
    // journal (with sync: fsync of the file first, of the directory after).
    // A kill at any moment leaves the old journal or the new one, each
    // whole, and at most a stale new file that the next open removes. Only
    // the thread that appends orders may call it. Returns true when it did.
    // Throws system_error: the journal is then as it was.
    bool rewrite(std::uint64_t slack);
    [[nodiscard]] std::filesystem::path rewrite_path() const { return path_.native() + ".rewrite"; }

private:
    void load();
    [[nodiscard]] bool is_served(std::uint64_t seq) const;
    void add_served(std::uint64_t first, std::uint64_t count);
    void write_record(char type, std::uint64_t first_seq, std::string_view body);
    void rewrite_from(std::uint64_t end);  // the records before `end`, then the rest
    void sync_directory();

    std::filesystem::path path_;
    unique_fd fd_;
    bool sync_;
    journal_load load_;

    // Replay of what was there at the start.
    // [first, end) ranges, merged; after the replay, a rewrite's scratch.
    std::map<std::uint64_t, std::uint64_t> served_at_load_;
    std::optional<journal_scanner> replay_scanner_;
    std::string replay_body_;
    std::size_t replay_pos_ = 0;
    std::uint64_t replay_seq_ = 0;
    bool replay_done_ = true;

    mutable std::mutex mutex_;
    std::uint64_t size_ = 0;
    std::uint64_t next_seq_ = 0;
    std::atomic<std::uint64_t> in_flight_{0};  // changed under mutex_
    std::uint64_t rewritten_bytes_ = 0;  // the size after the last rewrite, 0 after emptying
    bool directory_unsynced_ = false;  // with sync: a rename not yet durable
};

}  // namespace coffee::consumer
