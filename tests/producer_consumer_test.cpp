// The real coffee-producer and coffee-consumer, through real FIFOs.
#include "support/pipe.hpp"
#include "support/process.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using coffee::test::process;
using coffee::test::spawn_options;

namespace {

const std::string producer_bin = COFFEE_PRODUCER;
const std::string consumer_bin = COFFEE_CONSUMER;

// One shop under test: a private directory with the FIFO and the logs.
struct shop_dir {
    coffee::test::temp_dir dir;
    std::filesystem::path fifo = dir / "orders";
    std::filesystem::path journal = dir / "orders.journal";

    // The journal is emptied once every order in it is served.
    [[nodiscard]] bool journal_empty() const {
        return std::filesystem::exists(journal) && std::filesystem::file_size(journal) == 0;
    }

    [[nodiscard]] spawn_options io(const std::string& name, const std::filesystem::path& in = {}) const {
        return {.stdin_file = in, .stdout_file = dir / (name + ".out"), .stderr_file = dir / (name + ".err")};
    }
    [[nodiscard]] std::filesystem::path out(const std::string& name) const { return dir / (name + ".out"); }
    [[nodiscard]] std::filesystem::path err(const std::string& name) const { return dir / (name + ".err"); }

    // What the named consumers served, one after the other.
    [[nodiscard]] std::vector<std::string> served_by(std::initializer_list<std::string> names) const {
        std::vector<std::string> all;
        for (const std::string& name : names) {
            const auto lines = coffee::test::read_lines(out(name));
            all.insert(all.end(), lines.begin(), lines.end());
        }
        return all;
    }

    // Starts a consumer named `name` and waits until it reads the FIFO: a
    // writer's open() no longer fails with ENXIO.
    process consumer(const std::string& name, std::vector<std::string> args) const {
        args.insert(args.begin(), {consumer_bin, "--fifo", fifo.native()});
        process p{args, io(name)};
        REQUIRE(coffee::test::eventually([&] {
            const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
            if (fd >= 0)
                ::close(fd);
            return fd >= 0;
        }));
        return p;
    }

    int producer(const std::string& name, std::vector<std::string> args, const std::filesystem::path& in = {}) const {
        args.insert(args.begin(), {producer_bin, "--fifo", fifo.native()});
        return coffee::test::run(args, io(name, in));
    }

    // A fresh consumer named `name` serves what waits (its journal, then the
    // pipe) and stops at 'finish'; returns the orders it served.
    std::vector<std::string> serve_the_rest(const std::string& name, std::vector<std::string> args = {}) const {
        args.insert(args.begin(), {"--brew-time", "0", "--until-finish"});
        process next = consumer(name, args);
        CHECK(producer(name + "-finish", {"--finish"}) == 0);
        CHECK(next.wait() == 0);
        return coffee::test::read_lines(out(name));
    }

    // Starts `script` under sh in a private mount namespace, with $1 a mount
    // point for a small tmpfs the script mounts (exit 99 if it cannot) and
    // the rest of `args` after it. Returns nullopt, having printed SKIP, when
    // the machine cannot do that; else the process, once the FIFO exists.
    std::optional<process> in_private_tmpfs(const std::string& name, const std::string& script,
                                            const std::vector<std::string>& args) const {
        if (!std::filesystem::exists("/usr/bin/unshare")) {
            std::printf("SKIP: /usr/bin/unshare not found (util-linux)\n");
            return std::nullopt;
        }
        const auto mnt = dir / "tmpfs";
        std::filesystem::create_directory(mnt);
        // In a chroot whose / is not a mount point, / cannot be made private
        // (EINVAL): then the namespace keeps the propagation it has, and the
        // script unmounts the tmpfs itself (which undoes any copy of it).
        for (const std::string propagation : {"private", "unchanged"}) {
            const std::string body = propagation == "private" ? script : "trap 'umount \"$1\"' EXIT\n" + script;
            std::vector<std::string> argv{"/usr/bin/unshare", "-m", "--propagation", propagation, "sh", "-c", body, "sh",
                                          mnt.native()};
            argv.insert(argv.end(), args.begin(), args.end());
            process p{argv, io(name)};
            // Until the FIFO is there or the script has given up.
            bool exited = false;
            REQUIRE(coffee::test::eventually(
                [&] { return std::filesystem::exists(fifo) || (exited = p.wait_for(0ms).has_value()); }, 120s));
            if (!exited)
                return p;
            const int rc = p.wait();
            if (rc == 1 && propagation == "private" &&
                coffee::test::file_contains(err(name), "cannot change root filesystem propagation"))
                continue;
            if (rc == 99 || rc == 1) {
                const auto said = coffee::test::read_lines(err(name));
                std::printf("SKIP: cannot mount a tmpfs in a private mount namespace (unshare -m --propagation %s: exit %d%s%s)\n",
                            propagation.c_str(), rc, said.empty() ? "" : ": ", said.empty() ? "" : said.front().c_str());
                return std::nullopt;
            }
            FAIL("the consumer did not start: exit " << rc);
        }
        return std::nullopt;
    }
};

std::multiset<std::string> as_multiset(const std::vector<std::string>& lines) { return {lines.begin(), lines.end()}; }

// Holds the FIFO open read-write, as systemd's socket unit does: the pipe
// and what is in it outlive a consumer, and a producer writing while no
// consumer runs does not get EPIPE. It never reads.
struct fifo_holder {
    int fd;
    explicit fifo_holder(const std::filesystem::path& fifo) : fd{::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC)} {
        REQUIRE(fd >= 0);
    }
    ~fifo_holder() { ::close(fd); }
    fifo_holder(const fifo_holder&) = delete;
    fifo_holder& operator=(const fifo_holder&) = delete;
    void write(const std::string& bytes) const { REQUIRE(coffee::test::write_all(fd, bytes)); }
};

}  // namespace

TEST_SUITE("producer and consumer") {

TEST_CASE("orders from arguments, stdin and a plain echo are each served once") {
    shop_dir shop;
    process consumer = shop.consumer("consumer", {"--brew-time", "0", "--baristas", "2", "--until-finish"});
    CHECK(shop.producer("p1", {"Latte", "Flat White"}) == 0);
    {
        fifo_holder echo{shop.fifo};
        echo.write("Espresso\n");
    }
    coffee::test::write_file(shop.dir / "mochas", "Mocha #1\nMocha #2\nMocha #3\r\n  Mocha #4  \n\nMocha #5");
    CHECK(shop.producer("p2", {}, shop.dir / "mochas") == 0);
    CHECK(shop.producer("p3", {"--finish"}) == 0);
    CHECK(consumer.wait() == 0);

    const auto served = as_multiset(coffee::test::read_lines(shop.out("consumer")));
    CHECK(served == std::multiset<std::string>{"Latte", "Flat White", "Espresso", "Mocha #1", "Mocha #2", "Mocha #3",
                                               "Mocha #4", "Mocha #5"});
    CHECK(coffee::test::file_contains(shop.err("consumer"), "Processing order: Flat White"));
    CHECK(coffee::test::file_contains(shop.err("p2"), "delivered 5 orders"));
    CHECK(shop.journal_empty());
}

TEST_CASE("8 producers x 5000 orders into one consumer: every order once, none torn or merged") {
    shop_dir shop;
    process consumer = shop.consumer("consumer", {"--brew-time", "0", "--baristas", "4", "--until-finish", "-q"});
    constexpr int producers = 8;
    constexpr int orders = 5000;
    std::multiset<std::string> expected;
    std::vector<process> running;
    for (int p = 0; p < producers; ++p) {
        std::string text;
        for (int i = 0; i < orders; ++i) {
            // Lengths vary so that batches end at different places.
            const std::string order = "producer " + std::to_string(p) + " order " + std::to_string(i) +
                                      std::string(static_cast<std::size_t>(i % 37), '.');
            text += order + "\n";
            expected.insert(order);
        }
        const auto input = shop.dir / ("in" + std::to_string(p));
        coffee::test::write_file(input, text);
        running.emplace_back(std::vector<std::string>{producer_bin, "--fifo", shop.fifo.native()},
                             shop.io("p" + std::to_string(p), input));
    }
    for (auto& p : running)
        CHECK(p.wait(60s) == 0);
    CHECK(shop.producer("finish", {"--finish"}) == 0);
    CHECK(consumer.wait(60s) == 0);

    const auto served = as_multiset(coffee::test::read_lines(shop.out("consumer")));
    CHECK(served.size() == expected.size());
    CHECK(served == expected);
    CHECK_FALSE(coffee::test::file_contains(shop.err("consumer"), "malformed"));
}

TEST_CASE("no consumer: the producer waits --wait, then exits 69 saying why") {
    shop_dir shop;
    SUBCASE("the FIFO does not exist") {
        const auto start = std::chrono::steady_clock::now();
        CHECK(shop.producer("p", {"--wait", "1s", "Latte"}) == 69);
        const auto took = std::chrono::steady_clock::now() - start;
        CHECK(took >= 1s);
        CHECK(took < 3s);
        CHECK(coffee::test::file_contains(shop.err("p"), "does not exist"));
        CHECK_FALSE(std::filesystem::exists(shop.fifo));  // never creates it
    }
    SUBCASE("the FIFO exists but nobody reads it") {
        REQUIRE(::mkfifo(shop.fifo.c_str(), 0600) == 0);
        const auto start = std::chrono::steady_clock::now();
        CHECK(shop.producer("p", {"--wait", "1s", "Latte"}) == 69);
        const auto took = std::chrono::steady_clock::now() - start;
        CHECK(took >= 1s);
        CHECK(took < 3s);
        CHECK(coffee::test::file_contains(shop.err("p"), "no consumer"));
    }
}

TEST_CASE("a path that is not a FIFO is refused and left untouched") {
    shop_dir shop;
    SUBCASE("regular file") {
        coffee::test::write_file(shop.fifo, "precious\n");
        CHECK(shop.producer("p", {"--wait", "0", "Latte"}) == 78);
        CHECK(coffee::test::read_file(shop.fifo) == "precious\n");
        CHECK(coffee::test::file_contains(shop.err("p"), "is a regular file, not a FIFO"));
        CHECK(coffee::test::run({consumer_bin, "--fifo", shop.fifo.native()}, shop.io("c")) == 78);
        CHECK(coffee::test::read_file(shop.fifo) == "precious\n");
    }
    SUBCASE("symlink to a FIFO") {
        const auto real = shop.dir / "real";
        REQUIRE(::mkfifo(real.c_str(), 0600) == 0);
        std::filesystem::create_symlink(real, shop.fifo);
        const int reader = ::open(real.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);  // a reader exists
        CHECK(shop.producer("p", {"--wait", "0", "Latte"}) == 78);
        CHECK(coffee::test::file_contains(shop.err("p"), "symbolic link"));
        char byte = 0;
        CHECK(::read(reader, &byte, 1) == -1);  // nothing was written
        ::close(reader);
        CHECK(coffee::test::run({consumer_bin, "--fifo", shop.fifo.native()}, shop.io("c")) == 78);
    }
    SUBCASE("directory") {
        std::filesystem::create_directory(shop.fifo);
        CHECK(shop.producer("p", {"--wait", "0", "Latte"}) == 78);
        CHECK(coffee::test::file_contains(shop.err("p"), "is a directory"));
        CHECK(std::filesystem::is_empty(shop.fifo));
    }
}

TEST_CASE("the consumer refuses a world-writable FIFO it did not create") {
    shop_dir shop;
    REQUIRE(::mkfifo(shop.fifo.c_str(), 0600) == 0);
    REQUIRE(::chmod(shop.fifo.c_str(), 0622) == 0);
    CHECK(coffee::test::run({consumer_bin, "--fifo", shop.fifo.native(), "--timeout", "1s"}, shop.io("c")) == 77);
    CHECK(coffee::test::file_contains(shop.err("c"), "writable by everyone"));
    // ...unless told to accept it.
    CHECK(coffee::test::run({consumer_bin, "--fifo", shop.fifo.native(), "--timeout", "100ms", "--allow-world-writable"},
                            shop.io("c2")) == 0);
    // Readable by everyone is never accepted: orders are customers' data.
    REQUIRE(::chmod(shop.fifo.c_str(), 0666) == 0);
    CHECK(coffee::test::run({consumer_bin, "--fifo", shop.fifo.native(), "--timeout", "100ms", "--allow-world-writable"},
                            shop.io("c3")) == 77);
    CHECK(coffee::test::file_contains(shop.err("c3"), "readable by everyone"));
}

TEST_CASE("the consumer creates a private FIFO in a private directory") {
    shop_dir shop;
    const auto fifo = shop.dir / "sub" / "orders";
    CHECK(coffee::test::run({consumer_bin, "--fifo", fifo.native(), "--timeout", "100ms"}, shop.io("c")) == 0);
    struct stat st{};
    REQUIRE(::stat(fifo.c_str(), &st) == 0);
    CHECK(S_ISFIFO(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    REQUIRE(::stat(fifo.parent_path().c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
}

TEST_CASE("a second consumer on the same FIFO is refused with 75") {
    shop_dir shop;
    process first = shop.consumer("first", {"--brew-time", "0"});
    CHECK(coffee::test::run({consumer_bin, "--fifo", shop.fifo.native()}, shop.io("second")) == 75);
    CHECK(coffee::test::file_contains(shop.err("second"), "another consumer already reads"));
    first.kill(SIGTERM);
    CHECK(first.wait() == 0);
}

TEST_CASE("garbage in the FIFO: the consumer warns, stays up and serves the valid orders") {
    shop_dir shop;
    process consumer = shop.consumer("consumer", {"--brew-time", "0", "--until-finish"});
    fifo_holder raw{shop.fifo};
    raw.write("Before\n");
    raw.write(std::string("nul\0byte\n", 9));
    raw.write("bad \xff\xfe utf8\n");
    raw.write("overlong \xc0\xaf\n");
    raw.write("bell\a\n");
    raw.write(std::string(1 << 20, 'x'));  // 1 MiB and no LF: the next line ends it
    raw.write("Swallowed by the long line\n");
    raw.write("After 1\nAfter 2\r\n\n   \nCaf\xc3\xa9 \xe8\x8c\xb6\n");
    raw.write("finish\n");
    CHECK(consumer.wait() == 0);

    CHECK(coffee::test::read_lines(shop.out("consumer")) ==
          std::vector<std::string>{"Before", "After 1", "After 2", "Caf\xc3\xa9 \xe8\x8c\xb6"});
    const std::string log = coffee::test::read_file(shop.err("consumer"));
    CHECK(log.find("contains a NUL byte") != std::string::npos);
    CHECK(log.find("is not valid UTF-8") != std::string::npos);
    CHECK(log.find("contains a control character") != std::string::npos);
    CHECK(log.find("longer than 4096 bytes") != std::string::npos);
    CHECK(log.find("rejected 5 lines") != std::string::npos);
}

// With --brew-time 0 a take of plain orders is judged in one pass over its
// bytes and served straight from the pipe; anything else goes the way every
// order goes with a brew time (check_line, the journal). Both must judge
// every line alike, wherever it sits in a big take.
TEST_CASE("brew 0 judges every kind of line exactly as a brew time does, wherever it sits in a take") {
    // Orders as they stand, and lines that are not (or not only).
    const std::vector<std::string> plain{"finished", "xfinish", "f", "~tilde~", "a  b", std::string(2047, 'm'),
                                         std::string(2048, 'n'), std::string(4095, 'o')};
    const std::vector<std::string> odd{"", " ", "  lead", "trail  ", "finish", " finish", "finish ", "tab\there",
                                       "cr\r", "bell\a", "Caf\xc3\xa9", "bad \xff", std::string(4096, 'p'),
                                       std::string(5000, 'q')};
    std::uint32_t state = 12345;
    const auto orders = [&](int count) {
        std::string text;
        for (int i = 0; i < count; ++i) {
            state = state * 1103515245U + 12345U;
            text += (state >> 16) % 7 == 0 ? plain[(state >> 8) % plain.size()] : "Order " + std::to_string(state);
            text += '\n';
        }
        return text;
    };
    // Each take: one line from `odd` after 0, 1, 5 or 300 plain lines (the
    // start, the byte-at-a-time tail, or the middle of the one pass), then
    // plain lines; written whole, and served before the next is written.
    std::vector<std::string> takes;
    for (const std::string& line : odd) {
        for (const int before : {0, 1, 5, 300})
            takes.push_back(orders(before) + line + "\n" + orders(3) + "M" + std::to_string(takes.size()) + "\n");
    }
    const auto serve = [&](const std::string& name, const std::vector<std::string>& args,
                           const std::vector<std::string>& texts) {
        shop_dir shop;
        process consumer = shop.consumer(name, args);
        fifo_holder holder{shop.fifo};
        for (std::size_t i = 0; i < texts.size(); ++i) {
            holder.write(texts[i]);
            // The mark's own line: with 16 baristas it may be the first line served.
            const std::string mark = "\nM" + std::to_string(i) + "\n";
            REQUIRE(coffee::test::eventually(
                [&] { return ("\n" + coffee::test::read_file(shop.out(name))).find(mark) != std::string::npos; }, 120s));
        }
        consumer.kill(SIGTERM);
        CHECK(consumer.wait() == 0);
        return coffee::test::read_lines(shop.out(name));
    };
    const std::string all_plain = orders(6000) + "M0\n";
    CHECK(serve("plain", {"--brew-time", "0", "-q"}, {all_plain}) == coffee::test::split_lines(all_plain));

    const auto instant = serve("instant", {"--brew-time", "0", "-q"}, takes);
    const auto brewed = serve("brewed", {"--brew-time", "1ms", "--baristas", "16", "-q"}, takes);
    CHECK(as_multiset(instant) == as_multiset(brewed));  // 16 baristas finish in any order
    const auto has = [&](const std::string& line) { return std::find(instant.begin(), instant.end(), line) != instant.end(); };
    CHECK(!has(std::string(4096, 'p')));
    CHECK(has("lead"));
    CHECK(!has("finish"));
}

TEST_CASE("bad orders are refused by the producer with their position, the rest are delivered, exit 65") {
    shop_dir shop;
    process consumer = shop.consumer("consumer", {"--brew-time", "0", "--until-finish"});
    CHECK(shop.producer("args", {"Good 1", "bad\x01", "", "finish", std::string(4096, 'L'), "Good 2"}) == 65);
    const std::string args_log = coffee::test::read_file(shop.err("args"));
    CHECK(args_log.find("argument 2: contains a control character") != std::string::npos);
    CHECK(args_log.find("argument 3: the order is empty") != std::string::npos);
    CHECK(args_log.find("argument 4: 'finish' is the shop's control message") != std::string::npos);
    CHECK(args_log.find("argument 5: longer than 4096 bytes") != std::string::npos);
    coffee::test::write_file(shop.dir / "in", "Good 3\n\xff\nGood 4\n" + std::string(5000, 'y') + "\nGood 5\n");
    CHECK(shop.producer("stdin", {}, shop.dir / "in") == 65);
    const std::string stdin_log = coffee::test::read_file(shop.err("stdin"));
    CHECK(stdin_log.find("stdin line 2: is not valid UTF-8") != std::string::npos);
    CHECK(stdin_log.find("stdin line 4: longer than 4096 bytes") != std::string::npos);
    CHECK(shop.producer("finish", {"--finish"}) == 0);
    CHECK(consumer.wait() == 0);
    CHECK(as_multiset(coffee::test::read_lines(shop.out("consumer"))) ==
          std::multiset<std::string>{"Good 1", "Good 2", "Good 3", "Good 4", "Good 5"});
}

TEST_CASE("consumer killed while a producer streams 200000 orders: the producer exits 74 with counts") {
    shop_dir shop;
    process consumer = shop.consumer("consumer", {"--brew-time", "1s", "--queue-size", "16", "-q"});
    process producer{{producer_bin, "--fifo", shop.fifo.native(), "--count", "200000"}, shop.io("producer")};
    // Once the pipe is full, the producer is blocked in write(). Looked at
    // through an end closed before the kill, so that the pipe goes with the consumer.
    REQUIRE(coffee::test::eventually([&] { return std::filesystem::exists(shop.fifo); }));
    {
        const fifo_holder pipe{shop.fifo};
        REQUIRE(coffee::test::eventually([&] { return coffee::test::pipe_full(pipe.fd); }, 30s));
    }
    consumer.kill(SIGKILL);
    CHECK(consumer.wait() == 128 + SIGKILL);
    CHECK(producer.wait() == 74);
    const std::string log = coffee::test::read_file(shop.err("producer"));
    CHECK(log.find("the consumer went away") != std::string::npos);
    // "delivered D orders, N not delivered" with D + N = 200000.
    const auto at = log.find("delivered ");
    REQUIRE(at != std::string::npos);
    const long delivered = std::stol(log.substr(at + 10));
    const auto comma = log.find(", ", at);
    REQUIRE(comma != std::string::npos);
    const long not_delivered = std::stol(log.substr(comma + 2));
    CHECK(delivered > 0);
    CHECK(not_delivered > 0);
    CHECK(delivered + not_delivered == 200000);
}

TEST_CASE("SIGTERM with orders waiting: the next consumer serves the rest, none lost, none twice") {
    shop_dir shop;
    process first = shop.consumer("first", {"--brew-time", "200ms", "--queue-size", "4"});
    fifo_holder holder{shop.fifo};  // keeps what is in the pipe, as the systemd socket does
    std::vector<std::string> orders;
    for (int i = 1; i <= 30; ++i)
        orders.push_back("Order " + std::to_string(i));
    // The first ten are taken at once (4 queued, 6 pending); the other twenty
    // wait in the pipe because the reader does not take while it has pending,
    // and move to the journal at the stop.
    CHECK(shop.producer("p1", {orders.begin(), orders.begin() + 10}) == 0);
    REQUIRE(coffee::test::eventually([&] { return coffee::test::unread_bytes(holder.fd) == 0; }));
    CHECK(shop.producer("p2", {orders.begin() + 10, orders.end()}) == 0);
    REQUIRE(coffee::test::eventually([&] { return !coffee::test::read_lines(shop.out("first")).empty(); }));
    first.kill(SIGTERM);
    const auto stop_started = std::chrono::steady_clock::now();
    CHECK(first.wait(5s) == 0);
    CHECK(std::chrono::steady_clock::now() - stop_started < 1s);  // only the order in hand is finished
    const auto served_first = coffee::test::read_lines(shop.out("first"));
    CHECK(!served_first.empty());
    CHECK(served_first.size() < 10);
    REQUIRE(std::filesystem::file_size(shop.journal) > 0);

    process second = shop.consumer("second", {"--brew-time", "0", "--until-finish"});
    CHECK(shop.producer("finish", {"--finish"}) == 0);
    CHECK(second.wait() == 0);
    CHECK(coffee::test::file_contains(shop.err("second"), "from the journal"));
    CHECK(shop.journal_empty());

    const auto all = shop.served_by({"first", "second"});
    CHECK(as_multiset(all) == as_multiset(orders));
    // Order is kept: what the first consumer had read comes before the pipe.
    CHECK(all == orders);
}

TEST_CASE("SIGTERM mid-stream with 1 KB orders: none torn, none lost, none twice") {
    shop_dir shop;
    process first = shop.consumer("first", {"--brew-time", "50ms", "--queue-size", "1"});
    fifo_holder holder{shop.fifo};
    std::string text;
    std::vector<std::string> orders;
    for (int i = 1; i <= 150; ++i) {
        orders.push_back("order " + std::to_string(i) + " " + std::string(1000, 'x'));
        text += orders.back() + "\n";
    }
    coffee::test::write_file(shop.dir / "in", text);
    // 150 KB: more than the pipe holds, so the producer blocks while we stop.
    process producer{{producer_bin, "--fifo", shop.fifo.native()}, shop.io("producer", shop.dir / "in")};
    REQUIRE(coffee::test::eventually([&] { return coffee::test::pipe_full(holder.fd); }, 30s));
    first.kill(SIGTERM);
    CHECK(first.wait(5s) == 0);
    CHECK_FALSE(coffee::test::file_contains(shop.err("first"), "dropping"));
    process second = shop.consumer("second", {"--brew-time", "0", "--until-finish"});
    CHECK(producer.wait() == 0);
    CHECK(shop.producer("finish", {"--finish"}) == 0);
    CHECK(second.wait() == 0);
    const auto all = shop.served_by({"first", "second"});
    CHECK(all.size() == orders.size());
    CHECK(all == orders);
}

TEST_CASE("--timeout fires even when no order arrives") {
    shop_dir shop;
    const auto start = std::chrono::steady_clock::now();
    CHECK(coffee::test::run({consumer_bin, "--fifo", shop.fifo.native(), "--timeout", "500ms"}, shop.io("c")) == 0);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 500ms);
    CHECK(took < 2s);
    CHECK(coffee::test::file_contains(shop.err("c"), "--timeout 500ms reached"));
}

TEST_CASE("--timeout with orders queued: nothing read is dropped") {
    shop_dir shop;
    process first = shop.consumer("first", {"--brew-time", "300ms", "--timeout", "500ms"});
    fifo_holder holder{shop.fifo};
    CHECK(shop.producer("p", {"A", "B", "C", "D", "E"}) == 0);
    CHECK(first.wait(5s) == 0);
    const auto served_first = coffee::test::read_lines(shop.out("first"));
    CHECK(served_first.size() < 5);
    process second = shop.consumer("second", {"--brew-time", "0", "--until-finish"});
    CHECK(shop.producer("f", {"--finish"}) == 0);
    CHECK(second.wait() == 0);
    const auto all = shop.served_by({"first", "second"});
    CHECK(all == std::vector<std::string>{"A", "B", "C", "D", "E"});
}

TEST_CASE("--until-finish: lines after 'finish' in the same read are kept for the next start") {
    shop_dir shop;
    process first = shop.consumer("first", {"--brew-time", "0", "--until-finish"});
    fifo_holder holder{shop.fifo};
    holder.write("A\nfinish\nB\n");
    CHECK(first.wait() == 0);
    CHECK(coffee::test::read_lines(shop.out("first")) == std::vector<std::string>{"A"});
    process second = shop.consumer("second", {"--brew-time", "0", "--until-finish"});
    holder.write("C\nfinish\n");
    CHECK(second.wait() == 0);
    CHECK(coffee::test::read_lines(shop.out("second")) == std::vector<std::string>{"B", "C"});
}

TEST_CASE("'finish' is ignored by a consumer not started with --until-finish") {
    shop_dir shop;
    process consumer = shop.consumer("c", {"--brew-time", "0"});
    CHECK(shop.producer("p", {"A", "--finish"}) == 0);
    CHECK(shop.producer("p2", {"B"}) == 0);
    REQUIRE(coffee::test::eventually([&] { return coffee::test::read_lines(shop.out("c")).size() == 2; }));
    CHECK(coffee::test::file_contains(shop.err("c"), "ignoring it: not started with --until-finish"));
    consumer.kill(SIGINT);
    CHECK(consumer.wait() == 0);
}

TEST_CASE("stdout closed under the consumer: exit 74, the unserved order waits in the journal") {
    shop_dir shop;
    const auto out = shop.dir / "out";
    REQUIRE(::mkfifo(out.c_str(), 0600) == 0);
    int reader = ::open(out.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(reader >= 0);
    process consumer{{consumer_bin, "--fifo", shop.fifo.native(), "--brew-time", "0"},
                     {.stdout_file = out, .stderr_file = shop.err("consumer")}};
    REQUIRE(coffee::test::eventually([&] { return std::filesystem::exists(shop.fifo); }));
    CHECK(shop.producer("p1", {"--wait", "5s", "First"}) == 0);
    std::string first;
    REQUIRE(coffee::test::eventually([&] {
        char buffer[64];
        const ssize_t n = ::read(reader, buffer, sizeof buffer);
        if (n > 0)
            first.append(buffer, static_cast<std::size_t>(n));
        return first == "First\n";
    }));
    ::close(reader);  // like `coffee-consumer | head -1`
    CHECK(shop.producer("p2", {"Second"}) == 0);
    CHECK(consumer.wait() == 74);
    CHECK(coffee::test::file_contains(shop.err("consumer"), "cannot write served orders"));
    CHECK(coffee::test::file_contains(shop.err("consumer"), "1 orders wait in the journal"));
    process second = shop.consumer("second", {"--brew-time", "0", "--until-finish"});
    CHECK(shop.producer("finish", {"--finish"}) == 0);
    CHECK(second.wait() == 0);
    CHECK(coffee::test::read_lines(shop.out("second")) == std::vector<std::string>{"Second"});
}

TEST_CASE("kill -9 mid-brew: the journal's orders are served first, in order, and none is lost") {
    shop_dir shop;
    std::vector<std::string> orders;
    for (int i = 1; i <= 40; ++i)
        orders.push_back("Order " + std::to_string(i));
    process first = shop.consumer("first", {"--brew-time", "100ms", "--queue-size", "4", "--sync"});
    fifo_holder holder{shop.fifo};
    CHECK(shop.producer("p1", {orders.begin(), orders.begin() + 20}) == 0);
    REQUIRE(coffee::test::eventually([&] { return coffee::test::read_lines(shop.out("first")).size() >= 2; }));
    first.kill(SIGKILL);
    CHECK(first.wait() == 128 + SIGKILL);
    REQUIRE(std::filesystem::file_size(shop.journal) > 0);
    CHECK(shop.producer("p2", {orders.begin() + 20, orders.end()}) == 0);
    (void)shop.serve_the_rest("second");
    CHECK(coffee::test::file_contains(shop.err("second"), "unserved orders from the journal"));
    CHECK(shop.journal_empty());

    // At least once, and at most once more for the one barista's order in hand.
    const auto all = shop.served_by({"first", "second"});
    std::vector<std::string> once;
    for (const auto& order : all)
        if (once.empty() || once.back() != order)
            once.push_back(order);
    CHECK(once == orders);
    CHECK(all.size() <= orders.size() + 1);
}

TEST_CASE("kill -9 while a journal is replayed: the next start serves the rest, none lost") {
    shop_dir shop;
    std::vector<std::string> orders;
    for (int i = 1; i <= 200; ++i)
        orders.push_back("Replayed " + std::to_string(i));
    process first = shop.consumer("first", {"--brew-time", "1s"});
    CHECK(shop.producer("p", orders) == 0);
    first.kill(SIGTERM);  // all 200 wait in the journal now
    CHECK(first.wait() == 0);
    process second = shop.consumer("second", {"--brew-time", "5ms"});
    REQUIRE(coffee::test::eventually([&] { return coffee::test::read_lines(shop.out("second")).size() >= 20; }));
    second.kill(SIGKILL);
    CHECK(second.wait() == 128 + SIGKILL);
    (void)shop.serve_the_rest("third");
    const auto all = shop.served_by({"first", "second", "third"});
    std::vector<std::string> once;
    for (const auto& order : all)
        if (once.empty() || once.back() != order)
            once.push_back(order);
    CHECK(once == orders);                       // none lost, in order
    CHECK(all.size() <= orders.size() + 1);      // at most the one in hand, twice
}

TEST_CASE("a stop moves the whole lines in the pipe to the journal, even with no one holding the FIFO") {
    shop_dir shop;
    process first = shop.consumer("first", {"--brew-time", "1s", "--queue-size", "1"});
    std::vector<std::string> orders;
    for (int i = 1; i <= 100; ++i)  // 30 KB: more than the reader takes ahead (2 takes of 4 KiB) while brewing
        orders.push_back("Cortado " + std::to_string(i) + " " + std::string(290, 'c'));
    CHECK(shop.producer("p", orders) == 0);
    REQUIRE(coffee::test::eventually([&] { return coffee::test::file_contains(shop.err("first"), "Processing order: Cortado 1 "); }));
    first.kill(SIGTERM);
    CHECK(first.wait() == 0);
    CHECK(coffee::test::file_contains(shop.err("first"), "orders from the pipe to the journal"));
    // Nobody held the FIFO: whatever stayed in the pipe is gone now. Nothing did.
    (void)shop.serve_the_rest("second");
    CHECK(shop.served_by({"first", "second"}) == orders);
}

TEST_CASE("--until-finish: orders written after finish wait in the journal, with --backlog as the old name") {
    shop_dir shop;
    const auto journal = shop.dir / "my.journal";
    process first = shop.consumer("first", {"--brew-time", "0", "--until-finish", "--backlog", journal.native()});
    fifo_holder holder{shop.fifo};
    holder.write("A\nfinish\nB\n");
    CHECK(first.wait() == 0);
    CHECK(coffee::test::read_lines(shop.out("first")) == std::vector<std::string>{"A"});
    CHECK(std::filesystem::file_size(journal) > 0);
    process second = shop.consumer("second", {"--brew-time", "0", "--until-finish", "--journal", journal.native()});
    holder.write("C\nfinish\n");
    CHECK(second.wait() == 0);
    CHECK(coffee::test::read_lines(shop.out("second")) == std::vector<std::string>{"B", "C"});
    CHECK(std::filesystem::file_size(journal) == 0);
}

TEST_CASE("stdout on a full disk: whole lines only, exit 74, the rest served by the next start without duplicates") {
    shop_dir shop;
    const auto copy = shop.dir / "served-before-full";
    // The small tmpfs is nobody else's business and vanishes with the consumer.
    const std::string script = R"(mount -t tmpfs -o size=16k tmpfs "$1" || exit 99
"$2" --fifo "$3" --journal "$4" --brew-time 0 --until-finish > "$1/out"; rc=$?
cp "$1/out" "$5"; exit $rc)";
    auto first = shop.in_private_tmpfs("first", script, {consumer_bin, shop.fifo.native(), shop.journal.native(), copy.native()});
    if (!first)
        return;
    fifo_holder holder{shop.fifo};  // the producer may finish after the consumer stopped
    std::vector<std::string> orders;
    std::string text;
    for (int i = 1; i <= 400; ++i) {
        const std::string number = std::to_string(10000 + i).substr(1);
        orders.push_back("Order " + number + " " + std::string(88, 'x'));  // 100 bytes with LF
        text += orders.back() + "\n";
    }
    coffee::test::write_file(shop.dir / "in", text);
    CHECK(shop.producer("p", {}, shop.dir / "in") == 0);
    CHECK(first->wait() == 74);
    CHECK(coffee::test::file_contains(shop.err("first"), "No space left on device"));
    // Whole writes only: one that did not fit was cut back (the whole
    // input may have come in one take, and then nothing is left).
    const std::string before = coffee::test::read_file(copy);
    CHECK((before.empty() || before.back() == '\n'));  // no half line
    auto all = coffee::test::read_lines(copy);
    CHECK(all.size() < orders.size());
    const auto rest = shop.serve_the_rest("second");
    all.insert(all.end(), rest.begin(), rest.end());
    CHECK(all == orders);  // each once, in order
}

TEST_CASE("the journal on a full disk: exit 74, the orders wait in the pipe and the journal, none lost") {
    shop_dir shop;
    const auto copy = shop.dir / "journal-copy";
    const std::string script = R"(mount -t tmpfs -o size=8k tmpfs "$1" || exit 99
"$2" --fifo "$3" --journal "$1/journal" --brew-time 1ms --until-finish; rc=$?
cp "$1/journal" "$4"; exit $rc)";
    auto first = shop.in_private_tmpfs("first", script, {consumer_bin, shop.fifo.native(), copy.native()});
    if (!first)
        return;
    fifo_holder holder{shop.fifo};
    std::vector<std::string> orders;
    std::string text;
    for (int i = 1; i <= 300; ++i) {
        orders.push_back("Order " + std::to_string(1000 + i) + " " + std::string(80, 'j'));
        text += orders.back() + "\n";
    }
    coffee::test::write_file(shop.dir / "in", text);
    CHECK(shop.producer("p", {}, shop.dir / "in") == 0);
    CHECK(first->wait() == 74);
    CHECK(coffee::test::file_contains(shop.err("first"), "No space left on device"));
    CHECK(coffee::test::file_contains(shop.err("first"), "in the pipe"));

    auto all = coffee::test::read_lines(shop.out("first"));
    const auto rest = shop.serve_the_rest("second", {"--journal", copy.native()});
    all.insert(all.end(), rest.begin(), rest.end());
    const std::set<std::string> distinct{all.begin(), all.end()};
    CHECK(distinct == std::set<std::string>{orders.begin(), orders.end()});  // none lost, no garbage
    MESSAGE((all.size() - orders.size()) << " served twice (served, but the full journal could not record it)");
}

TEST_CASE("an order that starts with <0> cannot set its own priority when stdout is the journal") {
    shop_dir shop;
    const auto out = shop.out("c");
    coffee::test::write_file(out, "");
    struct stat st{};
    REQUIRE(::stat(out.c_str(), &st) == 0);
    auto io = shop.io("c");
    io.env["JOURNAL_STREAM"] = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    process consumer{{consumer_bin, "--fifo", shop.fifo.native(), "--brew-time", "0", "--until-finish"}, io};
    REQUIRE(coffee::test::eventually([&] { return std::filesystem::exists(shop.fifo); }));
    CHECK(shop.producer("p", {"--wait", "5s", "<0>panic", "Latte", "--finish"}) == 0);
    CHECK(consumer.wait() == 0);
    // journald strips exactly one <N>: ours, and the order stays text at priority 6.
    CHECK(coffee::test::read_lines(out) == std::vector<std::string>{"<6><0>panic", "<6>Latte"});
    // Its logs on stderr (not the journal here) are unchanged.
    CHECK(coffee::test::file_contains(shop.err("c"), "info: Processing order: <0>panic"));
}

TEST_CASE("bytes without an LF are dropped after a quiet moment, not glued onto the next order") {
    shop_dir shop;
    process consumer = shop.consumer("c", {"--brew-time", "0", "--until-finish"});
    fifo_holder raw{shop.fifo};
    raw.write("DECAF for mallory, paid by ");
    std::this_thread::sleep_for(1200ms);  // a sleep: the quiet moment is what the test is about
    raw.write("Latte for alice\n");
    // A line written in two halves a moment apart is one order.
    raw.write("Flat White ");
    std::this_thread::sleep_for(100ms);  // a sleep: the moment apart, shorter than the quiet that cuts
    raw.write("for bob\nfinish\n");
    CHECK(consumer.wait() == 0);
    CHECK(coffee::test::read_lines(shop.out("c")) == std::vector<std::string>{"Latte for alice", "Flat White for bob"});
    CHECK(coffee::test::file_contains(shop.err("c"), "dropped 27 bytes of an unfinished line"));
}

TEST_CASE("a flood of bad lines gives a burst of warnings and a count, and a long line without LF is cheap") {
    shop_dir shop;
    process consumer = shop.consumer("c", {"--brew-time", "0", "--until-finish"});
    fifo_holder raw{shop.fifo};
    std::string bad;
    for (int i = 0; i < 20000; ++i)
        bad += "bad\x01line\n";
    raw.write(bad);
    raw.write(std::string(20 << 20, 'y'));  // 20 MiB, then its LF
    raw.write("\nGood\nfinish\n");
    CHECK(consumer.wait(60s) == 0);
    CHECK(coffee::test::read_lines(shop.out("c")) == std::vector<std::string>{"Good"});
    const auto log = coffee::test::read_lines(shop.err("c"));
    const auto warnings = std::count_if(log.begin(), log.end(), [](const std::string& l) { return l.find("warning") != std::string::npos; });
    CHECK(warnings <= 13);
    CHECK(coffee::test::file_contains(shop.err("c"), "more malformed lines were not logged"));
    CHECK(coffee::test::file_contains(shop.err("c"), "rejected 20001 lines"));
    rusage usage{};
    ::getrusage(RUSAGE_CHILDREN, &usage);
    MESSAGE("CPU of the children so far: " << usage.ru_utime.tv_sec + usage.ru_stime.tv_sec << " s");
}

TEST_CASE("an unsafe journal path is refused at once and left untouched") {
    shop_dir shop;
    const auto refused = [&](const std::filesystem::path& journal, int code, const std::string& why) {
        CAPTURE(journal);
        const auto start = std::chrono::steady_clock::now();
        CHECK(coffee::test::run({consumer_bin, "--fifo", shop.fifo.native(), "--journal", journal.native(), "--timeout", "5s"},
                                shop.io("c"), 10s) == code);
        CHECK(std::chrono::steady_clock::now() - start < 3s);
        CHECK(coffee::test::file_contains(shop.err("c"), why));
    };
    SUBCASE("a FIFO") {
        const auto j = shop.dir / "j";
        REQUIRE(::mkfifo(j.c_str(), 0600) == 0);
        refused(j, 78, "is a FIFO, not a regular file");
        struct stat st{};
        REQUIRE(::lstat(j.c_str(), &st) == 0);
        CHECK(S_ISFIFO(st.st_mode));
    }
    SUBCASE("/dev/null") {
        refused("/dev/null", 78, "is a character device");
        struct stat st{};
        REQUIRE(::lstat("/dev/null", &st) == 0);
        CHECK(S_ISCHR(st.st_mode));
    }
    SUBCASE("a directory") {
        const auto j = shop.dir / "j";
        std::filesystem::create_directory(j);
        refused(j, 78, "is a directory");
        CHECK(std::filesystem::is_empty(j));
    }
    SUBCASE("a symlink") {
        const auto target = shop.dir / "precious";
        coffee::test::write_file(target, "precious\n");
        const auto j = shop.dir / "j";
        std::filesystem::create_symlink(target, j);
        refused(j, 78, "symbolic link");
        CHECK(std::filesystem::is_symlink(j));
        CHECK(coffee::test::read_file(target) == "precious\n");
    }
    SUBCASE("a journal that others may read or write (mode 0666 or 0640)") {
        // Making it 0600 would not close what others opened while they could.
        for (const auto& [mode, octal] : {std::pair<mode_t, std::string>{0666, "0666"}, {0640, "0640"}}) {
            const auto j = shop.dir / "j";
            coffee::test::write_file(j, "records of orders\n");
            REQUIRE(::chmod(j.c_str(), mode) == 0);
            refused(j, 77, "journal '" + j.native() + "' has mode " + octal);
            struct stat st{};
            REQUIRE(::lstat(j.c_str(), &st) == 0);
            CHECK((st.st_mode & 07777) == mode);
            CHECK(coffee::test::read_file(j) == "records of orders\n");
        }
    }
}

TEST_CASE("a journal file owned by someone else is refused at once and left untouched") {
    if (::geteuid() != 0) {
        std::printf("SKIP: needs root to give the journal file to another user (chown to uid 65534)\n");
        return;
    }
    shop_dir shop;
    const auto j = shop.dir / "j";
    coffee::test::write_file(j, "precious\n");
    REQUIRE(::chown(j.c_str(), 65534, 65534) == 0);
    CHECK(coffee::test::run({consumer_bin, "--fifo", shop.fifo.native(), "--journal", j.native(), "--timeout", "5s"},
                            shop.io("c"), 10s) == 77);
    CHECK(coffee::test::file_contains(shop.err("c"), "owned by uid 65534"));
    CHECK(coffee::test::read_file(j) == "precious\n");
}

TEST_CASE("an old text backlog is moved into the journal and served first") {
    shop_dir shop;
    SUBCASE("at the old default place") {
        coffee::test::write_file(shop.dir / "orders.backlog", "Old 1\nOld 2\n");
        process consumer = shop.consumer("c", {"--brew-time", "0", "--until-finish"});
        CHECK(shop.producer("p", {"New", "--finish"}) == 0);
        CHECK(consumer.wait() == 0);
        CHECK(coffee::test::read_lines(shop.out("c")) == std::vector<std::string>{"Old 1", "Old 2", "New"});
        CHECK_FALSE(std::filesystem::exists(shop.dir / "orders.backlog"));
    }
    SUBCASE("at the path an old config names with --backlog") {
        const auto path = shop.dir / "state-backlog";
        coffee::test::write_file(path, "Old 1\nOld 2");
        process consumer = shop.consumer("c", {"--brew-time", "0", "--until-finish", "--backlog", path.native()});
        CHECK(shop.producer("p", {"New", "--finish"}) == 0);
        CHECK(consumer.wait() == 0);
        CHECK(coffee::test::read_lines(shop.out("c")) == std::vector<std::string>{"Old 1", "Old 2", "New"});
        CHECK(std::filesystem::file_size(path) == 0);  // the journal now, emptied
        CHECK_FALSE(std::filesystem::exists(path.native() + ".old-backlog"));
    }
}

TEST_CASE("--help, --version and usage errors") {
    shop_dir shop;
    for (const std::string& bin : {producer_bin, consumer_bin}) {
        CAPTURE(bin);
        CHECK(coffee::test::run({bin, "--help"}, shop.io("help")) == 0);
        CHECK(coffee::test::file_contains(shop.out("help"), "Exit codes:"));
        CHECK(coffee::test::run({bin, "--version"}, shop.io("version")) == 0);
        CHECK(coffee::test::file_contains(shop.out("version"), "0.1.0"));
        CHECK(coffee::test::run({bin, "--no-such-option"}, shop.io("unknown")) == 64);
        CHECK(coffee::test::read_lines(shop.err("unknown")).size() == 1);
        CHECK(coffee::test::file_contains(shop.err("unknown"), "no-such-option"));
        CHECK(coffee::test::run({bin, "--fifo", shop.fifo.native(), "--log-level", "loud"}, shop.io("level")) == 64);
        CHECK(coffee::test::file_contains(shop.err("level"), "invalid log level 'loud'"));
        std::filesystem::remove(shop.out("help"));
        std::filesystem::remove(shop.err("unknown"));
    }
    CHECK(coffee::test::run({producer_bin, "--wait", "soon", "x"}, shop.io("dur")) == 64);
    CHECK(coffee::test::file_contains(shop.err("dur"), "invalid duration 'soon'"));
    CHECK(coffee::test::run({consumer_bin, "--baristas", "0"}, shop.io("baristas")) == 64);
    CHECK(coffee::test::run({consumer_bin, "--fifo-mode", "0200"}, shop.io("mode")) == 64);
    CHECK(coffee::test::file_contains(shop.err("mode"), "does not let the shop itself read"));
    CHECK(coffee::test::run({consumer_bin, "--fifo-mode", "0800"}, shop.io("mode8")) == 64);
    CHECK(coffee::test::file_contains(shop.err("mode8"), "not an octal mode"));
    CHECK(coffee::test::run({consumer_bin, "--fifo", ""}, shop.io("empty")) == 64);
    CHECK(coffee::test::file_contains(shop.err("empty"), "--fifo: the path is empty"));
    CHECK(coffee::test::run({consumer_bin, "stray"}, shop.io("stray")) == 64);
    CHECK(coffee::test::file_contains(shop.err("stray"), "unexpected argument 'stray'"));
}

}  // TEST_SUITE
