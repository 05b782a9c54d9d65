#include "counter.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace coffee::consumer {

bool counter::serve(const order_batch& batch) {
    const std::lock_guard lock{mutex_};
    (void)serve_batch(batch, true);
    return !failed();
}

std::size_t counter::serve_head(const order_batch& batch) {
    const std::lock_guard lock{mutex_};
    return serve_batch(batch, false);
}

std::size_t counter::serve_batch(const order_batch& batch, bool wait) {
    if (failed())
        return 0;
    std::string_view rest = batch.text;
    std::uint64_t seq = batch.first_seq;
    while (!rest.empty()) {
        const delivered out = sink_.deliver(rest, batch.first_seq + batch.count - seq, wait);
        if (out.error == EAGAIN && out.lines == 0 && !wait)
            break;
        try {
            journal_.mark_served(seq, out.lines);
        } catch (const std::system_error& e) {
            if (!served_unrecorded_.exchange(true))
                spdlog::error("cannot record served orders: {}; {} orders on stdout may be served again", e.what(),
                              out.lines);
            wake_();
            break;
        }
        served_ += out.lines;
        seq += out.lines;
        rest.remove_prefix(out.bytes);
        if (out.error != 0) {
            output_error(out.error);
            break;
        }
    }
    return batch.text.size() - rest.size();
}

counter::from_source counter::serve_from(order_source& source, std::string_view lines, std::uint64_t count) {
    const std::lock_guard lock{mutex_};
    from_source result;
    while (result.consumed < lines.size()) {
        const delivered out = sink_.deliver(lines.substr(result.consumed), count, false);
        if (out.error == EAGAIN && out.lines == 0) {
            result.no_room = true;
            break;
        }
        source.consume(out.bytes);
        result.consumed += out.bytes;
        count -= out.lines;
        served_ += out.lines;
        if (out.error != 0) {
            output_error(out.error);
            break;
        }
    }
    return result;
}

void counter::output_error(int err) {
    if (!output_failed_.exchange(true))
        spdlog::error("cannot write served orders: write to stdout: {}", std::strerror(err));
    wake_();
}

}  // namespace coffee::consumer
