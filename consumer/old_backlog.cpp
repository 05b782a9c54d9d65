#include "old_backlog.hpp"

#include <coffee/errors.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/posix.hpp>
#include <coffee/unique_fd.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>

namespace coffee::consumer {

std::filesystem::path set_aside_old_backlog(const std::filesystem::path& journal_path) {
    const std::filesystem::path aside = journal_path.native() + ".old-backlog";
    struct stat st{};
    if (::lstat(journal_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0 || st.st_uid != ::geteuid())
        return aside;  // nothing to set aside, or the journal refuses it
    std::array<char, 4> head{};
    {
        unique_fd fd{::open(journal_path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
        if (!fd || ::read(fd.get(), head.data(), head.size()) != static_cast<ssize_t>(head.size()) ||
            std::string_view{head.data(), head.size()} == journal_format::magic)
            return aside;
    }
    // Text, not records. Never replace an earlier one that is set aside.
    if (::link(journal_path.c_str(), aside.c_str()) != 0)
        throw exit_error(exit_config, fmt::format("'{}' is an old text backlog and '{}' exists ({}); serve or move them first",
                                                  journal_path.native(), aside.native(), std::strerror(errno)));
    if (::unlink(journal_path.c_str()) != 0)
        throw_system_error(errno, "remove '{}' after linking it to '{}'", journal_path.native(), aside.native());
    spdlog::info("'{}' is an old text backlog: set aside as '{}'", journal_path.native(), aside.native());
    return aside;
}

void import_old_backlog(journal& orders_journal, const std::filesystem::path& backlog) {
    struct stat st{};
    if (::lstat(backlog.c_str(), &st) != 0)
        return;
    if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
        spdlog::warn("old backlog '{}' is not a regular file of ours; leaving it alone", backlog.native());
        return;
    }
    unique_fd fd{retry_on_eintr([&] { return ::open(backlog.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC); })};
    if (!fd)
        throw_system_error(errno, "open old backlog '{}'", backlog.native());
    line_reader lines;
    order_batch batch;
    std::uint64_t imported = 0;
    std::uint64_t rejected = 0;
    const auto take = [&](const line_reader::line& line) {
        if (line.check.problem != line_problem::none)
            ++rejected;
        else if (!line.check.text.empty() && line.check.text != finish_message)
            batch.add(line.check.text);
    };
    const auto flush = [&] {
        imported += batch.count;
        orders_journal.adopt(batch);
        batch.clear();
    };
    std::string chunk;
    for (;;) {
        chunk.clear();
        if (read_some(fd.get(), chunk, 65536, fmt::format("old backlog '{}'", backlog.native())) <= 0)
            break;
        lines.feed(chunk, take);
        if (batch.text.size() >= 65536)
            flush();
    }
    if (lines.mid_line())
        lines.feed("\n", take);
    flush();
    orders_journal.sync();
    if (::unlink(backlog.c_str()) != 0)
        throw_system_error(errno, "remove old backlog '{}' (its orders are in the journal now)", backlog.native());
    spdlog::info("moved {} orders from the old backlog '{}' into the journal", imported, backlog.native());
    if (rejected > 0)
        spdlog::warn("old backlog '{}': {} lines were not valid orders; dropped, not served", backlog.native(), rejected);
}

std::filesystem::path default_old_backlog(const std::filesystem::path& fifo_path) {
    if (const char* state = std::getenv("STATE_DIRECTORY"); state != nullptr && *state != '\0') {
        const std::string_view dirs{state};
        return std::filesystem::path{dirs.substr(0, dirs.find(':'))} / "backlog";
    }
    return fifo_path.native() + ".backlog";
}

}  // namespace coffee::consumer
