#include <coffee/signals.hpp>

#include <coffee/errors.hpp>
#include <coffee/posix.hpp>

#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cctype>

namespace coffee {

unique_fd block_and_watch(std::initializer_list<int> signals) {
    sigset_t set;
    ::sigemptyset(&set);
    for (const int sig : signals)
        ::sigaddset(&set, sig);
    // pthread_sigmask returns its error number instead of setting errno.
    if (const int err = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0)
        throw_system_error(err, "block signals");
    unique_fd fd{::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)};
    if (!fd)
        throw_system_error(errno, "signalfd");
    return fd;
}

std::optional<int> read_signal(const unique_fd& signal_fd) {
    signalfd_siginfo info{};
    const ssize_t n = retry_on_eintr([&] { return ::read(signal_fd.get(), &info, sizeof info); });
    if (n < 0 && errno == EAGAIN)
        return std::nullopt;
    if (n != static_cast<ssize_t>(sizeof info))
        throw_system_error(n < 0 ? errno : EIO, "read signalfd");
    return static_cast<int>(info.ssi_signo);
}

std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

}  // namespace coffee
