// 50 launches at once from threads of one process: the classic bug is a
// pipe's write end leaking into a sibling's child, so that EOF never comes.
#include "process_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

using namespace std::chrono_literals;

TEST_CASE("50 `pipe` launches in parallel from threads: none hangs") {
    constexpr int launches = 50;
    std::atomic<int> ok{0};
    std::atomic<int> hung{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < launches; ++i) {
        threads.emplace_back([i, &ok, &hung] {
            // Each child waits for EOF on its stdin; a leaked write end would
            // keep it (and so this thread) waiting until the timeout.
            auto child = coffee::test::start({COFFEE_LAUNCHER, "pipe", "--", "cat"});
            const std::string input = "order " + std::to_string(i) + "\n";
            const auto r = coffee::test::communicate(child, input, 30s);
            if (r.timed_out)
                ++hung;
            else if (r.exit_code() == 0 && r.out == input)
                ++ok;
        });
    }
    for (auto& t : threads)
        t.join();
    CHECK(hung == 0);
    CHECK(ok == launches);
}
