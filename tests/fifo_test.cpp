#include <coffee/errors.hpp>
#include <coffee/fifo.hpp>
#include <coffee/posix.hpp>

#include "support/scratch.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

using coffee::test::env_guard;
using coffee::test::temp_dir;

namespace {

class umask_guard {
public:
    explicit umask_guard(mode_t mask) : saved_{::umask(mask)} {}
    ~umask_guard() { ::umask(saved_); }
    umask_guard(const umask_guard&) = delete;
    umask_guard& operator=(const umask_guard&) = delete;

private:
    mode_t saved_;
};

// The exit_error `f` throws: its code and message. Fails the test if it
// throws nothing or something else.
struct caught {
    int code = -1;
    std::string message;
    std::chrono::milliseconds elapsed{};
};

template <typename F>
caught expect_exit_error(F&& f) {
    const auto start = steady::now();
    caught result;
    try {
        (void)f();
        FAIL("expected an exit_error, nothing was thrown");
    } catch (const coffee::exit_error& e) {
        result.code = e.code();
        result.message = e.what();
    } catch (const std::exception& e) {
        FAIL("expected an exit_error, got: " << e.what());
    }
    result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
    return result;
}

mode_t mode_of(const fs::path& p) {
    struct stat st{};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode;
}

mode_t permissions_of(const fs::path& p) { return mode_of(p) & 07777; }

void write_file(const fs::path& p, const std::string& content) {
    std::ofstream out{p};
    out << content;
}

std::string read_file(const fs::path& p) {
    std::ifstream in{p};
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

// A plain reader on `p`, as a consumer would hold it (O_RDONLY | O_NONBLOCK does not wait for a writer).
coffee::unique_fd plain_reader(const fs::path& p) {
    coffee::unique_fd fd{::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    REQUIRE(fd);
    return fd;
}

constexpr int nobody = 65534;

}  // namespace

TEST_SUITE("fifo") {

TEST_CASE("open_fifo_for_reading creates a 0600 FIFO whatever the umask") {
    temp_dir dir;
    for (const mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}, mode_t{0277}}) {
        CAPTURE(mask);
        umask_guard guard{mask};
        const fs::path path = dir / ("orders-" + std::to_string(mask)).c_str();
        const auto fd = coffee::open_fifo_for_reading(path, {});
        REQUIRE(fd);
        CHECK(S_ISFIFO(mode_of(path)));
        CHECK(permissions_of(path) == 0600);
    }
}

TEST_CASE("open_fifo_for_reading applies a wider create mode despite the umask") {
    temp_dir dir;
    umask_guard guard{027};
    const auto fd = coffee::open_fifo_for_reading(dir / "orders", {.create_mode = 0620});
    CHECK(permissions_of(dir / "orders") == 0620);
}

TEST_CASE("open_fifo_for_reading creates a missing parent directory, private") {
    temp_dir dir;
    umask_guard guard{0};
    const fs::path path = dir.path() / "coffee-shop" / "orders";
    const auto fd = coffee::open_fifo_for_reading(path, {});
    CHECK(S_ISDIR(mode_of(path.parent_path())));
    CHECK(permissions_of(path.parent_path()) == 0700);
    CHECK(S_ISFIFO(mode_of(path)));
}

TEST_CASE("open_fifo_for_reading returns a non-blocking close-on-exec fd that never sees EOF") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    const auto fd = coffee::open_fifo_for_reading(path, {});
    CHECK((::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK((::fcntl(fd.get(), F_GETFL) & O_NONBLOCK) != 0);

    std::string got;
    errno = 0;
    CHECK(coffee::read_some(fd.get(), got, 100, "fifo") == -1);  // no writer yet: EAGAIN, not EOF
    CHECK(errno == EAGAIN);

    for (const char* order : {"Latte\n", "Mocha\n"}) {
        // A producer comes, writes, and goes.
        coffee::unique_fd writer{::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)};
        REQUIRE(writer);
        coffee::write_all(writer.get(), order, "fifo");
        writer.reset();
        got.clear();
        CHECK(coffee::read_some(fd.get(), got, 100, "fifo") == 6);
        CHECK(got == order);
        errno = 0;
        CHECK(coffee::read_some(fd.get(), got, 100, "fifo") == -1);
        CHECK(errno == EAGAIN);
    }
}

TEST_CASE("open_fifo_for_reading reuses an existing FIFO we own, keeping its mode") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    REQUIRE(::chmod(path.c_str(), 0620) == 0);  // e.g. shared with a group of customers
    const auto fd = coffee::open_fifo_for_reading(path, {});
    CHECK(fd);
    CHECK(permissions_of(path) == 0620);

    // The data written before we opened is still there.
    const auto again = coffee::open_fifo_for_reading(path, {});
    coffee::write_all(again.get(), "Cortado\n", "fifo");
    std::string got;
    CHECK(coffee::read_some(fd.get(), got, 100, "fifo") == 8);
}

TEST_CASE("open_fifo_for_reading refuses what is not a FIFO, with exit code 78") {
    temp_dir dir;
    SUBCASE("a regular file, left untouched") {
        const fs::path path = dir / "orders";
        write_file(path, "precious\n");
        const auto e = expect_exit_error([&] { return coffee::open_fifo_for_reading(path, {}); });
        CHECK(e.code == coffee::exit_config);
        CHECK(contains(e.message, path.native()));
        CHECK(contains(e.message, "a regular file"));
        CHECK(read_file(path) == "precious\n");
        CHECK(S_ISREG(mode_of(path)));
    }
    SUBCASE("a directory") {
        const fs::path path = dir / "orders";
        REQUIRE(::mkdir(path.c_str(), 0700) == 0);
        const auto e = expect_exit_error([&] { return coffee::open_fifo_for_reading(path, {}); });
        CHECK(e.code == coffee::exit_config);
        CHECK(contains(e.message, "a directory"));
    }
    SUBCASE("a symlink to a FIFO") {
        REQUIRE(::mkfifo((dir / "real").c_str(), 0600) == 0);
        const fs::path path = dir / "orders";
        fs::create_symlink(dir / "real", path);
        const auto e = expect_exit_error([&] { return coffee::open_fifo_for_reading(path, {}); });
        CHECK(e.code == coffee::exit_config);
        CHECK(contains(e.message, "a symbolic link"));
    }
    SUBCASE("a dangling symlink, whose target is not created") {
        const fs::path path = dir / "orders";
        fs::create_symlink(dir / "target", path);
        const auto e = expect_exit_error([&] { return coffee::open_fifo_for_reading(path, {}); });
        CHECK(e.code == coffee::exit_config);
        CHECK_FALSE(fs::exists(fs::symlink_status(dir / "target")));
    }
    SUBCASE("a socket") {
        const fs::path path = dir / "orders";
        coffee::unique_fd sock{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
        const auto e = expect_exit_error([&] { return coffee::open_fifo_for_reading(path, {}); });
        CHECK(e.code == coffee::exit_config);
        CHECK(contains(e.message, "a socket"));
    }
}

TEST_CASE("open_fifo_for_reading refuses a world-writable FIFO it did not create, unless allowed") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    REQUIRE(::chmod(path.c_str(), 0622) == 0);
    const auto e = expect_exit_error([&] { return coffee::open_fifo_for_reading(path, {}); });
    CHECK(e.code == coffee::exit_noperm);
    CHECK(contains(e.message, "writable by everyone"));
    CHECK(contains(e.message, "0622"));
    CHECK(permissions_of(path) == 0622);  // reported, not changed

    const auto fd = coffee::open_fifo_for_reading(path, {.allow_world_writable = true});
    CHECK(fd);
    CHECK(permissions_of(path) == 0622);
}

TEST_CASE("open_fifo_for_reading refuses a FIFO owned by another user") {
    if (::geteuid() != 0) {
        MESSAGE("skipped: only root can give a FIFO to another user");
        return;
    }
    temp_dir dir;
    const fs::path path = dir / "orders";
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    REQUIRE(::chown(path.c_str(), nobody, nobody) == 0);
    const auto e = expect_exit_error([&] { return coffee::open_fifo_for_reading(path, {}); });
    CHECK(e.code == coffee::exit_noperm);
    CHECK(contains(e.message, "owned by uid 65534"));
}

TEST_CASE("open_fifo_for_reading refuses a FIFO it did not create that group or others may read") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    for (const mode_t mode : {mode_t{0640}, mode_t{0604}, mode_t{0660}}) {
        CAPTURE(mode);
        REQUIRE(::chmod(path.c_str(), mode) == 0);
        const auto e = expect_exit_error([&] { return coffee::open_fifo_for_reading(path, {.allow_world_writable = true}); });
        CHECK(e.code == coffee::exit_noperm);
        CHECK(contains(e.message, "is readable by"));
        CHECK(permissions_of(path) == mode);  // reported, not changed
    }
}

TEST_CASE("open_fifo_for_reading refuses a FIFO in an unsafe directory, creating nothing") {
    temp_dir dir;
    REQUIRE(::chmod(dir.path().c_str(), 0777) == 0);
    const auto e = expect_exit_error([&] { return coffee::open_fifo_for_reading(dir / "orders", {}); });
    CHECK(e.code == coffee::exit_noperm);
    CHECK(contains(e.message, "unsafe directory '" + dir.path().native() + "'"));
    CHECK_FALSE(fs::exists(fs::symlink_status(dir / "orders")));
}

TEST_CASE("lock_fifo: one holder at a time, a private lock file next to the FIFO") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    const auto fifo = coffee::open_fifo_for_reading(path, {.create_mode = 0620});
    // A writer's flock() on the FIFO itself does not matter.
    coffee::unique_fd writer{::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)};
    REQUIRE(writer);
    REQUIRE(::flock(writer.get(), LOCK_EX | LOCK_NB) == 0);
    {
        const auto lock = coffee::lock_fifo(path);
        CHECK((::fcntl(lock.get(), F_GETFD) & FD_CLOEXEC) != 0);
        CHECK(S_ISREG(mode_of(dir / "orders.lock")));
        CHECK(permissions_of(dir / "orders.lock") == 0600);
        const auto e = expect_exit_error([&] { return coffee::lock_fifo(path); });
        CHECK(e.code == coffee::exit_tempfail);
        CHECK(contains(e.message, "another consumer already reads"));
    }
    // Released with its descriptor; a loose mode is made private again.
    REQUIRE(::chmod((dir / "orders.lock").c_str(), 0644) == 0);
    CHECK(coffee::lock_fifo(path));
    CHECK(permissions_of(dir / "orders.lock") == 0600);
}

TEST_CASE("lock_fifo refuses a lock file that is not a plain file of ours") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    const auto fifo = coffee::open_fifo_for_reading(path, {});
    const fs::path lock = dir / "orders.lock";
    SUBCASE("a symlink") {
        write_file(dir / "elsewhere", "");
        fs::create_symlink(dir / "elsewhere", lock);
        CHECK(expect_exit_error([&] { return coffee::lock_fifo(path); }).code == coffee::exit_noperm);
    }
    SUBCASE("a hard link to another file") {
        write_file(dir / "elsewhere", "");
        fs::create_hard_link(dir / "elsewhere", lock);
        CHECK(expect_exit_error([&] { return coffee::lock_fifo(path); }).code == coffee::exit_noperm);
    }
    SUBCASE("someone else's") {
        if (::geteuid() != 0)
            return;
        write_file(lock, "");
        REQUIRE(::chown(lock.c_str(), nobody, nobody) == 0);
        const auto e = expect_exit_error([&] { return coffee::lock_fifo(path); });
        CHECK(e.code == coffee::exit_noperm);
        CHECK(contains(e.message, "uid 65534"));
    }
}

TEST_CASE("open_fifo_for_writing refuses a FIFO in an unsafe directory at once, writing nothing") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    const auto reader = coffee::open_fifo_for_reading(path, {});
    REQUIRE(::chmod(dir.path().c_str(), 0770) == 0);
    const auto e = expect_exit_error([&] { return coffee::open_fifo_for_writing(path, 5s); });
    CHECK(e.code == coffee::exit_noperm);
    CHECK(e.elapsed < 1s);
    CHECK(contains(e.message, "writable by its group"));
}

TEST_CASE("check_is_fifo accepts a pipe or FIFO and refuses anything else with 78") {
    auto ends = coffee::make_pipe();
    CHECK_NOTHROW(coffee::check_is_fifo(ends.read.get(), "fd 3"));

    temp_dir dir;
    const auto fifo = coffee::open_fifo_for_reading(dir / "orders", {});
    CHECK_NOTHROW(coffee::check_is_fifo(fifo.get(), "fd 3"));

    write_file(dir / "file", "x");
    coffee::unique_fd file{::open((dir / "file").c_str(), O_RDONLY | O_CLOEXEC)};
    REQUIRE(file);
    const auto e = expect_exit_error([&] {
        coffee::check_is_fifo(file.get(), "inherited fd 3");
        return 0;
    });
    CHECK(e.code == coffee::exit_config);
    CHECK(contains(e.message, "inherited fd 3 is a regular file"));

    coffee::unique_fd sock{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    CHECK(expect_exit_error([&] {
              coffee::check_is_fifo(sock.get(), "fd 3");
              return 0;
          }).code == coffee::exit_config);
    CHECK_THROWS_AS(coffee::check_is_fifo(-1, "fd -1"), std::system_error);
}

TEST_CASE("check_open_for_reading accepts a read end or a read-write FIFO and refuses a write end with 78") {
    auto ends = coffee::make_pipe();
    CHECK_NOTHROW(coffee::check_open_for_reading(ends.read.get(), "fd 3"));
    temp_dir dir;
    const auto fifo = coffee::open_fifo_for_reading(dir / "orders", {});
    CHECK_NOTHROW(coffee::check_open_for_reading(fifo.get(), "fd 3"));
    const auto e = expect_exit_error([&] {
        coffee::check_open_for_reading(ends.write.get(), "inherited fd 3");
        return 0;
    });
    CHECK(e.code == coffee::exit_config);
    CHECK(contains(e.message, "inherited fd 3 is open for writing only"));
    CHECK_THROWS_AS(coffee::check_open_for_reading(-1, "fd -1"), std::system_error);
}

TEST_CASE("open_fifo_for_writing without a FIFO waits, then exits 69, creating nothing") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    const auto e = expect_exit_error([&] { return coffee::open_fifo_for_writing(path, 300ms); });
    CHECK(e.code == coffee::exit_unavailable);
    CHECK(contains(e.message, "does not exist"));
    CHECK(contains(e.message, path.native()));
    CHECK(contains(e.message, "300ms"));
    CHECK(e.elapsed >= 300ms);
    CHECK(e.elapsed < 1300ms);
    CHECK_FALSE(fs::exists(fs::symlink_status(path)));

    const auto at_once = expect_exit_error([&] { return coffee::open_fifo_for_writing(path, 0ms); });
    CHECK(at_once.code == coffee::exit_unavailable);
    CHECK(at_once.elapsed < 500ms);
}

TEST_CASE("open_fifo_for_writing to a FIFO without reader waits, then exits 69 saying there is no consumer") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    const auto e = expect_exit_error([&] { return coffee::open_fifo_for_writing(path, 250ms); });
    CHECK(e.code == coffee::exit_unavailable);
    CHECK(contains(e.message, "no consumer"));
    CHECK(e.elapsed >= 250ms);
    CHECK(e.elapsed < 1250ms);
}

TEST_CASE("open_fifo_for_writing refuses a non-FIFO at once with 78 and leaves it untouched") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    SUBCASE("regular file") {
        write_file(path, "precious\n");
        const auto e = expect_exit_error([&] { return coffee::open_fifo_for_writing(path, 3s); });
        CHECK(e.code == coffee::exit_config);
        CHECK(contains(e.message, "a regular file"));
        CHECK(e.elapsed < 1s);
        CHECK(read_file(path) == "precious\n");
    }
    SUBCASE("symlink to a FIFO that has a reader") {
        const auto reader = coffee::open_fifo_for_reading(dir / "real", {});
        fs::create_symlink(dir / "real", path);
        const auto e = expect_exit_error([&] { return coffee::open_fifo_for_writing(path, 3s); });
        CHECK(e.code == coffee::exit_config);
        CHECK(contains(e.message, "symbolic link"));
        CHECK(e.elapsed < 1s);
        std::string got;
        errno = 0;
        CHECK(coffee::read_some(reader.get(), got, 10, "fifo") == -1);  // nothing arrived
        CHECK(errno == EAGAIN);
    }
    SUBCASE("symlink to a regular file") {
        write_file(dir / "file", "precious\n");
        fs::create_symlink(dir / "file", path);
        const auto e = expect_exit_error([&] { return coffee::open_fifo_for_writing(path, 3s); });
        CHECK(e.code == coffee::exit_config);
        CHECK(e.elapsed < 1s);
        CHECK(read_file(dir / "file") == "precious\n");
    }
    SUBCASE("directory") {
        REQUIRE(::mkdir(path.c_str(), 0700) == 0);
        const auto e = expect_exit_error([&] { return coffee::open_fifo_for_writing(path, 3s); });
        CHECK(e.code == coffee::exit_config);
        CHECK(contains(e.message, "a directory"));
        CHECK(e.elapsed < 1s);
    }
}

TEST_CASE("open_fifo_for_writing returns a blocking close-on-exec fd when a consumer reads") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    const auto reader = coffee::open_fifo_for_reading(path, {});
    const auto writer = coffee::open_fifo_for_writing(path, 1s);
    REQUIRE(writer);
    CHECK((::fcntl(writer.get(), F_GETFL) & O_NONBLOCK) == 0);
    CHECK((::fcntl(writer.get(), F_GETFL) & O_ACCMODE) == O_WRONLY);
    CHECK((::fcntl(writer.get(), F_GETFD) & FD_CLOEXEC) != 0);
    coffee::write_all(writer.get(), "Latte\n", "fifo");
    std::string got;
    CHECK(coffee::read_some(reader.get(), got, 100, "fifo") == 6);
    CHECK(got == "Latte\n");
}

TEST_CASE("open_fifo_for_writing also works with a plain O_RDONLY reader") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    const auto reader = plain_reader(path);
    const auto writer = coffee::open_fifo_for_writing(path, 0ms);
    CHECK(writer);
}

TEST_CASE("open_fifo_for_writing keeps trying while the consumer starts up") {
    temp_dir dir;
    const fs::path path = dir / "orders";
    coffee::unique_fd reader;
    std::thread consumer{[&] {
        std::this_thread::sleep_for(150ms);
        reader = coffee::open_fifo_for_reading(path, {});
    }};
    const auto start = steady::now();
    std::optional<coffee::unique_fd> writer;
    try {
        writer = coffee::open_fifo_for_writing(path, 5s);
    } catch (const std::exception& e) {
        FAIL_CHECK("open_fifo_for_writing threw: " << e.what());
    }
    consumer.join();
    REQUIRE(writer.has_value());
    CHECK(*writer);
    CHECK(steady::now() - start >= 150ms);
    CHECK(steady::now() - start < 2s);
}

TEST_CASE("default_fifo_path honours COFFEE_FIFO") {
    env_guard fifo{"COFFEE_FIFO", "/srv/shop/orders"};
    env_guard xdg{"XDG_RUNTIME_DIR", "/run/user/1000"};
    CHECK(coffee::default_fifo_path(false) == "/srv/shop/orders");
    CHECK(coffee::default_fifo_path(true) == "/srv/shop/orders");
}

TEST_CASE("default_fifo_path for root, or without XDG_RUNTIME_DIR, is the system shop") {
    env_guard fifo{"COFFEE_FIFO", ""};  // empty means unset
    {
        env_guard xdg{"XDG_RUNTIME_DIR", std::nullopt};
        CHECK(coffee::default_fifo_path(false) == coffee::system_fifo_path);
        CHECK(coffee::default_fifo_path(true) == coffee::system_fifo_path);
    }
    if (::geteuid() == 0) {
        env_guard xdg{"XDG_RUNTIME_DIR", "/run/user/0"};
        CHECK(coffee::default_fifo_path(false) == coffee::system_fifo_path);
        CHECK(coffee::default_fifo_path(true) == coffee::system_fifo_path);
    }
}

// The per-user rules need a non-root euid. As root, the test forks a child
// that becomes nobody and reports what it computed; otherwise it runs here.
TEST_CASE("default_fifo_path for a non-root user is under XDG_RUNTIME_DIR") {
    temp_dir dir;
    const fs::path runtime = dir.path() / "user";
    REQUIRE(::mkdir(runtime.c_str(), 0700) == 0);
    REQUIRE(::chmod(dir.path().c_str(), 0711) == 0);
    const bool as_root = ::geteuid() == 0;
    if (as_root)
        REQUIRE(::chown(runtime.c_str(), nobody, nobody) == 0);

    // Lines: consumer's path, producer's path without a per-user FIFO, then with one.
    const auto compute = [&runtime]() -> std::string {
        ::unsetenv("COFFEE_FIFO");
        ::setenv("XDG_RUNTIME_DIR", runtime.c_str(), 1);
        std::string out = coffee::default_fifo_path(false).native() + "\n";
        out += coffee::default_fifo_path(true).native() + "\n";
        const fs::path own = runtime / "coffee-shop";
        if (::mkdir(own.c_str(), 0700) != 0 || ::mkfifo((own / "orders").c_str(), 0600) != 0)
            return "mkfifo failed\n";
        out += coffee::default_fifo_path(true).native() + "\n";
        return out;
    };

    std::string result;
    if (!as_root) {
        env_guard fifo{"COFFEE_FIFO", std::nullopt};
        env_guard xdg{"XDG_RUNTIME_DIR", runtime.native()};
        result = compute();
    } else {
        auto [read_end, write_end] = coffee::make_pipe();
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            read_end.reset();
            const gid_t group = nobody;
            if (::setgroups(1, &group) != 0 || ::setgid(nobody) != 0 || ::setuid(nobody) != 0)
                ::_exit(2);
            const std::string out = compute();
            (void)::write(write_end.get(), out.data(), out.size());
            ::_exit(0);
        }
        write_end.reset();
        for (;;) {
            const long n = coffee::read_some(read_end.get(), result, 4096, "child pipe");
            if (n <= 0)
                break;
        }
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        REQUIRE(WIFEXITED(status));
        REQUIRE(WEXITSTATUS(status) == 0);
    }

    const std::string per_user = (runtime / "coffee-shop" / "orders").native();
    struct stat st{};
    const bool system_shop_exists = ::lstat(coffee::system_fifo_path, &st) == 0 && S_ISFIFO(st.st_mode);
    const std::string producer_without_own = system_shop_exists ? coffee::system_fifo_path : per_user;
    CHECK(result == per_user + "\n" + producer_without_own + "\n" + per_user + "\n");
}

}  // TEST_SUITE
