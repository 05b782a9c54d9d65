#pragma once
// Test support: scratch state that is put back at the end of a scope.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace coffee::test {

// A fresh private directory under $TMPDIR (else /tmp), removed with
// everything in it on destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

// Sets (or, with nullopt, unsets) an environment variable for one scope.
class env_guard {
public:
    env_guard(const char* name, std::optional<std::string> value);
    ~env_guard();
    env_guard(const env_guard&) = delete;
    env_guard& operator=(const env_guard&) = delete;

private:
    void set(const std::optional<std::string>& value) const;

    const char* name_;
    std::optional<std::string> saved_;
};

// Whole files, for checking what a program wrote.
[[nodiscard]] std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& text);
// The file's lines without their LF.
[[nodiscard]] std::vector<std::string> read_lines(const std::filesystem::path& path);
// The lines of `text`, without their LFs.
[[nodiscard]] std::vector<std::string> split_lines(const std::string& text);
// True when the file contains `text`.
[[nodiscard]] bool file_contains(const std::filesystem::path& path, const std::string& text);

}  // namespace coffee::test
