// Idle order-to-served latency, for tests/bench/bench.sh: writes one order at
// a time into FIFO, waits for its line on stdin (whatever relays the FIFO:
// the shop, or cat), and records how long that took; then pauses, so every
// order meets a quiet shop. Prints "p50_us p99_us max_us" for the measured
// orders (the first WARMUP are not counted).
//   order_latency FIFO COUNT [PAUSE_US (default 2000)] [WARMUP (default 20)]
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

// Opens the FIFO for writing once a reader is there (up to 10 s).
int open_writer(const char* path) {
    for (int i = 0; i < 1000; ++i) {
        const int fd = ::open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            (void)::fcntl(fd, F_SETFL, 0);  // blocking writes from here on
            return fd;
        }
        if (errno != ENXIO && errno != ENOENT)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    std::fprintf(stderr, "order_latency: cannot open '%s' for writing: %s\n", path, std::strerror(errno));
    std::exit(69);
}

}  // namespace

int main(int argc, char* argv[]) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s FIFO COUNT [PAUSE_US] [WARMUP] < served lines\n", argv[0]);
        return 64;
    }
    const long count = std::atol(argv[2]);
    const long pause_us = argc > 3 ? std::atol(argv[3]) : 2000;
    const long warmup = argc > 4 ? std::atol(argv[4]) : 20;
    if (count <= 0 || pause_us < 0 || warmup < 0) {
        std::fprintf(stderr, "order_latency: COUNT must be positive, PAUSE_US and WARMUP not negative\n");
        return 64;
    }
    const int fifo = open_writer(argv[1]);
    std::vector<double> us;
    std::string pending;
    char buf[4096];
    for (long i = 0; i < warmup + count; ++i) {
        char order[32];
        const int n = std::snprintf(order, sizeof order, "lat-%08ld\n", i);
        const std::string_view want{order, static_cast<std::size_t>(n)};
        const auto start = clock_type::now();
        if (::write(fifo, order, static_cast<std::size_t>(n)) != n) {
            std::perror("order_latency: write");
            return 74;
        }
        for (;;) {  // until our line has come back
            const std::size_t at = pending.find(want);
            if (at != std::string::npos) {
                pending.erase(0, at + want.size());
                break;
            }
            const ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
            if (r <= 0) {
                std::fprintf(stderr, "order_latency: stdin ended before order %ld came back\n", i);
                return 74;
            }
            pending.append(buf, static_cast<std::size_t>(r));
        }
        const auto took = std::chrono::duration<double, std::micro>(clock_type::now() - start).count();
        if (i >= warmup)
            us.push_back(took);
        std::this_thread::sleep_for(std::chrono::microseconds{pause_us});
    }
    ::close(fifo);
    std::sort(us.begin(), us.end());
    const auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<std::size_t>(q * static_cast<double>(us.size())))]; };
    std::printf("%.1f %.1f %.1f\n", at(0.50), at(0.99), us.back());
    return 0;
}
