// The journal's faults: a full or read-only disk, the wrong kind of file at
// its path, corrupt contents. Each: no hang (every wait has a deadline and
// kills), no order lost silently, no garbage served. The random bytes come
// from seeded_rng() (shop.hpp): each such test prints "COFFEE_TEST_SEED=N",
// and COFFEE_TEST_SEED=N in the environment draws the same bytes again.
#include "shop.hpp"

#include <journal.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <random>
#include <thread>

using namespace coffee::test;
using namespace coffee::test::faults;

namespace {

// The consumer of the second half of each test: a good journal, brew 0.
std::vector<std::string> draining(const std::filesystem::path& journal) {
    return {"--journal", journal.native(), "--brew-time", "0", "-q"};
}

// Runs a consumer on `fifo` until every order of `book` that is not in
// `served` yet is served, then stops it; adds its lines to `served`.
// With `all_expected` false (a test that damages records), some orders may
// never come: it waits a few seconds, and the test counts what is missing.
void drain(const std::filesystem::path& fifo, const std::filesystem::path& journal, const order_book& book,
           std::vector<std::string>& served, std::string* log = nullptr, bool all_expected = true) {
    consumer_fixture consumer{fifo, draining(journal)};
    const auto all_lines = [&] { return joined(served, consumer); };
    const bool drained = all_served(book.all, all_lines, all_expected ? 60s : 3s);
    CHECK(consumer.stop() == 0);
    if (all_expected)
        CHECK_MESSAGE(drained, consumer.output().err());
    served = all_lines();
    if (log != nullptr)
        *log = consumer.output().err();
}

std::string random_bytes(std::mt19937& rng, std::size_t n, bool with_lfs) {
    std::string bytes(n, '\0');
    for (auto& b : bytes)
        b = static_cast<char>(rng());
    if (with_lfs) {  // lines of random lengths, some of them valid text
        for (std::size_t i = 0; i < n; i += 20 + rng() % 200)
            bytes[i] = '\n';
    }
    return bytes;
}

// What is at `path` now, to show it was neither opened for writing,
// deleted nor replaced.
struct identity {
    dev_t dev = 0;
    ino_t ino = 0;
    mode_t mode = 0;
    dev_t rdev = 0;
    bool operator==(const identity&) const = default;
};
identity identify(const std::filesystem::path& path) {
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return {st.st_dev, st.st_ino, st.st_mode, st.st_rdev};
}

// A journal with unserved orders in it, the way a stop leaves one: orders
// in the pipe, a slow consumer, SIGTERM. The lines it served go to `served`.
void journal_with_orders(const std::filesystem::path& fifo, const std::filesystem::path& journal,
                         const order_book& book, const std::filesystem::path& dir, std::vector<std::string>& served) {
    consumer_fixture consumer{fifo, {"--journal", journal.native(), "--brew-time", "20ms", "-q"}};
    auto producers = start_producers(fifo, book, dir);
    expect_delivered(producers);
    REQUIRE(eventually([&] { return consumer.output().lines().size() >= 5; }, 20s));
    CHECK(consumer.stop() == 0);
    served = consumer.output().lines();
    REQUIRE(std::filesystem::file_size(journal) > 1000);
}

// A shop kept busy: `orders` streamed into its pipe faster than it serves
// them, so that orders are in flight all the time. Returns the journal's
// peak size (sampled every millisecond) and the tally after a stop.
std::pair<std::uintmax_t, tally> busy_shop(const std::vector<std::string>& orders, std::string_view eol,
                                           const std::vector<std::string>& args) {
    scratch_shop shop;
    std::vector<std::string> all_args{"--journal", shop.journal.native(), "-q"};
    all_args.insert(all_args.end(), args.begin(), args.end());
    consumer_fixture consumer{shop.fifo, all_args};
    std::thread writer{[&] { stream(shop.holder.get(), orders, eol); }};
    std::uintmax_t peak = 0;
    const auto give_up = std::chrono::steady_clock::now() + 300s;
    while (consumer.output().line_count() < orders.size() && std::chrono::steady_clock::now() < give_up) {
        std::error_code ec;
        if (const auto size = std::filesystem::file_size(shop.journal, ec); !ec)
            peak = std::max(peak, size);
        std::this_thread::sleep_for(1ms);  // a sleep: the journal's size is sampled every millisecond
    }
    writer.join();
    CHECK(consumer.stop() == 0);
    return {peak, count(orders, consumer.output().lines())};
}

}  // namespace

TEST_SUITE("faults: journal") {

TEST_CASE("a journal of 20 separate runs of unserved orders is replayed without a pause between runs") {
    scratch_shop shop;
    // 400 orders, 20 at a time; every other group served: 20 runs of 10
    // unserved orders, each separated from the next by served ones.
    std::vector<std::string> unserved;
    {
        coffee::consumer::journal journal{shop.journal, false};
        for (unsigned group = 0; group < 40; ++group) {
            coffee::consumer::order_batch batch;
            for (unsigned i = 0; i < 10; ++i)
                batch.add(order_name(0, group * 10 + i));
            journal.append_orders(batch);
            if (group % 2 == 1)
                journal.mark_served(batch.first_seq, batch.count);
            else
                for (unsigned i = 0; i < 10; ++i)
                    unserved.push_back(order_name(0, group * 10 + i));
        }
    }
    // Closed by its own --timeout: a reader that waits for its status
    // interval (1 s) between runs serves a fifth of them by then.
    consumer_fixture consumer{shop.fifo, {"--journal", shop.journal.native(), "--brew-time", "0", "--timeout", "8s"}};
    CHECK(consumer.wait(60s) == 0);
    const tally t = count(unserved, consumer.output().lines());
    CHECK_MESSAGE(t.lost == 0, t.describe());
    CHECK_MESSAGE(t.torn == 0, t.describe());
    CHECK_MESSAGE(t.duplicated == 0, t.describe());
}

TEST_CASE("the journal's disk is full: exit 74, the orders wait in the pipe, nothing lost") {
    scratch_shop shop;
    const auto& dir = shop.dir;
    tmpfs_mount disk{dir / "disk", "256k"};
    if (!disk.ok()) {
        skip(disk.why());
        return;
    }
    const auto& fifo = shop.fifo;
    const auto journal = dir / "disk" / "journal";
    const order_book before = write_orders(dir.path(), 2, 500, 0);
    const order_book after = write_orders(dir.path(), 2, 500, 2);
    order_book all = before;
    all.all.insert(all.all.end(), after.all.begin(), after.all.end());
    std::vector<std::string> served;

    {   // Served while there is room; then the disk fills up mid-run. With a
        // brew time every order goes through the journal (with brew 0 they
        // are served straight from the pipe, and a full journal disk stops
        // nothing: see the next test).
        consumer_fixture consumer{fifo, {"--journal", journal.native(), "--brew-time", "1ms", "--baristas", "4", "-q"}};
        auto producers = start_producers(fifo, before, dir.path());
        expect_delivered(producers);
        CHECK(all_served(before.all, [&] { return consumer.output().lines(); }, 30s));
        disk.fill("filler");
        auto more = start_producers(fifo, after, dir.path());
        expect_delivered(more);
        const auto code = consumer.wait(30s);
        served = consumer.output().lines();
        MESSAGE("with a full journal disk: exit ", code.value_or(-1), ", served ", served.size(), "; ",
                consumer.output().err());
        CHECK(code == 74);
        CHECK(consumer.output().err().find("journal") != std::string::npos);
    }
    std::filesystem::remove(dir / "disk" / "filler");
    drain(fifo, journal, all, served);
    const tally t = count(all.all, served);
    MESSAGE(t.describe());
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated <= 1);
}

TEST_CASE("with brew 0 orders are served straight from the pipe: a full journal disk stops nothing") {
    scratch_shop shop;
    const auto& dir = shop.dir;
    tmpfs_mount disk{dir / "disk", "256k"};
    if (!disk.ok()) {
        skip(disk.why());
        return;
    }
    const auto& fifo = shop.fifo;
    const auto journal = dir / "disk" / "journal";
    const order_book book = write_orders(dir.path(), 4, 5000, 0);
    consumer_fixture consumer{fifo, draining(journal)};
    disk.fill("filler");
    auto producers = start_producers(fifo, book, dir.path());
    expect_delivered(producers);
    const bool all = all_served(book.all, [&] { return consumer.output().lines(); }, 60s);
    CHECK_MESSAGE(all, consumer.output().err());
    CHECK(consumer.stop() == 0);
    const tally t = count(book.all, consumer.output().lines());
    MESSAGE(t.describe());
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
    CHECK(std::filesystem::file_size(journal) == 0);  // nothing ever needed it
}

TEST_CASE("the journal's directory is read-only: the consumer fails at once, nothing lost") {
    scratch_shop shop;
    const auto& dir = shop.dir;
    tmpfs_mount disk{dir / "disk", "1m"};
    if (!disk.ok()) {
        skip(disk.why());
        return;
    }
    REQUIRE(disk.remount("ro"));
    const auto& fifo = shop.fifo;
    const auto journal = dir / "disk" / "journal";
    const order_book book = write_orders(dir.path(), 4, 250);
    auto producers = start_producers(fifo, book, dir.path());
    expect_delivered(producers);
    std::vector<std::string> served;
    {
        consumer_fixture consumer{fifo, draining(journal)};
        const auto code = consumer.wait(30s);
        served = consumer.output().lines();
        MESSAGE("read-only journal directory: exit ", code.value_or(-1), "; ", consumer.output().err());
        CHECK((code == 74 || code == 77));
        CHECK(served.empty());
    }
    REQUIRE(disk.remount("rw"));
    drain(fifo, journal, book, served);
    const tally t = count(book.all, served);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
}

TEST_CASE("a FIFO, a device, a directory or a symlink at the journal's path: refused at once, untouched") {
    scratch_shop shop;
    const auto& dir = shop.dir;
    const auto& fifo = shop.fifo;
    const order_book book = write_orders(dir.path(), 4, 100);
    auto producers = start_producers(fifo, book, dir.path());
    expect_delivered(producers);

    const auto journal_fifo = dir / "journal-fifo";
    REQUIRE(::mkfifo(journal_fifo.c_str(), 0600) == 0);
    const auto journal_dir = dir / "journal-dir";
    std::filesystem::create_directory(journal_dir);
    const auto target = dir / "target";
    write_file(target, "not a journal\n");
    const auto journal_link = dir / "journal-link";
    std::filesystem::create_symlink(target, journal_link);

    std::vector<std::string> served;
    for (const std::filesystem::path& path : {journal_fifo, std::filesystem::path{"/dev/null"}, journal_dir, journal_link}) {
        CAPTURE(path);
        const identity before = identify(path);
        consumer_fixture consumer{fifo, draining(path)};
        const auto code = consumer.wait(10s);  // never opened blocking: no hang
        MESSAGE(path.native(), ": exit ", code.value_or(-1), "; ", consumer.output().err());
        CHECK((code == 77 || code == 78));
        CHECK(consumer.output().lines().empty());
        CHECK(consumer.output().err().find(path.native()) != std::string::npos);
        CHECK(identify(path) == before);
    }
    CHECK(read_file(target) == "not a journal\n");
    drain(fifo, dir / "journal", book, served);
    const tally t = count(book.all, served);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
}

TEST_CASE("a journal of random bytes: reported, no garbage served, the pipe's orders served") {
    auto rng = seeded_rng();
    scratch_shop shop;
    const auto& dir = shop.dir;
    const auto& fifo = shop.fifo;
    const auto& journal = shop.journal;
    write_file(journal, random_bytes(rng, 4096, true));
    REQUIRE(::chmod(journal.c_str(), 0600) == 0);
    const order_book book = write_orders(dir.path(), 4, 100);
    auto producers = start_producers(fifo, book, dir.path());
    expect_delivered(producers);
    std::vector<std::string> served;
    std::string log;
    drain(fifo, journal, book, served, &log);
    const tally t = count(book.all, served);
    MESSAGE(t.describe(), "\n", log);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);  // nothing of the garbage
    CHECK(t.duplicated == 0);
    CHECK(log.find(" warning: ") != std::string::npos);
}

TEST_CASE("a journal whose last record is cut short: the rest is served, the cut one reported, never served") {
    scratch_shop shop;
    const auto& dir = shop.dir;
    const auto& fifo = shop.fifo;
    const auto& journal = shop.journal;
    const order_book book = write_orders(dir.path(), 4, 100);
    std::vector<std::string> served;
    journal_with_orders(fifo, journal, book, dir.path(), served);
    std::filesystem::resize_file(journal, std::filesystem::file_size(journal) - 3);
    std::string log;
    drain(fifo, journal, book, served, &log, false);
    const tally t = count(book.all, served);
    MESSAGE(t.describe(), "\n", log);
    CHECK(t.torn == 0);
    CHECK(t.duplicated <= 1);
    // The orders of the record that was cut are not served: never silently.
    CHECK(log.find(" warning: journal ") != std::string::npos);
}

TEST_CASE("random bytes in the middle of a journal: the damage reported, the rest served, no garbage served") {
    auto rng = seeded_rng();
    scratch_shop shop;
    const auto& dir = shop.dir;
    const auto& fifo = shop.fifo;
    const auto& journal = shop.journal;
    const order_book book = write_orders(dir.path(), 4, 100);
    std::vector<std::string> served;
    journal_with_orders(fifo, journal, book, dir.path(), served);
    constexpr std::size_t damage = 200;
    {
        const unique_fd fd{::open(journal.c_str(), O_WRONLY | O_CLOEXEC)};
        REQUIRE(fd);
        const std::string bytes = random_bytes(rng, damage, false);
        const auto at = static_cast<off_t>(std::filesystem::file_size(journal) / 2);
        REQUIRE(::pwrite(fd.get(), bytes.data(), bytes.size(), at) == static_cast<ssize_t>(bytes.size()));
    }
    std::string log;
    drain(fifo, journal, book, served, &log, false);
    const tally t = count(book.all, served);
    MESSAGE(t.describe(), "\n", log);
    CHECK(t.torn == 0);
    // A damaged "served" mark serves its orders again (at least once), so
    // duplicates are only counted here. The orders of the damaged records (a record may hold a whole take of
    // the pipe) are not served: never silently.
    CHECK(log.find(" warning: journal ") != std::string::npos);
}

TEST_CASE("50 MiB of garbage as the journal: read with bounded memory and time, nothing of it served") {
    auto rng = seeded_rng();
    scratch_shop shop;
    const auto& dir = shop.dir;
    const auto& fifo = shop.fifo;
    const order_book book = write_orders(dir.path(), 4, 50);
    long small_rss = 0;
    {   // The same consumer on an empty journal, for its usual footprint.
        consumer_fixture consumer{fifo, draining(dir / "small-journal")};
        REQUIRE(::write(shop.holder.get(), "warm-up\n", 8) == 8);
        REQUIRE(eventually([&] { return !consumer.output().lines().empty(); }, 20s));
        small_rss = peak_rss_kib(consumer.pid());
        CHECK(consumer.stop() == 0);
    }
    const auto& journal = shop.journal;
    write_file(journal, random_bytes(rng, 50U << 20U, true));
    REQUIRE(::chmod(journal.c_str(), 0600) == 0);
    auto producers = start_producers(fifo, book, dir.path());
    expect_delivered(producers);
    consumer_fixture consumer{fifo, draining(journal)};
    const bool drained = all_served(book.all, [&] { return consumer.output().lines(); }, 90s);
    const long big_rss = peak_rss_kib(consumer.pid());
    CHECK(consumer.stop() == 0);
    const tally t = count(book.all, consumer.output().lines());
    MESSAGE(t.describe(), "; peak RSS ", big_rss, " KiB (", small_rss, " KiB with an empty journal)");
    CHECK(drained);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
    CHECK(big_rss - small_rss < 24 * 1024);  // far less than the file
    CHECK(consumer.output().err().find(" warning: ") != std::string::npos);
}

TEST_CASE("a real journal followed by 50 MiB of garbage: its orders served, the garbage skipped in bounded memory") {
    auto rng = seeded_rng();
    scratch_shop shop;
    const auto& fifo = shop.fifo;
    const auto& journal = shop.journal;
    const order_book book = write_orders(shop.dir.path(), 4, 100);
    std::vector<std::string> served;
    journal_with_orders(fifo, journal, book, shop.dir.path(), served);
    {
        const unique_fd fd{::open(journal.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC)};
        REQUIRE(fd);
        const std::string garbage = random_bytes(rng, 50U << 20U, true);
        REQUIRE(::write(fd.get(), garbage.data(), garbage.size()) == static_cast<ssize_t>(garbage.size()));
    }
    consumer_fixture consumer{fifo, draining(journal)};
    const auto all_lines = [&] { return joined(served, consumer); };
    const bool drained = all_served(book.all, all_lines, 90s);
    const long rss = peak_rss_kib(consumer.pid());
    CHECK(consumer.stop() == 0);
    const tally t = count(book.all, all_lines());
    MESSAGE(t.describe(), "; peak RSS ", rss, " KiB");
    CHECK(drained);
    CHECK(t.lost == 0);
    CHECK(t.torn == 0);
    CHECK(t.duplicated == 0);
    CHECK(rss < 48 * 1024);  // less than the 50 MiB file itself, even with ASan's ~28 MiB
    CHECK(consumer.output().err().find(" warning: journal ") != std::string::npos);
}

// A page written over the next one (a disk or a copy gone wrong) can carry
// whole valid order records: their numbers come again, and they are
// refused, not served twice. What the copy destroyed is reported.
TEST_CASE("a journal page copied over the next one: its whole order records are not served twice") {
    namespace jf = coffee::consumer::journal_format;
    scratch_shop shop;
    constexpr std::size_t page = 4096;
    constexpr unsigned per_record = 100;  // 1,424-byte records: two whole ones in the first page
    std::string file;
    std::vector<std::string> intact;  // the orders of records that the copy leaves alone
    for (unsigned r = 0; r < 20; ++r) {
        std::string body;
        std::vector<std::string> orders;
        for (unsigned i = 0; i < per_record; ++i) {
            orders.push_back(order_name(0, r * per_record + i));
            body += orders.back() + "\n";
        }
        const std::size_t begin = file.size();
        file += jf::encode(jf::orders, std::uint64_t{r} * per_record, body);
        if (file.size() <= page || begin >= 2 * page)
            intact.insert(intact.end(), orders.begin(), orders.end());
    }
    REQUIRE(file.size() > 3 * page);
    file.replace(page, page, file.substr(0, page));
    {
        const unique_fd fd{::open(shop.journal.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
        REQUIRE(fd);
        REQUIRE(::write(fd.get(), file.data(), file.size()) == static_cast<ssize_t>(file.size()));
    }
    order_book book;
    book.all = intact;
    std::vector<std::string> served;
    std::string log;
    drain(shop.fifo, shop.journal, book, served, &log);
    const tally t = count(intact, served);
    MESSAGE(t.describe(), "\n", log);
    CHECK(t.lost == 0);
    CHECK(t.duplicated == 0);  // the copied records' 200 orders, once each
    CHECK(t.torn == 0);        // nothing of the destroyed records
    CHECK(served.size() == intact.size());
    CHECK(log.find("at offset 4096 are not valid records (orders 0..99 again after order 199") != std::string::npos);
}

// Producers ahead of the baristas all the time: no moment with nothing in
// flight, so the journal is never emptied; it is rewritten with its unserved
// orders as it goes, and stays under docs/journal.md's bound (about twice the
// unserved orders plus 2 MiB: here a few KiB of them at brew 1 ms; at brew
// 0 the queue's 1,024 orders and up to about 2 MiB of takes), with every
// order served once.
TEST_CASE("a shop that is never idle: the journal stays under its bound, nothing lost or served twice") {
    SUBCASE("brew 1ms, 4 baristas, orders of 1 KB") {
        std::vector<std::string> orders;
        for (int i = 0; i < 12000; ++i)
            orders.push_back(fmt::format("busy-{:06}-{}-end", i, std::string(1000, 'x')));
        const auto [peak, t] = busy_shop(orders, "\n", {"--brew-time", "1ms", "--baristas", "4"});
        MESSAGE("the journal's peak: ", peak, " bytes for ", orders.size() * 1016, " bytes of orders; ", t.describe());
        CHECK(peak < 3U << 20U);
        CHECK(t.lost == 0);
        CHECK(t.duplicated == 0);
        CHECK(t.torn == 0);
    }
    SUBCASE("brew 0, a CRLF storm (every order goes the journal's way)") {
        std::vector<std::string> orders;
        for (int i = 0; i < 1'500'000; ++i)
            orders.push_back(fmt::format("crlf-{:08}-end", i));
        const auto [peak, t] = busy_shop(orders, "\r\n", {"--brew-time", "0"});
        MESSAGE("the journal's peak: ", peak, " bytes for ", orders.size() * 19, " bytes of orders; ", t.describe());
        CHECK(peak < 10U << 20U);
        CHECK(t.lost == 0);
        CHECK(t.duplicated == 0);
        CHECK(t.torn == 0);
    }
}

}  // TEST_SUITE
