#include <coffee/sd_daemon.hpp>

#include "support/scratch.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <system_error>

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using coffee::test::env_guard;
using coffee::test::temp_dir;

namespace {

// A bound datagram socket, the systemd side of sd_notify(3).
// `name` starting with '@' is bound in the abstract namespace.
coffee::unique_fd bind_datagram(const std::string& name) {
    coffee::unique_fd sock{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    REQUIRE(sock);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(name.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, name.data(), name.size());
    if (name[0] == '@')
        addr.sun_path[0] = '\0';
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    REQUIRE(::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0);
    return sock;
}

// The next datagram, waiting at most a second.
std::string receive(const coffee::unique_fd& sock) {
    timeval tv{1, 0};
    ::setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    const ssize_t n = ::recv(sock.get(), buf, sizeof buf, 0);
    REQUIRE(n >= 0);
    return std::string{buf, static_cast<std::size_t>(n)};
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// Puts a FIFO's read end on fd `target` (not close-on-exec, as systemd
// passes it) and puts back whatever was there before at scope exit.
class inherited_fd {
public:
    inherited_fd(const fs::path& fifo, int target) : target_{target} {
        saved_ = ::fcntl(target, F_DUPFD_CLOEXEC, 100);  // -1 if it was closed
        REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
        const int fd = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
        REQUIRE(fd >= 0);
        if (fd == target) {
            REQUIRE(::fcntl(fd, F_SETFD, 0) == 0);
        } else {
            REQUIRE(::dup2(fd, target) == target);  // dup2 clears FD_CLOEXEC on the copy
            ::close(fd);
        }
        fstat_ok_ = ::fstat(target, &st_) == 0;
    }
    ~inherited_fd() {
        if (saved_ >= 0) {
            ::dup3(saved_, target_, O_CLOEXEC);
            ::close(saved_);
        } else {
            ::close(target_);  // may already be closed by its new owner
        }
    }
    inherited_fd(const inherited_fd&) = delete;
    inherited_fd& operator=(const inherited_fd&) = delete;
    [[nodiscard]] bool same_node(int fd) const {
        struct stat now{};
        return fstat_ok_ && ::fstat(fd, &now) == 0 && now.st_dev == st_.st_dev && now.st_ino == st_.st_ino;
    }

private:
    int target_;
    int saved_ = -1;
    struct stat st_{};
    bool fstat_ok_ = false;
};

bool is_cloexec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

}  // namespace

TEST_SUITE("sd_daemon") {

TEST_CASE("notify without NOTIFY_SOCKET sends nothing and says so") {
    env_guard socket{"NOTIFY_SOCKET", std::nullopt};
    CHECK_FALSE(coffee::sd::notify("READY=1"));
}

TEST_CASE("notify ignores a NOTIFY_SOCKET that is neither a path nor abstract") {
    env_guard socket{"NOTIFY_SOCKET", "relative/notify.sock"};
    CHECK_FALSE(coffee::sd::notify("READY=1"));
    env_guard empty{"NOTIFY_SOCKET", ""};
    CHECK_FALSE(coffee::sd::notify("READY=1"));
}

TEST_CASE("notify sends one datagram to a socket path") {
    temp_dir dir;
    const std::string path = (dir.path() / "notify").native();
    const auto sock = bind_datagram(path);
    env_guard socket{"NOTIFY_SOCKET", path};
    CHECK(coffee::sd::notify("READY=1"));
    CHECK(receive(sock) == "READY=1");
    CHECK(coffee::sd::notify("STATUS=Brewing 3 orders\nREADY=1"));
    CHECK(receive(sock) == "STATUS=Brewing 3 orders\nREADY=1");
}

TEST_CASE("notify sends to an abstract socket given as @name") {
    const std::string name = "@coffee-test-notify-" + std::to_string(::getpid());
    const auto sock = bind_datagram(name);
    env_guard socket{"NOTIFY_SOCKET", name};
    CHECK(coffee::sd::notify("STOPPING=1"));
    CHECK(receive(sock) == "STOPPING=1");
}

TEST_CASE("notify to a socket that is gone throws, naming it") {
    temp_dir dir;
    const std::string path = (dir.path() / "nobody-listens").native();
    env_guard socket{"NOTIFY_SOCKET", path};
    try {
        (void)coffee::sd::notify("READY=1");
        FAIL("notify should have thrown");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::no_such_file_or_directory);
        CHECK(std::string{e.what()}.find(path) != std::string::npos);
    }
}

TEST_CASE("notify to a socket whose queue is full fails at once with EAGAIN instead of waiting") {
    temp_dir dir;
    const std::string path = (dir.path() / "notify").native();
    const auto sock = bind_datagram(path);
    env_guard socket{"NOTIFY_SOCKET", path};
    // Fill the receiver's queue; nobody reads it.
    for (int i = 0; i < 100000; ++i) {
        try {
            (void)coffee::sd::notify("STATUS=filling");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::resource_unavailable_try_again);
            CHECK(std::string{e.what()}.find(path) != std::string::npos);
            return;
        }
    }
    FAIL("the queue never filled");
}

TEST_CASE("notify refuses a socket path too long for sockaddr_un") {
    env_guard socket{"NOTIFY_SOCKET", "/" + std::string(200, 'x')};
    CHECK_THROWS_AS((void)coffee::sd::notify("READY=1"), std::system_error);
}

TEST_CASE("take_listen_fds takes fd 3 when LISTEN_PID is us, marks it CLOEXEC and unsets the variables") {
    temp_dir dir;
    inherited_fd fifo{dir.path() / "orders", coffee::sd::listen_fds_start};
    REQUIRE_FALSE(is_cloexec(3));
    env_guard pid{"LISTEN_PID", std::to_string(::getpid())};
    env_guard count{"LISTEN_FDS", "1"};
    env_guard names{"LISTEN_FDNAMES", "orders"};

    auto fds = coffee::sd::take_listen_fds();
    REQUIRE(fds.size() == 1);
    CHECK(fds[0].get() == 3);
    CHECK(fifo.same_node(fds[0].get()));
    CHECK(is_cloexec(3));
    CHECK(std::getenv("LISTEN_PID") == nullptr);
    CHECK(std::getenv("LISTEN_FDS") == nullptr);
    CHECK(std::getenv("LISTEN_FDNAMES") == nullptr);

    // A second call finds nothing: the variables are gone.
    CHECK(coffee::sd::take_listen_fds().empty());
    fds.clear();
    CHECK_FALSE(is_open(3));  // owned, so closed with its unique_fd
}

TEST_CASE("take_listen_fds takes several descriptors from fd 3 on") {
    temp_dir dir;
    inherited_fd first{dir.path() / "a", 3};
    inherited_fd second{dir.path() / "b", 4};
    env_guard pid{"LISTEN_PID", std::to_string(::getpid())};
    env_guard count{"LISTEN_FDS", "2"};
    const auto fds = coffee::sd::take_listen_fds();
    REQUIRE(fds.size() == 2);
    CHECK(fds[0].get() == 3);
    CHECK(fds[1].get() == 4);
    CHECK(first.same_node(3));
    CHECK(second.same_node(4));
    CHECK(is_cloexec(3));
    CHECK(is_cloexec(4));
}

TEST_CASE("take_listen_fds ignores descriptors meant for another process, and still unsets the variables") {
    temp_dir dir;
    inherited_fd fifo{dir.path() / "orders", 3};
    env_guard pid{"LISTEN_PID", std::to_string(::getpid() + 1)};
    env_guard count{"LISTEN_FDS", "1"};
    CHECK(coffee::sd::take_listen_fds().empty());
    CHECK(is_open(3));  // not ours to close
    CHECK_FALSE(is_cloexec(3));
    CHECK(std::getenv("LISTEN_PID") == nullptr);
    CHECK(std::getenv("LISTEN_FDS") == nullptr);
}

TEST_CASE("take_listen_fds gives nothing without the variables or with junk in them") {
    temp_dir dir;
    inherited_fd fifo{dir.path() / "orders", 3};
    SUBCASE("no LISTEN_PID") {
        env_guard pid{"LISTEN_PID", std::nullopt};
        env_guard count{"LISTEN_FDS", "1"};
        CHECK(coffee::sd::take_listen_fds().empty());
    }
    SUBCASE("no LISTEN_FDS") {
        env_guard pid{"LISTEN_PID", std::to_string(::getpid())};
        env_guard count{"LISTEN_FDS", std::nullopt};
        CHECK(coffee::sd::take_listen_fds().empty());
    }
    SUBCASE("LISTEN_FDS=0") {
        env_guard pid{"LISTEN_PID", std::to_string(::getpid())};
        env_guard count{"LISTEN_FDS", "0"};
        CHECK(coffee::sd::take_listen_fds().empty());
    }
    SUBCASE("junk in LISTEN_FDS") {
        env_guard pid{"LISTEN_PID", std::to_string(::getpid())};
        env_guard count{"LISTEN_FDS", "1x"};
        CHECK(coffee::sd::take_listen_fds().empty());
    }
    SUBCASE("junk in LISTEN_PID") {
        env_guard pid{"LISTEN_PID", std::to_string(::getpid()) + "junk"};
        env_guard count{"LISTEN_FDS", "1"};
        CHECK(coffee::sd::take_listen_fds().empty());
    }
    CHECK(is_open(3));
    CHECK_FALSE(is_cloexec(3));
}

TEST_CASE("take_listen_fds throws when a promised descriptor is not open") {
    // fd 3 and 4 exist (first one); LISTEN_FDS claims a third one that is closed.
    temp_dir dir;
    inherited_fd a{dir.path() / "a", 3};
    inherited_fd b{dir.path() / "b", 4};
    const int saved5 = ::fcntl(5, F_DUPFD_CLOEXEC, 100);
    ::close(5);
    env_guard pid{"LISTEN_PID", std::to_string(::getpid())};
    env_guard count{"LISTEN_FDS", "3"};
    CHECK_THROWS_AS((void)coffee::sd::take_listen_fds(), std::system_error);
    if (saved5 >= 0) {
        ::dup3(saved5, 5, O_CLOEXEC);
        ::close(saved5);
    }
}

TEST_CASE("watchdog_interval reads WATCHDOG_USEC for us only") {
    SUBCASE("unset") {
        env_guard usec{"WATCHDOG_USEC", std::nullopt};
        CHECK_FALSE(coffee::sd::watchdog_interval().has_value());
    }
    SUBCASE("set, no WATCHDOG_PID") {
        env_guard usec{"WATCHDOG_USEC", "2500000"};
        env_guard pid{"WATCHDOG_PID", std::nullopt};
        CHECK(coffee::sd::watchdog_interval() == coffee::duration{2500ms});
    }
    SUBCASE("set for us") {
        env_guard usec{"WATCHDOG_USEC", "30000000"};
        env_guard pid{"WATCHDOG_PID", std::to_string(::getpid())};
        CHECK(coffee::sd::watchdog_interval() == coffee::duration{30s});
    }
    SUBCASE("set for another process") {
        env_guard usec{"WATCHDOG_USEC", "30000000"};
        env_guard pid{"WATCHDOG_PID", std::to_string(::getpid() + 1)};
        CHECK_FALSE(coffee::sd::watchdog_interval().has_value());
    }
    SUBCASE("zero or junk") {
        env_guard usec{"WATCHDOG_USEC", "0"};
        CHECK_FALSE(coffee::sd::watchdog_interval().has_value());
        env_guard junk{"WATCHDOG_USEC", "soon"};
        CHECK_FALSE(coffee::sd::watchdog_interval().has_value());
    }
}

}  // TEST_SUITE
