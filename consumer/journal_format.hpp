#pragma once
// The journal's records as bytes, apart from the file that holds them
// (journal.hpp): the layout, its encoders and decoders, and the scanner that
// finds and checks records in any bytes at all. No descriptors: the scanner
// reads through a byte_source, a file's (pread) or a buffer's, so that it
// can be tested and fuzzed without a file.
//
// A journal is a sequence of records, each:
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

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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
// The 16-byte header of a record whose payload is `seq` (le64(first_seq))
// then `body`: what encode() puts before them, for a caller that writes
// the three pieces without joining them.
[[nodiscard]] std::array<char, header_bytes> header(char type, std::string_view seq, std::string_view body);
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

// Where a journal_scanner reads a journal's bytes from.
class byte_source {
public:
    virtual ~byte_source() = default;
    // Copies into `out` the bytes from `offset` on, up to out.size() of
    // them, and returns how many; fewer is fine (the caller asks again),
    // 0 means there are none at `offset`. Throws on a read error.
    virtual std::size_t read(std::uint64_t offset, std::span<char> out) = 0;
};

// The bytes of a buffer that the caller keeps alive, handed out at most
// `max_read` at a time.
class memory_source final : public byte_source {
public:
    explicit memory_source(std::string_view bytes, std::size_t max_read = SIZE_MAX) noexcept
        : bytes_{bytes}, max_read_{max_read == 0 ? 1 : max_read} {}
    std::size_t read(std::uint64_t offset, std::span<char> out) override;

private:
    std::string_view bytes_;
    std::size_t max_read_;
};

// Reads the valid records of a journal in order, with bounded memory (one
// record plus a read buffer), whatever the bytes are.
class journal_scanner {
public:
    struct record {
        char type = 0;
        std::uint64_t offset = 0;
        std::uint64_t first_seq = 0;
        std::string_view body;  // valid until the next call to next()
    };

    static constexpr std::size_t default_read_ahead = 256 * 1024;

    // Reads `source` (which must outlive the scanner) from `start` to
    // `end`, `read_ahead` bytes past what a record needs at a time (at
    // least 16; smaller than the default only to test the buffer's edges).
    journal_scanner(byte_source& source, std::uint64_t end, std::uint64_t start = 0,
                    std::size_t read_ahead = default_read_ahead) noexcept
        : source_{source}, end_{end}, pos_{start}, read_ahead_{read_ahead < 16 ? 16 : read_ahead} {}
    void extend(std::uint64_t end) noexcept { end_ = end; }

    // The next valid record, or nullopt at the end. Each damaged stretch
    // passed on the way is given to on_damage once; an 'O' record that
    // repeats order numbers is one. Throws what the source throws.
    std::optional<record> next(const std::function<void(const journal_damage&)>& on_damage);

private:
    std::size_t ensure(std::uint64_t pos, std::size_t n);  // bytes available at pos, up to n
    [[nodiscard]] std::string_view at(std::uint64_t pos, std::size_t n) const;
    std::uint64_t find_magic(std::uint64_t from);
    std::string check(std::uint64_t pos, std::size_t& payload);  // empty: valid

    byte_source& source_;
    std::uint64_t end_;
    std::uint64_t pos_ = 0;
    std::size_t read_ahead_;
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
    // it cannot be told. With the file handling, in journal.cpp.
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

}  // namespace coffee::consumer
