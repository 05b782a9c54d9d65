#include "reject_log.hpp"

#include <coffee/duration.hpp>
#include <coffee/logging.hpp>

#include <spdlog/spdlog.h>

namespace coffee::consumer {

bool reject_log::count_one() {
    ++rejected_;
    if (!warnings_.allow())
        return false;
    flush();
    return true;
}

void reject_log::malformed(const checked_line& check, std::string_view raw, std::size_t bytes) {
    if (!count_one())
        return;
    if (check.problem == line_problem::too_long)
        spdlog::warn("malformed line ({} bytes) {}, ignoring", bytes, describe(check.problem));
    else
        spdlog::warn("malformed line ({} bytes) {} at byte {}: '{}', ignoring", bytes, describe(check.problem),
                     check.offset, printable(raw));
}

void reject_log::flush(bool all) {
    if (const std::uint64_t n = warnings_.take_suppressed(log_rate_limit::clock::now(), all); n > 0)
        spdlog::warn("{} more malformed lines were not logged (at most {} per {})", n, burst, format_duration(interval));
}

}  // namespace coffee::consumer
