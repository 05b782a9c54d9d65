// coffee-launcher demo with the real coffee-consumer and coffee-producer.
#include "process_util.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

using namespace std::chrono_literals;

namespace {

const std::string launcher = COFFEE_LAUNCHER;

std::vector<std::string> demo_args(std::vector<std::string> extra) {
    std::vector<std::string> args{launcher, "demo", "--consumer", COFFEE_CONSUMER, "--producer", COFFEE_PRODUCER};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in{text};
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

bool is_empty_dir(const std::filesystem::path& dir) { return std::filesystem::directory_iterator{dir} == std::filesystem::directory_iterator{}; }

}  // namespace

TEST_SUITE("launcher demo") {

TEST_CASE("4 producers x 1,000 orders with --brew-time 0: every order served once, exit 0") {
    coffee::test::temp_dir tmp;
    auto child = coffee::test::start(demo_args({"--producers", "4", "--orders", "1000", "--brew-time", "0", "-q"}), -1,
                                     {"TMPDIR=" + tmp.path().native()});
    const auto r = coffee::test::communicate(child, {}, 60s);
    CHECK(r.exit_code() == 0);
    const auto served = lines_of(r.out);
    CHECK(served.size() == 4000);
    const std::set<std::string> unique(served.begin(), served.end());
    CHECK(unique.size() == 4000);
    const char* menu[] = {"Espresso", "Arabica", "Latte", "Cappuccino"};
    for (int p = 1; p <= 4; ++p) {
        for (int i = 1; i <= 1000; ++i)
            CHECK_MESSAGE(unique.count(fmt::format("{} #{} for customer {}", menu[(i - 1) % 4], i, p)) == 1, "order ", i, " of producer ", p);
    }
    CHECK(r.err.find("4000 of 4000 orders served") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') >= 5);  // the summary: one line per child
    CHECK(is_empty_dir(tmp.path()));  // the private directory is gone
}

TEST_CASE("the default run serves the blog post's menu") {
    const auto r = coffee::test::run(demo_args({"--brew-time", "0", "-q"}), {}, 30s);
    CHECK(r.exit_code() == 0);
    CHECK(r.out == "Espresso\nArabica\nLatte\nCappuccino\n");
}

TEST_CASE("a failing child makes the launcher exit non-zero and say which") {
    SUBCASE("a producer fails") {
        // test_child without a mode exits 2: a producer that fails.
        std::vector<std::string> args{launcher, "demo", "--consumer", COFFEE_CONSUMER, "--producer", COFFEE_TEST_CHILD,
                                      "--producers", "2", "--brew-time", "0"};
        const auto r = coffee::test::run(args, {}, 30s);
        CHECK(r.exit_code() == 1);
        CHECK(r.err.find("producer 1 (pid ") != std::string::npos);
        CHECK(r.err.find("exited with status 2  <- failed") != std::string::npos);
        CHECK(r.err.find("consumer (pid ") != std::string::npos);
    }
    SUBCASE("the consumer fails: the producers are stopped at once") {
        std::vector<std::string> args{launcher, "demo", "--consumer", COFFEE_TEST_CHILD, "--producer", COFFEE_PRODUCER};
        const auto started = std::chrono::steady_clock::now();
        const auto r = coffee::test::run(args, {}, 30s);
        CHECK(r.exit_code() == 1);
        CHECK(r.err.find("consumer (pid ") != std::string::npos);
        CHECK(r.err.find("exited with status 2  <- failed") != std::string::npos);
        CHECK(std::chrono::steady_clock::now() - started < 4s);  // not the producer's --wait
    }
    SUBCASE("a program that does not exist") {
        const auto r = coffee::test::run({launcher, "demo", "--consumer", "/nonexistent/coffee-consumer"});
        CHECK(r.exit_code() == 127);
        CHECK(r.err.find("/nonexistent/coffee-consumer") != std::string::npos);
    }
}

TEST_CASE("SIGTERM during demo: children gone within the deadline, directory removed") {
    coffee::test::temp_dir tmp;
    auto child = coffee::test::start(demo_args({"--producers", "2", "--orders", "20", "--brew-time", "1s", "--stop-timeout", "5s"}),
                                     -1, {"TMPDIR=" + tmp.path().native()});
    std::vector<std::string> lines;
    std::string partial;
    REQUIRE(coffee::test::read_lines_until(child.out.get(), lines, partial, [](const auto& l) { return !l.empty(); }, 20s));
    const auto children = coffee::test::children_of(child.process.pid());
    CHECK(children.size() >= 1);
    CHECK_FALSE(is_empty_dir(tmp.path()));
    const auto stopped = std::chrono::steady_clock::now();
    child.process.send_signal(SIGTERM);
    const auto r = coffee::test::communicate(child, {}, 20s);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code() == 128 + SIGTERM);
    CHECK(std::chrono::steady_clock::now() - stopped < 6s);
    for (const pid_t pid : children)
        CHECK_FALSE(coffee::test::is_alive(pid));
    CHECK(is_empty_dir(tmp.path()));
}

TEST_CASE("without a terminal, --scenario rush tells its story in one summary line a second") {
    const auto r = coffee::test::run(demo_args({"--scenario", "rush"}), {}, 60s);
    CHECK(r.exit_code() == 0);
    const auto served = lines_of(r.out);
    CHECK(served.size() == 3400);
    CHECK(std::set<std::string>(served.begin(), served.end()).size() == 3400);
    CHECK(r.err.find('\x1b') == std::string::npos);  // no terminal, no escape sequences

    // "  2.0s pipe 63/64 KiB (~2257 orders) FULL, customers 2 blocked 0 ordering 6 done, baristas 2/2 busy, served 760/3400 (390/s)"
    const std::regex summary_re{R"(info: +([0-9.]+)s pipe (\d+)/64 KiB \(~\d+ orders?\)( FULL| empty)?, customers (\d+) blocked (\d+) ordering (\d+) done, baristas (\d+)/2 busy, served (\d+)/3400 \(\d+/s\))"};
    bool full_with_blocked = false;
    bool empty_after_full = false;
    std::string last;
    int summaries = 0;
    for (const std::string& line : lines_of(r.err)) {
        std::smatch m;
        if (!std::regex_search(line, m, summary_re))
            continue;
        ++summaries;
        last = line;
        if (m[3] == " FULL" && std::stoi(m[2]) >= 60 && std::stoi(m[4]) >= 1)
            full_with_blocked = true;
        if (full_with_blocked && m[3] == " empty" && m[2] == "0")
            empty_after_full = true;
    }
    INFO(r.err);
    CHECK(summaries >= 5);  // the rush takes several seconds
    CHECK(full_with_blocked);
    CHECK(empty_after_full);
    CHECK(last.find("customers 0 blocked 0 ordering 8 done") != std::string::npos);
    CHECK(last.find("served 3400/3400") != std::string::npos);
    CHECK(r.err.find("3400 of 3400 orders served") != std::string::npos);
}

TEST_CASE("--scenario quiet: customers come one at a time to an empty pipe") {
    const auto r = coffee::test::run(demo_args({"--scenario", "quiet", "--no-live"}), {}, 60s);
    CHECK(r.exit_code() == 0);
    CHECK(lines_of(r.out).size() == 8);
    const std::regex summary_re{R"(s pipe (\d+)/64 KiB .*customers (\d+) blocked .* (\d+) to come)"};
    int waiting_for_customers = 0;
    for (const std::string& line : lines_of(r.err)) {
        std::smatch m;
        if (std::regex_search(line, m, summary_re)) {
            ++waiting_for_customers;
            CHECK(m[2] == "0");  // nobody waits on a quiet afternoon
        }
    }
    INFO(r.err);
    CHECK(waiting_for_customers >= 2);
    CHECK(r.err.find("8 of 8 orders served") != std::string::npos);
}

TEST_CASE("an unknown --scenario is a usage error naming it") {
    const auto r = coffee::test::run(demo_args({"--scenario", "brunch"}));
    CHECK(r.exit_code() == 64);
    CHECK(r.err.find("unknown --scenario 'brunch': use rush or quiet") != std::string::npos);
}

}  // TEST_SUITE
