#pragma once
#include <coffee/duration.hpp>
#include <coffee/unique_fd.hpp>

#include <optional>
#include <string_view>
#include <vector>

// The two halves of the systemd service protocol the consumer speaks, written
// against their documented wire format (sd_listen_fds(3), sd_notify(3)) rather
// than linking libsystemd: each is a few lines, and coffee-launcher serve
// plays systemd's side with the same variables.
namespace coffee::sd {

// The first inherited descriptor (SD_LISTEN_FDS_START).
inline constexpr int listen_fds_start = 3;

// Descriptors passed by socket activation: LISTEN_FDS of them from fd 3,
// when LISTEN_PID is our pid. Marks them close-on-exec and unsets LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES so children do not inherit them. Empty when
// the variables are absent or meant for another process.
[[nodiscard]] std::vector<unique_fd> take_listen_fds();

// Sends `state` ("READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1") as one
// datagram to $NOTIFY_SOCKET, never blocking. Returns false when there is
// no such socket; throws std::system_error when the send fails (EAGAIN when
// the receiver's queue is full).
bool notify(std::string_view state);

// The watchdog interval from WATCHDOG_USEC (when WATCHDOG_PID, if set, is us).
[[nodiscard]] std::optional<duration> watchdog_interval();

}  // namespace coffee::sd
