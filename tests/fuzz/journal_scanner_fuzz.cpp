// libFuzzer target over the journal's scanner (journal_format), reading a
// buffer through a memory_source, so no file is involved:
// - no crash, and memory bounded (run with -rss_limit_mb, -malloc_limit_mb);
// - every record it accepts is one, checked here without its code: the
//   magic, a known type, the zeros, a length that fits, the CRC-32C
//   recomputed with common's crc32c, the rules of its type; and an 'O'
//   record's numbers follow the one before (a lower one is a copy, which
//   it must report as damage, never return);
// - records and damage cover the bytes once, in order, with no gap;
// - records planted whole and valid among the garbage are found, each as
//   it was written, unless a record it accepted (garbage that happens to be
//   a valid record) covers part of it.
// Every invariant failure is a __builtin_trap(), kept by libFuzzer as a crash.
//
// Input layout: byte 0 picks the mode (bit 0 and 1 both clear: the rest is
// the journal as it stands; else the rest is a list of pieces that build
// it); byte 1 the source's largest read (0: no limit); byte 2 the
// scanner's read-ahead (0: the default; else 16 bytes and up, so that small
// inputs reach its buffer's edges). A piece is a kind byte, a length (2
// bytes) and the bytes it uses: garbage, an 'O', 'S' or 'W' record
// planted whole, a record cut short, a record with a byte changed, or a
// copy of the last 'O' record planted.
#include <journal_format.hpp>

#include <coffee/crc32c.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jf = coffee::consumer::journal_format;

namespace {

void check(bool ok) {
    if (!ok)
        __builtin_trap();
}

std::uint32_t le32_at(std::string_view b, std::size_t at) {
    std::uint32_t n = 0;
    for (std::size_t i = 0; i < 4; ++i)
        n |= std::uint32_t{static_cast<unsigned char>(b[at + i])} << (8 * i);
    return n;
}

std::uint64_t le64_at(std::string_view b, std::size_t at) {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < 8; ++i)
        n |= std::uint64_t{static_cast<unsigned char>(b[at + i])} << (8 * i);
    return n;
}

void put_le(std::string& out, std::uint64_t n, std::size_t bytes) {
    for (std::size_t i = 0; i < bytes; ++i)
        out += static_cast<char>((n >> (8 * i)) & 0xFFU);
}

// A record as docs/journal.md lays it out, written without its code.
std::string reference_record(char type, std::uint64_t first_seq, std::string_view body) {
    std::string payload;
    put_le(payload, first_seq, 8);
    payload += body;
    std::string head{"\xC0\xFF\xEEJ", 4};
    head += type;
    head += std::string(3, '\0');
    put_le(head, payload.size(), 4);
    put_le(head, coffee::crc32c(payload, coffee::crc32c(std::string_view{head}.substr(4, 8))), 4);
    return head + payload;
}

// Multiples of 4096 strictly inside a write of `length` bytes at `offset`.
std::uint64_t pages_inside(std::uint64_t offset, std::uint64_t length) {
    return length == 0 ? 0 : (offset + length - 1) / 4096 - offset / 4096;
}

// The size of the valid record at `at` in `bytes`, checked from the layout
// alone; 0 when it is not one. With the rules the scanner adds to
// the CRC: an 'O' record's text holds no magic, and no magic starts before
// its end.
std::size_t record_at(std::string_view bytes, std::size_t at) {
    if (bytes.size() - at < 16 || bytes.substr(at, 4) != std::string_view{"\xC0\xFF\xEEJ", 4})
        return 0;
    const char type = bytes[at + 4];
    if ((type != 'O' && type != 'S' && type != 'W') || bytes[at + 5] != 0 || bytes[at + 6] != 0 || bytes[at + 7] != 0)
        return 0;
    const std::uint64_t length = le32_at(bytes, at + 8);
    if (length < 8 || length > (1U << 20) + 8 || length > bytes.size() - at - 16)
        return 0;
    const std::string_view payload = bytes.substr(at + 16, static_cast<std::size_t>(length));
    const std::string_view body = payload.substr(8);
    if (type == 'S' && body.size() != 8)
        return 0;
    // Before the CRC, so that summing claimed 'O' records costs one pass
    // in all: each one's text ends before the next magic.
    if (type == 'O' && (body.empty() || body.back() != '\n' ||
                        bytes.find(std::string_view{"\xC0\xFF\xEEJ", 4}, at + 24) < at + 16 + length))
        return 0;
    if (coffee::crc32c(payload, coffee::crc32c(bytes.substr(at + 4, 8))) != le32_at(bytes, at + 12))
        return 0;
    if (type == 'W') {
        if (body.size() < 56)
            return 0;
        const std::uint64_t offset = le64_at(body, 16);
        const std::uint64_t write = le64_at(body, 24);
        if (write == 0 || write > 131072 || offset > UINT64_MAX - write || (le32_at(body, 32) & ~3U) != 0 ||
            body.size() != 56 + 4 * pages_inside(offset, write))
            return 0;
    }
    return static_cast<std::size_t>(16 + length);
}

struct planted {
    std::size_t offset;
    std::string bytes;
};

// Reads the input's pieces into a journal, noting the valid records planted.
class builder {
public:
    explicit builder(std::string_view input) : in_{input} {}

    void build(std::string& journal, std::vector<planted>& valid) {
        while (!in_.empty()) {
            const unsigned kind = take_byte() % 8;
            const std::size_t length = take_byte() | (std::size_t{take_byte()} << 8);
            const std::string_view bytes = take(length);
            switch (kind) {
            case 0:
            case 1:
                journal += bytes;
                break;
            case 2:
                last_orders_ = plant(journal, valid, 'O', next_seq(bytes), order_text(bytes));
                break;
            case 3:
                plant(journal, valid, 'S', next_seq(bytes), count(bytes));
                break;
            case 4:
                plant(journal, valid, 'W', 0, output_write(bytes));
                break;
            case 5:  // cut short
                journal += record('O', next_seq(bytes), order_text(bytes)).substr(0, length % (bytes.size() + 24));
                break;
            case 6: {  // one byte changed: never a valid record
                std::string r = record('O', next_seq(bytes), order_text(bytes));
                const std::size_t at = 4 + length % (r.size() - 4);
                r[at] = static_cast<char>(static_cast<unsigned char>(r[at]) ^ (1U << (length % 7 + 1)));
                journal += r;
                break;
            }
            default:  // a copy of the last 'O' record (one page written over another)
                if (!last_orders_.empty()) {
                    valid.push_back({journal.size(), last_orders_});
                    journal += last_orders_;
                }
                break;
            }
        }
    }

private:
    unsigned take_byte() {
        if (in_.empty())
            return 0;
        const auto b = static_cast<unsigned char>(in_[0]);
        in_.remove_prefix(1);
        return b;
    }
    std::string_view take(std::size_t n) {
        const std::string_view out = in_.substr(0, n);
        in_.remove_prefix(out.size());
        return out;
    }

    std::uint64_t next_seq(std::string_view bytes) {
        seq_ += bytes.empty() ? 1U : static_cast<unsigned char>(bytes[0]) % 4U;  // sometimes a gap
        return seq_;
    }
    // One or more orders of printable ASCII, each ending in LF.
    static std::string order_text(std::string_view bytes) {
        std::string text;
        for (const char c : bytes) {
            const auto b = static_cast<unsigned char>(c);
            text += b % 16 == 0 ? '\n' : static_cast<char>('a' + b % 26);
        }
        if (text.empty() || text.back() != '\n')
            text += '\n';
        return text;
    }
    static std::string count(std::string_view bytes) {
        std::string out;
        put_le(out, bytes.empty() ? 1 : static_cast<unsigned char>(bytes[0]), 8);
        return out;
    }
    static std::string output_write(std::string_view bytes) {
        const auto byte = [&](std::size_t i) { return i < bytes.size() ? static_cast<unsigned char>(bytes[i]) : 0U; };
        coffee::consumer::output_file file{byte(0), byte(1), (byte(2) & 1U) != 0, byte(3), byte(4),
                                           (byte(2) & 2U) != 0, byte(5)};
        const std::uint64_t offset = (std::uint64_t{byte(6)} << 12) + (std::uint64_t{byte(7)} << 4);
        const std::size_t length = 1 + ((std::size_t{byte(8)} << 9) | (std::size_t{byte(9)} << 1)) % jf::max_output_write;
        std::string written(length, 'x');
        for (std::size_t i = 10; i < bytes.size(); ++i)
            written[i % length] = bytes[i];
        std::string body;
        jf::encode_output_write(body, file, offset, written);
        // Read back as it was written, and its pages' CRCs tell its start.
        const auto w = jf::decode_output_write(body);
        check(w.has_value() && w->file.same_as(file) == (file.has_birth || file.has_generation) &&
              w->offset == offset && w->length == length && w->page_crcs.size() == pages_inside(offset, length));
        const std::uint64_t page_end = (offset / 4096 + 1) * 4096;
        if (page_end < offset + length) {
            check(w->may_stop_at(page_end) && w->began_with(std::string_view{written}.substr(0, page_end - offset)));
            written[0] = static_cast<char>(written[0] ^ 1);
            check(!w->began_with(std::string_view{written}.substr(0, page_end - offset)));
        }
        return body;
    }
    static std::string record(char type, std::uint64_t first_seq, std::string_view body) {
        std::string r = reference_record(type, first_seq, body);
        check(r == jf::encode(type, first_seq, body));
        return r;
    }
    static std::string plant(std::string& journal, std::vector<planted>& valid, char type, std::uint64_t first_seq,
                             std::string_view body) {
        std::string r = record(type, first_seq, body);
        valid.push_back({journal.size(), r});
        journal += r;
        return r;
    }

    std::string_view in_;
    std::uint64_t seq_ = 0;
    std::string last_orders_;
};

struct event {
    std::size_t offset;
    std::size_t bytes;
    bool record;  // a record returned, or a copy reported; else damage
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input{reinterpret_cast<const char*>(data), size};
    const auto byte = [&](std::size_t i) { return i < input.size() ? static_cast<unsigned char>(input[i]) : 0U; };
    const std::size_t max_read = byte(1) == 0 ? SIZE_MAX : byte(1);
    const std::size_t read_ahead =
        byte(2) == 0 ? coffee::consumer::journal_scanner::default_read_ahead : 16 + 4 * std::size_t{byte(2)};
    const std::string_view rest = input.substr(std::min<std::size_t>(input.size(), 3));

    std::string built;
    std::vector<planted> valid;
    if ((byte(0) & 3U) != 0)
        builder{rest}.build(built, valid);
    const std::string_view journal = (byte(0) & 3U) != 0 ? std::string_view{built} : rest;

    coffee::consumer::memory_source source{journal, max_read};
    coffee::consumer::journal_scanner scanner{source, journal.size(), 0, read_ahead};
    std::vector<event> events;
    std::uint64_t order_end = 0;  // after the last 'O' record returned
    const auto on_damage = [&](const coffee::consumer::journal_damage& d) {
        check(d.bytes > 0 && !d.reason.empty());
        const auto at = static_cast<std::size_t>(d.offset);
        const bool copy = d.reason.find("a copied record") != std::string::npos;
        if (copy) {
            check(record_at(journal, at) == d.bytes && journal[at + 4] == 'O' && le64_at(journal, at + 16) < order_end);
        } else {
            // A valid record is never called damage: not where the stretch
            // starts, nor at any magic in it, where the scanner looked again.
            check(record_at(journal, at) == 0);
            const std::string_view magic{"\xC0\xFF\xEEJ", 4};
            const auto end = static_cast<std::size_t>(d.offset + d.bytes);
            for (std::size_t m = journal.find(magic, at + 1); m < end; m = journal.find(magic, m + 1))
                check(record_at(journal, m) == 0);
        }
        events.push_back({at, static_cast<std::size_t>(d.bytes), copy});
    };
    while (const auto r = scanner.next(on_damage)) {
        const auto at = static_cast<std::size_t>(r->offset);
        const std::size_t bytes = record_at(journal, at);
        check(bytes > 0);  // a record, its CRC right
        check(r->type == journal[at + 4] && r->first_seq == le64_at(journal, at + 16) &&
              r->body.data() != nullptr && r->body == journal.substr(at + 24, bytes - 24));
        if (r->type == 'O') {
            check(r->first_seq >= order_end);
            order_end = r->first_seq + static_cast<std::uint64_t>(std::count(r->body.begin(), r->body.end(), '\n'));
        }
        events.push_back({at, bytes, true});
    }

    // Records and damage, in order, cover the bytes once.
    std::size_t covered = 0;
    for (const event& e : events) {
        check(e.offset == covered);
        covered += e.bytes;
    }
    check(covered == journal.size());

    // Every record planted whole is found as it is, unless a record found
    // covers part of it.
    for (const planted& p : valid) {
        const auto same = std::find_if(events.begin(), events.end(), [&](const event& e) {
            return e.record && e.offset == p.offset && e.bytes == p.bytes.size();
        });
        const bool overlapped = std::any_of(events.begin(), events.end(), [&](const event& e) {
            return e.record && e.offset < p.offset + p.bytes.size() && p.offset < e.offset + e.bytes;
        });
        check(same != events.end() || overlapped);
        if (same == events.end())
            check(std::none_of(events.begin(), events.end(),
                               [&](const event& e) { return e.record && e.offset == p.offset; }));
    }
    return 0;
}
