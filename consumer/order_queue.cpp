#include "order_queue.hpp"

#include <utility>

namespace coffee::consumer {

std::size_t order_queue::push_some(std::deque<std::string>& pending) {
    std::size_t moved = 0;
    {
        const std::lock_guard lock{mutex_};
        while (!pending.empty() && orders_.size() < capacity_) {
            orders_.push_back(std::move(pending.front()));
            pending.pop_front();
            ++moved;
        }
    }
    if (moved > 1)
        not_empty_.notify_all();
    else if (moved == 1)
        not_empty_.notify_one();
    return moved;
}

bool order_queue::pop(std::vector<std::string>& out, std::size_t max) {
    bool was_full = false;
    {
        std::unique_lock lock{mutex_};
        not_empty_.wait(lock, [&] { return !orders_.empty() || closed_; });
        if (closed_ && (!drain_ || orders_.empty()))
            return false;
        was_full = orders_.size() >= capacity_;
        for (std::size_t i = 0; i < max && !orders_.empty(); ++i) {
            out.push_back(std::move(orders_.front()));
            orders_.pop_front();
        }
    }
    if (was_full)
        wake_();
    return true;
}

void order_queue::put_back(std::vector<std::string>& orders) {
    const std::lock_guard lock{mutex_};
    for (auto it = orders.rbegin(); it != orders.rend(); ++it)
        orders_.push_front(std::move(*it));
    orders.clear();
}

void order_queue::close(bool drain) {
    {
        const std::lock_guard lock{mutex_};
        if (closed_ && !drain_)
            return;  // a stop is never turned back into a drain
        closed_ = true;
        drain_ = drain;
    }
    not_empty_.notify_all();
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

std::deque<std::string> order_queue::take_rest() {
    const std::lock_guard lock{mutex_};
    return std::exchange(orders_, {});
}

std::size_t order_queue::size() const {
    const std::lock_guard lock{mutex_};
    return orders_.size();
}

}  // namespace coffee::consumer
