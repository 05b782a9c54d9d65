// Idle order-to-served latency, for tests/bench/bench.sh. Several relays
// (the shop, and cat as the baseline) each read their own FIFO and write to
// their own OUT FIFO. One order at a time goes into a FIFO; its line is
// awaited on that relay's OUT, and how long that took is recorded; then a
// pause, so that every order meets a quiet relay. The relays take turns
// order by order (the first in turn rotates), so that the machine's noise
// falls on all of them alike and their ratios mean something on a busy host.
// Prints one line per relay, in the order given: "p50_us p99_us max_us" over
// the measured orders (the first WARMUP of each relay are not counted).
//   order_latency COUNT PAUSE_US WARMUP FIFO OUT [FIFO OUT]...
#include <fcntl.h>
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

[[noreturn]] void fail(int status, const char* what, const char* path) {
    std::fprintf(stderr, "order_latency: %s '%s': %s\n", what, path, std::strerror(errno));
    std::exit(status);
}

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
    fail(69, "cannot open for writing", path);
}

struct relay {
    const char* fifo_path = nullptr;
    int fifo = -1;
    int out = -1;
    std::string pending;  // what came out of `out` after the last awaited line
    std::vector<double> us;
};

// Sends one order to `r` and waits for its line; returns the microseconds.
double round_trip(relay& r, long i) {
    char order[32];
    const int n = std::snprintf(order, sizeof order, "lat-%08ld\n", i);
    const std::string_view want{order, static_cast<std::size_t>(n)};
    char buf[4096];
    const auto start = clock_type::now();
    if (::write(r.fifo, order, static_cast<std::size_t>(n)) != n)
        fail(74, "cannot write to", r.fifo_path);
    for (;;) {
        const std::size_t at = r.pending.find(want);
        if (at != std::string::npos) {
            r.pending.erase(0, at + want.size());
            break;
        }
        const ssize_t got = ::read(r.out, buf, sizeof buf);
        if (got <= 0) {
            std::fprintf(stderr, "order_latency: the relay of '%s' stopped before order %ld came back\n", r.fifo_path, i);
            std::exit(74);
        }
        r.pending.append(buf, static_cast<std::size_t>(got));
    }
    return std::chrono::duration<double, std::micro>(clock_type::now() - start).count();
}

}  // namespace

int main(int argc, char* argv[]) {
    if (argc < 6 || (argc - 4) % 2 != 0) {
        std::fprintf(stderr, "usage: %s COUNT PAUSE_US WARMUP FIFO OUT [FIFO OUT]...\n", argv[0]);
        return 64;
    }
    const long count = std::atol(argv[1]);
    const long pause_us = std::atol(argv[2]);
    const long warmup = std::atol(argv[3]);
    if (count <= 0 || pause_us < 0 || warmup < 0) {
        std::fprintf(stderr, "order_latency: COUNT must be positive, PAUSE_US and WARMUP not negative\n");
        return 64;
    }
    std::vector<relay> relays;
    for (int a = 4; a < argc; a += 2) {
        relay r;
        r.fifo_path = argv[a];
        // The relay's stdout open (a shell redirection) waits for this one.
        r.out = ::open(argv[a + 1], O_RDONLY | O_CLOEXEC);
        if (r.out < 0)
            fail(69, "cannot open for reading", argv[a + 1]);
        relays.push_back(std::move(r));
    }
    for (relay& r : relays)
        r.fifo = open_writer(r.fifo_path);
    const std::size_t n = relays.size();
    for (long i = 0; i < warmup + count; ++i) {
        for (std::size_t k = 0; k < n; ++k) {
            relay& r = relays[(static_cast<std::size_t>(i) + k) % n];
            const double took = round_trip(r, i);
            if (i >= warmup)
                r.us.push_back(took);
            std::this_thread::sleep_for(std::chrono::microseconds{pause_us});
        }
    }
    for (relay& r : relays) {
        ::close(r.fifo);
        std::sort(r.us.begin(), r.us.end());
        const auto at = [&](double q) {
            return r.us[std::min(r.us.size() - 1, static_cast<std::size_t>(q * static_cast<double>(r.us.size())))];
        };
        std::printf("%.1f %.1f %.1f\n", at(0.50), at(0.99), r.us.back());
    }
    return 0;
}
