#pragma once
#include "order_queue.hpp"

#include <filesystem>

// Orders the shop had read from the pipe but not brewed when it was told to
// stop. They are saved here and served first at the next start.
namespace coffee::consumer {

// Reads and removes the backlog file. Lines that fail the protocol's checks
// are dropped (counted in `rejected`). A missing file is an empty backlog.
// Throws std::system_error when it exists but cannot be read or removed.
[[nodiscard]] order_batch take_backlog(const std::filesystem::path& path, std::size_t& rejected);

// Writes the orders, one per line, atomically (temporary file, fsync,
// rename). Orders already in an existing backlog are kept before them.
// Throws std::system_error.
void save_backlog(const std::filesystem::path& path, const order_batch& orders);

}  // namespace coffee::consumer
