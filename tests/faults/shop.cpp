#include "shop.hpp"

#include <coffee/errors.hpp>
#include <coffee/posix.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace coffee::test::faults {

std::string order_name(unsigned producer, unsigned number) { return fmt::format("p{}-{:06}-end", producer, number); }

order_book write_orders(const std::filesystem::path& dir, unsigned producers, unsigned per_producer, unsigned first) {
    order_book book;
    for (unsigned p = first; p < first + producers; ++p) {
        std::string text;
        for (unsigned i = 0; i < per_producer; ++i) {
            book.all.push_back(order_name(p, i));
            text += book.all.back();
            text += '\n';
        }
        book.files.push_back(dir / fmt::format("orders-p{}", p));
        write_file(book.files.back(), text);
    }
    return book;
}

std::string tally::describe() const {
    std::string text = fmt::format("{} orders, {} lines served: lost {}, duplicated {}, torn {}", expected, lines, lost,
                                   duplicated, torn);
    for (const auto& e : examples)
        text += fmt::format("\n  e.g. {}", e);
    return text;
}

tally count(const std::vector<std::string>& expected, const std::vector<std::string>& served) {
    tally t;
    t.expected = expected.size();
    t.lines = served.size();
    std::unordered_map<std::string_view, std::size_t> times;
    times.reserve(expected.size());
    for (const auto& order : expected)
        times.emplace(order, 0);
    for (const auto& line : served) {
        const auto it = times.find(line);
        if (it == times.end()) {
            ++t.torn;
            if (t.examples.size() < 10)
                t.examples.push_back(fmt::format("not an order of ours: '{}'", line.substr(0, 80)));
        } else {
            t.duplicated += it->second > 0 ? 1U : 0U;
            ++it->second;
        }
    }
    for (const auto& order : expected) {
        if (times[order] == 0) {
            ++t.lost;
            if (t.examples.size() < 10)
                t.examples.push_back(fmt::format("lost: {}", order));
        }
    }
    return t;
}

std::size_t duplicate_bound(std::size_t kills, unsigned baristas, bool instant, std::size_t line_bytes) {
    const std::size_t per_write = instant ? 4096 / line_bytes : 1;
    const std::size_t writers = instant ? baristas + 1U : baristas;
    const std::size_t reader_take = (instant ? 65536 : 4096) / line_bytes;
    return kills * (writers * per_write + reader_take);
}

std::size_t distinct_served(const std::vector<std::string>& expected, const std::vector<std::string>& served) {
    const std::unordered_set<std::string_view> wanted(expected.begin(), expected.end());
    std::unordered_set<std::string_view> seen;
    for (const auto& line : served) {
        if (wanted.count(line) > 0)
            seen.insert(line);
    }
    return seen.size();
}

collector::collector(unique_fd out, unique_fd err)
    : out_{std::move(out)}, err_{std::move(err)}, stop_{make_pipe()}, thread_{[this] { run(); }} {}

collector::~collector() {
    (void)!::write(stop_.write.get(), "x", 1);
    thread_.join();
}

void collector::run() {
    char buf[65536];
    for (;;) {
        std::array<pollfd, 3> fds{{{out_ ? out_.get() : -1, POLLIN, 0},
                                   {err_ ? err_.get() : -1, POLLIN, 0},
                                   {stop_.read.get(), POLLIN, 0}}};
        if (!out_ && !err_) {
            closed_ = true;
            return;
        }
        if (retry_on_eintr([&] { return ::poll(fds.data(), fds.size(), -1); }) < 0 || fds[2].revents != 0)
            return;
        for (int i = 0; i < 2; ++i) {
            if (fds[static_cast<std::size_t>(i)].revents == 0)
                continue;
            unique_fd& fd = i == 0 ? out_ : err_;
            const ssize_t n = retry_on_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
            if (n < 0 && errno == EAGAIN)
                continue;
            if (n <= 0) {
                fd.reset();
                continue;
            }
            const std::lock_guard lock{mutex_};
            if (i == 1) {
                err_text_.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            partial_.append(buf, static_cast<std::size_t>(n));
            std::size_t start = 0;
            for (std::size_t lf; (lf = partial_.find('\n', start)) != std::string::npos; start = lf + 1)
                lines_.emplace_back(partial_, start, lf - start);
            partial_.erase(0, start);
        }
    }
}

std::vector<std::string> collector::lines() const {
    const std::lock_guard lock{mutex_};
    return lines_;
}

std::size_t collector::line_count() const {
    const std::lock_guard lock{mutex_};
    return lines_.size();
}

std::string collector::partial() const {
    const std::lock_guard lock{mutex_};
    return partial_;
}

std::string collector::err() const {
    const std::lock_guard lock{mutex_};
    return err_text_;
}

bool collector::wait_closed(std::chrono::milliseconds timeout) const {
    return eventually([&] { return closed_.load(); }, timeout);
}

namespace {

std::vector<std::string> serve_argv(const std::filesystem::path& fifo, const std::vector<std::string>& serve_options,
                                    const std::vector<std::string>& consumer_args) {
    std::vector<std::string> argv{launcher_program, "serve", "--fifo", fifo.native(), "--consumer", consumer_program};
    argv.insert(argv.end(), serve_options.begin(), serve_options.end());
    argv.emplace_back("--");
    argv.insert(argv.end(), consumer_args.begin(), consumer_args.end());
    return argv;
}

std::vector<std::string> consumer_argv(const std::filesystem::path& fifo, const std::vector<std::string>& args) {
    std::vector<std::string> argv{consumer_program, "--fifo", fifo.native()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

// The program runs as if started by hand, whatever started the tests (a
// systemd unit, a terminal inside one): systemd's variables are removed
// (a bare NAME removes it), then `env` applies.
std::vector<std::string> by_hand(const std::vector<std::string>& env) {
    std::vector<std::string> out{"JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
                                 "WATCHDOG_USEC", "WATCHDOG_PID"};
    out.insert(out.end(), env.begin(), env.end());
    return out;
}

}  // namespace

watched::watched(const std::vector<std::string>& argv, const std::vector<std::string>& env)
    : child_{start(argv, -1, by_hand(env))} {
    child_.in.reset();
    output_ = std::make_unique<collector>(std::move(child_.out), std::move(child_.err));
}

serve_fixture::serve_fixture(const std::filesystem::path& fifo, const std::vector<std::string>& serve_options,
                             const std::vector<std::string>& consumer_args)
    : watched{serve_argv(fifo, serve_options, consumer_args)} {}

consumer_fixture::consumer_fixture(const std::filesystem::path& fifo, const std::vector<std::string>& args)
    : watched{consumer_argv(fifo, args)} {}

unique_fd hold_fifo(const std::filesystem::path& fifo) {
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    unique_fd fd{::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC)};
    REQUIRE(fd);
    (void)::fcntl(fd.get(), F_SETPIPE_SZ, 1 << 20);
    return fd;
}

watched::~watched() {
    if (!code_)
        (void)wait(0ms);
}

pid_t watched::consumer(pid_t not_this, std::chrono::milliseconds timeout) const {
    pid_t found = -1;
    (void)eventually(
        [&] {
            for (const pid_t pid : children_of(pid())) {
                if (pid != not_this && is_alive(pid)) {
                    found = pid;
                    return true;
                }
            }
            return false;
        },
        timeout);
    return found;
}

std::optional<int> watched::wait(std::chrono::milliseconds timeout) {
    if (code_)
        return code_;
    std::optional<int> status;
    (void)eventually([&] { return (status = child_.process.try_wait()).has_value(); }, timeout);
    if (!status) {
        // A hang is a failure, never a stuck test: SIGKILL serve and its consumer.
        for (const pid_t pid : children_of(pid()))
            ::kill(pid, SIGKILL);
        child_.process.send_signal(SIGKILL);
        (void)child_.process.wait();
        (void)output_->wait_closed(5s);
        return std::nullopt;
    }
    (void)output_->wait_closed(10s);
    code_ = exit_code_of(*status);
    return code_;
}

std::optional<int> watched::stop(std::chrono::milliseconds timeout) {
    signal(SIGTERM);
    return wait(timeout);
}

std::vector<std::string> joined(const std::vector<std::string>& earlier, const watched& later) {
    auto lines = earlier;
    const auto more = later.output().lines();
    lines.insert(lines.end(), more.begin(), more.end());
    return lines;
}

std::vector<process> start_producers(const std::filesystem::path& fifo, const order_book& book,
                                     const std::filesystem::path& log_dir) {
    std::vector<process> producers;
    for (std::size_t p = 0; p < book.files.size(); ++p) {
        producers.emplace_back(
            std::vector<std::string>{producer_program, "--fifo", fifo.native(), "--wait", "30s", "-q"},
            spawn_options{.stdin_file = book.files[p], .stderr_file = log_dir / fmt::format("producer-{}.log", p)});
    }
    return producers;
}

void expect_delivered(std::vector<process>& producers) {
    for (auto& p : producers)
        CHECK(p.wait(60s) == 0);
}

void stream(int fifo, const std::vector<std::string>& orders, std::string_view eol) {
    std::string text;
    for (const auto& order : orders) {
        text += order;
        text += eol;
    }
    CHECK_MESSAGE(write_all(fifo, text, 300s), "write to the FIFO: ", std::strerror(errno));
}

tmpfs_mount::tmpfs_mount(const std::filesystem::path& dir, const std::string& size) : dir_{dir} {
    std::filesystem::create_directories(dir);
    const std::string options = "size=" + size + ",mode=0700";
    if (::mount("coffee-faults", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0) {
        mounted_ = true;
    } else {
        why_ = fmt::format("cannot mount a tmpfs at '{}': {}", dir.native(), std::strerror(errno));
    }
}

tmpfs_mount::~tmpfs_mount() {
    if (mounted_)
        (void)::umount2(dir_.c_str(), MNT_DETACH);
}

bool tmpfs_mount::remount(const std::string& options) {
    unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV;
    std::string data;
    if (options == "ro")
        flags |= MS_RDONLY;
    else if (options != "rw")
        data = options;
    return ::mount("coffee-faults", dir_.c_str(), "tmpfs", flags, data.empty() ? nullptr : data.c_str()) == 0;
}

void tmpfs_mount::fill(const std::string& name) const {
    const unique_fd fd{::open((dir_ / name).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)};
    REQUIRE(fd);
    const std::string block(4096, 'x');
    while (retry_on_eintr([&] { return ::write(fd.get(), block.data(), block.size()); }) > 0) {
    }
}

std::optional<std::uint32_t> parse_seed(std::string_view text) {
    std::uint32_t seed = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seed);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
        return std::nullopt;
    return seed;
}

std::uint32_t test_seed() {
    std::uint32_t seed = 0;
    if (const char* given = std::getenv("COFFEE_TEST_SEED")) {
        const auto parsed = parse_seed(given);
        if (!parsed)
            FAIL("COFFEE_TEST_SEED=\"", std::string{given}, "\" is not a seed: give a number from 0 to 4294967295");
        seed = parsed.value_or(0);
    } else {
        seed = std::random_device{}();
    }
    MESSAGE("COFFEE_TEST_SEED=", seed);
    return seed;
}

std::mt19937 seeded_rng() { return std::mt19937{test_seed()}; }

void skip(const std::string& reason) {
    std::printf("SKIP: %s\n", reason.c_str());
    std::fflush(stdout);
}

long peak_rss_kib(pid_t pid) {
    std::ifstream status{fmt::format("/proc/{}/status", pid)};
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmHWM:", 0) == 0)
            return std::stol(line.substr(6));
    }
    return 0;
}

}  // namespace coffee::test::faults
