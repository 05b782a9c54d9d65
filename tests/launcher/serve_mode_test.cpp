// coffee-launcher serve: the supervisor holding the FIFO.
#include "process_util.hpp"

#include <coffee/fifo.hpp>
#include <coffee/posix.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <thread>

using namespace std::chrono_literals;

namespace {

const std::string launcher = COFFEE_LAUNCHER;

std::vector<std::string> serve_args(const std::filesystem::path& fifo, const std::string& consumer,
                                    std::vector<std::string> extra) {
    std::vector<std::string> args{launcher, "serve", "--fifo", fifo.native(), "--consumer", consumer};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

// The supervised consumer: the one child of the launcher.
pid_t wait_for_child(pid_t launcher_pid, pid_t not_this = -1) {
    for (int i = 0; i < 500; ++i) {
        for (const pid_t pid : coffee::test::children_of(launcher_pid)) {
            if (pid != not_this && coffee::test::is_alive(pid))
                return pid;
        }
        std::this_thread::sleep_for(10ms);
    }
    return -1;
}

void write_to_fifo(const std::filesystem::path& fifo, const std::string& text) {
    const coffee::unique_fd fd = coffee::open_fifo_for_writing(fifo, std::chrono::seconds{5});
    coffee::write_all(fd.get(), text, "the FIFO");
}

}  // namespace

TEST_SUITE("launcher serve") {

TEST_CASE("the consumer gets fds 0-3, fd 3 the FIFO, LISTEN_* for its own pid, no signal blocked or ignored") {
    coffee::test::temp_dir dir;
    const auto r = coffee::test::run(serve_args(dir.path() / "orders", COFFEE_TEST_CHILD, {"--", "inspect"}), {}, 20s);
    CHECK(r.exit_code() == 0);  // it finished on its own with 0: the supervisor stops too
    CHECK(r.out.find("fds: 0 1 2 3\n") != std::string::npos);
    CHECK(r.out.find("fd 3: FIFO\n") != std::string::npos);
    CHECK(r.out.find("LISTEN_FDS=1\n") != std::string::npos);
    CHECK(r.out.find("LISTEN_FDNAMES=orders\n") != std::string::npos);
    CHECK(r.out.find("LISTEN_PID is our pid\n") != std::string::npos);
    CHECK(r.out.find("SigBlk:\t0000000000000000\n") != std::string::npos);
    CHECK(r.out.find("SigIgn:\t0000000000000000\n") != std::string::npos);
}

TEST_CASE("a crashing consumer is restarted with backoff until the start limit, then given up on with the FIFO empty") {
    coffee::test::temp_dir dir;
    const auto r = coffee::test::run(serve_args(dir.path() / "orders", COFFEE_TEST_CHILD,
                                                {"--restart-delay", "10ms", "--start-limit", "3", "--", "exit", "3"}),
                                     {}, 20s);
    CHECK(r.exit_code() == 1);
    CHECK(std::count(r.err.begin(), r.err.end(), 's') > 0);
    std::size_t starts = 0;
    for (std::size_t at = 0; (at = r.err.find("started the consumer", at)) != std::string::npos; ++at)
        ++starts;
    CHECK(starts == 3);
    CHECK(r.err.find("giving up") != std::string::npos);
}

// Reads serve's log until it says it waits (keeps the FIFO and retries).
bool says_it_waits(coffee::test::piped_child& serve, std::vector<std::string>& log) {
    std::string partial;
    return coffee::test::read_lines_until(
        serve.err.get(), log, partial,
        [](const auto& lines) { return !lines.empty() && lines.back().find("keeping the FIFO") != std::string::npos; },
        20s);
}

TEST_CASE("a consumer that keeps crashing with orders in the FIFO: serve keeps the FIFO and waits instead of giving up") {
    coffee::test::temp_dir dir;
    const auto fifo = dir.path() / "orders";
    // The second start comes 2s after the first failure: the orders are in by then.
    auto serve = coffee::test::start(serve_args(
        fifo, COFFEE_TEST_CHILD, {"--restart-delay", "2s", "--start-limit", "2", "--stop-timeout", "300ms", "--", "exit", "3"}));
    write_to_fifo(fifo, "Latte\nMocha\n");
    std::vector<std::string> log;
    REQUIRE(says_it_waits(serve, log));
    CHECK(log.back().find("(12 bytes, 2 whole lines of orders wait in it)") != std::string::npos);
    CHECK(coffee::test::is_alive(serve.process.pid()));
    serve.process.send_signal(SIGTERM);
    const auto r = coffee::test::communicate(serve, {}, 20s);
    CHECK(r.exit_code() == 74);  // the drain pass cannot save them: that consumer only exits 3
    CHECK(r.err.find("giving up") == std::string::npos);
    CHECK(r.err.find("error: 12 bytes (2 whole lines) of orders are left in the FIFO") != std::string::npos);
}

TEST_CASE("a consumer that keeps exiting 75 (its journal still locked) is waited for, even with the FIFO empty") {
    coffee::test::temp_dir dir;
    auto serve = coffee::test::start(serve_args(dir.path() / "orders", COFFEE_TEST_CHILD,
                                                {"--restart-delay", "10ms", "--start-limit", "2", "--", "exit", "75"}));
    std::vector<std::string> log;
    REQUIRE(says_it_waits(serve, log));
    CHECK(coffee::test::is_alive(serve.process.pid()));
    serve.process.send_signal(SIGTERM);
    const auto r = coffee::test::communicate(serve, {}, 20s);
    CHECK(r.exit_code() == 0);  // stopped while the consumer was down, nothing in the FIFO
    CHECK(r.err.find("giving up") == std::string::npos);
}

TEST_CASE("a consumer that reports a usage error is not restarted") {
    coffee::test::temp_dir dir;
    const auto r = coffee::test::run(serve_args(dir.path() / "orders", COFFEE_TEST_CHILD, {"--", "exit", "64"}), {}, 20s);
    CHECK(r.exit_code() == 64);
    CHECK(r.err.find("not restarting") != std::string::npos);
}

TEST_CASE("serve never ends holding orders silently: it counts them at error level and exits 74") {
    coffee::test::temp_dir dir;
    const auto fifo = dir.path() / "orders";
    // A consumer that reads nothing and exits 0 (as --timeout would); the
    // drain pass starts it again, it cannot take a stop request, and is
    // killed after --stop-timeout.
    auto serve = coffee::test::start(
        serve_args(fifo, COFFEE_TEST_CHILD, {"--stop-timeout", "300ms", "--", "sleep", "500"}));
    REQUIRE(wait_for_child(serve.process.pid()) > 0);
    write_to_fifo(fifo, "Latte\nMocha\nEspresso\nhalf a li");
    const auto r = coffee::test::communicate(serve, {}, 20s);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code() == 74);
    CHECK(r.err.find("started the consumer once more") != std::string::npos);
    CHECK(r.err.find("error: 30 bytes (3 whole lines) of orders are left in the FIFO") != std::string::npos);
}

TEST_CASE("SIGTERM during serve: the consumer stops gracefully, nothing left behind") {
    coffee::test::temp_dir dir;
    const auto fifo = dir.path() / "orders";
    auto child = coffee::test::start(serve_args(fifo, COFFEE_CONSUMER, {"--", "--brew-time", "500ms"}));
    const pid_t consumer = wait_for_child(child.process.pid());
    REQUIRE(consumer > 0);
    write_to_fifo(fifo, "Latte\nMocha\nEspresso\nRistretto\n");
    std::vector<std::string> lines;
    std::string partial;
    REQUIRE(coffee::test::read_lines_until(child.out.get(), lines, partial, [](const auto& l) { return !l.empty(); }, 20s));
    const auto stopped = std::chrono::steady_clock::now();
    child.process.send_signal(SIGTERM);
    const auto r = coffee::test::communicate(child, {}, 20s);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code() == 0);
    CHECK(std::chrono::steady_clock::now() - stopped < 5s);
    CHECK_FALSE(coffee::test::is_alive(consumer));
    // Served, or waiting in the consumer's journal for the next start: none lost.
    auto next = coffee::test::start({COFFEE_CONSUMER, "--fifo", fifo.native(), "--brew-time", "0", "--timeout", "300ms"});
    const auto rest = coffee::test::communicate(next, {}, 20s);
    CHECK(rest.exit_code() == 0);
    const auto saved = static_cast<std::size_t>(std::count(rest.out.begin(), rest.out.end(), '\n'));
    const auto served = lines.size() + static_cast<std::size_t>(std::count(r.out.begin(), r.out.end(), '\n'));
    CHECK(served + saved == 4);
}

TEST_CASE("kill -9 of the consumer while producers write 20,000 orders: restarted, nothing lost, duplicates within the bound") {
    constexpr int producers = 4;
    constexpr int per_producer = 5000;
    coffee::test::temp_dir dir;
    const auto fifo = dir.path() / "orders";
    auto serve = coffee::test::start(serve_args(fifo, COFFEE_CONSUMER,
                                                {"--restart-delay", "50ms", "--", "--until-finish", "--brew-time", "1ms",
                                                 "--baristas", "8", "-q"}));
    const pid_t first = wait_for_child(serve.process.pid());
    REQUIRE(first > 0);

    std::vector<coffee::test::piped_child> writers;
    for (int p = 0; p < producers; ++p) {
        std::vector<std::string> args{COFFEE_PRODUCER, "--fifo", fifo.native(), "-q"};
        for (int i = 0; i < per_producer; ++i)
            args.push_back(fmt::format("order {} {}", p, i));
        writers.push_back(coffee::test::start(args));
        writers.back().in.reset();
    }

    std::vector<std::string> lines;
    std::string partial;
    REQUIRE(coffee::test::read_lines_until(serve.out.get(), lines, partial, [](const auto& l) { return l.size() >= 2000; }, 60s));
    REQUIRE(::kill(first, SIGKILL) == 0);
    const pid_t second = wait_for_child(serve.process.pid(), first);
    CHECK(second > 0);
    CHECK(second != first);

    for (auto& w : writers) {
        const auto r = coffee::test::communicate(w, {}, 60s);
        CHECK(r.exit_code() == 0);  // the producers never saw an error
        CHECK(r.err.empty());
    }
    write_to_fifo(fifo, "finish\n");
    const auto r = coffee::test::communicate(serve, {}, 60s);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code() == 0);
    CHECK(r.err.find("restarting it") != std::string::npos);
    std::string rest = partial + r.out;
    for (std::size_t lf; (lf = rest.find('\n')) != std::string::npos; rest.erase(0, lf + 1))
        lines.push_back(rest.substr(0, lf));

    std::map<std::string, int> times;
    for (const auto& line : lines)
        ++times[line];
    // The journal keeps what the killed consumer had taken from the pipe. An
    // order may be served twice when the kill fell between writing its line
    // and recording that (at most one per barista, 8), or between the journal
    // append and the take from the pipe (one take: 4 KiB of lines), README's
    // "What the shop guarantees".
    std::size_t lost = 0;
    for (int p = 0; p < producers; ++p) {
        for (int i = 0; i < per_producer; ++i)
            lost += times.count(fmt::format("order {} {}", p, i)) == 0 ? 1U : 0U;
    }
    const auto twice = std::count_if(times.begin(), times.end(), [](const auto& kv) { return kv.second > 1; });
    const auto served = static_cast<std::size_t>(std::count_if(
        times.begin(), times.end(), [](const auto& kv) { return kv.first.rfind("order ", 0) == 0 && kv.first.size() <= 12; }));
    const std::size_t torn = times.size() - served;
    MESSAGE("kill -9 of the consumer: lost ", lost, ", twice ", twice, ", torn ", torn, " of ", producers * per_producer);
    CHECK(lost == 0);
    CHECK(twice <= 8 + 4096 / 12);
    CHECK(torn == 0);
}

}  // TEST_SUITE
