#pragma once
// The records of a journal trace (journal_trace.cpp writes them, the crash
// suite reads them): what a process did to the journal's directory and
// what it showed outside, in order.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace coffee::trace {

enum class op : char {
    open = 'o',      // file opened (created or not): file, a = its size then, name
    write = 'w',     // file, a = offset, data
    truncate = 't',  // file, a = new length
    sync = 's',      // fdatasync or fsync of file
    sync_dir = 'd',  // fsync of the directory
    rename = 'r',    // name -> name2
    unlink = 'u',    // name
    consume = 'c',   // a = bytes consumed from the FIFO
    out = 'O',       // a = bytes written to stdout
};

struct record {
    op kind{};
    std::uint32_t file = 0;  // 1, 2, ...: one per inode
    std::uint64_t a = 0;
    std::string name;
    std::string name2;
    std::string data;
};

// kind, file, a, then three length-prefixed strings; little-endian.
inline std::string encode(const record& r) {
    std::string out;
    const auto put = [&out](std::uint64_t v, int bytes) {
        for (int i = 0; i < bytes; ++i)
            out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    };
    out.push_back(static_cast<char>(r.kind));
    put(r.file, 4);
    put(r.a, 8);
    for (const std::string* s : {&r.name, &r.name2, &r.data}) {
        put(s->size(), 8);
        out.append(*s);
    }
    return out;
}

// The record at `pos` of `bytes`, advancing `pos`; nullopt at the end or
// when the rest is not a whole record.
inline std::optional<record> decode(std::string_view bytes, std::size_t& pos) {
    const auto get = [&](int n, std::uint64_t& v) {
        if (bytes.size() - pos < static_cast<std::size_t>(n))
            return false;
        v = 0;
        for (int i = 0; i < n; ++i)
            v |= std::uint64_t{static_cast<unsigned char>(bytes[pos + static_cast<std::size_t>(i)])} << (8 * i);
        pos += static_cast<std::size_t>(n);
        return true;
    };
    if (pos >= bytes.size())
        return std::nullopt;
    record r;
    r.kind = static_cast<op>(bytes[pos++]);
    std::uint64_t file = 0;
    if (!get(4, file) || !get(8, r.a))
        return std::nullopt;
    r.file = static_cast<std::uint32_t>(file);
    for (std::string* s : {&r.name, &r.name2, &r.data}) {
        std::uint64_t n = 0;
        if (!get(8, n) || bytes.size() - pos < n)
            return std::nullopt;
        s->assign(bytes.substr(pos, n));
        pos += n;
    }
    return r;
}

}  // namespace coffee::trace
