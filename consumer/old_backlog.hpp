#pragma once
#include "journal.hpp"

#include <filesystem>

// Before the journal, orders waiting across a stop were kept in a text file,
// the backlog: one order per line. Where one is found (the old default
// place, or, when the journal was given as --backlog PATH, an old backlog
// at that path, first set aside as PATH.old-backlog), its orders move into the journal (made durable) and
// only then is it removed. A crash in between serves them twice at worst,
// never loses them.
namespace coffee::consumer {

// When `journal_path` holds an old text backlog (a regular file of ours that
// does not start with a record), moves it aside to PATH.old-backlog (a hard
// link, then unlink: nothing is replaced). Returns PATH.old-backlog either
// way. Throws exit_error(78) when both exist, system_error.
[[nodiscard]] std::filesystem::path set_aside_old_backlog(const std::filesystem::path& journal_path);

// Moves the orders of the backlog at `backlog`, if there is one, into the
// journal, fdatasyncs it, then removes the backlog. Throws system_error.
void import_old_backlog(journal& orders_journal, const std::filesystem::path& backlog);

// Where the backlog used to be by default: $STATE_DIRECTORY/backlog, else
// the FIFO's path plus ".backlog".
[[nodiscard]] std::filesystem::path default_old_backlog(const std::filesystem::path& fifo_path);

}  // namespace coffee::consumer
