// The real coffee-producer and coffee-consumer, through real FIFOs.
#include "support/process.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
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
    std::filesystem::path backlog = dir / "orders.backlog";

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
    void write(const std::string& bytes) const {
        std::string_view rest = bytes;
        while (!rest.empty()) {
            const ssize_t n = ::write(fd, rest.data(), rest.size());
            if (n < 0 && errno == EAGAIN) {
                std::this_thread::sleep_for(1ms);
                continue;
            }
            REQUIRE(n > 0);
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
    }
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
    CHECK_FALSE(std::filesystem::exists(shop.backlog));
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
    // Let the pipe fill: the producer is then blocked in write().
    std::this_thread::sleep_for(300ms);
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
    // The first ten are read at once (4 queued, 6 pending); the other twenty
    // wait in the pipe because the reader does not read while it has pending.
    CHECK(shop.producer("p1", {orders.begin(), orders.begin() + 10}) == 0);
    std::this_thread::sleep_for(100ms);
    CHECK(shop.producer("p2", {orders.begin() + 10, orders.end()}) == 0);
    std::this_thread::sleep_for(250ms);
    first.kill(SIGTERM);
    const auto stop_started = std::chrono::steady_clock::now();
    CHECK(first.wait(5s) == 0);
    CHECK(std::chrono::steady_clock::now() - stop_started < 1s);  // only the order in hand is finished
    const auto served_first = coffee::test::read_lines(shop.out("first"));
    CHECK(!served_first.empty());
    CHECK(served_first.size() < 10);
    REQUIRE(std::filesystem::exists(shop.backlog));

    process second = shop.consumer("second", {"--brew-time", "0", "--until-finish"});
    CHECK(shop.producer("finish", {"--finish"}) == 0);
    CHECK(second.wait() == 0);
    CHECK(coffee::test::file_contains(shop.err("second"), "from the backlog"));
    CHECK_FALSE(std::filesystem::exists(shop.backlog));

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
    std::this_thread::sleep_for(300ms);
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

TEST_CASE("stdout closed under the consumer: exit 74, the unserved order waits in the backlog") {
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
    CHECK(coffee::test::read_file(shop.backlog) == "Second\n");
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
