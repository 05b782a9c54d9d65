// stdout faults: a full disk in the middle of a batch, a reader that goes
// away. Only whole lines are written, each served order exactly once.
#include "shop.hpp"

#include <journal.hpp>

#include <coffee/posix.hpp>

#include <doctest/doctest.h>

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

// A kill in the middle of a big write() to a file stops it at a page
// boundary, in the middle of a line. The moment is too short to hit at will
// (tens of microseconds), so the test makes what such a kill leaves: the
// journal's record of the write ('W': where it went, how long it was), and
// the file ending inside it. The next start must cut the file back to where
// the write began (its orders were not recorded served, and are served
// again, whole) and leave a write that finished alone.
TEST_CASE("a write to a stdout file cut short by a kill: the next start cuts it off, and serves its orders again") {
    namespace jf = coffee::consumer::journal_format;
    const std::string kept = "Old 1\nOld 2\n";
    const std::string write = "Order A\nOrder B\n";  // still in the pipe: it was not consumed
    for (const bool finished : {false, true}) {
        CAPTURE(finished);
        scratch_shop shop;
        const auto& dir = shop.dir;
        const auto out = dir / "served";
        write_file(out, kept + (finished ? write : write.substr(0, 11)));  // "Order A\nOrd"
        struct stat st{};
        REQUIRE(::stat(out.c_str(), &st) == 0);
        write_file(shop.journal, jf::encode(jf::output_write, 0,
                                            jf::le64(st.st_dev) + jf::le64(st.st_ino) + jf::le64(kept.size()) +
                                                jf::le64(write.size())));
        REQUIRE(::write(shop.holder.get(), write.data(), write.size()) == static_cast<ssize_t>(write.size()));
        process consumer{{consumer_program, "--fifo", shop.fifo.native(), "--journal", shop.journal.native(),
                          "--brew-time", "0", "-q"},
                         {.stdout_file = out, .stderr_file = dir / "log"}};
        const auto order_b_served = [&] {
            const auto lines = read_lines(out);
            return std::count(lines.begin(), lines.end(), "Order B") == (finished ? 2 : 1);
        };
        const bool served = eventually(order_b_served, 30s);
        consumer.kill(SIGTERM);
        CHECK(consumer.wait(30s) == 0);
        CHECK_MESSAGE(served, read_file(dir / "log"));
        const std::vector<std::string> cut{"Old 1", "Old 2", "Order A", "Order B"};
        const std::vector<std::string> left{"Old 1", "Old 2", "Order A", "Order B", "Order A", "Order B"};
        CHECK(read_lines(out) == (finished ? left : cut));
        const bool said_so = read_file(dir / "log").find("cut off the 11 bytes at offset 12") != std::string::npos;
        CHECK(said_so == !finished);
    }
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
    std::this_thread::sleep_for(50ms);
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
