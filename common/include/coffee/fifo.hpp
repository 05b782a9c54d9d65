#pragma once
#include <coffee/duration.hpp>
#include <coffee/unique_fd.hpp>

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

namespace coffee {

// The system shop's FIFO, created by coffee-consumer.socket (systemd).
inline constexpr const char* system_fifo_path = "/run/coffee-shop/orders";

// Where a shop's FIFO lives when --fifo is not given:
//   $COFFEE_FIFO if set and non-empty;
//   else, for root or without $XDG_RUNTIME_DIR: system_fifo_path;
//   else the per-user shop $XDG_RUNTIME_DIR/coffee-shop/orders.
// `for_producer` adds one rule: a producer whose per-user FIFO does not exist
// uses the system shop's, so a customer's shell reaches the system shop.
[[nodiscard]] std::filesystem::path default_fifo_path(bool for_producer);

// How the consumer treats the path it is given.
struct fifo_policy {
    mode_t create_mode = 0600;          // when the consumer creates the FIFO
    bool allow_world_writable = false;  // accept an existing FIFO with o+w
};

// The consumer's end: creates the FIFO (and its parent directory, 0700) if
// missing, else checks that the existing node is a FIFO (not a symlink),
// owned by us or root, and not writable by others unless allowed. Opens it
// O_RDWR | O_NONBLOCK so that writers coming and going never cause EOF.
// Throws exit_error (77 unsafe owner/mode, 78 not a FIFO) or system_error.
[[nodiscard]] unique_fd open_fifo_for_reading(const std::filesystem::path& path, const fifo_policy& policy);

// Checks that an inherited descriptor (socket activation) is a FIFO.
// Throws exit_error(78) otherwise.
void check_is_fifo(int fd, const std::string& what);

// The producer's end: opens the existing FIFO for writing, never creating
// anything and never following a symlink. No reader (ENXIO) or no FIFO yet
// (ENOENT) are retried until `wait` has passed; then exit_error(69). A path
// that is not a FIFO: exit_error(78), at once. EACCES: exit_error(77).
// The returned descriptor is blocking, so that a full pipe means backpressure.
[[nodiscard]] unique_fd open_fifo_for_writing(const std::filesystem::path& path, duration wait);

}  // namespace coffee
