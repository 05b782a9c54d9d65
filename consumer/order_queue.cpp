#include "order_queue.hpp"

#include <utility>

namespace coffee::consumer {

bool order_queue::full() const {
    const std::lock_guard lock{mutex_};
    return size_ >= capacity_;
}

void order_queue::push(order_batch&& batch) {
    if (batch.empty())
        return;
    {
        const std::lock_guard lock{mutex_};
        size_ += batch.count;
        batches_.push_back(std::move(batch));
        idle_.store(false, std::memory_order_relaxed);
    }
    batch.clear();
    // One barista at a time: one who leaves orders behind wakes the next
    // (in pop), so a batch that one barista takes whole wakes nobody else.
    not_empty_.notify_one();
}

bool order_queue::pop(order_batch& out, std::size_t max) {
    bool was_full = false;
    bool more = false;
    {
        std::unique_lock lock{mutex_};
        not_empty_.wait(lock, [&] { return size_ > 0 || closed_; });
        if (closed_ && (!drain_ || size_ == 0))
            return false;
        was_full = size_ >= capacity_;
        order_batch& front = batches_.front();
        if (front_offset_ == 0 && front.count <= max) {
            out = std::move(front);
            batches_.pop_front();
        } else {
            // Take `max` orders off the front batch, where the last one taken ended.
            std::size_t end = front_offset_;
            for (std::size_t i = 0; i < max && i < front.count; ++i)
                end = front.text.find('\n', end) + 1;
            out.text.assign(front.text, front_offset_, end - front_offset_);
            out.count = std::min(max, front.count);
            out.first_seq = front.first_seq;
            front.first_seq += out.count;
            front.count -= out.count;
            front_offset_ = end;
            if (front.count == 0) {
                batches_.pop_front();
                front_offset_ = 0;
            }
        }
        size_ -= out.count;
        ++in_hand_;
        more = size_ > 0;
    }
    if (more)
        not_empty_.notify_one();
    if (was_full)
        wake_();
    return true;
}

void order_queue::close(bool drain) {
    {
        const std::lock_guard lock{mutex_};
        if (closed_ && !drain_)
            return;
        closed_ = true;
        drain_ = drain;
    }
    not_empty_.notify_all();
}

void order_queue::done() {
    const std::lock_guard lock{mutex_};
    --in_hand_;
    idle_.store(size_ == 0 && in_hand_ == 0, std::memory_order_release);
}

void order_queue::barista_left() {
    {
        const std::lock_guard lock{mutex_};
        ++left_;
    }
    wake_();
}

std::size_t order_queue::baristas_left() const {
    const std::lock_guard lock{mutex_};
    return left_;
}

std::size_t order_queue::size() const {
    const std::lock_guard lock{mutex_};
    return size_;
}

}  // namespace coffee::consumer
