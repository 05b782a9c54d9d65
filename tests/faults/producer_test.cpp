// The producer's side of "nothing lost silently": an exact count of what it
// did not deliver, and piped orders sent before --finish.
#include "shop.hpp"

#include <coffee/posix.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <optional>
#include <regex>

using namespace coffee::test;
using namespace coffee::test::faults;

namespace {

// Everything readable now (the fd is non-blocking), as lines.
std::size_t read_all_lines(int fd, std::string& partial) {
    std::size_t lines = 0;
    char buf[65536];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
        partial.append(buf, static_cast<std::size_t>(n));
        for (std::size_t lf; (lf = partial.find('\n')) != std::string::npos; partial.erase(0, lf + 1))
            ++lines;
    }
    return lines;
}

}  // namespace

TEST_SUITE("faults: producer") {

TEST_CASE("the consumer goes away mid-stream: the producer's delivered and not-delivered counts are exact") {
    temp_dir dir;
    const auto fifo = dir / "orders";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // We are the consumer: we read part of it, then go away.
    unique_fd reader{::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    REQUIRE(reader);
    const order_book book = write_orders(dir.path(), 1, 30000);  // 420 KB: far more than the pipe
    process producer{{producer_program, "--fifo", fifo.native(), "--wait", "10s"},
                     {.stdin_file = book.files[0], .stderr_file = dir / "producer.log"}};
    std::string partial;
    // Let the pipe fill (the producer blocks on it), take a little so it
    // writes on, and let it block again: it is mid-stream, far from done.
    const auto queued = [&] { return unread_bytes(reader.get()); };
    REQUIRE(eventually([&] { return queued() >= 32768; }, 20s));
    // Only our read takes bytes out, so more than `before` less the chunk is
    // the producer writing on, however fast it fills the room again.
    char chunk[16384];
    const int before = queued();
    REQUIRE(::read(reader.get(), chunk, sizeof chunk) == static_cast<ssize_t>(sizeof chunk));
    std::size_t received = 0;
    partial.assign(chunk, sizeof chunk);
    for (std::size_t lf; (lf = partial.find('\n')) != std::string::npos; partial.erase(0, lf + 1))
        ++received;
    REQUIRE(eventually([&] { return queued() > before - static_cast<int>(sizeof chunk); }, 20s));
    // Stop it, take everything it wrote, then go away: what it wrote is
    // exactly what we received.
    producer.kill(SIGSTOP);
    REQUIRE(wait_stopped(producer.pid()));
    received += read_all_lines(reader.get(), partial);
    CHECK(partial.empty());
    reader.reset();
    producer.kill(SIGCONT);
    CHECK(producer.wait(20s) == 74);
    const std::string log = read_file(dir / "producer.log");
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(log, m, std::regex{R"(delivered (\d+) orders, (\d+) not delivered)"}), log);
    MESSAGE("received ", received, "; the producer says: ", m[0].str());
    CHECK(std::stoul(m[1].str()) == received);
    CHECK(std::stoul(m[2].str()) == book.all.size() - received);
}

TEST_CASE("a consumer that never reads: --write-timeout ends the delivery with exact counts and exit 75") {
    temp_dir dir;
    const auto fifo = dir / "orders";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // A reader that holds the FIFO open and never reads, as a stuck shop.
    unique_fd reader{::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    REQUIRE(reader);
    const order_book book = write_orders(dir.path(), 1, 30000);  // 420 KB: far more than the pipe
    process producer{{producer_program, "--fifo", fifo.native(), "--write-timeout", "300ms", "--finish"},
                     {.stdin_file = book.files[0], .stderr_file = dir / "producer.log"}};
    // The bound is the producer's; this wait is only the test's safety net.
    CHECK(producer.wait(60s) == 75);
    std::string partial;
    const std::size_t received = read_all_lines(reader.get(), partial);
    CHECK(partial.empty());
    const std::string log = read_file(dir / "producer.log");
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(log, m, std::regex{R"(took nothing for 300ms \(--write-timeout\): delivered (\d+) orders, (\d+) not delivered, nor finish)"}), log);
    MESSAGE("received ", received, "; the producer says: ", m[0].str());
    CHECK(received > 0);
    CHECK(std::stoul(m[1].str()) == received);
    CHECK(std::stoul(m[2].str()) == book.all.size() - received);
}

TEST_CASE("--write-timeout does not cut a delivery that the shop keeps taking, however slowly") {
    temp_dir dir;
    const auto fifo = dir / "orders";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    unique_fd reader{::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    REQUIRE(reader);
    const order_book book = write_orders(dir.path(), 1, 20000);
    process producer{{producer_program, "--fifo", fifo.native(), "--write-timeout", "10s"},
                     {.stdin_file = book.files[0], .stderr_file = dir / "producer.log"}};
    // Take 4 KiB every 20 ms: the pipe stays full, but every write gets room
    // well within the bound.
    std::string partial;
    std::size_t received = 0;
    std::optional<int> code;
    char chunk[4096];
    while (!(code = producer.wait_for(20ms))) {
        const ssize_t n = ::read(reader.get(), chunk, sizeof chunk);
        if (n > 0) {
            partial.append(chunk, static_cast<std::size_t>(n));
            for (std::size_t lf; (lf = partial.find('\n')) != std::string::npos; partial.erase(0, lf + 1))
                ++received;
        }
    }
    received += read_all_lines(reader.get(), partial);
    CHECK(*code == 0);
    CHECK(partial.empty());
    CHECK(received == book.all.size());
}

TEST_CASE("orders piped into coffee-producer --finish are sent, then finish") {
    temp_dir dir;
    const auto fifo = dir / "orders";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    unique_fd reader{::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    REQUIRE(reader);
    write_file(dir / "in", "Latte\nMocha\n");
    CHECK(run({producer_program, "--fifo", fifo.native(), "--finish"}, {.stdin_file = dir / "in"}) == 0);
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = ::read(reader.get(), buf, sizeof buf)) > 0;)
        got.append(buf, static_cast<std::size_t>(n));
    CHECK(got == "Latte\nMocha\nfinish\n");
    // From /dev/null (cron): just finish.
    CHECK(run({producer_program, "--fifo", fifo.native(), "--finish"}, spawn_options{}) == 0);
    got.clear();
    for (ssize_t n; (n = ::read(reader.get(), buf, sizeof buf)) > 0;)
        got.append(buf, static_cast<std::size_t>(n));
    CHECK(got == "finish\n");
}

}  // TEST_SUITE
