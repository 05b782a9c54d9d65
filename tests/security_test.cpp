// The shop against a hostile local user and hostile input: the real
// programs, real FIFOs, and throw-away users playing the attacker.
#include "support/process.hpp"
#include "support/users.hpp"

#include <coffee/posix.hpp>
#include <coffee/unique_fd.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using coffee::test::file_contains;
using coffee::test::process;
using coffee::test::read_file;
using coffee::test::read_lines;
using coffee::test::spawn_options;
using coffee::test::temp_dir;
using coffee::test::throwaway_user;
namespace fs = std::filesystem;

namespace {

const std::string producer_bin = COFFEE_PRODUCER;
const std::string consumer_bin = COFFEE_CONSUMER;
const std::string launcher_bin = COFFEE_LAUNCHER;
const std::string attacker_bin = COFFEE_ATTACKER;

// What a user checks about a file: type and mode, owner, content.
struct file_state {
    mode_t mode = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string content;
    bool operator==(const file_state&) const = default;
};

file_state state_of(const fs::path& path) {
    struct stat st{};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return {st.st_mode, st.st_uid, st.st_gid, read_file(path)};
}

std::ostream& operator<<(std::ostream& out, const file_state& s) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%06o", s.mode);
    return out << "mode " << mode << " uid " << s.uid << " gid " << s.gid << " content '" << s.content << "'";
}

// Skips the test when no throw-away user can be made here.
#define REQUIRE_THROWAWAY_USER(var)                                   \
    std::string why_not_##var;                                        \
    const auto var = throwaway_user::create(why_not_##var);           \
    if (!var) {                                                       \
        std::printf("SKIP: %s\n", why_not_##var.c_str());             \
        return;                                                       \
    }

// Logs and outputs of the programs a test runs, by name.
struct logs {
    temp_dir dir;
    [[nodiscard]] spawn_options io(const std::string& name, const fs::path& in = {}) const {
        return {.stdin_file = in, .stdout_file = dir / (name + ".out"), .stderr_file = dir / (name + ".err")};
    }
    [[nodiscard]] fs::path out(const std::string& name) const { return dir / (name + ".out"); }
    [[nodiscard]] fs::path err(const std::string& name) const { return dir / (name + ".err"); }
};

// True once a writer's open() of `fifo` no longer fails with ENXIO: someone reads it.
bool has_reader(const fs::path& fifo) {
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0)
        ::close(fd);
    return fd >= 0;
}

// Holds the FIFO open read-write, as systemd's socket unit does, never reading.
struct fifo_holder {
    int fd;
    explicit fifo_holder(const fs::path& fifo) : fd{::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC)} { REQUIRE(fd >= 0); }
    ~fifo_holder() { ::close(fd); }
    fifo_holder(const fifo_holder&) = delete;
    fifo_holder& operator=(const fifo_holder&) = delete;
};

// A directory directly in /tmp, removed afterwards whoever made it.
struct tmp_entry {
    fs::path path{coffee::test::unique_tmp_path()};
    tmp_entry() = default;
    tmp_entry(const tmp_entry&) = delete;
    tmp_entry& operator=(const tmp_entry&) = delete;
    ~tmp_entry() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// Starts the consumer on `fifo` with `attempts` tries while an attacker
// swaps a symlink to `target` in; returns how often each exit code came.
std::map<int, int> start_under_symlink_attack(const fs::path& fifo, int max_starts, std::chrono::milliseconds budget) {
    std::map<int, int> codes;
    const auto deadline = std::chrono::steady_clock::now() + budget;
    for (int i = 0; i < max_starts && std::chrono::steady_clock::now() < deadline; ++i) {
        ++codes[coffee::test::run({consumer_bin, "--fifo", fifo.native(), "--timeout", "1ms", "-q"})];
        // Root removes a FIFO it made, so that the next start creates it again:
        // the race is between creating it and setting its mode.
        struct stat st{};
        if (::lstat(fifo.c_str(), &st) == 0 && S_ISFIFO(st.st_mode) && st.st_uid == 0)
            (void)::unlink(fifo.c_str());
    }
    return codes;
}

}  // namespace

TEST_SUITE("security") {

TEST_CASE("a symlink swapped in as fast as possible while root's consumer starts: nothing outside the shop's directory changes") {
    REQUIRE_THROWAWAY_USER(mallory);
    // Root's file that the symlink points at, in a directory of root's.
    temp_dir outside;
    const fs::path secret = outside / "secret";
    coffee::test::write_file(secret, "root only\n");
    REQUIRE(::chmod(secret.c_str(), 0640) == 0);
    const file_state secret_before = state_of(secret);
    temp_dir base;
    REQUIRE(::chmod(base.path().c_str(), 0755) == 0);
    const fs::path shop_dir = base / "shop";
    REQUIRE(::mkdir(shop_dir.c_str(), 0700) == 0);

    bool attacker_owns_the_directory = false;
    SUBCASE("in a directory the attacker owns") {
        attacker_owns_the_directory = true;
        REQUIRE(::chown(shop_dir.c_str(), mallory->uid(), mallory->gid()) == 0);
        REQUIRE(::chmod(shop_dir.c_str(), 0755) == 0);
    }
    SUBCASE("in a sticky directory the attacker's group may write") {
        REQUIRE(::chown(shop_dir.c_str(), 0, mallory->gid()) == 0);
        REQUIRE(::chmod(shop_dir.c_str(), 01770) == 0);
    }
    std::map<int, int> codes;
    {
        process attacker{mallory->as_user({attacker_bin, "swap-symlink", shop_dir.native(), "orders", secret.native()})};
        codes = start_under_symlink_attack(shop_dir / "orders", 300, 2s);
        attacker.kill(SIGKILL);
        (void)attacker.wait();
    }
    std::string summary;
    for (const auto& [code, count] : codes)
        summary += "exit " + std::to_string(code) + ": " + std::to_string(count) + " times; ";
    CAPTURE(summary);
    CHECK(state_of(secret) == secret_before);
    if (attacker_owns_the_directory) {
        // Refused at once, every time: the directory is not ours.
        CHECK(codes.size() == 1);
        CHECK(codes.count(77) == 1);
    } else {
        // Served (0), or refused what the attacker had put there (77, 78).
        for (const auto& [code, count] : codes)
            CHECK((code == 0 || code == 77 || code == 78));
    }
}

TEST_CASE("another user's squatted /tmp directory: the consumer refuses it, the producer sends nothing there") {
    REQUIRE_THROWAWAY_USER(mallory);
    logs log;
    tmp_entry squat;
    REQUIRE(coffee::test::run(mallory->as_user({"/bin/mkdir", "-m", "0755", squat.path.native()})) == 0);
    const fs::path fifo = squat.path / "orders";

    CHECK(coffee::test::run({consumer_bin, "--fifo", fifo.native(), "--timeout", "1s"}, log.io("root-consumer")) == 77);
    CHECK(file_contains(log.err("root-consumer"), "unsafe directory '" + squat.path.native() + "'"));
    CHECK(file_contains(log.err("root-consumer"), "owned by uid " + std::to_string(mallory->uid())));
    CHECK_FALSE(fs::exists(fs::symlink_status(fifo)));

    // Mallory runs a shop of her own there; root's order must not reach it.
    process shop{mallory->as_user({consumer_bin, "--fifo", fifo.native(), "--brew-time", "0"}), log.io("mallory")};
    REQUIRE(coffee::test::eventually([&] { return has_reader(fifo); }));
    CHECK(coffee::test::run({producer_bin, "--fifo", fifo.native(), "--wait", "1s", "Latte for alice, card 4111"},
                            log.io("producer")) == 77);
    CHECK(file_contains(log.err("producer"), "unsafe directory '" + squat.path.native() + "'"));
    shop.kill(SIGTERM);
    CHECK(shop.wait() == 0);
    CHECK(read_file(log.out("mallory")).empty());
}

TEST_CASE("another user's FIFO in a sticky directory: root's producer refuses it, naming its owner, unless told") {
    REQUIRE_THROWAWAY_USER(mallory);
    logs log;
    tmp_entry fifo;  // directly in /tmp: sticky, anyone may make it
    REQUIRE(coffee::test::run(mallory->as_user({"/usr/bin/mkfifo", "-m", "0622", fifo.path.native()})) == 0);
    // Mallory reads what reaches her FIFO (holding it open, so that a writer's close is no EOF).
    process thief{mallory->as_user({"/bin/sh", "-c", "exec 3<>\"$0\" && exec cat \"$0\"", fifo.path.native()}),
                  log.io("mallory")};
    REQUIRE(coffee::test::eventually([&] { return has_reader(fifo.path); }));

    CHECK(coffee::test::run({producer_bin, "--fifo", fifo.path.native(), "--wait", "1s", "Latte for alice, card 4111"},
                            log.io("producer")) == 77);
    CHECK(file_contains(log.err("producer"), "FIFO '" + fifo.path.native() + "' is owned by uid " +
                                                 std::to_string(mallory->uid()) + " (" + mallory->name() + ")"));
    CHECK(file_contains(log.err("producer"), "--allow-other-owner"));
    CHECK(coffee::test::run({producer_bin, "--fifo", fifo.path.native(), "--wait", "1s", "--count", "3"},
                            log.io("producer2")) == 77);

    // Told explicitly, it delivers: the check is the only thing in the way.
    CHECK(coffee::test::run({producer_bin, "--fifo", fifo.path.native(), "--wait", "1s", "--allow-other-owner", "Mocha"},
                            log.io("told")) == 0);
    // The first thing to reach her: nothing came before it.
    CHECK(coffee::test::eventually([&] { return !read_file(log.out("mallory")).empty(); }));
    thief.kill(SIGTERM);
    (void)thief.wait();
    CHECK(read_lines(log.out("mallory")) == std::vector<std::string>{"Mocha"});
}

TEST_CASE("another user's FIFO that only root can have put there is the shop's: the producer delivers to it") {
    REQUIRE_THROWAWAY_USER(shopkeeper);
    logs log;
    temp_dir dir;  // root's, 0755: nobody else can make entries in it
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
    const fs::path fifo = dir / "orders";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    REQUIRE(::chown(fifo.c_str(), shopkeeper->uid(), shopkeeper->gid()) == 0);
    process shop{shopkeeper->as_user({"/bin/sh", "-c", "exec 3<>\"$0\" && exec cat \"$0\"", fifo.native()}), log.io("shop")};
    REQUIRE(coffee::test::eventually([&] { return has_reader(fifo); }));
    CHECK(coffee::test::run({producer_bin, "--fifo", fifo.native(), "--wait", "1s", "Latte"}, log.io("producer")) == 0);
    CHECK(coffee::test::eventually([&] { return !read_file(log.out("shop")).empty(); }));
    shop.kill(SIGTERM);
    (void)shop.wait();
    CHECK(read_lines(log.out("shop")) == std::vector<std::string>{"Latte"});
}

TEST_CASE("a group-writable directory is refused unless sticky, and /tmp itself is a fine ancestor") {
    logs log;
    tmp_entry dir;  // directly in /tmp (sticky, world-writable)
    REQUIRE(::mkdir(dir.path.c_str(), 0700) == 0);
    REQUIRE(::chmod(dir.path.c_str(), 0770) == 0);
    const fs::path fifo = dir.path / "orders";
    CHECK(coffee::test::run({consumer_bin, "--fifo", fifo.native(), "--timeout", "100ms"}, log.io("c1")) == 77);
    CHECK(file_contains(log.err("c1"), "unsafe directory '" + dir.path.native() + "': writable by its group"));
    CHECK(coffee::test::run({producer_bin, "--fifo", fifo.native(), "--wait", "100ms", "Latte"}, log.io("p1")) == 77);

    REQUIRE(::chmod(dir.path.c_str(), 01770) == 0);
    CHECK(coffee::test::run({consumer_bin, "--fifo", fifo.native(), "--timeout", "100ms"}, log.io("c2")) == 0);

    // A directory the consumer makes in /tmp: private, and /tmp is accepted above it.
    const fs::path made = dir.path.native() + "-made";
    tmp_entry cleanup;
    cleanup.path = made;
    CHECK(coffee::test::run({consumer_bin, "--fifo", (made / "orders").native(), "--timeout", "100ms"}, log.io("c3")) == 0);
    struct stat st{};
    REQUIRE(::lstat(made.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
}

TEST_CASE("a member of the shop's group who locks the FIFO does not keep the shop closed") {
    REQUIRE_THROWAWAY_USER(member);
    logs log;
    temp_dir shop_dir;
    REQUIRE(::chmod(shop_dir.path().c_str(), 0755) == 0);
    const fs::path fifo = shop_dir / "orders";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    REQUIRE(::chown(fifo.c_str(), 0, member->gid()) == 0);
    REQUIRE(::chmod(fifo.c_str(), 0620) == 0);  // as systemd's socket makes it: the group may write
    const fifo_holder held{fifo};
    // The member opens the FIFO for writing and holds flock() on it.
    process locker{member->as_user({"/bin/sh", "-c", "exec 9>>\"$0\" && flock -n 9 && echo locked && exec sleep 60", fifo.native()}),
                   log.io("locker")};
    REQUIRE(coffee::test::eventually([&] { return file_contains(log.out("locker"), "locked"); }));

    SUBCASE("the consumer by hand") {
        process shop{{consumer_bin, "--fifo", fifo.native(), "--brew-time", "0"}, log.io("shop")};
        CHECK(coffee::test::run({producer_bin, "--fifo", fifo.native(), "Latte"}, log.io("p")) == 0);
        CHECK(coffee::test::eventually([&] { return read_lines(log.out("shop")) == std::vector<std::string>{"Latte"}; }));
        // A second consumer by hand is still refused: the lock is the shop's own file.
        CHECK(coffee::test::run({consumer_bin, "--fifo", fifo.native(), "--timeout", "1s"}, log.io("second")) == 75);
        CHECK(file_contains(log.err("second"), "another consumer already reads"));
        shop.kill(SIGTERM);
        CHECK(shop.wait() == 0);
    }
    SUBCASE("coffee-launcher serve") {
        process serve{{launcher_bin, "serve", "--fifo", fifo.native(), "--", "--brew-time", "0"}, log.io("serve")};
        CHECK(coffee::test::run({producer_bin, "--fifo", fifo.native(), "Latte"}, log.io("p")) == 0);
        CHECK(coffee::test::eventually([&] { return read_lines(log.out("serve")) == std::vector<std::string>{"Latte"}; }));
        CHECK_FALSE(file_contains(log.err("serve"), "restarting"));
        serve.kill(SIGTERM);
        CHECK(serve.wait() == 0);
    }
    locker.kill(SIGKILL);
    (void)locker.wait();
}

TEST_CASE("an order with commas is one order") {
    logs log;
    temp_dir dir;
    const fs::path fifo = dir / "orders";
    process shop{{consumer_bin, "--fifo", fifo.native(), "--brew-time", "0", "--until-finish"}, log.io("shop")};
    REQUIRE(coffee::test::eventually([&] { return has_reader(fifo); }));
    CHECK(coffee::test::run({producer_bin, "--fifo", fifo.native(), "Latte, oat milk", ",", "a,b,,c", "--finish"},
                            log.io("p")) == 0);
    CHECK(shop.wait() == 0);
    CHECK(read_lines(log.out("shop")) == std::vector<std::string>{"Latte, oat milk", ",", "a,b,,c"});
    CHECK(file_contains(log.err("p"), "delivered 3 orders"));
}

TEST_CASE("FIFO modes: no read bits for group or others") {
    logs log;
    temp_dir dir;
    const fs::path fifo = dir / "orders";
    for (const char* mode : {"0644", "0640", "0604"}) {
        CAPTURE(mode);
        CHECK(coffee::test::run({consumer_bin, "--fifo", fifo.native(), "--fifo-mode", mode, "--timeout", "1s"}, log.io("c")) == 64);
        CHECK(coffee::test::run({launcher_bin, "serve", "--fifo", fifo.native(), "--fifo-mode", mode, "--consumer", "/bin/false"},
                                log.io("s")) == 64);
    }
    CHECK(file_contains(log.err("c"), "--fifo-mode: 0604 lets everyone read the orders"));
    CHECK_FALSE(fs::exists(fs::symlink_status(fifo)));
    CHECK(coffee::test::run({consumer_bin, "--fifo", fifo.native(), "--fifo-mode", "0620", "--timeout", "1ms"}, log.io("ok")) == 0);

    REQUIRE(::chmod(fifo.c_str(), 0640) == 0);  // someone made it readable
    CHECK(coffee::test::run({consumer_bin, "--fifo", fifo.native(), "--timeout", "1s"}, log.io("c2")) == 77);
    CHECK(file_contains(log.err("c2"), "is readable by its group (mode 0640)"));
}

TEST_CASE("a notify socket that is never read does not hang the consumer") {
    logs log;
    temp_dir dir;
    const fs::path socket_path = dir / "notify";
    coffee::unique_fd receiver{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    REQUIRE(receiver);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(receiver.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    // Fill its queue (net.unix.max_dgram_qlen datagrams), until even a fresh
    // socket's first datagram would have to wait until someone reads: forever.
    std::vector<coffee::unique_fd> fillers;
    for (bool fresh_blocked = false; !fresh_blocked;) {
        REQUIRE(fillers.size() < 1000);
        coffee::unique_fd& filler = fillers.emplace_back(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        REQUIRE(filler);
        int sent = 0;
        while (::sendto(filler.get(), "X", 1, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 1)
            ++sent;
        REQUIRE(errno == EAGAIN);
        fresh_blocked = sent == 0;
    }
    spawn_options io = log.io("timeout");
    io.env["NOTIFY_SOCKET"] = socket_path.native();

    SUBCASE("--timeout") {
        process shop{{consumer_bin, "--fifo", (dir / "orders").native(), "--timeout", "500ms"}, io};
        const auto code = shop.wait_for(10s);
        CHECK(code == std::optional<int>{0});
    }
    SUBCASE("SIGTERM") {
        process shop{{consumer_bin, "--fifo", (dir / "orders").native()}, io};
        REQUIRE(coffee::test::eventually([&] { return has_reader(dir / "orders"); }));
        std::this_thread::sleep_for(200ms);  // past READY=1
        shop.kill(SIGTERM);
        const auto code = shop.wait_for(10s);
        CHECK(code == std::optional<int>{0});
    }
}

TEST_CASE("LISTEN_FDS with fd 3 closed: the consumer takes nothing of its own for the FIFO") {
    logs log;
    temp_dir cwd;
    // LISTEN_PID must be the consumer's own pid: the shell's, which it execs.
    const std::string script = "cd \"$1\" && exec 3>&- && LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --timeout 300ms";
    const int code = coffee::test::run({"/bin/sh", "-c", script, consumer_bin, cwd.path().native()}, log.io("c"));
    CHECK(code != 0);
    CHECK(file_contains(log.err("c"), "inherited descriptor 3"));
    CHECK_FALSE(file_contains(log.err("c"), "not a FIFO"));
    CHECK(fs::is_empty(cwd.path()));  // no "pipe:[N].backlog" or the like
}

TEST_CASE("LISTEN_FDS with a write-only fd 3: refused at once, naming it, the pipe's orders left in it") {
    logs log;
    temp_dir dir;
    const fs::path fifo = dir / "orders";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const fifo_holder held{fifo};  // a reader, so that the shell's write-only open does not wait
    REQUIRE(::write(held.fd, "Latte\n", 6) == 6);
    const std::string script = "exec 3>\"$1\" && LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --journal \"$2\" --brew-time 0 --timeout 5s";
    const int code = coffee::test::run({"/bin/sh", "-c", script, consumer_bin, fifo.native(), (dir / "journal").native()},
                                       log.io("c"));
    CHECK(code == 78);
    CHECK(file_contains(log.err("c"), "inherited fd 3 (LISTEN_FDS) is open for writing only"));
    CHECK(read_file(log.out("c")).empty());
    // The order is still in the pipe, for a consumer given the right end.
    char buf[64];
    CHECK(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(0, ::read(held.fd, buf, sizeof buf)))) == "Latte\n");
}

TEST_CASE("LISTEN_FDS with an anonymous pipe and neither --journal nor $STATE_DIRECTORY: refused, nothing made in the working directory") {
    logs log;
    temp_dir cwd;
    // fd 3 is the read end of `sleep`'s pipe; the inner shell has the pid it execs.
    const std::string script = "cd \"$1\" && sleep 1 | { exec 3<&0 </dev/null; "
                               "exec /bin/sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --timeout 500ms' \"$0\"; }";
    spawn_options io = log.io("c");
    io.unset_env = {"STATE_DIRECTORY"};
    const int code = coffee::test::run({"/bin/sh", "-c", script, consumer_bin, cwd.path().native()}, io);
    CHECK(code == 78);
    CHECK(file_contains(log.err("c"), "--journal"));
    CHECK(file_contains(log.err("c"), "$STATE_DIRECTORY"));
    CHECK(fs::is_empty(cwd.path()));  // no "pipe:[N].journal"

    // With $STATE_DIRECTORY, the journal goes there.
    temp_dir state;
    io = log.io("c2");
    io.env = {{"STATE_DIRECTORY", state.path().native()}};
    CHECK(coffee::test::run({"/bin/sh", "-c", script, consumer_bin, cwd.path().native()}, io) == 0);
    CHECK(fs::exists(state / "journal"));
    CHECK(fs::is_empty(cwd.path()));
}

TEST_CASE("serve --start-interval 0 is a usage error, not a start limit turned off") {
    logs log;
    temp_dir dir;
    process serve{{launcher_bin, "serve", "--fifo", (dir / "orders").native(), "--consumer", "/bin/false", "--start-interval", "0"},
                  log.io("serve")};
    const auto code = serve.wait_for(5s);
    CHECK(code == std::optional<int>{64});
    CHECK(file_contains(log.err("serve"), "--start-interval"));
}

TEST_CASE("pipe mode: what the command leaves behind does not outlive the launcher") {
    logs log;
    // One background child in the command's process group, one that left it (setsid).
    const std::string script = "sleep 300 </dev/null >/dev/null 2>&1 & echo $!; "
                               "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!";
    CHECK(coffee::test::run({launcher_bin, "pipe", "--input", "", "--", "/bin/sh", "-c", script}, log.io("pipe")) == 0);
    const auto pids = read_lines(log.out("pipe"));
    REQUIRE(pids.size() == 2);
    for (const std::string& pid : pids) {
        CAPTURE(pid);
        // Gone, not even a zombie: the launcher killed and reaped it.
        CHECK_FALSE(fs::exists("/proc/" + pid));
        if (fs::exists("/proc/" + pid))
            (void)::kill(std::stoi(pid), SIGKILL);  // ours, left behind: do not leave it running
    }
}

TEST_CASE("pipe mode: short-lived processes the command leaves behind are reaped as they go, not left as zombies") {
    logs log;
    // 50 orphans that exit at once, then the command runs on for a while.
    const std::string script = "i=0; while [ $i -lt 50 ]; do (true &); i=$((i+1)); done; echo spawned; sleep 2";
    process launcher{{launcher_bin, "pipe", "--input", "", "--", "/bin/sh", "-c", script}, log.io("pipe")};
    REQUIRE(coffee::test::eventually([&] { return file_contains(log.out("pipe"), "spawned"); }));
    std::this_thread::sleep_for(300ms);
    int zombies = 0;
    for (const pid_t pid : coffee::children_of(launcher.pid())) {
        const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
        const std::size_t paren = stat.rfind(')');
        zombies += paren != std::string::npos && stat.compare(paren, 3, ") Z") == 0 ? 1 : 0;
    }
    CHECK(zombies == 0);
    CHECK(launcher.wait() == 0);
}

TEST_CASE("a user who may not create the FIFO is told how to choose another") {
    REQUIRE_THROWAWAY_USER(user);
    logs log;
    tmp_entry root_dir;  // root's, as /run is: a user may look, not create
    REQUIRE(::mkdir(root_dir.path.c_str(), 0755) == 0);
    // The FIFO in root's directory, and a directory of its own there (as /run/coffee-shop/orders).
    for (const fs::path& fifo : {root_dir.path / "orders", root_dir.path / "coffee-shop" / "orders"}) {
        CAPTURE(fifo);
        CHECK(coffee::test::run(user->as_user({consumer_bin, "--fifo", fifo.native(), "--timeout", "1s"}), log.io("c")) == 77);
        CHECK(file_contains(log.err("c"), "Permission denied"));
        CHECK(file_contains(log.err("c"), "--fifo PATH, or $COFFEE_FIFO, or set XDG_RUNTIME_DIR"));
        CHECK_FALSE(fs::exists(fs::symlink_status(fifo)));
    }
}

TEST_CASE("a writer that shrinks the pipe: the consumer says so and sets it back") {
    logs log;
    temp_dir dir;
    const fs::path fifo = dir / "orders";
    process shop{{consumer_bin, "--fifo", fifo.native(), "--brew-time", "0"}, log.io("shop")};
    REQUIRE(coffee::test::eventually([&] { return has_reader(fifo); }));
    coffee::unique_fd writer{::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)};
    REQUIRE(writer);
    // A reader is there as soon as the FIFO is open, before the shop has
    // grown its pipe and noted the size to keep: a served order says it has.
    REQUIRE(::write(writer.get(), "Latte\n", 6) == 6);
    REQUIRE(coffee::test::eventually([&] { return file_contains(log.out("shop"), "Latte\n"); }, 120s));
    const int size = ::fcntl(writer.get(), F_GETPIPE_SZ);
    REQUIRE(size > 4096);
    REQUIRE(::fcntl(writer.get(), F_SETPIPE_SZ, 4096) == 4096);
    // The shop looks once a second; the bounds are only safety nets.
    CHECK(coffee::test::eventually([&] { return file_contains(log.err("shop"), "was shrunk from"); }, 120s));
    CHECK(coffee::test::eventually([&] { return ::fcntl(writer.get(), F_GETPIPE_SZ) == size; }, 120s));
    CHECK(file_contains(log.err("shop"), "warn"));
    shop.kill(SIGTERM);
    CHECK(shop.wait() == 0);
}

TEST_CASE("pipe mode: a command that exits while its input is being written gives no false warning") {
    logs log;
    const fs::path input = log.dir / "input";
    coffee::test::write_file(input, std::string(8 << 20, 'x'));
    int warnings = 0;
    for (int i = 0; i < 30; ++i) {
        const auto err = log.err("pipe" + std::to_string(i));
        CHECK(coffee::test::run({launcher_bin, "pipe", "--input-file", input.native(), "--", "head", "-c", "1"},
                                log.io("pipe" + std::to_string(i))) == 0);
        warnings += file_contains(err, "Bad file descriptor") || file_contains(err, "warn") ? 1 : 0;
    }
    CHECK(warnings == 0);
}

}
