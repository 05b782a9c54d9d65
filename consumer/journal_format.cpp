#include "journal_format.hpp"

#include <coffee/crc32c.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace coffee::consumer {

namespace journal_format {

std::string le64(std::uint64_t n) {
    std::string out(8, '\0');
    for (std::size_t i = 0; i < 8; ++i)
        out[i] = static_cast<char>((n >> (8 * i)) & 0xFFU);
    return out;
}

std::uint64_t read_le64(std::string_view bytes) noexcept {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < 8 && i < bytes.size(); ++i)
        n |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
    return n;
}

namespace {

std::uint32_t read_le32(std::string_view bytes) noexcept {
    std::uint32_t n = 0;
    for (std::size_t i = 0; i < 4; ++i)
        n |= std::uint32_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
    return n;
}

void put_le32(char* out, std::uint32_t n) noexcept {
    for (std::size_t i = 0; i < 4; ++i)
        out[i] = static_cast<char>((n >> (8 * i)) & 0xFFU);
}

}  // namespace

// The 16-byte header of a record whose payload is seq + body.
std::array<char, header_bytes> header(char type, std::string_view seq, std::string_view body) {
    std::array<char, header_bytes> h{};
    std::memcpy(h.data(), magic.data(), 4);
    h[4] = type;
    put_le32(h.data() + 8, static_cast<std::uint32_t>(seq.size() + body.size()));
    std::uint32_t crc = crc32c({h.data() + 4, 8});
    crc = crc32c(seq, crc);
    crc = crc32c(body, crc);
    put_le32(h.data() + 12, crc);
    return h;
}

std::string encode(char type, std::uint64_t first_seq, std::string_view body) {
    const std::string seq = le64(first_seq);
    const auto h = header(type, seq, body);
    std::string out{h.data(), h.size()};
    out += seq;
    out += body;
    return out;
}

}  // namespace journal_format

namespace fmt_ = journal_format;

bool output_file::same_as(const output_file& other) const noexcept {
    return device == other.device && inode == other.inode && (has_birth || has_generation) &&
           has_birth == other.has_birth && birth_sec == other.birth_sec && birth_nsec == other.birth_nsec &&
           has_generation == other.has_generation && generation == other.generation;
}

namespace {

// How many multiples of output_page lie inside a write of `length` bytes
// at `offset` (strictly after its start, strictly before its end).
std::uint64_t pages_inside(std::uint64_t offset, std::uint64_t length) noexcept {
    return length == 0 ? 0 : (offset + length - 1) / fmt_::output_page - offset / fmt_::output_page;
}

}  // namespace

bool output_write::may_stop_at(std::uint64_t end) const noexcept {
    return end > offset && end - offset < length && end % fmt_::output_page == 0;
}

bool output_write::began_with(std::string_view bytes) const noexcept {
    if (!may_stop_at(offset + bytes.size()))
        return false;
    std::size_t i = 0;
    for (std::uint64_t from = offset; from < offset + bytes.size(); ++i) {
        const std::uint64_t to = (from / fmt_::output_page + 1) * fmt_::output_page;
        if (i >= page_crcs.size() ||
            crc32c(bytes.substr(static_cast<std::size_t>(from - offset), static_cast<std::size_t>(to - from))) !=
                page_crcs[i])
            return false;
        from = to;
    }
    return true;
}

namespace journal_format {

void encode_output_write(std::string& out, const output_file& file, std::uint64_t offset, std::string_view bytes) {
    const auto le32 = [&](std::uint32_t n) {
        for (std::size_t i = 0; i < 4; ++i)
            out += static_cast<char>((n >> (8 * i)) & 0xFFU);
    };
    const auto le64 = [&](std::uint64_t n) {
        for (std::size_t i = 0; i < 8; ++i)
            out += static_cast<char>((n >> (8 * i)) & 0xFFU);
    };
    out.clear();
    le64(file.device);
    le64(file.inode);
    le64(offset);
    le64(bytes.size());
    le32((file.has_birth ? 1U : 0U) | (file.has_generation ? 2U : 0U));
    le32(file.birth_nsec);
    le64(static_cast<std::uint64_t>(file.birth_sec));
    le64(file.generation);
    // The pieces: up to the first page boundary, then whole pages up to the
    // last boundary inside the write; three pages at a time where there are.
    const std::uint64_t end = offset + bytes.size();
    const std::uint64_t first = (offset / output_page + 1) * output_page;
    if (first >= end)
        return;
    le32(crc32c(bytes.substr(0, static_cast<std::size_t>(first - offset))));
    const char* page = bytes.data() + (first - offset);
    std::uint64_t pages = pages_inside(offset, bytes.size()) - 1;
    for (; pages >= 3; pages -= 3, page += 3 * output_page)
        for (const std::uint32_t crc : crc32c_3(page, page + output_page, page + 2 * output_page, output_page))
            le32(crc);
    for (; pages > 0; --pages, page += output_page)
        le32(crc32c({page, output_page}));
}

std::optional<consumer::output_write> decode_output_write(std::string_view body) {
    if (body.size() < output_write_bytes)
        return std::nullopt;
    consumer::output_write w;
    w.file.device = read_le64(body.substr(0, 8));
    w.file.inode = read_le64(body.substr(8, 8));
    w.offset = read_le64(body.substr(16, 8));
    w.length = read_le64(body.substr(24, 8));
    const std::uint32_t known = read_le32(body.substr(32, 4));
    w.file.has_birth = (known & 1U) != 0;
    w.file.has_generation = (known & 2U) != 0;
    w.file.birth_nsec = read_le32(body.substr(36, 4));
    w.file.birth_sec = static_cast<std::int64_t>(read_le64(body.substr(40, 8)));
    w.file.generation = read_le64(body.substr(48, 8));
    if (w.length == 0 || w.length > max_output_write || w.offset > UINT64_MAX - w.length || (known & ~3U) != 0 ||
        body.size() != output_write_bytes + 4 * pages_inside(w.offset, w.length))
        return std::nullopt;
    for (std::size_t at = output_write_bytes; at < body.size(); at += 4)
        w.page_crcs.push_back(read_le32(body.substr(at, 4)));
    return w;
}

}  // namespace journal_format

std::size_t memory_source::read(std::uint64_t offset, std::span<char> out) {
    if (offset >= bytes_.size())
        return 0;
    const std::size_t n = std::min({out.size(), bytes_.size() - static_cast<std::size_t>(offset), max_read_});
    std::memcpy(out.data(), bytes_.data() + offset, n);
    return n;
}

std::size_t journal_scanner::ensure(std::uint64_t pos, std::size_t n) {
    const std::uint64_t want_end = std::min<std::uint64_t>(pos + n, end_);
    if (want_end > buffer_offset_ + buffer_.size() || pos < buffer_offset_) {
        // Keep nothing before pos: memory stays bounded by one record plus a read.
        if (pos >= buffer_offset_ && pos <= buffer_offset_ + buffer_.size()) {
            buffer_.erase(0, static_cast<std::size_t>(pos - buffer_offset_));
        } else {
            buffer_.clear();
        }
        buffer_offset_ = pos;
        const std::uint64_t read_end =
            std::min<std::uint64_t>(end_, std::max<std::uint64_t>(want_end, buffer_offset_ + buffer_.size() + read_ahead_));
        while (buffer_offset_ + buffer_.size() < read_end) {
            const std::uint64_t from = buffer_offset_ + buffer_.size();
            const auto size = static_cast<std::size_t>(read_end - from);
            const std::size_t old = buffer_.size();
            buffer_.resize(old + size);
            const std::size_t got = source_.read(from, {buffer_.data() + old, size});
            buffer_.resize(old + got);
            if (got == 0) {
                end_ = from;  // the file shrank under us
                break;
            }
        }
    }
    const std::uint64_t have_end = buffer_offset_ + buffer_.size();
    return pos >= have_end ? 0 : static_cast<std::size_t>(std::min<std::uint64_t>(have_end - pos, n));
}

std::string_view journal_scanner::at(std::uint64_t pos, std::size_t n) const {
    return std::string_view{buffer_}.substr(static_cast<std::size_t>(pos - buffer_offset_), n);
}

std::uint64_t journal_scanner::find_magic(std::uint64_t from) {
    const std::size_t window = read_ahead_ / 4;  // at least 4: a whole magic
    while (from < end_) {
        const std::size_t got = ensure(from, window);
        if (got < fmt_::magic.size())
            return end_;
        const std::size_t found = at(from, got).find(fmt_::magic);
        if (found != std::string_view::npos)
            return from + found;
        from += got - (fmt_::magic.size() - 1);
    }
    return end_;
}

std::string journal_scanner::check(std::uint64_t pos, std::size_t& payload) {
    if (ensure(pos, fmt_::header_bytes) < fmt_::header_bytes)
        return "a record cut short (torn write)";
    const std::string_view h = at(pos, fmt_::header_bytes);
    if (h.substr(0, 4) != fmt_::magic)
        return "not a record";
    const char type = h[4];
    if ((type != fmt_::orders && type != fmt_::served && type != fmt_::output_write) || h[5] != 0 || h[6] != 0 ||
        h[7] != 0)
        return "unknown record type";
    payload = fmt_::read_le32(h.substr(8, 4));
    const std::uint32_t expected_crc = fmt_::read_le32(h.substr(12, 4));  // h dies with the next ensure()
    if (payload > fmt_::max_payload || payload < fmt_::seq_bytes ||
        (type == fmt_::served && payload != 2 * fmt_::seq_bytes) ||
        (type == fmt_::output_write &&
         (payload < fmt_::seq_bytes + fmt_::output_write_bytes ||
          payload > fmt_::seq_bytes + fmt_::output_write_bytes + 4 * (fmt_::max_output_write / fmt_::output_page + 1))) ||
        (type == fmt_::orders && payload == fmt_::seq_bytes))
        return "impossible record length";
    if (type == fmt_::orders) {
        // Order text never holds the magic (0xC0 0xFF is not UTF-8): a claimed
        // payload that does is not a record. Checked before reading and
        // summing it, so that garbage full of fake headers costs one pass.
        const std::uint64_t text = pos + fmt_::header_bytes + fmt_::seq_bytes;
        if (next_magic_ < text)
            next_magic_ = find_magic(text);
        if (next_magic_ < pos + fmt_::header_bytes + payload)
            return next_magic_ >= end_ ? "a record cut short (torn write)" : "a record overlapping the next one";
    }
    if (ensure(pos, fmt_::header_bytes + payload) < fmt_::header_bytes + payload)
        return "a record cut short (torn write)";
    const std::string_view all = at(pos, fmt_::header_bytes + payload);
    const std::uint32_t crc = crc32c(all.substr(fmt_::header_bytes), crc32c(all.substr(4, 8)));
    if (crc != expected_crc)
        return "checksum mismatch";
    if (type == fmt_::orders && all.back() != '\n')
        return "orders not ending in LF";
    if (type == fmt_::output_write && !fmt_::decode_output_write(all.substr(fmt_::header_bytes + fmt_::seq_bytes)))
        return "an impossible stdout write (longer than one output chunk, or not what its length says)";
    return {};
}

std::optional<journal_scanner::record> journal_scanner::next(
    const std::function<void(const journal_damage&)>& on_damage) {
    std::optional<journal_damage> damage;
    const auto report = [&](std::uint64_t until) {
        if (damage) {
            damage->bytes = until - damage->offset;
            on_damage(*damage);
            damage.reset();
        }
    };
    while (pos_ < end_) {
        std::size_t payload = 0;
        std::string why = check(pos_, payload);
        if (why.empty()) {
            report(pos_);
            const std::string_view all = at(pos_, fmt_::header_bytes + payload);
            record r{all[4], pos_, fmt_::read_le64(all.substr(fmt_::header_bytes, 8)),
                     all.substr(fmt_::header_bytes + fmt_::seq_bytes)};
            pos_ += fmt_::header_bytes + payload;
            if (r.type != fmt_::orders)
                return r;
            const auto count = static_cast<std::uint64_t>(std::count(r.body.begin(), r.body.end(), '\n'));
            if (r.first_seq >= next_order_seq_) {
                next_order_seq_ = r.first_seq + count;
                return r;
            }
            on_damage(journal_damage{r.offset, pos_ - r.offset,
                                     fmt::format("orders {}..{} again after order {}: a copied record", r.first_seq,
                                                 r.first_seq + count - 1, next_order_seq_ - 1)});
            continue;
        }
        if (!damage)
            damage = journal_damage{pos_, 0, std::move(why)};
        pos_ = find_magic(pos_ + 1);
    }
    report(end_);
    return std::nullopt;
}

}  // namespace coffee::consumer
