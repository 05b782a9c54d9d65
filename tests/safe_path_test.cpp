#include <coffee/errors.hpp>
#include <coffee/safe_path.hpp>

#include "support/scratch.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace fs = std::filesystem;
using coffee::test::temp_dir;

namespace {

constexpr uid_t nobody = 65534;

// The message of the exit_error(77) that checking `dir` throws.
std::string refusal(const fs::path& dir) {
    try {
        coffee::check_safe_directory(dir);
    } catch (const coffee::exit_error& e) {
        CHECK(e.code() == coffee::exit_noperm);
        return e.what();
    }
    FAIL("'" << dir.native() << "' was accepted");
    return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Runs the test body only as root (chown to another user needs it).
#define ROOT_ONLY()                                                      \
    if (::geteuid() != 0) {                                              \
        MESSAGE("skipped: only root can give files to another user");    \
        return;                                                          \
    }

}  // namespace

TEST_SUITE("safe_path") {

TEST_CASE("a private directory under /tmp is safe, and the fd returned is that directory") {
    temp_dir dir;
    const coffee::unique_fd fd = coffee::open_safe_directory(dir.path());
    struct stat by_fd{}, by_name{};
    REQUIRE(::fstat(fd.get(), &by_fd) == 0);
    REQUIRE(::stat(dir.path().c_str(), &by_name) == 0);
    CHECK(by_fd.st_ino == by_name.st_ino);
    CHECK(by_fd.st_dev == by_name.st_dev);
    CHECK((::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
    coffee::check_safe_directory("/");
    coffee::check_safe_directory("/tmp");  // sticky: others may add, not replace
}

TEST_CASE("group- or world-writable without the sticky bit is refused, naming the directory and the mode") {
    temp_dir dir;
    const fs::path shared = dir / "shared";
    REQUIRE(::mkdir(shared.c_str(), 0700) == 0);
    REQUIRE(::chmod(shared.c_str(), 0770) == 0);
    std::string why = refusal(shared);
    CHECK(contains(why, "unsafe directory '" + shared.native() + "'"));
    CHECK(contains(why, "writable by its group"));
    CHECK(contains(why, "0770"));
    REQUIRE(::chmod(shared.c_str(), 0707) == 0);
    CHECK(contains(refusal(shared), "writable by others (mode 0707)"));
    // Below it, too: an ancestor counts.
    REQUIRE(::mkdir((shared / "sub").c_str(), 0700) == 0);
    why = refusal(shared / "sub");
    CHECK(contains(why, "unsafe directory '" + shared.native() + "' (on the way to '" + (shared / "sub").native() + "')"));
    REQUIRE(::chmod(shared.c_str(), 01777) == 0);
    coffee::check_safe_directory(shared / "sub");
}

TEST_CASE("a directory owned by another user is refused") {
    ROOT_ONLY();
    temp_dir dir;
    const fs::path theirs = dir / "theirs";
    REQUIRE(::mkdir(theirs.c_str(), 0755) == 0);
    REQUIRE(::chown(theirs.c_str(), nobody, nobody) == 0);
    const std::string why = refusal(theirs);
    CHECK(contains(why, "owned by uid 65534, not by us (uid 0) or root"));
}

TEST_CASE("symbolic links: followed when ours or root's, their target checked, refused when someone else's") {
    temp_dir dir;
    const fs::path real = dir / "real";
    REQUIRE(::mkdir(real.c_str(), 0700) == 0);
    const fs::path link = dir / "link";
    fs::create_symlink("real", link);  // relative to its directory
    coffee::check_safe_directory(link);
    coffee::check_safe_directory(dir / "link" / ".." / "link");

    // Its target's rules apply.
    REQUIRE(::chmod(real.c_str(), 0777) == 0);
    CHECK(contains(refusal(link), "unsafe directory '" + real.native() + "' (on the way to '" + link.native() + "')"));
    REQUIRE(::chmod(real.c_str(), 0700) == 0);

    if (::geteuid() == 0) {
        REQUIRE(::lchown(link.c_str(), nobody, nobody) == 0);
        CHECK(contains(refusal(link), "a symbolic link owned by uid 65534"));
    }
}

TEST_CASE("a relative path is checked from the working directory up") {
    temp_dir dir;
    REQUIRE(::mkdir((dir / "sub").c_str(), 0700) == 0);
    const fs::path saved = fs::current_path();
    fs::current_path(dir.path());
    coffee::check_safe_directory("sub");
    coffee::check_safe_directory(".");
    REQUIRE(::chmod(dir.path().c_str(), 0770) == 0);
    const std::string why = refusal("sub");
    fs::current_path(saved);
    CHECK(contains(why, "unsafe directory '" + dir.path().native() + "'"));
}

TEST_CASE("missing or not a directory: a system error naming it") {
    temp_dir dir;
    CHECK_THROWS_WITH_AS(coffee::check_safe_directory(dir / "missing"), doctest::Contains("missing"), std::system_error);
    coffee::test::write_file(dir / "file", "x");
    try {
        coffee::check_safe_directory(dir / "file");
        FAIL("a file was accepted as a directory");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::not_a_directory);
    }
}

}
