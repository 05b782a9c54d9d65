#include "status.hpp"

#include <coffee/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

namespace coffee::consumer {

namespace {

constexpr std::size_t max_baristas_listed = 16;
constexpr std::size_t max_order_bytes_listed = 64;

// `text` cut to at most `max` bytes without splitting a UTF-8 sequence.
std::string_view cut(std::string_view text, std::size_t max) {
    if (text.size() <= max)
        return text;
    std::size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0U) == 0x80U)
        --end;
    return text.substr(0, end);
}

}  // namespace

void barista_board::brewing(unsigned barista, std::string_view order) {
    const std::lock_guard lock{mutex_};
    orders_.at(barista).assign(order);
}

void barista_board::idle(unsigned barista) {
    const std::lock_guard lock{mutex_};
    orders_.at(barista).clear();
}

std::vector<std::string> barista_board::snapshot() const {
    const std::lock_guard lock{mutex_};
    return orders_;
}

std::string format_status(const shop_status& status) {
    const auto busy = std::count_if(status.baristas.begin(), status.baristas.end(), [](const std::string& o) { return !o.empty(); });
    std::string out = fmt::format("STATUS=served {}, waiting {}", status.served, status.waiting);
    if (status.pipe)
        out += fmt::format(", pipe {}", describe_fill(*status.pipe));
    out += fmt::format(", baristas {}/{} busy, rejected {}", busy, status.baristas.size(), status.rejected);
    out += fmt::format("\nX_COFFEE_SERVED={}\nX_COFFEE_WAITING={}", status.served, status.waiting);
    if (status.pipe)
        out += fmt::format("\nX_COFFEE_PIPE={}/{}", status.pipe->unread, status.pipe->capacity);
    for (std::size_t i = 0; i < status.baristas.size() && i < max_baristas_listed; ++i) {
        const std::string& order = status.baristas[i];
        out += fmt::format("\nX_COFFEE_BARISTA_{}={}", i + 1, order.empty() ? "-" : cut(order, max_order_bytes_listed));
    }
    return out;
}

duration status_interval_from_env() {
    const char* text = std::getenv("COFFEE_STATUS_INTERVAL");
    if (text == nullptr || *text == '\0')
        return std::chrono::seconds{1};
    duration interval{};
    try {
        interval = parse_duration(text);
    } catch (const usage_error& e) {
        throw usage_error(fmt::format("COFFEE_STATUS_INTERVAL: {}", e.what()));
    }
    if (interval < std::chrono::milliseconds{10} || interval > std::chrono::minutes{1})
        throw usage_error(fmt::format("COFFEE_STATUS_INTERVAL: '{}' is not between 10ms and 1m", text));
    return interval;
}

}  // namespace coffee::consumer
