#pragma once
#include <coffee/unique_fd.hpp>

#include <initializer_list>
#include <optional>
#include <string>

namespace coffee {

// Blocks `signals` in the calling thread (call before any thread exists, so
// every thread inherits the mask) and returns a non-blocking, close-on-exec
// signalfd that is readable while one of them is pending.
// "A signal should be an event like any other." (skalibs selfpipe)
[[nodiscard]] unique_fd block_and_watch(std::initializer_list<int> signals);

// The next pending signal, or std::nullopt when none is left (EAGAIN).
[[nodiscard]] std::optional<int> read_signal(const unique_fd& signal_fd);

// "SIGTERM", "SIGINT", ... ("signal 42" when unnamed).
[[nodiscard]] std::string signal_name(int sig);

}  // namespace coffee
