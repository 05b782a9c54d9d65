#include <coffee/logging.hpp>

#include <coffee/errors.hpp>

#include <spdlog/cfg/env.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>

namespace coffee {

namespace {

// "<3>" for error, "<4>" for warn...: sd-daemon(3) priority prefixes.
class syslog_level_prefix final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        static constexpr std::string_view prefixes[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", "<6>"};
        const auto prefix = prefixes[static_cast<std::size_t>(msg.level)];
        dest.append(prefix.data(), prefix.data() + prefix.size());
    }
    [[nodiscard]] std::unique_ptr<custom_flag_formatter> clone() const override {
        return spdlog::details::make_unique<syslog_level_prefix>();
    }
};

}  // namespace

// systemd.exec(5): JOURNAL_STREAM is "device:inode" of the stream that
// leads to the journal; only when the fd still is that stream is it the journal.
bool is_journal_stream(int fd) {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr)
        return false;
    uintmax_t dev = 0;
    uintmax_t ino = 0;
    struct stat st{};
    return std::sscanf(stream, "%" SCNuMAX ":%" SCNuMAX, &dev, &ino) == 2 && ::fstat(fd, &st) == 0 &&
           st.st_dev == dev && st.st_ino == ino;
}

void init_logging(std::string_view program, spdlog::level::level_enum level) {
    auto logger = std::make_shared<spdlog::logger>(std::string{program}, std::make_shared<spdlog::sinks::stderr_sink_mt>());
    spdlog::set_default_logger(std::move(logger));
    if (is_journal_stream(2)) {
        auto formatter = std::make_unique<spdlog::pattern_formatter>();
        formatter->add_flag<syslog_level_prefix>('*').set_pattern("%*%v");
        spdlog::set_formatter(std::move(formatter));
    } else {
        spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %n[%P] %^%l%$: %v");
    }
    spdlog::set_level(level);
    spdlog::cfg::load_env_levels();
}

spdlog::level::level_enum parse_log_level(const std::string& name) {
    const auto level = spdlog::level::from_str(name);
    // from_str() maps anything unknown to "off"; only "off" itself means it.
    if (level == spdlog::level::off && name != "off")
        throw usage_error(fmt::format("invalid log level '{}': use trace, debug, info, warn, error, critical or off", name));
    return level;
}

}  // namespace coffee
