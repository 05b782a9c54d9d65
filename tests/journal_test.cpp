// The consumer's order journal: its record format and how it is read back.
#include "support/scratch.hpp"

#include <journal.hpp>

#include <coffee/crc32c.hpp>
#include <coffee/errors.hpp>
#include <coffee/log_rate_limit.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <string>
#include <vector>

using coffee::consumer::journal;
using coffee::consumer::order_batch;
namespace jf = coffee::consumer::journal_format;

namespace {

order_batch batch_of(const std::vector<std::string>& orders) {
    order_batch b;
    for (const auto& o : orders)
        b.add(o);
    return b;
}

// Everything a fresh open of the journal would serve, in order.
std::vector<std::string> replay_all(journal& j) {
    std::vector<std::string> out;
    order_batch b;
    while (j.replay(b, 4096)) {
        std::string_view rest = b.text;
        std::uint64_t seq = b.first_seq;
        while (!rest.empty()) {
            const auto lf = rest.find('\n');
            out.emplace_back(rest.substr(0, lf));
            rest.remove_prefix(lf + 1);
            ++seq;
        }
        CHECK(seq == b.first_seq + b.count);  // one batch, consecutive numbers
    }
    return out;
}

void append_raw(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out{path, std::ios::binary | std::ios::app};
    out << bytes;
}

long max_rss_kib() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

}  // namespace

TEST_SUITE("journal") {

TEST_CASE("crc32c matches the published check values") {
    CHECK(coffee::crc32c("123456789") == 0xE3069283U);
    CHECK(coffee::crc32c("") == 0U);
    const std::string zeros(32, '\0');
    CHECK(coffee::crc32c(zeros) == 0x8A9136AAU);  // RFC 3720 B.4
    const std::string text = "The quick brown fox jumps over the lazy dog, 0123456789";
    for (std::size_t cut = 0; cut <= text.size(); ++cut)
        CHECK(coffee::crc32c(std::string_view{text}.substr(cut), coffee::crc32c(std::string_view{text}.substr(0, cut))) ==
              coffee::crc32c(text));
}

TEST_CASE("crc32c_3 gives each buffer's crc32c, whatever its length") {
    std::mt19937 random{7};
    std::string bytes(3 * 4099, '\0');
    for (char& c : bytes)
        c = static_cast<char>(random() & 0xFFU);
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{4096},
                                std::size_t{4099}}) {
        CAPTURE(n);
        const char* p = bytes.data();
        const auto crcs = coffee::crc32c_3(p, p + n, p + 2 * n, n);
        CHECK(crcs[0] == coffee::crc32c({p, n}));
        CHECK(crcs[1] == coffee::crc32c({p + n, n}));
        CHECK(crcs[2] == coffee::crc32c({p + 2 * n, n}));
    }
    CHECK(coffee::crc32c_3("123456789", "123456789", "123456789", 9)[2] == 0xE3069283U);
}

TEST_CASE("round trip: unserved orders come back in order and served ones do not") {
    coffee::test::temp_dir dir;
    const auto path = dir / "journal";
    {
        journal j{path, false};
        CHECK(j.loaded().file_bytes == 0);
        auto a = batch_of({"A1", "A2", "A3"});
        auto b = batch_of({"B1", "B2"});
        auto c = batch_of({"C1"});
        j.append_orders(a);
        j.append_orders(b);
        j.append_orders(c);
        CHECK(b.first_seq == a.first_seq + 3);
        CHECK(j.in_flight() == 6);
        j.mark_served(a.first_seq, 2);      // A1 A2
        j.mark_served(b.first_seq + 1, 1);  // B2, out of order (another barista)
        CHECK(j.in_flight() == 3);
        CHECK_FALSE(j.compact());  // orders in flight: never emptied
    }
    struct stat st{};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    {
        journal j{path, false};
        CHECK(j.loaded().orders == 6);
        CHECK(j.loaded().unserved == 3);
        CHECK(j.loaded().damaged_bytes == 0);
        CHECK(replay_all(j) == std::vector<std::string>{"A3", "B1", "C1"});
        // New orders are numbered after everything in the file.
        auto d = batch_of({"D1"});
        j.append_orders(d);
        CHECK(d.first_seq == 6);
    }
}

TEST_CASE("stdout writes are recorded: the last one comes back, and orders are not disturbed") {
    coffee::test::temp_dir dir;
    const auto path = dir / "journal";
    {
        journal j{path, false};
        auto a = batch_of({"A1", "A2"});
        j.append_orders(a);
        coffee::consumer::output_file file{1, 2, true, 1700000000, 5, true, 77};
        std::string body;
        jf::encode_output_write(body, file, 0, "A1\nA2\n");
        CHECK(j.note_output_write(body) == 0);
        j.mark_served(a.first_seq, 1);
        jf::encode_output_write(body, file, 6, "A2\n");
        CHECK(j.note_output_write(body) == 0);
    }
    journal j{path, false};
    REQUIRE(j.loaded().last_output_write.has_value());
    const auto& w = *j.loaded().last_output_write;
    CHECK(w.file.device == 1);
    CHECK(w.file.inode == 2);
    CHECK(w.file.birth_sec == 1700000000);
    CHECK(w.file.generation == 77);
    CHECK(w.offset == 6);
    CHECK(w.length == 3);
    CHECK(j.loaded().damaged_bytes == 0);
    CHECK(j.loaded().unserved == 1);
    CHECK(replay_all(j) == std::vector<std::string>{"A2"});
}

TEST_CASE("a stdout write's record proves which prefixes a kill can leave, and nothing longer than one write") {
    const coffee::consumer::output_file file{1, 2, true, 1700000000, 5, false, 0};
    std::string bytes;
    for (int i = 0; bytes.size() < 20000; ++i)
        bytes += "Order " + std::to_string(i) + "\n";
    std::string body;
    const std::uint64_t offset = 1000;  // not page-aligned: the first page of the write is short
    jf::encode_output_write(body, file, offset, bytes);
    const auto w = jf::decode_output_write(body);
    REQUIRE(w.has_value());
    CHECK(w->length == bytes.size());
    CHECK(w->page_crcs.size() == 5);  // 4096, 8192, 12288, 16384, 20480 lie inside [1000, 21000+)
    for (std::uint64_t end = 4096; end < offset + bytes.size(); end += 4096) {
        CAPTURE(end);
        const std::string_view prefix = std::string_view{bytes}.substr(0, end - offset);
        CHECK(w->may_stop_at(end));
        CHECK(w->began_with(prefix));
        std::string changed{prefix};
        changed[changed.size() / 2] ^= 1;  // one bit anywhere in it
        CHECK_FALSE(w->began_with(changed));
    }
    CHECK_FALSE(w->may_stop_at(offset));
    CHECK_FALSE(w->may_stop_at(4097));  // a kill stops a write at a page boundary only
    CHECK_FALSE(w->may_stop_at(offset + bytes.size()));
    CHECK_FALSE(w->began_with(std::string_view{bytes}.substr(0, 4097 - offset)));
    CHECK_FALSE(w->began_with(""));

    // A record claiming more than one output chunk is damage, not a licence to cut.
    coffee::test::temp_dir dir;
    const auto path = dir / "journal";
    std::string crafted = body;
    crafted.replace(24, 8, jf::le64(std::uint64_t{1} << 40));
    coffee::test::write_file(path, jf::encode(jf::output_write, 0, crafted));
    ::chmod(path.c_str(), 0600);
    journal j{path, false};
    CHECK_FALSE(j.loaded().last_output_write.has_value());
    REQUIRE(j.loaded().damage.size() == 1);
    CHECK(j.loaded().damage[0].reason.find("impossible stdout write") != std::string::npos);
}

TEST_CASE("a replayed order marked served is not served again, and an idle journal is emptied") {
    coffee::test::temp_dir dir;
    const auto path = dir / "journal";
    {
        journal j{path, false};
        auto a = batch_of({"A1", "A2"});
        j.append_orders(a);
    }
    {
        journal j{path, false};
        order_batch b;
        REQUIRE(j.replay(b, 4096));
        CHECK(b.count == 2);
        j.mark_served(b.first_seq, 1);  // A1 written, then a kill
    }
    {
        journal j{path, false};
        CHECK(replay_all(j) == std::vector<std::string>{"A2"});
        j.mark_served(1, 1);
        CHECK(j.in_flight() == 0);
        CHECK(j.compact());
        CHECK(std::filesystem::file_size(path) == 0);
    }
}

TEST_CASE("a busy journal is rewritten with its unserved orders, their numbers, its last stdout write and its lock") {
    coffee::test::temp_dir dir;
    const auto path = dir / "journal";
    {
        journal j{path, true};  // --sync: the new file and the directory are synced too
        std::vector<order_batch> batches;
        for (int i = 0; i < 100; ++i) {
            batches.push_back(batch_of({"O" + std::to_string(i) + "-a", "O" + std::to_string(i) + "-b"}));
            j.append_orders(batches.back());
        }
        for (int i = 0; i < 100; ++i) {
            if (i == 10)
                j.mark_served(batches[10].first_seq, 1);
            else if (i != 50)
                j.mark_served(batches[static_cast<std::size_t>(i)].first_seq, 2);
        }
        std::string w;
        coffee::consumer::journal_format::encode_output_write(w, coffee::consumer::output_file{7, 8}, 100, "Latte");
        CHECK(j.note_output_write(w) == 0);
        CHECK(j.in_flight() == 3);
        const auto before = j.bytes();
        CHECK_FALSE(j.rewrite(before + 1));  // not grown past the slack yet
        CHECK(j.rewrite(0));
        CHECK(j.bytes() < before / 10);
        CHECK(std::filesystem::file_size(path) == j.bytes());
        CHECK_FALSE(std::filesystem::exists(j.rewrite_path()));
        CHECK_FALSE(j.rewrite(j.bytes()));  // next: past twice this size plus the slack
        try {
            journal second{path, false};
            FAIL("the rewritten journal is not locked");
        } catch (const coffee::exit_error& e) {
            CHECK(e.code() == coffee::exit_tempfail);
        }
        auto late = batch_of({"late"});
        j.append_orders(late);  // into the new file, numbered on
        CHECK(late.first_seq == 200);
        j.mark_served(batches[50].first_seq, 1);
        CHECK(j.in_flight() == 3);
    }
    journal j{path, false};
    CHECK_FALSE(j.loaded().unfinished_rewrite);
    CHECK(j.loaded().damaged_bytes == 0);
    CHECK(j.loaded().unserved == 3);
    REQUIRE(j.loaded().last_output_write.has_value());
    CHECK(j.loaded().last_output_write->offset == 100);
    CHECK(j.loaded().last_output_write->length == 5);
    CHECK(replay_all(j) == std::vector<std::string>{"O10-b", "O50-b", "late"});
}

TEST_CASE("a rewrite that a kill cut short is removed at the next open, and the journal is read as it was") {
    coffee::test::temp_dir dir;
    const auto path = dir / "journal";
    {
        journal j{path, false};
        auto a = batch_of({"A1", "A2"});
        j.append_orders(a);
    }
    append_raw(dir / "journal.rewrite", jf::encode(jf::orders, 0, "half a rewrite\n"));
    journal j{path, false};
    CHECK(j.loaded().unfinished_rewrite);
    CHECK_FALSE(std::filesystem::exists(dir / "journal.rewrite"));
    CHECK(replay_all(j) == std::vector<std::string>{"A1", "A2"});
}

TEST_CASE("a torn last record is reported with its offset and never served") {
    coffee::test::temp_dir dir;
    const auto path = dir / "journal";
    std::uintmax_t first_end = 0;
    {
        journal j{path, false};
        auto a = batch_of({"Whole"});
        j.append_orders(a);
        first_end = std::filesystem::file_size(path);
        auto b = batch_of({"Torn order number two"});
        j.append_orders(b);
    }
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 5);
    journal j{path, false};
    CHECK(j.loaded().unserved == 1);
    REQUIRE(j.loaded().damage.size() == 1);
    CHECK(j.loaded().damage[0].offset == first_end);
    CHECK(j.loaded().damage[0].bytes == std::filesystem::file_size(path) - first_end);
    CHECK(j.loaded().damage[0].reason.find("cut short") != std::string::npos);
    CHECK(replay_all(j) == std::vector<std::string>{"Whole"});
}

TEST_CASE("a corrupt record is skipped and the records after it are still read") {
    coffee::test::temp_dir dir;
    const auto path = dir / "journal";
    {
        journal j{path, false};
        auto a = batch_of({"First"});
        auto b = batch_of({"Corrupted"});
        auto c = batch_of({"Third"});
        j.append_orders(a);
        j.append_orders(b);
        j.append_orders(c);
    }
    // Flip one byte of the second record's text.
    std::string bytes = coffee::test::read_file(path);
    const auto at = bytes.find("Corrupted");
    REQUIRE(at != std::string::npos);
    bytes[at] = 'c';
    coffee::test::write_file(path, bytes);
    ::chmod(path.c_str(), 0600);
    journal j{path, false};
    REQUIRE(j.loaded().damage.size() == 1);
    CHECK(j.loaded().damage[0].reason == "checksum mismatch");
    CHECK(j.loaded().unserved == 2);
    CHECK(replay_all(j) == std::vector<std::string>{"First", "Third"});
}

TEST_CASE("garbage is never served, and records after garbage are found again") {
    coffee::test::temp_dir dir;
    const auto path = dir / "journal";
    std::mt19937 random{12345};
    std::string garbage(100000, '\0');
    for (char& c : garbage)
        c = static_cast<char>(random() & 0xFFU);
    garbage += "Latte\nEspresso\n";  // text that looks like orders is not a record
    coffee::test::write_file(path, garbage);
    ::chmod(path.c_str(), 0600);
    append_raw(path, jf::encode(jf::orders, 7, "Valid after garbage\n"));
    append_raw(path, std::string{jf::magic} + std::string("O\0\0\0\xff\xff\xff\x7f", 8));  // a header claiming 2 GiB
    append_raw(path, jf::encode(jf::orders, 8, "Valid at the end\n"));
    journal j{path, false};
    CHECK(j.loaded().unserved == 2);
    CHECK(j.loaded().damaged_bytes == garbage.size() + 12);
    CHECK(j.loaded().damage.size() == 2);
    CHECK(replay_all(j) == std::vector<std::string>{"Valid after garbage", "Valid at the end"});
}

TEST_CASE("a 64 MiB journal of garbage is read with bounded memory") {
    coffee::test::temp_dir dir;
    const auto path = dir / "journal";
    {
        // Headers that each claim the biggest payload, and random bytes.
        std::ofstream out{path, std::ios::binary};
        std::mt19937 random{42};
        std::string block(1 << 20, '\0');
        for (int i = 0; i < 64; ++i) {
            for (std::size_t k = 0; k < block.size(); k += 4096) {
                for (std::size_t m = k; m < k + 4096; ++m)
                    block[m] = static_cast<char>(random() & 0xFFU);
                block.replace(k, 4, jf::magic);
                block.replace(k + 4, 4, std::string("O\0\0\0", 4));
                block.replace(k + 8, 4, std::string("\x08\x00\x10\x00", 4));  // 1 MiB + 8
            }
            out << block;
        }
    }
    ::chmod(path.c_str(), 0600);
    const long before = max_rss_kib();
    journal j{path, false};
    CHECK(j.loaded().unserved == 0);
    CHECK(j.loaded().damaged_bytes == 64U << 20);
    CHECK(replay_all(j).empty());
    const long grew = max_rss_kib() - before;
    MESSAGE("peak RSS grew by " << grew << " KiB reading 64 MiB of garbage");
    CHECK(grew < 8 * 1024);
}

TEST_CASE("what is not a regular file of ours is refused at once and left untouched") {
    coffee::test::temp_dir dir;
    SUBCASE("a FIFO") {
        const auto path = dir / "journal";
        REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
        try {
            journal j{path, false};
            FAIL("a FIFO was accepted");
        } catch (const coffee::exit_error& e) {
            CHECK(e.code() == coffee::exit_config);
            CHECK(std::string{e.what()}.find("is a FIFO") != std::string::npos);
        }
        struct stat st{};
        REQUIRE(::lstat(path.c_str(), &st) == 0);
        CHECK(S_ISFIFO(st.st_mode));
    }
    SUBCASE("a directory") {
        const auto path = dir / "journal";
        std::filesystem::create_directory(path);
        CHECK_THROWS_AS(journal(path, false), coffee::exit_error);
        CHECK(std::filesystem::is_directory(path));
    }
    SUBCASE("a symlink to a regular file") {
        const auto target = dir / "target";
        coffee::test::write_file(target, "precious\n");
        const auto path = dir / "journal";
        std::filesystem::create_symlink(target, path);
        try {
            journal j{path, false};
            FAIL("a symlink was accepted");
        } catch (const coffee::exit_error& e) {
            CHECK(e.code() == coffee::exit_config);
        }
        CHECK(std::filesystem::is_symlink(path));
        CHECK(coffee::test::read_file(target) == "precious\n");
    }
    SUBCASE("/dev/null") {
        try {
            journal j{"/dev/null", false};
            FAIL("/dev/null was accepted");
        } catch (const coffee::exit_error& e) {
            CHECK(e.code() == coffee::exit_config);
            CHECK(std::string{e.what()}.find("character device") != std::string::npos);
        }
        struct stat st{};
        REQUIRE(::stat("/dev/null", &st) == 0);
        CHECK(S_ISCHR(st.st_mode));
    }
    SUBCASE("a file that others may read or write") {
        const auto path = dir / "journal";
        coffee::test::write_file(path, jf::encode(jf::orders, 0, "Secret\n"));
        for (const mode_t mode : {0666U, 0604U, 0620U}) {
            CAPTURE(mode);
            REQUIRE(::chmod(path.c_str(), mode) == 0);
            try {
                journal j{path, false};
                FAIL("a journal open to others was accepted");
            } catch (const coffee::exit_error& e) {
                CHECK(e.code() == coffee::exit_noperm);
                CHECK(std::string{e.what()}.find("has mode 0") != std::string::npos);
            }
            struct stat st{};
            REQUIRE(::lstat(path.c_str(), &st) == 0);
            CHECK((st.st_mode & 07777) == mode);
        }
        REQUIRE(::chmod(path.c_str(), 0600) == 0);  // once its owner has checked it
        journal j{path, false};
        CHECK(replay_all(j) == std::vector<std::string>{"Secret"});
    }
    SUBCASE("a file with another hard link") {
        const auto other = dir / "other";
        coffee::test::write_file(other, "");
        const auto path = dir / "journal";
        std::filesystem::create_hard_link(other, path);
        try {
            journal j{path, false};
            FAIL("a hard link was accepted");
        } catch (const coffee::exit_error& e) {
            CHECK(e.code() == coffee::exit_noperm);
        }
    }
}

TEST_CASE("a journal in use by another consumer is refused with 75") {
    coffee::test::temp_dir dir;
    journal first{dir / "journal", false};
    try {
        journal second{dir / "journal", false};
        FAIL("two consumers on one journal");
    } catch (const coffee::exit_error& e) {
        CHECK(e.code() == coffee::exit_tempfail);
    }
}

TEST_CASE("log rate limit lets a burst through, then counts the rest for one summary") {
    using clock = coffee::log_rate_limit::clock;
    coffee::log_rate_limit limit{3, std::chrono::seconds{10}};
    const auto t0 = clock::now();
    int allowed = 0;
    for (int i = 0; i < 1000; ++i)
        allowed += limit.allow(t0 + std::chrono::milliseconds{i}) ? 1 : 0;
    CHECK(allowed == 3);
    CHECK(limit.take_suppressed(t0 + std::chrono::seconds{1}) == 0);  // the interval is not over
    CHECK(limit.take_suppressed(t0 + std::chrono::seconds{11}) == 997);
    CHECK(limit.take_suppressed(t0 + std::chrono::seconds{12}) == 0);
    CHECK(limit.allow(t0 + std::chrono::seconds{12}));  // a new burst
}

}  // TEST_SUITE
