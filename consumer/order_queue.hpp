#pragma once
#include "order_batch.hpp"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace coffee::consumer {

// The bounded queue between the reader and the baristas. When it is full the
// reader stops reading, the pipe fills, and producers block: backpressure.
// `wake` is called (without the lock held) whenever the reader may have
// something to do: room appeared in a full queue, or a barista left.
class order_queue {
public:
    order_queue(std::size_t capacity, std::function<void()> wake) : capacity_{capacity}, wake_{std::move(wake)} {}

    // True when the reader should not push: it holds `capacity` orders or
    // more (a push may overshoot by one batch, so memory stays bounded).
    [[nodiscard]] bool full() const;
    void push(order_batch&& batch);

    // Blocks until there are orders or the queue is closed; moves up to `max`
    // orders into `out` (empty on entry). Returns false when this barista
    // should leave: closed with nothing left to drain, or closed for a stop.
    bool pop(order_batch& out, std::size_t max);

    // No more orders will come. drain: baristas take what is queued first;
    // otherwise they leave after the order in hand, and the rest stays.
    // A stop is never turned back into a drain.
    void close(bool drain);

    // Called by a barista when it is done with the orders pop() gave it.
    void done();
    // Nothing queued and no barista holding orders: whoever serves next
    // cannot overtake anyone. Takes no lock (the reader asks it for every
    // take of a quiet shop); only the reader's push makes it false, and a
    // barista's done() that makes it true comes after that barista's writes.
    [[nodiscard]] bool idle() const noexcept { return idle_.load(std::memory_order_acquire); }

    // Called by each barista as it leaves.
    void barista_left();
    [[nodiscard]] std::size_t baristas_left() const;

    [[nodiscard]] std::size_t size() const;

private:
    mutable std::mutex mutex_;
    std::condition_variable not_empty_;
    std::deque<order_batch> batches_;
    std::size_t front_offset_ = 0;  // bytes of batches_.front() already taken
    std::size_t size_ = 0;          // orders queued
    std::size_t in_hand_ = 0;       // batches popped and not yet done()
    std::atomic<bool> idle_{true};  // size_ == 0 && in_hand_ == 0, set under mutex_
    std::size_t capacity_;
    std::function<void()> wake_;
    bool closed_ = false;
    bool drain_ = false;
    std::size_t left_ = 0;
};

}  // namespace coffee::consumer
