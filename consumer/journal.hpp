#pragma once
#include "journal_format.hpp"
#include "order_queue.hpp"

#include <coffee/unique_fd.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// The consumer's write-ahead order journal (docs/journal.md): the
// file that holds the records of journal_format.hpp, and what is done to it
// (open, lock, load, append, sync, compact, rewrite, rename).
namespace coffee::consumer {

// A journal file's bytes for a journal_scanner, read with pread (the
// descriptor's offset does not move) from whatever `fd` owns at the time.
class pread_source final : public byte_source {
public:
    explicit pread_source(const unique_fd& fd) noexcept : fd_{fd} {}
    // Throws system_error.
    std::size_t read(std::uint64_t offset, std::span<char> out) override;

private:
    const unique_fd& fd_;
};

// What opening a journal found in it.
struct journal_load {
    std::uint64_t file_bytes = 0;
    std::uint64_t orders = 0;    // valid order records' orders
    std::uint64_t unserved = 0;  // of those, not marked served
    std::uint64_t damaged_bytes = 0;
    std::vector<journal_damage> damage;  // the first few stretches, for the log
    std::uint64_t damaged_stretches = 0;
    std::optional<output_write> last_output_write;  // the last 'W' record
    bool unfinished_rewrite = false;  // a rewrite that a kill interrupted was removed
};

// The journal file, shared by the reader (appends orders) and the baristas
// (mark them served). Thread-safe.
class journal {
public:
    // Opens (creates 0600) the journal at `path` and takes its lock. Refuses
    // at once, without opening it blocking or touching it: a symlink, FIFO,
    // device, directory or socket (exit_error 78), a file owned by someone
    // else, with other hard links, or with any permission for group or
    // others (77); another consumer using it (75).
    // sync: commit() makes what was appended durable.
    // Then scans it (see load()). Throws exit_error / system_error.
    journal(std::filesystem::path path, bool sync);

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] const journal_load& loaded() const noexcept { return load_; }

    // The next orders not yet served from what was in the file when it was
    // opened, in order, up to about max_bytes (consecutive sequence numbers).
    // False when there are no more.
    bool replay(order_batch& out, std::size_t max_bytes);
    [[nodiscard]] bool replaying() const noexcept { return !replay_done_; }

    // Records the orders of `batch` (text and count), giving them sequence
    // numbers (batch.first_seq is set). On failure, a partly written record
    // is cut off again and system_error is thrown: nothing was recorded.
    // With sync, the record is durable only after the next commit().
    void append_orders(order_batch& batch);
    // With sync: makes every record appended so far durable, with one
    // fdatasync (and an fsync of the directory after a rename): one commit
    // covers all the records of a take. Without sync: nothing. Throws
    // system_error: what was appended may or may not be on disk.
    void commit();

    // Records orders from elsewhere (an old backlog file) so that they are
    // served with the journal's own unserved ones, after them. Throws
    // system_error.
    void adopt(order_batch& batch);
    // fdatasync. Throws system_error.
    void sync();

    // Records that orders first..first+count-1 are served. Throws system_error.
    void mark_served(std::uint64_t first, std::uint64_t count);

    // Records, before a write to a stdout that is a regular file, where it
    // goes and what it holds (`body`, from journal_format::
    // encode_output_write): a kill in the middle of a big write() to a file
    // stops it at a page boundary, and the next start cuts off the
    // unfinished line when it can prove the bytes are that write's (see
    // loaded().last_output_write). Best effort: returns the error, or 0.
    int note_output_write(std::string_view body) noexcept;

    // Orders recorded and not yet marked served. Takes no lock: only the
    // reader's own appends raise it, so the reader never sees it 0 too early.
    [[nodiscard]] std::uint64_t in_flight() const noexcept { return in_flight_.load(std::memory_order_acquire); }
    [[nodiscard]] std::uint64_t bytes() const;

    // Empties the file when no order is in flight and the replay is over.
    // Returns true when it did. Throws system_error.
    bool compact();

    // Rewrites a busy journal: once orders are in flight, the replay is over
    // and the file has grown past twice its size after the last rewrite
    // plus `slack`. The unserved orders (with their numbers) and the last
    // 'W' record go to a new file beside it (rewrite_path()), locked; then
    // what the baristas appended meanwhile; then it is renamed over the
    // journal (with sync: fsync of the file first, of the directory after).
    // A kill at any moment leaves the old journal or the new one, each
    // whole, and at most a stale new file that the next open removes. Only
    // the thread that appends orders may call it. Returns true when it did.
    // Throws system_error: the journal is then as it was.
    bool rewrite(std::uint64_t slack);
    [[nodiscard]] std::filesystem::path rewrite_path() const { return path_.native() + ".rewrite"; }

private:
    void load();
    [[nodiscard]] bool is_served(std::uint64_t seq) const;
    void add_served(std::uint64_t first, std::uint64_t count);
    void write_record(char type, std::uint64_t first_seq, std::string_view body);
    void rewrite_from(std::uint64_t end);  // the records before `end`, then the rest
    unique_fd create_rewrite(const std::filesystem::path& new_path);
    std::string note_served_before(std::uint64_t end);
    std::uint64_t write_unserved(int out, const std::filesystem::path& new_path, std::uint64_t end, std::string records);
    std::uint64_t copy_tail(int out, const std::filesystem::path& new_path, std::uint64_t end);
    void sync_directory();

    std::filesystem::path path_;
    unique_fd fd_;
    pread_source source_{fd_};  // the scanners' way into fd_
    bool sync_;
    journal_load load_;

    // Replay of what was there at the start.
    // [first, end) ranges, merged; after the replay, a rewrite's scratch.
    std::map<std::uint64_t, std::uint64_t> served_at_load_;
    std::optional<journal_scanner> replay_scanner_;
    std::string replay_body_;
    std::size_t replay_pos_ = 0;
    std::uint64_t replay_seq_ = 0;
    bool replay_done_ = true;

    mutable std::mutex mutex_;
    std::uint64_t size_ = 0;
    std::uint64_t next_seq_ = 0;
    std::atomic<std::uint64_t> in_flight_{0};  // changed under mutex_
    std::uint64_t rewritten_bytes_ = 0;  // the size after the last rewrite, 0 after emptying
    bool directory_unsynced_;  // with sync: the journal's name (a creation, a rename) not yet durable
};

}  // namespace coffee::consumer
