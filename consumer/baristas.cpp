#include "baristas.hpp"

#include <coffee/errors.hpp>
#include <coffee/line_protocol.hpp>

#include <spdlog/spdlog.h>

#include <limits>
#include <system_error>

namespace coffee::consumer {

void brew(std::string_view lines, const recipe& how) {
    if (how.instant() && !how.log_each)
        return;
    while (!lines.empty()) {
        const std::size_t lf = lines.find('\n');
        spdlog::info("Processing order: {}", printable(lines.substr(0, lf), max_order_bytes));
        if (!how.instant())
            std::this_thread::sleep_for(how.brew_time);
        lines.remove_prefix(lf + 1);
    }
}

baristas::~baristas() {
    queue_.close(false);
    join();
}

void baristas::start() {
    for (unsigned i = 0; i < count_; ++i) {
        try {
            threads_.emplace_back([this, i] { work(i); });
        } catch (const std::system_error& e) {
            // Nothing taken yet; the ones started stop with the shop.
            throw exit_error(exit_oserr, fmt::format("cannot start barista thread {} of {}: {} (a limit on processes "
                                                     "or memory? ulimit -u, ulimit -v)",
                                                     i + 1, count_, e.code().message()));
        }
    }
}

void baristas::join() {
    for (std::thread& barista : threads_)
        barista.join();
    threads_.clear();
}

void baristas::work(unsigned index) {
    // One order at a time while brewing takes time; otherwise a whole batch
    // as it was taken, so that the queue's lock is taken per take, not per order.
    const std::size_t batch_size = recipe_.instant() ? std::numeric_limits<std::size_t>::max() : 1;
    order_batch batch;
    while (queue_.pop(batch, batch_size)) {
        board_.brewing(index, std::string_view{batch.text}.substr(0, batch.text.find('\n')));
        brew(batch.text, recipe_);
        const bool served = counter_.serve(batch);
        board_.idle(index);
        queue_.done();
        if (!served)
            break;
        batch.clear();
    }
    board_.idle(index);
    queue_.barista_left();
}

}  // namespace coffee::consumer
