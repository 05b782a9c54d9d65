// The benchmark's second baseline (tests/bench/bench.sh): `wc -l` of a FIFO
// read through a 1 MiB pipe, the size the consumer gives its own FIFO with
// --brew-time 0, so that the two are compared on the same pipe. Prints the
// number of lines.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

namespace {

// LFs counted 64 bytes at a time into a byte (vector compares; AVX2 where
// the CPU has it), as fast as wc -l's own loop, so the baseline is not slow.
// One version only under ThreadSanitizer, which crashes in the ifunc.
#if defined(__SANITIZE_THREAD__)
#define AVX2_CLONES
#else
#define AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#endif
AVX2_CLONES unsigned long long count_lf(const unsigned char* p, std::size_t n) {
    unsigned long long count = 0;
    std::size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        unsigned char in_block = 0;
        for (std::size_t k = 0; k < 64; ++k)
            in_block = static_cast<unsigned char>(in_block + (p[i + k] == '\n' ? 1 : 0));
        count += in_block;
    }
    for (; i < n; ++i)
        count += p[i] == '\n' ? 1 : 0;
    return count;
}

}  // namespace

int main(int argc, char* argv[]) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s FIFO\n", argv[0]);
        return 64;
    }
    const int fd = ::open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        std::perror(argv[1]);
        return 66;
    }
    (void)::fcntl(fd, F_SETPIPE_SZ, 1 << 20);
    std::vector<char> buffer(std::size_t{1} << 20);
    unsigned long long lines = 0;
    for (;;) {
        const ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0) {
            std::perror("read");
            return 74;
        }
        if (n == 0)
            break;
        lines += count_lf(reinterpret_cast<const unsigned char*>(buffer.data()), static_cast<std::size_t>(n));
    }
    std::printf("%llu\n", lines);
    return 0;
}
