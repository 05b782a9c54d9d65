// Runs a libFuzzer target's checks over files, without libFuzzer: for the
// targets built by GCC as the shop is (its target_clones, its optimiser),
// over their checked-in corpora. A failed check traps; the last file named
// is the one.
//   replay DIR_OR_FILE...
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char* argv[]) {
    std::vector<std::filesystem::path> files;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path arg{argv[i]};
        if (std::filesystem::is_directory(arg)) {
            for (const auto& entry : std::filesystem::directory_iterator{arg})
                if (entry.is_regular_file())
                    files.push_back(entry.path());
        } else {
            files.push_back(arg);
        }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
        std::fprintf(stderr, "replay: no input files\n");
        return 64;
    }
    for (const auto& file : files) {
        std::string bytes;
        std::FILE* in = std::fopen(file.c_str(), "rb");
        if (in != nullptr) {
            char chunk[65536];
            for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, in)) > 0;)
                bytes.append(chunk, n);
        }
        if (in == nullptr || std::ferror(in) != 0) {
            std::fprintf(stderr, "replay: cannot read '%s'\n", file.c_str());
            return 66;
        }
        std::fclose(in);
        std::fprintf(stderr, "replay: %s (%zu bytes)\n", file.c_str(), bytes.size());
        LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    }
    std::printf("replay: %zu inputs, every check held\n", files.size());
    return 0;
}
