#pragma once
#include <coffee/duration.hpp>
#include <coffee/pipe_fill.hpp>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// What the shop tells its supervisor (systemd, or coffee-launcher demo) in
// sd_notify(3) STATUS= messages: served, waiting, the pipe's fill, the
// baristas at work.
namespace coffee::consumer {

// What each barista is doing: the order in hand, or idle. Baristas write
// their own slot; the reader thread reads them all for the status. Safe to
// use from any thread.
class barista_board {
public:
    explicit barista_board(unsigned baristas) : orders_(baristas) {}

    void brewing(unsigned barista, std::string_view order);
    void idle(unsigned barista);

    // How many are brewing, and what each one is ("" when idle).
    [[nodiscard]] std::vector<std::string> snapshot() const;

private:
    mutable std::mutex mutex_;
    std::vector<std::string> orders_;
};

struct shop_status {
    std::uint64_t served = 0;
    std::size_t waiting = 0;   // read from the pipe, not yet brewed
    std::uint64_t rejected = 0;
    std::optional<pipe_fill> pipe;
    std::vector<std::string> baristas;  // barista_board::snapshot()
};

// The notify message: a human STATUS= line that `systemctl status` shows,
// "STATUS=served 1200, waiting 14, pipe 61/64 KiB, baristas 2/2 busy,
// rejected 0", then
// X_COFFEE_* fields for programs (systemd ignores them):
// X_COFFEE_SERVED=, X_COFFEE_WAITING=, X_COFFEE_PIPE=UNREAD/CAPACITY (bytes),
// and X_COFFEE_BARISTA_<n>=ORDER or "-" when idle (the first 16, orders cut
// to 64 bytes at a UTF-8 boundary), one per line.
[[nodiscard]] std::string format_status(const shop_status& status);

// How often STATUS= is sent: $COFFEE_STATUS_INTERVAL (a duration from 10ms
// to 1m), else 1s. Throws usage_error naming the variable when it is not one.
[[nodiscard]] duration status_interval_from_env();

}  // namespace coffee::consumer
