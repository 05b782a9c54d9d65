// The consumer's sd_notify(3) STATUS=, received on a real notify socket:
// what `systemctl status coffee-consumer` shows, pipe fill included.
#include "support/pipe.hpp"
#include "support/process.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <regex>
#include <string>
#include <utility>

using namespace std::chrono_literals;
using coffee::test::process;

namespace {

const std::string consumer_bin = COFFEE_CONSUMER;

// systemd's side of sd_notify(3): a datagram socket bound to a path.
class notify_socket {
public:
    explicit notify_socket(std::filesystem::path path) : path_{std::move(path)} {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        REQUIRE(path_.native().size() < sizeof addr.sun_path);
        std::memcpy(addr.sun_path, path_.c_str(), path_.native().size());
        REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    }
    ~notify_socket() { ::close(fd_); }
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

    // The next message, waiting at most `timeout`.
    std::optional<std::string> receive(std::chrono::milliseconds timeout) const {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
            return std::nullopt;
        char buf[8192];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0)
            return std::nullopt;
        return std::string{buf, static_cast<std::size_t>(n)};
    }

private:
    std::filesystem::path path_;
    int fd_ = -1;
};

// The value of `key=` in a notify message, if it has one.
std::optional<std::string> field(const std::string& message, const std::string& key) {
    const std::regex re{"(^|\n)" + key + "=([^\n]*)"};
    std::smatch m;
    if (!std::regex_search(message, m, re))
        return std::nullopt;
    return m[2].str();
}

}  // namespace

TEST_SUITE("consumer status") {

TEST_CASE("STATUS= carries the pipe's fill and the baristas at work") {
    coffee::test::temp_dir dir;
    const auto fifo = dir / "orders";
    notify_socket sock{dir / "notify"};
    // One barista, a long brew, one order read ahead: the rest stays in the pipe.
    process consumer{{consumer_bin, "--fifo", fifo.native(), "--baristas", "1", "--brew-time", "3s", "--queue-size", "1"},
                     {.stderr_file = dir / "consumer.err",
                      .env = {{"NOTIFY_SOCKET", sock.path().native()}, {"COFFEE_STATUS_INTERVAL", "50ms"}}}};
    std::optional<std::string> message = sock.receive(10s);
    REQUIRE(message);
    CHECK(*message == "READY=1");

    // Written here as a producer does, the FIFO held open for FIONREAD.
    const int fd = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(fd >= 0);
    std::string orders;
    for (int i = 1; orders.size() < 20000; ++i)
        orders += "Latte #" + std::to_string(i) + " for customer 1\n";
    REQUIRE(::write(fd, orders.data(), 4000) == 4000);
    // The consumer takes it in one read, then stops: its barista is busy.
    REQUIRE(coffee::test::eventually([&] { return coffee::test::unread_bytes(fd) == 0; }));
    for (std::size_t at = 4000; at < orders.size();) {
        const std::size_t lf = orders.find('\n', std::min(at + 3000, orders.size() - 1));
        const std::size_t end = lf == std::string::npos ? orders.size() : lf + 1;
        REQUIRE(::write(fd, orders.data() + at, end - at) == static_cast<ssize_t>(end - at));
        at = end;
    }

    // The consumer takes one more read ahead, then waits for its barista. It
    // sends STATUS= when what it reports changes: every one until the fill it
    // reports is what FIONREAD shows when it arrives.
    const std::regex status_re{R"(served (\d+), waiting (\d+), pipe (\d+)/(\d+) KiB, baristas (\d+)/(\d+) busy, rejected (\d+))"};
    int left = -1;
    std::string status;
    std::optional<std::string> pipe;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
        message = sock.receive(1s);
        if (!message || !field(*message, "STATUS"))
            continue;
        status = *field(*message, "STATUS");
        pipe = field(*message, "X_COFFEE_PIPE");
        left = coffee::test::unread_bytes(fd);
        if (pipe == std::to_string(left) + "/65536")
            break;
    }
    INFO("last STATUS=", status);
    CHECK(pipe == std::to_string(left) + "/65536");
    CHECK(left > 8000);  // what the shop did not read ahead
    std::smatch m;
    REQUIRE(std::regex_match(status, m, status_re));
    CHECK(m[1] == "0");                                          // served: the first order is still brewing
    CHECK(std::stoi(m[3]) == (left + 1023) / 1024);              // KiB, rounded up
    CHECK(m[4] == "64");
    CHECK(m[5] == "1");                                          // busy
    CHECK(m[6] == "1");
    CHECK(m[7] == "0");
    CHECK(field(*message, "X_COFFEE_BARISTA_1") == "Latte #1 for customer 1");
    CHECK(field(*message, "X_COFFEE_WAITING").value_or("0") != "0");

    consumer.kill(SIGTERM);
    CHECK(consumer.wait() == 0);
    ::close(fd);
}

TEST_CASE("a bad COFFEE_STATUS_INTERVAL is a usage error naming it") {
    coffee::test::temp_dir dir;
    for (const char* bad : {"soon", "1ms", "2h"}) {
        CAPTURE(bad);
        process consumer{{consumer_bin, "--fifo", (dir / "orders").native()},
                         {.stderr_file = dir / "err", .env = {{"COFFEE_STATUS_INTERVAL", bad}}}};
        CHECK(consumer.wait() == 64);
        CHECK(coffee::test::file_contains(dir / "err", "COFFEE_STATUS_INTERVAL"));
    }
}

}  // TEST_SUITE
