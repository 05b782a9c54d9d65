#pragma once
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace coffee::consumer {

// The bounded queue between the reader and the baristas. When it is full the
// reader stops reading, the pipe fills, and producers block: backpressure.
// `wake` is called (without the lock held) whenever the reader may have
// something to do: room appeared in a full queue, or a barista left.
class order_queue {
public:
    order_queue(std::size_t capacity, std::function<void()> wake) : capacity_{capacity}, wake_{std::move(wake)} {}

    // Moves orders from the front of `pending` while there is room. Returns
    // how many moved.
    std::size_t push_some(std::deque<std::string>& pending);

    // Blocks until there are orders or the queue is closed; moves up to `max`
    // of them into `out`. Returns false when this barista should leave:
    // closed with nothing left to drain, or closed for a stop.
    bool pop(std::vector<std::string>& out, std::size_t max);

    // Puts orders back at the front (a barista could not write them out).
    void put_back(std::vector<std::string>& orders);

    // No more orders will come. drain: baristas take what is queued first;
    // otherwise they leave after the order in hand, and the rest stays.
    void close(bool drain);

    // Called by each barista as it leaves.
    void barista_left();
    [[nodiscard]] std::size_t baristas_left() const;

    // What nobody took; call after every barista has left.
    [[nodiscard]] std::deque<std::string> take_rest();

    [[nodiscard]] std::size_t size() const;

private:
    mutable std::mutex mutex_;
    std::condition_variable not_empty_;
    std::deque<std::string> orders_;
    std::size_t capacity_;
    std::function<void()> wake_;
    bool closed_ = false;
    bool drain_ = false;
    std::size_t left_ = 0;
};

}  // namespace coffee::consumer
