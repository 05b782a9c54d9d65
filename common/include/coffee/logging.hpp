#pragma once
#include <spdlog/common.h>

#include <string>
#include <string_view>

namespace coffee {

// Sends the default spdlog logger to stderr, named `program`. When stderr is
// the journal (JOURNAL_STREAM matches fd 2), each line carries a syslog "<N>"
// priority prefix instead of a timestamp, so journald sets the priority.
// SPDLOG_LEVEL in the environment overrides `level`.
void init_logging(std::string_view program, spdlog::level::level_enum level);

// True when `fd` is the stream systemd connected to the journal: the
// "device:inode" in $JOURNAL_STREAM (systemd.exec(5)) is fd's. journald then
// reads a leading "<N>" on each line as the line's priority.
[[nodiscard]] bool is_journal_stream(int fd);

// "trace" | "debug" | "info" | "warn" | "error" | "critical" | "off".
// Throws usage_error naming the text otherwise.
[[nodiscard]] spdlog::level::level_enum parse_log_level(const std::string& name);

}  // namespace coffee
