#pragma once
// What a power cut leaves of a directory's files, from a trace of what was
// done to them (trace_format.hpp): synced data stays; each write since its
// file's last sync is kept, dropped, torn at a 512 B or 4 KiB boundary, or
// filled with zeros or garbage; a truncation since the last sync happened
// or not; names created, renamed or removed since the directory's last
// fsync reached the disk only as far as some prefix of them.
#include "trace_format.hpp"

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace coffee::test::crash {

// What became of one unsynced write.
enum class fate { keep, drop, torn_512, torn_4096, zeros, garbage };
[[nodiscard]] const char* name(fate f) noexcept;

// How a crash image is drawn.
enum class draw {
    synced_only,  // every unsynced write and name lost: the harshest for loss
    all_kept,     // as a kill -9 leaves it (the page cache written back whole)
    random,       // each unsynced write and the directory's prefix drawn at random
};

struct crash_image {
    std::map<std::string, std::string> files;  // name -> bytes
    std::string how;  // what became of each unsynced write and name, for the log
};

class disk_model {
public:
    // `initial`: files on disk (synced, their names too) when the trace began.
    explicit disk_model(const std::map<std::string, std::string>& initial = {});

    void apply(const trace::record& r);

    // A state a power cut at this point could leave. `rng` is used by draw::random only.
    [[nodiscard]] crash_image crash(draw how, std::mt19937& rng) const;
    // Whether anything is unsynced (else every draw gives the same image).
    [[nodiscard]] bool unsynced() const;

    [[nodiscard]] std::uint64_t consumed() const noexcept { return consumed_; }
    [[nodiscard]] std::uint64_t written_out() const noexcept { return out_; }

private:
    struct change {
        bool truncate = false;
        std::uint64_t at = 0;  // offset, or the length a truncation leaves
        std::string data;
    };
    struct file {
        std::string synced;
        std::string now;
        std::vector<change> unsynced;
    };
    struct name_change {
        trace::op kind{};
        std::string name, to;
        int file = 0;
    };

    static void put(std::string& bytes, std::uint64_t at, std::string_view data);
    [[nodiscard]] int file_of(std::uint32_t traced) const;

    std::map<int, file> files_;
    std::map<std::uint32_t, int> traced_;  // the trace's file ids -> ours
    int next_file_ = 1;
    std::map<std::string, int> synced_names_;
    std::map<std::string, int> names_;
    std::vector<name_change> unsynced_names_;
    std::uint64_t consumed_ = 0;
    std::uint64_t out_ = 0;
};

}  // namespace coffee::test::crash
