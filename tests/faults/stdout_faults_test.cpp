// stdout faults: a full disk in the middle of a batch, a reader that goes
// away, a restart after a kill in the middle of a write to a file. Only
// whole lines are written, each served order exactly once, and no byte the
// shop did not write is cut.
#include "shop.hpp"

#include <journal.hpp>

#include <coffee/posix.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

using namespace coffee::test;
using namespace coffee::test::faults;

TEST_SUITE("faults: stdout") {

TEST_CASE("stdout on a disk that fills up mid-batch: exit 74, whole lines only, no duplicates, nothing lost") {
    scratch_shop shop;
    const auto& dir = shop.dir;
    tmpfs_mount disk{dir / "disk", "64k"};
    if (!disk.ok()) {
        skip(disk.why());
        return;
    }
    const auto& fifo = shop.fifo;
    const auto& journal = shop.journal;
    const order_book book = write_orders(dir.path(), 4, 2000);  // 112 KB of lines for 64 KiB
    auto producers = start_producers(fifo, book, dir.path());
    expect_delivered(producers);

    const auto full_out = dir / "disk" / "served";
    process first{{consumer_program, "--fifo", fifo.native(), "--journal", journal.native(), "--brew-time", "0", "-q"},
                  {.stdout_file = full_out, .stderr_file = dir / "first.log"}};
    const int code = first.wait(30s);
    const std::string text = read_file(full_out);
    MESSAGE("stdout on a full disk: exit ", code, ", ", text.size(), " bytes written; ", read_file(dir / "first.log"));
    CHECK(code == 74);
    CHECK((text.empty() || text.back() == '\n'));  // whole lines only
    std::vector<std::string> served = read_lines(full_out);

    const auto out = dir / "served";
    process second{{consumer_program, "--fifo", fifo.native(), "--journal", journal.native(), "--brew-time", "0", "-q"},
                   {.stdout_file = out, .stderr_file = dir / "second.log"}};
    const bool drained = all_served(
        book.all,
        [&] {
            auto lines = served;
            const auto more = read_lines(out);
            lines.insert(lines.end(), more.begin(), more.end());
            return lines;
        },
        60s);
    second.kill(SIGTERM);
    CHECK(second.wait(30s) == 0);
    const auto more = read_lines(out);
    served.insert(served.end(), more.begin(), more.end());
    const tally t = count(book.all, served);
    MESSAGE(t.describe());
    CHECK(drained);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
}

namespace {

namespace jf = coffee::consumer::journal_format;
using coffee::consumer::output_file;

// Unique fixed-width orders, "Order 00000" on: about `bytes` bytes of lines.
std::string numbered_orders(std::size_t bytes) {
    std::string text;
    for (unsigned i = 0; text.size() < bytes; ++i)
        text += fmt::format("Order {:05}\n", i);
    return text;
}

// Text of the user's own, with no order in it.
std::string user_text(std::size_t bytes) {
    std::string text;
    for (unsigned i = 0; text.size() < bytes; ++i)
        text += fmt::format("note {} of the user's own, not an order\n", i);
    text.resize(bytes - 1);
    return text + "\n";
}

output_file file_of(const std::filesystem::path& path) {
    const unique_fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    REQUIRE(fd);
    const auto file = output_file::of(fd.get());
    REQUIRE(file.has_value());
    return *file;
}

// The file that had this inode number before: born earlier, another generation.
output_file earlier_file(output_file file) {
    file.birth_sec -= 1;
    file.generation ^= 1;
    return file;
}

// The journal's record of a write of `bytes` at `offset` to `file`, as the
// consumer makes it just before the write.
std::string write_record(const output_file& file, std::uint64_t offset, std::string_view bytes) {
    std::string body;
    jf::encode_output_write(body, file, offset, bytes);
    return jf::encode(jf::output_write, 0, body);
}

// What a consumer killed around its write of `write` leaves besides stdout:
// `journal` (the write's record) as its journal, and the write's orders in
// the pipe (served straight from it: they leave it only once written).
void killed_while_writing(const scratch_shop& shop, const std::string& journal, const std::string& write) {
    write_file(shop.journal, journal);
    REQUIRE(::chmod(shop.journal.c_str(), 0600) == 0);
    REQUIRE(::write(shop.holder.get(), write.data(), write.size()) == static_cast<ssize_t>(write.size()));
}

// Starts a consumer with stdout `out` (appending to it, or `out_fd`), waits
// until each order of `write` is on it after the first `kept` bytes, and
// stops it. Returns its log.
std::string serve_again(const scratch_shop& shop, const std::filesystem::path& out, std::size_t kept,
                        const std::string& write, int out_fd = -1) {
    const auto log = shop.dir / "log";
    process consumer{{consumer_program, "--fifo", shop.fifo.native(), "--journal", shop.journal.native(), "--brew-time",
                      "0", "-q"},
                     {.stdout_file = out, .stdout_fd = out_fd, .stderr_file = log}};
    const std::vector<std::string> orders = split_lines(write);
    const bool served = eventually(
        [&] {
            const std::string text = read_file(out);
            return text.size() > kept && count(orders, split_lines(text.substr(kept))).lost == 0;
        },
        30s);
    consumer.kill(SIGTERM);
    CHECK(consumer.wait(30s) == 0);
    CHECK_MESSAGE(served, read_file(log));
    return read_file(log);
}

// What a user checks: every byte that was there before is still there, and
// after them each order once, whole, with no NUL byte anywhere.
void check_kept_then_served(const std::filesystem::path& out, const std::string& before, const std::string& write) {
    const std::string text = read_file(out);
    const std::size_t kept = text.compare(0, before.size(), before) == 0 ? before.size() : 0;
    const tally t = count(split_lines(write), split_lines(text.substr(std::min(text.size(), before.size()))));
    MESSAGE(kept, " of the ", before.size(), " bytes that were there kept; ", t.describe());
    CHECK(kept == before.size());
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
    CHECK(text.find('\0') == std::string::npos);
    CHECK(text == before + write);
}

}  // namespace

// A kill in the middle of a big write() to a file stops it at a page
// boundary, in the middle of a line. The moment is too short to hit at will
// (tens of microseconds), so the test makes what such a kill leaves: the
// journal's record of the write ('W': where it went, what it held), and the
// file ending at a page boundary inside it. The next start must cut the file
// back to where the write began (its orders were not recorded served, and
// are served again, whole) and leave a write that finished alone.
TEST_CASE("a write to a stdout file cut short by a kill: the next start cuts it off, and serves its orders again") {
    const std::string kept = "Old 1\nOld 2\n";
    const std::string write = numbered_orders(3 * 4096);  // still in the pipe: it was not consumed
    for (const bool finished : {false, true}) {
        CAPTURE(finished);
        scratch_shop shop;
        const auto out = shop.dir / "served";
        const std::size_t torn = 4096 - kept.size();  // the kill stopped it at the first page boundary
        write_file(out, kept + (finished ? write : write.substr(0, torn)));
        const output_file file = file_of(out);
        if (!file.has_birth && !file.has_generation) {
            skip("the file system of the test's directory tells neither birth time nor inode generation");
            return;
        }
        killed_while_writing(shop, write_record(file, kept.size(), write), write);
        const std::string log = serve_again(shop, out, kept.size() + (finished ? write.size() : 0), write);
        check_kept_then_served(out, kept + (finished ? write : ""), write);
        const bool said_so = log.find(fmt::format("cut off the {} bytes at offset 12", torn)) != std::string::npos;
        CHECK(said_so == !finished);
    }
}

// Only bytes the shop can prove it wrote are cut. Each state below is one
// where the file ends inside the last write the journal recorded, at a page
// boundary (where a kill stops a write), but the bytes there are not that
// write's: the file keeps all of them, and the orders are served after them.
TEST_CASE("a file that got the inode number of a stdout the shop was killed writing: not a byte of it is cut") {
    const std::string write = numbered_orders(3 * 4096);
    SUBCASE("the user's own text") {
        scratch_shop shop;
        const auto notes = shop.dir / "notes.txt";
        const std::string before = user_text(3 * 4096);
        write_file(notes, before);
        // The write began a page and 100 bytes before the end of the file.
        killed_while_writing(shop, write_record(earlier_file(file_of(notes)), before.size() - 4196, write), write);
        const std::string log = serve_again(shop, notes, before.size(), write);
        check_kept_then_served(notes, before, write);
        CHECK(log.find("not the file that write went to") != std::string::npos);
    }
    SUBCASE("a copy of what the killed consumer left, byte for byte") {
        scratch_shop shop;
        const auto notes = shop.dir / "notes.txt";
        const std::string before = "Old 1\nOld 2\n" + write.substr(0, 4096 - 12);
        write_file(notes, before);
        killed_while_writing(shop, write_record(earlier_file(file_of(notes)), 12, write), write);
        const std::string log = serve_again(shop, notes, before.size(), write);
        check_kept_then_served(notes, before, write);
        CHECK(log.find("not the file that write went to") != std::string::npos);
    }
}

TEST_CASE("another writer appending to the shop's stdout file: its bytes after the shop's last write are kept") {
    const std::string kept = "Old 1\nOld 2\n";
    const std::string write = numbered_orders(3 * 4096);
    SUBCASE("its lines where the shop's write was to begin (it won the race to the end of the file)") {
        scratch_shop shop;
        const auto out = shop.dir / "served";
        const std::string theirs = user_text(4096 - kept.size());
        write_file(out, kept + theirs);
        killed_while_writing(shop, write_record(file_of(out), kept.size(), write), write);
        const std::string log = serve_again(shop, out, kept.size() + theirs.size(), write);
        check_kept_then_served(out, kept + theirs, write);
        CHECK(log.find("not the ones that write began with") != std::string::npos);
    }
    SUBCASE("its line after the part of the shop's write that a kill left") {
        scratch_shop shop;
        const auto out = shop.dir / "served";
        // As serve's own log, sharing the file (>> served 2>&1), after a kill.
        const std::string theirs = "2026-12-03 07:08:39.955 coffee-launcher: consumer killed by SIGKILL; restarting\n";
        const std::string before = kept + write.substr(0, 4096 - kept.size()) + theirs;
        write_file(out, before);
        killed_while_writing(shop, write_record(file_of(out), kept.size(), write), write);
        const std::string log = serve_again(shop, out, before.size(), write);
        check_kept_then_served(out, before, write);
        CHECK(log.find("left alone") != std::string::npos);
    }
}

// Without O_APPEND (a descriptor shared with whoever started the shop, or
// `1<>`), cutting a torn write back takes two steps: the file's end and the
// descriptor's offset. A kill between them must not leave the offset past
// the end, where the next write leaves a run of NUL bytes.
TEST_CASE("a kill between the two steps of cutting a torn write back: no NUL bytes, nothing lost") {
    const std::string kept = "Old 1\nOld 2\n";
    const std::string write = numbered_orders(3 * 4096);
    for (const bool file_cut_first : {true, false}) {
        CAPTURE(file_cut_first);
        scratch_shop shop;
        const auto out = shop.dir / "served";
        // File cut first: its end is back at 12, the offset still at 4096,
        // where the torn write ended. Offset moved first: the offset is at
        // 12, the file still holds the torn write (the next start cuts it).
        write_file(out, file_cut_first ? kept : kept + write.substr(0, 4096 - kept.size()));
        const std::string record = write_record(file_of(out), kept.size(), write);
        const unique_fd fd{::open(out.c_str(), O_WRONLY | O_CLOEXEC)};
        REQUIRE(fd);
        REQUIRE(::lseek(fd.get(), file_cut_first ? 4096 : static_cast<off_t>(kept.size()), SEEK_SET) >= 0);
        killed_while_writing(shop, record, write);
        (void)serve_again(shop, out, kept.size(), write, fd.get());
        check_kept_then_served(out, kept, write);
    }
}

TEST_CASE("a journal whose stdout write claims 2^40 bytes: the file it names keeps every byte") {
    scratch_shop shop;
    const auto notes = shop.dir / "notes.txt";
    const std::string before = user_text(31200);
    write_file(notes, before);
    const std::string write = numbered_orders(4096);
    // A record of a true write, its length then made 2^40, its checksum made to match.
    std::string body;
    jf::encode_output_write(body, file_of(notes), 0, write);
    body.replace(24, 8, jf::le64(std::uint64_t{1} << 40));
    killed_while_writing(shop, jf::encode(jf::output_write, 0, body), write);
    const std::string log = serve_again(shop, notes, before.size(), write);
    check_kept_then_served(notes, before, write);
    CHECK(log.find("impossible stdout write") != std::string::npos);
}

TEST_CASE("stdout is a pipe whose reader goes away: exit 74, every order served once in the end") {
    scratch_shop shop;
    const auto& dir = shop.dir;
    const auto& fifo = shop.fifo;
    const auto& journal = shop.journal;
    const order_book book = write_orders(dir.path(), 4, 250);
    auto producers = start_producers(fifo, book, dir.path());
    expect_delivered(producers);

    auto first = start({consumer_program, "--fifo", fifo.native(), "--journal", journal.native(), "--brew-time", "2ms",
                        "-q"});
    first.in.reset();
    std::vector<std::string> served;
    std::string partial;
    REQUIRE(read_lines_until(first.out.get(), served, partial, [](const auto& l) { return l.size() >= 50; }, 30s));
    // Stopped, everything it wrote is read; then the reader goes away.
    first.process.send_signal(SIGSTOP);
    REQUIRE(wait_stopped(first.process.pid()));
    (void)read_lines_until(first.out.get(), served, partial, [](const auto&) { return false; }, 100ms);
    CHECK(partial.empty());
    first.out.reset();
    first.process.send_signal(SIGCONT);
    const auto r = communicate(first, {}, 30s);
    MESSAGE("stdout closed after ", served.size(), " lines: exit ", r.exit_code(), "; ", r.err);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code() == 74);

    consumer_fixture second{fifo, {"--journal", journal.native(), "--brew-time", "0", "-q"}};
    const auto all_lines = [&] { return joined(served, second); };
    const bool drained = all_served(book.all, all_lines, 60s);
    CHECK(second.stop() == 0);
    const tally t = count(book.all, all_lines());
    MESSAGE(t.describe());
    CHECK(drained);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
}

}  // TEST_SUITE
