#pragma once
#include <coffee/unique_fd.hpp>

#include <filesystem>

// The rule OpenSSH's safe_path() applies to authorized_keys, for every
// directory the shop creates files in or reads orders from: a directory that
// someone else can change is a directory where someone else can plant a FIFO,
// a symlink or a journal.
namespace coffee {

// Checks `dir` and every directory above it, up to /: each must be a
// directory owned by us (the effective uid) or root, and not writable by its
// group or by others unless it is sticky (like /tmp). A symbolic link on the
// way (the last component included) is followed only when it is owned by us
// or root, so that nobody else can have made it or can change it (its own
// directory passed the same check); its target is then checked the same way.
// A relative path starts at the working directory, whose ancestors are
// checked too.
// Returns the directory opened O_PATH | O_DIRECTORY | O_CLOEXEC, for
// openat(), mkfifoat() and friends: what was checked is what is used.
// Throws exit_error(exit_noperm) naming the unsafe directory and why;
// std::system_error when a component is missing (ENOENT) or not a
// directory (ENOTDIR).
[[nodiscard]] unique_fd open_safe_directory(const std::filesystem::path& dir);

// open_safe_directory() for when only the verdict is needed.
void check_safe_directory(const std::filesystem::path& dir);

}  // namespace coffee
