// The journal's scanner over bytes, without a file: what it finds in a
// buffer, however the buffer is handed to it.
#include <journal_format.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

namespace jf = coffee::consumer::journal_format;
using coffee::consumer::journal_damage;
using coffee::consumer::journal_scanner;
using coffee::consumer::memory_source;
using sizes = std::initializer_list<std::size_t>;

namespace {

struct found_record {
    char type = 0;
    std::uint64_t offset = 0;
    std::uint64_t first_seq = 0;
    std::string body;
    bool operator==(const found_record&) const = default;
};

struct scan_result {
    std::vector<found_record> records;
    std::vector<journal_damage> damage;
    [[nodiscard]] std::uint64_t damaged_bytes() const {
        std::uint64_t n = 0;
        for (const auto& d : damage)
            n += d.bytes;
        return n;
    }
};

// Everything a scanner finds in `bytes`, read at most `max_read` bytes at
// a time with `read_ahead`.
scan_result scan(std::string_view bytes, std::size_t max_read = SIZE_MAX,
                 std::size_t read_ahead = journal_scanner::default_read_ahead) {
    memory_source source{bytes, max_read};
    journal_scanner scanner{source, bytes.size(), 0, read_ahead};
    scan_result out;
    while (const auto r = scanner.next([&](const journal_damage& d) { out.damage.push_back(d); }))
        out.records.push_back({r->type, r->offset, r->first_seq, std::string{r->body}});
    return out;
}

std::string served(std::uint64_t first, std::uint64_t count) { return jf::encode(jf::served, first, jf::le64(count)); }

std::string garbage(std::size_t n, unsigned seed) {
    std::mt19937 random{seed};
    std::string out(n, '\0');
    for (char& c : out)
        c = static_cast<char>(random() & 0xFFU);
    return out;
}

}  // namespace

TEST_SUITE("journal_format") {

TEST_CASE("scanner: a valid record is found whole, with nothing called damage") {
    const std::string orders = jf::encode(jf::orders, 7, "Latte\nFlat White for Ana\n");
    const std::string bytes = orders + served(7, 2);
    const scan_result r = scan(bytes);
    REQUIRE(r.records.size() == 2);
    CHECK(r.records[0] == found_record{jf::orders, 0, 7, "Latte\nFlat White for Ana\n"});
    CHECK(r.records[1] == found_record{jf::served, orders.size(), 7, jf::le64(2)});
    CHECK(r.damage.empty());
}

TEST_CASE("scanner: a record whose CRC is wrong is not accepted, wherever the wrong byte is") {
    const std::string record = jf::encode(jf::orders, 1, "Espresso\nArabica\n");
    // Every byte the CRC covers (type, zeros, length, first_seq, orders),
    // and the CRC itself.
    for (std::size_t at = 4; at < record.size(); ++at) {
        CAPTURE(at);
        std::string bad = record;
        bad[at] = static_cast<char>(bad[at] ^ 0x01);
        const scan_result r = scan(bad + served(1, 2));
        REQUIRE(r.records.size() == 1);  // the record after it is found
        CHECK(r.records[0].type == jf::served);
        CHECK(r.records[0].offset == record.size());
        REQUIRE(r.damage.size() == 1);
        CHECK(r.damage[0].offset == 0);
        CHECK(r.damage[0].bytes == record.size());
    }
    std::string bad_body = record;
    bad_body[record.size() - 3] = 'X';
    const scan_result r = scan(bad_body);
    CHECK(r.records.empty());
    REQUIRE(r.damage.size() == 1);
    CHECK(r.damage[0].reason == "checksum mismatch");
}

TEST_CASE("scanner: a torn record, cut anywhere, is damage up to the end and the records before it stand") {
    const std::string first = served(0, 3);
    const std::string torn = jf::encode(jf::orders, 3, "Cappuccino\nLatte\n");
    for (std::size_t cut = 1; cut < torn.size(); ++cut) {
        CAPTURE(cut);
        const scan_result r = scan(first + torn.substr(0, cut));
        REQUIRE(r.records.size() == 1);
        CHECK(r.records[0] == found_record{jf::served, 0, 0, jf::le64(3)});
        REQUIRE(r.damage.size() == 1);
        CHECK(r.damage[0].offset == first.size());
        CHECK(r.damage[0].bytes == cut);
        if (cut >= jf::magic.size())
            CHECK(r.damage[0].reason.find("cut short") != std::string::npos);
    }
}

TEST_CASE("scanner: records among garbage are all found, and only the garbage is damage") {
    const std::vector<std::string> records{jf::encode(jf::orders, 0, "A1\nA2\n"), served(0, 1),
                                           jf::encode(jf::orders, 2, "B1\n"), served(1, 2)};
    // Garbage of every kind: random bytes, a lone magic, a header that
    // claims a payload running into the next record, zeros.
    const std::string fake_header = std::string{jf::magic} + "O" + std::string(3, '\0') + std::string{"\x40\0\0\0\0\0\0\0", 8};
    const std::vector<std::string> junk{garbage(1000, 1), std::string{jf::magic}, fake_header, std::string(300, '\0'),
                                        garbage(5, 2) + std::string{jf::magic} + garbage(20, 3)};
    std::string bytes;
    std::vector<std::uint64_t> offsets;
    std::uint64_t junk_bytes = 0;
    for (std::size_t i = 0; i < records.size(); ++i) {
        bytes += junk[i];
        junk_bytes += junk[i].size();
        offsets.push_back(bytes.size());
        bytes += records[i];
    }
    bytes += junk.back();
    junk_bytes += junk.back().size();

    const scan_result r = scan(bytes);
    REQUIRE(r.records.size() == records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        CAPTURE(i);
        CHECK(r.records[i].offset == offsets[i]);
        CHECK(jf::encode(r.records[i].type, r.records[i].first_seq, r.records[i].body) == records[i]);
    }
    CHECK(r.damage.size() == junk.size());
    CHECK(r.damaged_bytes() == junk_bytes);
}

TEST_CASE("scanner: a record split across the source's reads is found as in one read") {
    std::string bytes = garbage(37, 4);
    bytes += jf::encode(jf::orders, 10, "Latte\nMocha\nFlat White for Ana\n");
    bytes += garbage(3, 5);
    bytes += served(10, 3);
    std::string w;
    jf::encode_output_write(w, coffee::consumer::output_file{1, 2}, 4090, std::string(20, 'x'));
    bytes += jf::encode(jf::output_write, 0, w);
    const scan_result whole = scan(bytes);
    REQUIRE(whole.records.size() == 3);
    REQUIRE(whole.damage.size() == 2);
    for (const std::size_t max_read : sizes{1, 2, 3, 7, 16, 100}) {
        for (const std::size_t read_ahead : sizes{16, 17, 64, journal_scanner::default_read_ahead}) {
            CAPTURE(max_read);
            CAPTURE(read_ahead);
            const scan_result r = scan(bytes, max_read, read_ahead);
            CHECK(r.records == whole.records);
            CHECK(r.damaged_bytes() == whole.damaged_bytes());
            CHECK(r.damage.size() == whole.damage.size());
        }
    }
    // And at the default read-ahead's edge: a record that starts just before it.
    const std::string record = jf::encode(jf::orders, 0, "Latte\n");
    for (const std::size_t before : sizes{1, 4, 15, 16, 20}) {
        CAPTURE(before);
        const std::size_t lead = journal_scanner::default_read_ahead - before;
        const std::string big = std::string(lead, '\0') + record + served(0, 1);
        const scan_result r = scan(big, 4096);
        REQUIRE(r.records.size() == 2);
        CHECK(r.records[0] == found_record{jf::orders, lead, 0, "Latte\n"});
        REQUIRE(r.damage.size() == 1);
        CHECK(r.damage[0].bytes == lead);
    }
}

}  // TEST_SUITE
