// A controllable child for the launcher's tests (reproc's resources/ idea).
//   test_child [ARGS...] inspect   prints what it inherited: its open fds,
//                                  SigBlk/SigIgn, LISTEN_* and what fd 3 is
//   test_child spew N              writes N pattern bytes, then copies stdin
//                                  to stdout (prints before it reads)
//   test_child exit N              exits with N
//   test_child sleep MS            sleeps MS milliseconds, then exits 0
//                                  (a consumer that reads nothing)
//   test_child ignore-term MS      ignores SIGTERM, prints "ready", then
//                                  sleeps MS milliseconds and exits 0
// Modes are found anywhere in argv, so `coffee-launcher serve` may put its
// own options (--fifo PATH) in front.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

int inspect() {
    std::string fds;
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr)
        return 2;
    while (const dirent* e = ::readdir(dir)) {
        if (e->d_name[0] == '.' || std::atoi(e->d_name) == ::dirfd(dir))
            continue;
        fds += fds.empty() ? "" : " ";
        fds += e->d_name;
    }
    ::closedir(dir);
    std::printf("fds: %s\n", fds.c_str());
    std::ifstream status{"/proc/self/status"};
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("SigBlk:", 0) == 0 || line.rfind("SigIgn:", 0) == 0)
            std::printf("%s\n", line.c_str());
    }
    for (const char* name : {"LISTEN_FDS", "LISTEN_FDNAMES"}) {
        const char* value = std::getenv(name);
        std::printf("%s=%s\n", name, value != nullptr ? value : "(unset)");
    }
    const char* listen_pid = std::getenv("LISTEN_PID");
    std::printf("LISTEN_PID is %s\n", listen_pid == nullptr ? "(unset)"
                                      : std::atol(listen_pid) == static_cast<long>(::getpid()) ? "our pid"
                                                                                                : listen_pid);
    struct stat st {};
    std::printf("fd 3: %s\n", ::fstat(3, &st) != 0 ? "closed" : S_ISFIFO(st.st_mode) ? "FIFO" : "other");
    return 0;
}

int spew(unsigned long long n) {
    std::vector<char> chunk(65536);
    for (std::size_t i = 0; i < chunk.size(); ++i)
        chunk[i] = static_cast<char>('a' + i % 26);
    while (n > 0) {
        const std::size_t k = n < chunk.size() ? static_cast<std::size_t>(n) : chunk.size();
        if (std::fwrite(chunk.data(), 1, k, stdout) != k)
            return 3;
        n -= k;
    }
    for (std::size_t r; (r = std::fread(chunk.data(), 1, chunk.size(), stdin)) > 0;) {
        if (std::fwrite(chunk.data(), 1, r, stdout) != r)
            return 3;
    }
    return std::fflush(stdout) == 0 ? 0 : 3;
}

}  // namespace

int main(int argc, char* argv[]) {
    for (int i = 1; i < argc; ++i) {
        const std::string mode = argv[i];
        if (mode == "inspect")
            return inspect();
        if (mode == "spew" && i + 1 < argc)
            return spew(std::strtoull(argv[i + 1], nullptr, 10));
        if (mode == "sleep" && i + 1 < argc)
            return ::usleep(static_cast<useconds_t>(std::atoi(argv[i + 1])) * 1000U) == 0 ? 0 : 2;
        if (mode == "ignore-term" && i + 1 < argc) {
            (void)::signal(SIGTERM, SIG_IGN);
            if (std::printf("ready\n") < 0 || std::fflush(stdout) != 0)
                return 3;
            return ::usleep(static_cast<useconds_t>(std::atoi(argv[i + 1])) * 1000U) == 0 ? 0 : 2;
        }
        if (mode == "exit" && i + 1 < argc)
            return std::atoi(argv[i + 1]);
    }
    std::fprintf(stderr, "test_child: no mode in the arguments\n");
    return 2;
}
