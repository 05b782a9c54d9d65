#include "scratch.hpp"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace coffee::test {

temp_dir::temp_dir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string{tmp != nullptr && *tmp != '\0' ? tmp : "/tmp"} + "/coffee-test-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr)
        throw std::system_error(errno, std::system_category(), "mkdtemp " + pattern);
    path_ = pattern;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

env_guard::env_guard(const char* name, std::optional<std::string> value) : name_{name} {
    if (const char* old = std::getenv(name))
        saved_ = old;
    set(value);
}

env_guard::~env_guard() { set(saved_); }

void env_guard::set(const std::optional<std::string>& value) const {
    if (value)
        ::setenv(name_, value->c_str(), 1);
    else
        ::unsetenv(name_);
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in{path, std::ios::binary};
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out << text;
    if (!out)
        throw std::runtime_error("cannot write " + path.native());
}

std::vector<std::string> read_lines(const std::filesystem::path& path) { return split_lines(read_file(path)); }

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in{text};
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

bool file_contains(const std::filesystem::path& path, const std::string& text) {
    return read_file(path).find(text) != std::string::npos;
}

}  // namespace coffee::test
