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

// The consumer's end. The FIFO's directory must pass check_safe_directory()
// (safe_path.hpp); its last component is created (0700) when missing. Then,
// relative to that directory: creates the FIFO with exactly
// policy.create_mode (the umask is set around mkfifoat), or finds the
// existing one; opens it O_RDWR | O_NONBLOCK | O_NOFOLLOW (writers coming and
// going never cause EOF), and checks on the open descriptor that it is a
// FIFO owned by us (or root, for one we found); one we created gets the exact
// mode (fchmod); one we found must not be readable by group or others, nor
// writable by others unless allowed. Nothing is ever done by name alone.
// Throws exit_error (77 unsafe directory/owner/mode, 78 not a FIFO) or
// system_error. Sets the umask for a moment: call before threads start.
[[nodiscard]] unique_fd open_fifo_for_reading(const std::filesystem::path& path, const fifo_policy& policy);

// One consumer per FIFO: an exclusive flock() on "<fifo>.lock", a file next
// to the FIFO (in its checked directory) that only its owner, the shop, can
// open. Writers of the FIFO cannot take this lock, as they could a flock() on
// the FIFO itself. The file is created 0600 when missing; an existing one
// must be a regular file with one link, owned by us (it is made 0600 again).
// The lock lasts as long as the returned descriptor (and its copies).
// Throws exit_error(75) when another process holds it, exit_error(77) when
// the file or its directory is not ours, std::system_error otherwise.
[[nodiscard]] unique_fd lock_fifo(const std::filesystem::path& fifo_path);

// Checks that an inherited descriptor (socket activation) is a FIFO.
// Throws exit_error(78) otherwise.
void check_is_fifo(int fd, const std::string& what);

// Checks that an inherited descriptor can be read from (O_RDONLY or O_RDWR):
// a write end would only fail at the first order. Throws exit_error(78)
// naming `what` otherwise.
void check_open_for_reading(int fd, const std::string& what);

// The producer's end: opens the existing FIFO for writing, never creating
// anything and never following a symlink. The FIFO's directory must pass
// check_safe_directory() (exit_error(77) at once otherwise): orders are
// customers' data, not for a FIFO that another user may have planted. No reader (ENXIO) or no FIFO yet
// (ENOENT) are retried until `wait` has passed; then exit_error(69). A path
// that is not a FIFO: exit_error(78), at once. EACCES: exit_error(77).
// In a directory that anyone but its owner may write to (a sticky one, as
// /tmp), the FIFO must be owned by us or root, checked before and after the
// open: exit_error(77) naming its owner otherwise, unless allow_other_owner.
// The returned descriptor is blocking, so that a full pipe means backpressure.
[[nodiscard]] unique_fd open_fifo_for_writing(const std::filesystem::path& path, duration wait,
                                              bool allow_other_owner = false);

}  // namespace coffee
