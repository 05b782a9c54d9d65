// The blog post's producer design, for the benchmark's baseline: one write() per
// order. Reads lines from stdin and writes each to the FIFO on its own.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

int main(int argc, char* argv[]) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s FIFO < orders\n", argv[0]);
        return 64;
    }
    const int fd = ::open(argv[1], O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        std::perror(argv[1]);
        return 69;
    }
    std::ios::sync_with_stdio(false);
    for (std::string line; std::getline(std::cin, line);) {
        line += '\n';
        if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
            std::perror("write");
            return 74;
        }
    }
    return ::close(fd) == 0 ? 0 : 74;
}
