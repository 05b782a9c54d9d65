#pragma once
// The counter, where orders are served: every serving path hands its
// orders to the sink here, one delivery at a time under one lock, so that
// deliveries never interleave, and counts an order served only when the
// sink says it delivered it. A batch the journal holds is marked served in
// it a delivery at a time; lines straight from the pipe leave it only once
// delivered. Safe to use from any thread.

#include "journal.hpp"
#include "order_batch.hpp"
#include "order_sink.hpp"
#include "order_source.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string_view>

namespace coffee::consumer {

class counter {
public:
    // `wake` tells the reader that serving failed.
    counter(order_sink& sink, journal& orders_journal, std::function<void()> wake)
        : sink_{sink}, journal_{orders_journal}, wake_{std::move(wake)} {}

    // Serves a batch the journal holds, marking each delivery's orders
    // served in it. On failure exactly the orders delivered whole are
    // marked; the others stay unserved in the journal. False when stdout or
    // the journal failed, now or before.
    bool serve(const order_batch& batch);
    // The same without waiting for room: serves the orders at the head of
    // `batch` that the sink takes now. Returns the bytes they are (0 too
    // when stdout or the journal failed).
    std::size_t serve_head(const order_batch& batch);

    // Serves `lines` (`count` whole lines at the head of `source`, every
    // one an order as it stands) straight from it: each delivery's bytes
    // are consumed from the source right after it, so that they never leave
    // it unserved. Stops early when the sink fails or has no room (it never
    // waits for room).
    struct from_source {
        std::size_t consumed = 0;
        bool no_room = false;
    };
    from_source serve_from(order_source& source, std::string_view lines, std::uint64_t count);

    [[nodiscard]] bool failed() const noexcept { return output_failed() || served_unrecorded(); }
    [[nodiscard]] bool output_failed() const noexcept { return output_failed_.load(); }
    // The journal could not record that orders were served.
    [[nodiscard]] bool served_unrecorded() const noexcept { return served_unrecorded_.load(); }
    [[nodiscard]] std::uint64_t served() const noexcept { return served_.load(); }

private:
    // Serves `batch` from its head; `wait`: for room. Returns the bytes
    // of the orders served.
    std::size_t serve_batch(const order_batch& batch, bool wait);
    void output_error(int err);

    order_sink& sink_;
    journal& journal_;
    std::function<void()> wake_;
    std::mutex mutex_;  // one delivery at a time
    std::atomic<std::uint64_t> served_{0};
    std::atomic<bool> output_failed_{false};
    std::atomic<bool> served_unrecorded_{false};
};

}  // namespace coffee::consumer
