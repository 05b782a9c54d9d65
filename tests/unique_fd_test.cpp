#include <coffee/posix.hpp>
#include <coffee/unique_fd.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <ostream>
#include <string>
#include <system_error>
#include <utility>

namespace {

// True if `fd` names an open descriptor. Tests are single-threaded, so a
// closed number is not reused behind our back.
bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

bool is_cloexec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

}  // namespace

TEST_SUITE("unique_fd") {

TEST_CASE("a default unique_fd owns nothing") {
    coffee::unique_fd fd;
    CHECK(fd.get() == -1);
    CHECK_FALSE(fd);
    fd.reset();  // closing nothing is fine
    CHECK(fd.get() == -1);
}

TEST_CASE("make_pipe returns a working pair of close-on-exec descriptors") {
    auto [read_end, write_end] = coffee::make_pipe();
    REQUIRE(read_end);
    REQUIRE(write_end);
    CHECK(read_end.get() != write_end.get());
    CHECK(is_cloexec(read_end.get()));
    CHECK(is_cloexec(write_end.get()));
    REQUIRE(::write(write_end.get(), "tea", 3) == 3);
    char buf[8] = {};
    CHECK(::read(read_end.get(), buf, sizeof buf) == 3);
    CHECK(std::string{buf, 3} == "tea");
}

TEST_CASE("the destructor closes") {
    int raw = -1;
    {
        auto ends = coffee::make_pipe();
        raw = ends.read.get();
        CHECK(is_open(raw));
    }
    CHECK_FALSE(is_open(raw));
}

TEST_CASE("move construction transfers ownership without closing") {
    auto [read_end, write_end] = coffee::make_pipe();
    const int raw = write_end.get();
    {
        coffee::unique_fd owner = std::move(write_end);
        CHECK(write_end.get() == -1);  // NOLINT(bugprone-use-after-move): moved-from state is specified
        CHECK_FALSE(write_end);
        CHECK(owner.get() == raw);
        CHECK(is_open(raw));
    }
    CHECK_FALSE(is_open(raw));
    // The reader now sees EOF: the only write end is gone.
    char c = 0;
    CHECK(::read(read_end.get(), &c, 1) == 0);
}

TEST_CASE("move assignment closes what the target held") {
    auto first = coffee::make_pipe();
    auto second = coffee::make_pipe();
    const int old_raw = first.read.get();
    const int new_raw = second.read.get();
    first.read = std::move(second.read);
    CHECK_FALSE(is_open(old_raw));
    CHECK(first.read.get() == new_raw);
    CHECK(second.read.get() == -1);
    CHECK(is_open(new_raw));
}

TEST_CASE("self move assignment keeps the descriptor open") {
    auto ends = coffee::make_pipe();
    const int raw = ends.read.get();
    auto& same = ends.read;
    ends.read = std::move(same);
    CHECK(ends.read.get() == raw);
    CHECK(is_open(raw));
}

TEST_CASE("reset closes the old descriptor and owns the new one") {
    auto ends = coffee::make_pipe();
    const int old_raw = ends.write.get();
    const int other = ::dup(ends.read.get());
    REQUIRE(other >= 0);
    ends.write.reset(other);
    CHECK_FALSE(is_open(old_raw));
    CHECK(ends.write.get() == other);
    ends.write.reset();
    CHECK_FALSE(is_open(other));
    CHECK(ends.write.get() == -1);
}

TEST_CASE("release gives up ownership without closing") {
    auto ends = coffee::make_pipe();
    const int raw = ends.write.release();
    CHECK(ends.write.get() == -1);
    CHECK(is_open(raw));
    ::close(raw);
}

TEST_CASE("write_all and read_some carry data through a pipe") {
    auto [read_end, write_end] = coffee::make_pipe();
    coffee::write_all(write_end.get(), "Latte\nMocha\n", "test pipe");
    std::string got = "prefix:";
    CHECK(coffee::read_some(read_end.get(), got, 5, "test pipe") == 5);
    CHECK(got == "prefix:Latte");
    CHECK(coffee::read_some(read_end.get(), got, 100, "test pipe") == 7);
    CHECK(got == "prefix:Latte\nMocha\n");

    coffee::set_nonblocking(read_end.get(), true);
    CHECK((::fcntl(read_end.get(), F_GETFL) & O_NONBLOCK) != 0);
    errno = 0;
    CHECK(coffee::read_some(read_end.get(), got, 100, "test pipe") == -1);
    CHECK(errno == EAGAIN);
    CHECK(got == "prefix:Latte\nMocha\n");  // nothing appended
    coffee::set_nonblocking(read_end.get(), false);
    CHECK((::fcntl(read_end.get(), F_GETFL) & O_NONBLOCK) == 0);

    write_end.reset();
    CHECK(coffee::read_some(read_end.get(), got, 100, "test pipe") == 0);  // EOF
}

TEST_CASE("write_all to a pipe without reader throws EPIPE naming the target") {
    coffee::ignore_sigpipe();
    auto [read_end, write_end] = coffee::make_pipe();
    read_end.reset();
    try {
        coffee::write_all(write_end.get(), "Latte\n", "the order pipe");
        FAIL("write_all should have thrown");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::broken_pipe);
        CHECK(std::string{e.what()}.find("the order pipe") != std::string::npos);
    }
}

TEST_CASE("write_all writes more than a pipe holds, in several writes") {
    auto [read_end, write_end] = coffee::make_pipe();
    const std::string big(1 << 20, 'z');  // 1 MiB; a pipe holds 64 KiB
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        write_end.reset();
        std::string sink;
        long n = 0;
        std::size_t total = 0;
        while ((n = coffee::read_some(read_end.get(), sink, 65536, "pipe")) > 0) {
            total += static_cast<std::size_t>(n);
            sink.clear();
        }
        ::_exit(total == big.size() ? 0 : 1);
    }
    read_end.reset();
    coffee::write_all(write_end.get(), big, "pipe");
    write_end.reset();
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("read_some on a closed descriptor throws EBADF") {
    std::string out;
    CHECK_THROWS_AS((void)coffee::read_some(-1, out, 10, "nothing"), std::system_error);
    CHECK(out.empty());
}

TEST_CASE("reopen_pipe_nonblocking gives the same pipe non-blocking, leaves the shared end blocking, and nothing for a file") {
    auto [read_end, write_end] = coffee::make_pipe();
    const coffee::unique_fd again = coffee::reopen_pipe_nonblocking(write_end.get(), O_WRONLY);
    REQUIRE(again);
    CHECK((::fcntl(again.get(), F_GETFL) & O_NONBLOCK) != 0);
    CHECK((::fcntl(write_end.get(), F_GETFL) & O_NONBLOCK) == 0);
    coffee::write_all(again.get(), "latte\n", "pipe");
    std::string got;
    CHECK(coffee::read_some(read_end.get(), got, 64, "pipe") == 6);
    CHECK(got == "latte\n");
    // A full pipe says so at once instead of blocking.
    const std::string page(4096, 'x');
    ssize_t n = 0;
    while ((n = ::write(again.get(), page.data(), page.size())) > 0) {
    }
    CHECK(n == -1);
    CHECK(errno == EAGAIN);

    char name[] = "/tmp/coffee-reopen-XXXXXX";
    const coffee::unique_fd file{::mkstemp(name)};
    REQUIRE(file);
    ::unlink(name);
    CHECK_FALSE(coffee::reopen_pipe_nonblocking(file.get(), O_WRONLY));
}

}  // TEST_SUITE
