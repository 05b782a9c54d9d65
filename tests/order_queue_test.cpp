// The order queue between the reader and the baristas: batches taken whole
// or cut where an order ends, backpressure, a drain and a stop, and a
// barista blocked in pop() woken by a push or a close.
#include <order_queue.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using coffee::consumer::order_batch;
using coffee::consumer::order_queue;

namespace {

order_batch batch_of(std::uint64_t first_seq, std::initializer_list<const char*> orders) {
    order_batch b;
    b.first_seq = first_seq;
    for (const char* order : orders)
        b.add(order);
    return b;
}

}  // namespace

TEST_SUITE("order_queue") {

TEST_CASE("a batch that fits is taken whole, a bigger one is cut where an order ends, numbers kept") {
    std::atomic<int> wakes{0};
    order_queue q{100, [&] { ++wakes; }};
    q.push(batch_of(10, {"Latte", "Mocha", "Flat White"}));
    q.push(batch_of(13, {"Tea"}));
    CHECK(q.size() == 4);
    order_batch out;
    REQUIRE(q.pop(out, 2));
    CHECK(out.text == "Latte\nMocha\n");
    CHECK(out.count == 2);
    CHECK(out.first_seq == 10);
    q.done();
    out.clear();
    REQUIRE(q.pop(out, 2));  // what is left of the first batch, not glued to the next
    CHECK(out.text == "Flat White\n");
    CHECK(out.count == 1);
    CHECK(out.first_seq == 12);
    q.done();
    out.clear();
    REQUIRE(q.pop(out, 2));
    CHECK(out.text == "Tea\n");
    CHECK(out.first_seq == 13);
    q.done();
    CHECK(q.size() == 0);
    CHECK(wakes == 0);  // never full
}

TEST_CASE("an empty batch is not queued, a pushed batch is left empty") {
    order_queue q{10, [] {}};
    order_batch empty;
    q.push(std::move(empty));
    CHECK(q.size() == 0);
    CHECK(q.idle());
    order_batch b = batch_of(0, {"Latte"});
    q.push(std::move(b));
    CHECK(b.empty());
    CHECK(b.text.empty());
    CHECK(q.size() == 1);
}

TEST_CASE("full at capacity, a pop from a full queue wakes the reader") {
    std::atomic<int> wakes{0};
    order_queue q{3, [&] { ++wakes; }};
    q.push(batch_of(0, {"a", "b"}));
    CHECK_FALSE(q.full());
    q.push(batch_of(2, {"c", "d"}));  // overshoots by one batch at most
    CHECK(q.full());
    CHECK(q.size() == 4);
    order_batch out;
    REQUIRE(q.pop(out, 1));
    CHECK(wakes == 1);
    CHECK(q.full());  // 3 left
    out.clear();
    REQUIRE(q.pop(out, 1));
    CHECK(wakes == 2);
    CHECK_FALSE(q.full());
    out.clear();
    REQUIRE(q.pop(out, 1));
    CHECK(wakes == 2);  // it was not full
}

TEST_CASE("idle: nothing queued and no barista holding orders") {
    order_queue q{10, [] {}};
    CHECK(q.idle());
    q.push(batch_of(0, {"a", "b"}));
    CHECK_FALSE(q.idle());
    order_batch first;
    order_batch second;
    REQUIRE(q.pop(first, 1));
    REQUIRE(q.pop(second, 1));
    CHECK(q.size() == 0);
    q.done();
    CHECK_FALSE(q.idle());  // one barista still holds an order
    q.done();
    CHECK(q.idle());
}

TEST_CASE("close with drain: the queued orders are taken, then pop says leave") {
    order_queue q{10, [] {}};
    q.push(batch_of(0, {"a", "b", "c"}));
    q.close(true);
    order_batch out;
    std::size_t taken = 0;
    while (q.pop(out, 2)) {
        taken += out.count;
        q.done();
        out.clear();
    }
    CHECK(taken == 3);
    CHECK(q.size() == 0);
    CHECK(q.idle());
}

TEST_CASE("close without drain: pop says leave, the queued orders stay, a stop is not turned back into a drain") {
    order_queue q{10, [] {}};
    q.push(batch_of(0, {"a", "b", "c"}));
    q.close(false);
    order_batch out;
    CHECK_FALSE(q.pop(out, 2));
    CHECK(out.empty());
    CHECK(q.size() == 3);
    q.close(true);
    CHECK_FALSE(q.pop(out, 2));
    CHECK(q.size() == 3);
}

TEST_CASE("a drain can become a stop") {
    order_queue q{10, [] {}};
    q.push(batch_of(0, {"a", "b"}));
    q.close(true);
    q.close(false);
    order_batch out;
    CHECK_FALSE(q.pop(out, 1));
    CHECK(q.size() == 2);
}

TEST_CASE("baristas_left counts each leaving barista and wakes the reader") {
    std::atomic<int> wakes{0};
    order_queue q{10, [&] { ++wakes; }};
    CHECK(q.baristas_left() == 0);
    q.barista_left();
    q.barista_left();
    CHECK(q.baristas_left() == 2);
    CHECK(wakes == 2);
}

TEST_CASE("threads: baristas blocked in pop take every order pushed once, then leave at the close") {
    order_queue q{64, [] {}};
    constexpr int baristas = 4;
    constexpr std::uint64_t orders = 20000;
    std::vector<std::atomic<int>> served(orders);
    std::vector<std::thread> threads;
    for (int i = 0; i < baristas; ++i) {
        threads.emplace_back([&] {
            order_batch out;
            while (q.pop(out, 3)) {
                for (std::uint64_t s = out.first_seq; s < out.first_seq + out.count; ++s)
                    ++served[s];
                q.done();
                out.clear();
            }
            q.barista_left();
        });
    }
    for (std::uint64_t seq = 0; seq < orders; seq += 10) {
        while (q.full())
            std::this_thread::yield();
        order_batch b;
        b.first_seq = seq;
        for (std::uint64_t i = 0; i < 10; ++i)
            b.add("order");
        q.push(std::move(b));
    }
    q.close(true);
    for (auto& t : threads)
        t.join();
    std::size_t once = 0;
    for (const auto& n : served) {
        if (n == 1)
            ++once;
    }
    CHECK(once == orders);
    CHECK(q.baristas_left() == baristas);
    CHECK(q.size() == 0);
    CHECK(q.idle());
}

TEST_CASE("threads: a barista blocked on an empty queue leaves at a stop") {
    order_queue q{10, [] {}};
    std::atomic<bool> left{false};
    std::thread barista{[&] {
        order_batch out;
        while (q.pop(out, 1)) {
            q.done();
            out.clear();
        }
        left = true;
    }};
    q.close(false);
    barista.join();  // would hang if the close did not wake it
    CHECK(left);
}

}  // TEST_SUITE
