#pragma once
// The faults suite's toolkit: numbered orders that show loss, duplication and
// tearing; a collector that reads a process's stdout/stderr pipes in the
// background; `coffee-launcher serve` as a test fixture; tmpfs mounts.
#include "launcher/process_util.hpp"
#include "support/pipe.hpp"
#include "support/process.hpp"
#include "support/scratch.hpp"

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace coffee::test::faults {

using namespace std::chrono_literals;
using coffee::unique_fd;

inline const std::string launcher_program = COFFEE_LAUNCHER;
inline const std::string producer_program = COFFEE_PRODUCER;
inline const std::string consumer_program = COFFEE_CONSUMER;

// Unique fixed-width orders, "p3-000123-end": a torn line cannot pass for
// one. One file per producer, in the test's directory.
struct order_book {
    std::vector<std::filesystem::path> files;  // one per producer
    std::vector<std::string> all;              // every order, in file order
};
[[nodiscard]] std::string order_name(unsigned producer, unsigned number);
// Producers are numbered from `first` (a second book has other orders).
[[nodiscard]] order_book write_orders(const std::filesystem::path& dir, unsigned producers, unsigned per_producer,
                                      unsigned first = 0);

// What a user counts: orders never served, served more than once, and
// served lines that are no order of ours (torn, glued or garbage).
struct tally {
    std::size_t expected = 0;
    std::size_t lines = 0;
    std::size_t lost = 0;
    std::size_t duplicated = 0;
    std::size_t torn = 0;
    std::vector<std::string> examples;  // a few lost / torn lines, for the log
    [[nodiscard]] std::string describe() const;
};
[[nodiscard]] tally count(const std::vector<std::string>& expected, const std::vector<std::string>& served);
// The duplicates README ("What the shop guarantees") allows for `kills`
// kills: each serves again at most one write per barista (with a brew time
// one order; with brew 0 the lines of one write, at most 4096 bytes to a
// pipe; the reader may serve a batch itself then, so one more), plus one
// take of the reader (4 KiB of lines with a brew time, 64 KiB with brew 0).
// `line_bytes`: an order's line with its LF.
[[nodiscard]] std::size_t duplicate_bound(std::size_t kills, unsigned baristas, bool instant, std::size_t line_bytes);
// One order per barista per kill: tighter than the guarantee, shown, not asserted.
[[nodiscard]] inline std::size_t duplicate_target(std::size_t kills, unsigned baristas) { return kills * baristas; }

// Distinct expected orders among `served`.
[[nodiscard]] std::size_t distinct_served(const std::vector<std::string>& expected, const std::vector<std::string>& served);

// Reads two fds (a child's stdout and stderr) on a thread until both close.
class collector {
public:
    collector(unique_fd out, unique_fd err);
    ~collector();
    collector(const collector&) = delete;
    collector& operator=(const collector&) = delete;

    [[nodiscard]] std::vector<std::string> lines() const;  // whole lines of stdout so far
    [[nodiscard]] std::size_t line_count() const;
    [[nodiscard]] std::string partial() const;             // stdout after its last LF
    [[nodiscard]] std::string err() const;
    // Waits for EOF on both; false at the deadline.
    bool wait_closed(std::chrono::milliseconds timeout) const;

private:
    void run();
    unique_fd out_;
    unique_fd err_;
    pipe_ends stop_;
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;
    std::string partial_;
    std::string err_text_;
    std::atomic<bool> closed_{false};
    std::thread thread_;
};

// A program with its stdout and stderr on pipes, collected in the
// background; stdin closed (a pipe at EOF).
class watched {
public:
    // `env`: NAME=VALUE entries added to (or replacing in) our environment,
    // from which systemd's variables (NOTIFY_SOCKET, LISTEN_FDS, ...) are
    // removed first.
    explicit watched(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
    ~watched();
    watched(const watched&) = delete;
    watched& operator=(const watched&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return child_.process.pid(); }
    // The supervised consumer, waiting for one other than `not_this`; -1 at the deadline.
    [[nodiscard]] pid_t consumer(pid_t not_this = -1, std::chrono::milliseconds timeout = 20s) const;
    void signal(int sig) { child_.process.send_signal(sig); }
    // Waits until serve has exited and its output is closed; the exit code,
    // or std::nullopt at the deadline (then it is SIGKILLed).
    std::optional<int> wait(std::chrono::milliseconds timeout = 30s);
    // SIGTERM, then wait().
    std::optional<int> stop(std::chrono::milliseconds timeout = 30s);
    [[nodiscard]] const collector& output() const noexcept { return *output_; }

private:
    piped_child child_;
    std::unique_ptr<collector> output_;
    std::optional<int> code_;
};

// `coffee-launcher serve --fifo FIFO --consumer coffee-consumer SERVE_OPTIONS
// -- CONSUMER_ARGS`.
class serve_fixture : public watched {
public:
    serve_fixture(const std::filesystem::path& fifo, const std::vector<std::string>& serve_options,
                  const std::vector<std::string>& consumer_args);
};

// `coffee-consumer --fifo FIFO ARGS`, run directly.
class consumer_fixture : public watched {
public:
    consumer_fixture(const std::filesystem::path& fifo, const std::vector<std::string>& args);
};

// Creates the FIFO (0600) and holds it open (O_RDWR), as serve or systemd
// would: what is in the pipe survives the consumers. Grown to 1 MiB.
[[nodiscard]] unique_fd hold_fifo(const std::filesystem::path& fifo);

// A scratch directory with the shop's FIFO held open in it and a journal
// path beside it.
struct scratch_shop {
    temp_dir dir;
    std::filesystem::path fifo = dir / "orders";
    unique_fd holder = hold_fifo(fifo);
    std::filesystem::path journal = dir / "journal";
};

// What earlier consumers served, then what `later` has served so far.
[[nodiscard]] std::vector<std::string> joined(const std::vector<std::string>& earlier, const watched& later);

// Starts one coffee-producer per file of `book` on `fifo`.
[[nodiscard]] std::vector<process> start_producers(const std::filesystem::path& fifo, const order_book& book,
                                                   const std::filesystem::path& log_dir);
// Waits for them; CHECKs that each exits 0.
void expect_delivered(std::vector<process>& producers);

// Writes `orders`, each followed by `eol`, into the held FIFO as fast as it
// takes them; a full pipe (while the consumer is dead or starting) is waited
// out. CHECKs the writes (it may run on a thread of its own).
void stream(int fifo, const std::vector<std::string>& orders, std::string_view eol = "\n");

// Waits until every expected order appears among `lines()` or the deadline.
template <typename Lines>
bool all_served(const std::vector<std::string>& expected, Lines&& lines, std::chrono::milliseconds timeout) {
    return eventually([&] { return distinct_served(expected, lines()) == expected.size(); }, timeout);
}

// A tmpfs of `size` at `dir` (created), unmounted on destruction. Mounting
// needs CAP_SYS_ADMIN: `ok()` is false (with `why()`) where it is refused.
class tmpfs_mount {
public:
    tmpfs_mount(const std::filesystem::path& dir, const std::string& size);
    ~tmpfs_mount();
    tmpfs_mount(const tmpfs_mount&) = delete;
    tmpfs_mount& operator=(const tmpfs_mount&) = delete;
    [[nodiscard]] bool ok() const noexcept { return mounted_; }
    [[nodiscard]] const std::string& why() const noexcept { return why_; }
    // mount -o remount with `options` ("ro", "rw", "size=8m"); false on failure.
    bool remount(const std::string& options);
    // Fills the file system with a file `name` until ENOSPC.
    void fill(const std::string& name) const;

private:
    std::filesystem::path dir_;
    bool mounted_ = false;
    std::string why_;
};

// The seed of a test case's random numbers: COFFEE_TEST_SEED when it is set
// (the test case fails at once when it is not a number from 0 to
// 4294967295), else a fresh one. Printed as "COFFEE_TEST_SEED=N", so
// `COFFEE_TEST_SEED=N ctest --test-dir build/dev -R '...'` draws the same
// numbers again. Call it once per test case.
[[nodiscard]] std::uint32_t test_seed();
// A seed's text as COFFEE_TEST_SEED gives it; nullopt unless it is a whole
// number from 0 to 4294967295.
[[nodiscard]] std::optional<std::uint32_t> parse_seed(std::string_view text);
// A generator seeded with test_seed().
[[nodiscard]] std::mt19937 seeded_rng();

// Prints "SKIP: <reason>" (ctest reports the test skipped).
void skip(const std::string& reason);

// The peak resident set of a process (VmHWM), in KiB; 0 when unknown.
[[nodiscard]] long peak_rss_kib(pid_t pid);

}  // namespace coffee::test::faults
