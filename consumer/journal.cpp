#include "journal.hpp"

#include <coffee/crc32c.hpp>
#include <coffee/errors.hpp>
#include <coffee/posix.hpp>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace coffee::consumer {

namespace fmt_ = journal_format;

std::size_t pread_source::read(std::uint64_t offset, std::span<char> out) {
    const ssize_t got =
        retry_on_eintr([&] { return ::pread(fd_.get(), out.data(), out.size(), static_cast<off_t>(offset)); });
    if (got < 0)
        throw_system_error(errno, "read journal");
    return static_cast<std::size_t>(got);
}

std::optional<output_file> output_file::of(int fd) {
    struct stat st{};
    if (::fstat(fd, &st) != 0)
        return std::nullopt;
    output_file f{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    struct statx sx{};
    if (::statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME) != 0) {
        f.has_birth = true;
        f.birth_sec = sx.stx_btime.tv_sec;
        f.birth_nsec = sx.stx_btime.tv_nsec;
    }
    long generation = 0;  // the kernel writes an int into it
    if (::ioctl(fd, FS_IOC_GETVERSION, &generation) == 0) {
        f.has_generation = true;
        f.generation = static_cast<std::uint64_t>(generation);
    }
    return f;
}



namespace {

void check_node(const std::filesystem::path& path, const struct stat& st) {
    if (!S_ISREG(st.st_mode))
        throw exit_error(exit_config, fmt::format("journal '{}' is {}, not a regular file; refusing it (left untouched)",
                                                  path.native(), file_type_name(st.st_mode)));
    if (st.st_uid != ::geteuid())
        throw exit_error(exit_noperm, fmt::format("journal '{}' is owned by uid {}, not by us (uid {}); refusing it",
                                                  path.native(), st.st_uid, ::geteuid()));
    if (st.st_nlink > 1)
        throw exit_error(exit_noperm, fmt::format("journal '{}' has {} hard links; refusing it (left untouched)",
                                                  path.native(), st.st_nlink));
    // Making it 0600 now would not close a descriptor opened while it was
    // open to others: through it, they could still read the orders and
    // write records.
    if ((st.st_mode & 077) != 0)
        throw exit_error(exit_noperm,
                         fmt::format("journal '{}' has mode {:04o}: others may read it or write records into it, and "
                                     "may still hold it open; refusing it (left untouched: check it, then chmod 0600 "
                                     "it or remove it)",
                                     path.native(), st.st_mode & 07777));
}

unique_fd open_journal_file(const std::filesystem::path& path) {
    // lstat first: a FIFO or device there is never opened at all.
    struct stat before{};
    if (::lstat(path.c_str(), &before) == 0)
        check_node(path, before);
    else if (errno != ENOENT)
        throw_system_error(errno, "stat journal '{}'", path.native());
    unique_fd fd{retry_on_eintr([&] {
        return ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
    })};
    if (!fd) {
        if (errno == ELOOP)
            throw exit_error(exit_config, fmt::format("journal '{}' is a symbolic link; refusing it (left untouched)", path.native()));
        throw_system_error(errno, "open journal '{}'", path.native());
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0)
        throw_system_error(errno, "fstat journal '{}'", path.native());
    check_node(path, st);  // the node we opened, whatever happened since lstat
    if ((st.st_mode & 07777) != 0600 && ::fchmod(fd.get(), 0600) != 0)
        throw_system_error(errno, "chmod 0600 journal '{}'", path.native());
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            throw exit_error(exit_tempfail, fmt::format("another consumer uses the journal '{}'", path.native()));
        throw_system_error(errno, "lock journal '{}'", path.native());
    }
    return fd;
}

// The journal file at `path`, locked, and still the one at `path` once
// locked: a consumer's rewrite may rename a new file over it in between.
unique_fd open_current_journal(const std::filesystem::path& path) {
    for (int tries = 0;; ++tries) {
        unique_fd fd = open_journal_file(path);
        struct stat held{};
        struct stat there{};
        if (::fstat(fd.get(), &held) != 0)
            throw_system_error(errno, "fstat journal '{}'", path.native());
        if (::lstat(path.c_str(), &there) == 0 && there.st_dev == held.st_dev && there.st_ino == held.st_ino)
            return fd;
        if (tries == 100)
            throw exit_error(exit_tempfail, fmt::format("the journal '{}' keeps being replaced", path.native()));
    }
}

void write_all(int fd, std::string_view bytes, const std::filesystem::path& path) {
    while (!bytes.empty()) {
        const ssize_t n = retry_on_eintr([&] { return ::write(fd, bytes.data(), bytes.size()); });
        if (n <= 0)
            throw_system_error(n < 0 ? errno : ENOSPC, "write '{}'", path.native());
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

}  // namespace

// With sync, the first commit also fsyncs the directory: an fdatasync makes
// the file's bytes durable, not its name, and the journal may just have
// been created (or renamed into place by a rewrite a power cut interrupted).
journal::journal(std::filesystem::path path, bool sync)
    : path_{std::move(path)}, fd_{open_current_journal(path_)}, sync_{sync}, directory_unsynced_{sync} {
    // Ours now that the journal is locked: a rewrite cut short by a kill.
    load_.unfinished_rewrite = ::unlink(rewrite_path().c_str()) == 0;
    load();
}

void journal::load() {
    struct stat st{};
    if (::fstat(fd_.get(), &st) != 0)
        throw_system_error(errno, "fstat journal '{}'", path_.native());
    load_.file_bytes = static_cast<std::uint64_t>(st.st_size);
    size_ = load_.file_bytes;
    if (size_ == 0)
        return;

    // Pass 1: which orders were served, where the damage is, the highest number.
    const auto on_damage = [this](const journal_damage& d) {
        load_.damaged_bytes += d.bytes;
        if (++load_.damaged_stretches <= 10)
            load_.damage.push_back(d);
    };
    journal_scanner pass1{source_, size_};
    while (const auto r = pass1.next(on_damage)) {
        if (r->type == fmt_::served) {
            const std::uint64_t count = fmt_::read_le64(r->body);
            add_served(r->first_seq, count);
            next_seq_ = std::max(next_seq_, r->first_seq + count);
        } else if (r->type == fmt_::output_write) {
            load_.last_output_write = fmt_::decode_output_write(r->body);
        } else {
            const auto n = static_cast<std::uint64_t>(std::count(r->body.begin(), r->body.end(), '\n'));
            next_seq_ = std::max(next_seq_, r->first_seq + n);
        }
    }
    // Pass 2: how many are unserved.
    const auto ignore = [](const journal_damage&) {};
    journal_scanner pass2{source_, size_};
    while (const auto r = pass2.next(ignore)) {
        if (r->type != fmt_::orders)
            continue;
        std::uint64_t seq = r->first_seq;
        for (const char c : r->body) {
            if (c != '\n')
                continue;
            ++load_.orders;
            if (!is_served(seq))
                ++load_.unserved;
            ++seq;
        }
    }
    in_flight_ = load_.unserved;
    if (load_.unserved > 0) {
        replay_scanner_.emplace(source_, size_);
        replay_done_ = false;
    }
}

bool journal::is_served(std::uint64_t seq) const {
    auto it = served_at_load_.upper_bound(seq);
    if (it == served_at_load_.begin())
        return false;
    --it;
    return seq < it->second;
}

void journal::add_served(std::uint64_t first, std::uint64_t count) {
    if (count == 0)
        return;
    std::uint64_t begin = first;
    std::uint64_t end = first + count;
    auto it = served_at_load_.upper_bound(begin);
    if (it != served_at_load_.begin()) {
        auto prev = std::prev(it);
        if (prev->second >= begin) {
            begin = prev->first;
            end = std::max(end, prev->second);
            it = served_at_load_.erase(prev);
        }
    }
    while (it != served_at_load_.end() && it->first <= end) {
        end = std::max(end, it->second);
        it = served_at_load_.erase(it);
    }
    served_at_load_.emplace(begin, end);
}

bool journal::replay(order_batch& out, std::size_t max_bytes) {
    out.clear();
    const auto ignore = [](const journal_damage&) {};
    while (!replay_done_) {
        if (replay_pos_ >= replay_body_.size()) {
            const auto r = replay_scanner_->next(ignore);
            if (!r) {
                replay_done_ = true;
                replay_scanner_.reset();
                served_at_load_.clear();
                replay_body_.clear();
                replay_body_.shrink_to_fit();
                break;
            }
            if (r->type != fmt_::orders)
                continue;
            replay_body_.assign(r->body);
            replay_pos_ = 0;
            replay_seq_ = r->first_seq;
        }
        while (replay_pos_ < replay_body_.size()) {
            const std::size_t lf = replay_body_.find('\n', replay_pos_);
            const std::uint64_t seq = replay_seq_;
            if (!is_served(seq)) {
                if (!out.empty() && (seq != out.first_seq + out.count || out.text.size() >= max_bytes))
                    return true;  // a batch holds consecutive numbers only
                if (out.empty())
                    out.first_seq = seq;
                out.add(std::string_view{replay_body_}.substr(replay_pos_, lf - replay_pos_));
            }
            replay_pos_ = lf + 1;
            ++replay_seq_;
        }
    }
    return !out.empty();
}

void journal::write_record(char type, std::uint64_t first_seq, std::string_view body) {
    const std::string seq = fmt_::le64(first_seq);
    auto h = fmt_::header(type, seq, body);
    std::array<iovec, 3> iov{iovec{h.data(), h.size()}, iovec{const_cast<char*>(seq.data()), seq.size()},
                             iovec{const_cast<char*>(body.data()), body.size()}};
    const std::size_t total = h.size() + seq.size() + body.size();
    const ssize_t n = retry_on_eintr([&] { return ::writev(fd_.get(), iov.data(), static_cast<int>(iov.size())); });
    if (n < 0 || static_cast<std::size_t>(n) != total) {
        const int err = n < 0 ? errno : ENOSPC;
        // Cut off what was written of the record, so the file ends where it did.
        (void)::ftruncate(fd_.get(), static_cast<off_t>(size_));
        throw_system_error(err, "write to journal '{}'", path_.native());
    }
    size_ += total;
}

void journal::append_orders(order_batch& batch) {
    if (batch.empty())
        return;
    const std::lock_guard lock{mutex_};
    write_record(fmt_::orders, next_seq_, batch.text);
    batch.first_seq = next_seq_;
    next_seq_ += batch.count;
    in_flight_.store(in_flight_.load(std::memory_order_relaxed) + batch.count, std::memory_order_relaxed);
}

void journal::adopt(order_batch& batch) {
    const std::uint64_t start = bytes();
    append_orders(batch);
    load_.unserved += batch.count;
    if (replay_done_) {
        replay_scanner_.emplace(source_, bytes(), start);
        replay_done_ = false;
    } else {
        replay_scanner_->extend(bytes());
    }
}

void journal::commit() {
    if (!sync_)
        return;
    const std::lock_guard lock{mutex_};
    if (::fdatasync(fd_.get()) != 0)
        throw_system_error(errno, "fdatasync journal '{}'", path_.native());
    if (directory_unsynced_)
        sync_directory();
}

void journal::sync() {
    if (::fdatasync(fd_.get()) != 0)
        throw_system_error(errno, "fdatasync journal '{}'", path_.native());
}

void journal::mark_served(std::uint64_t first, std::uint64_t count) {
    if (count == 0)
        return;
    const std::lock_guard lock{mutex_};
    write_record(fmt_::served, first, fmt_::le64(count));
    const std::uint64_t was = in_flight_.load(std::memory_order_relaxed);
    in_flight_.store(was - std::min(was, count), std::memory_order_release);
}

int journal::note_output_write(std::string_view body) noexcept {
    try {
        const std::lock_guard lock{mutex_};
        write_record(fmt_::output_write, 0, body);
        return 0;
    } catch (const std::system_error& e) {
        return e.code().value();
    } catch (const std::exception&) {
        return ENOMEM;
    }
}

std::uint64_t journal::bytes() const {
    const std::lock_guard lock{mutex_};
    return size_;
}

bool journal::compact() {
    const std::lock_guard lock{mutex_};
    if (!replay_done_ || in_flight_ > 0 || size_ == 0)
        return false;
    if (::ftruncate(fd_.get(), 0) != 0)
        throw_system_error(errno, "truncate journal '{}'", path_.native());
    size_ = 0;
    rewritten_bytes_ = 0;
    return true;
}

bool journal::rewrite(std::uint64_t slack) {
    std::uint64_t end = 0;
    {
        const std::lock_guard lock{mutex_};
        if (!replay_done_ || in_flight_ == 0 || size_ < 2 * rewritten_bytes_ + slack)
            return false;
        end = size_;
    }
    try {
        rewrite_from(end);
        return true;
    } catch (const std::system_error&) {
        // Not again before the file has doubled: a directory that refuses
        // the new file must not cost a try (and a warning) per take.
        const std::lock_guard lock{mutex_};
        rewritten_bytes_ = end;
        throw;
    }
}

void journal::rewrite_from(std::uint64_t end) {
    // The records before `end` stay as they are: only this thread appends
    // orders, truncates or replaces the file; the baristas append after it.
    const std::filesystem::path new_path = rewrite_path();
    unique_fd out = create_rewrite(new_path);
    struct remove_unless_renamed {
        const std::filesystem::path& path;
        bool renamed = false;
        ~remove_unless_renamed() {
            if (!renamed)
                (void)::unlink(path.c_str());
        }
    } cleanup{new_path};
    std::uint64_t written = write_unserved(out.get(), new_path, end, note_served_before(end));
    if (sync_ && ::fdatasync(out.get()) != 0)  // the bulk, before the baristas have to wait
        throw_system_error(errno, "fdatasync '{}'", new_path.native());

    const std::lock_guard lock{mutex_};
    written += copy_tail(out.get(), new_path, end);
    if (sync_ && ::fsync(out.get()) != 0)
        throw_system_error(errno, "fsync '{}'", new_path.native());
    if (::rename(new_path.c_str(), path_.c_str()) != 0)
        throw_system_error(errno, "rename '{}' to '{}'", new_path.native(), path_.native());
    cleanup.renamed = true;
    fd_ = std::move(out);  // the old file, and its lock, go
    size_ = written;
    rewritten_bytes_ = written;
    if (sync_) {
        directory_unsynced_ = true;  // if this fails, each commit tries again
        sync_directory();
    }
}

// The rewrite's file, new (a leftover of a kill is removed first), and
// locked, so that a start finding it knows whether a rewrite still runs.
unique_fd journal::create_rewrite(const std::filesystem::path& new_path) {
    (void)::unlink(new_path.c_str());
    unique_fd out{retry_on_eintr([&] {
        return ::open(new_path.c_str(),
                      O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
    })};
    if (!out)
        throw_system_error(errno, "create '{}'", new_path.native());
    if (::flock(out.get(), LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        (void)::unlink(new_path.c_str());
        throw_system_error(err, "lock '{}'", new_path.native());
    }
    return out;
}

// The rewrite's first pass over the records before `end`: notes which
// orders are served (served_at_load_), and returns the last 'W' record,
// encoded again (empty when there is none), for the next start's cut-back.
std::string journal::note_served_before(std::uint64_t end) {
    const auto ignore = [](const journal_damage&) {};
    served_at_load_.clear();
    std::optional<std::uint64_t> last_write_seq;
    std::string last_write_body;
    journal_scanner scan{source_, end};
    while (const auto r = scan.next(ignore)) {
        if (r->type == fmt_::served) {
            add_served(r->first_seq, fmt_::read_le64(r->body));
        } else if (r->type == fmt_::output_write) {
            last_write_seq = r->first_seq;
            last_write_body.assign(r->body);
        }
    }
    return last_write_seq ? fmt_::encode(fmt_::output_write, *last_write_seq, last_write_body) : std::string{};
}

// The second pass: `records`, then the unserved orders before `end` in
// records of consecutive numbers, to `out`. Returns the bytes written.
std::uint64_t journal::write_unserved(int out, const std::filesystem::path& new_path, std::uint64_t end,
                                      std::string records) {
    std::string text;
    std::uint64_t text_first = 0;
    std::uint64_t text_count = 0;
    std::uint64_t written = 0;
    const auto flush = [&](bool all) {
        if (text_count > 0)
            records += fmt_::encode(fmt_::orders, text_first, text);
        text.clear();
        text_count = 0;
        if (all || records.size() >= 256 * 1024) {
            write_all(out, records, new_path);
            written += records.size();
            records.clear();
        }
    };
    const auto ignore = [](const journal_damage&) {};
    journal_scanner scan{source_, end};
    while (const auto r = scan.next(ignore)) {
        if (r->type != fmt_::orders)
            continue;
        std::uint64_t seq = r->first_seq;
        for (std::size_t pos = 0; pos < r->body.size(); ++seq) {
            const std::size_t next = r->body.find('\n', pos) + 1;
            if (!is_served(seq)) {
                if (text_count > 0 && (seq != text_first + text_count || text.size() >= 65536))
                    flush(false);
                if (text_count == 0)
                    text_first = seq;
                text.append(r->body.substr(pos, next - pos));
                ++text_count;
            }
            pos = next;
        }
    }
    flush(true);
    served_at_load_.clear();
    return written;
}

// What the baristas appended from `end` on while the rewrite ran ('S' and
// 'W' records), copied as it is. Called with mutex_ held: nothing more
// comes until the new file replaces the old. Returns the bytes copied.
std::uint64_t journal::copy_tail(int out, const std::filesystem::path& new_path, std::uint64_t end) {
    struct stat st{};
    if (::fstat(fd_.get(), &st) != 0)
        throw_system_error(errno, "fstat journal '{}'", path_.native());
    const auto file_end = std::max(static_cast<std::uint64_t>(st.st_size), end);
    std::string tail(static_cast<std::size_t>(file_end - end), '\0');
    for (std::size_t got = 0; got < tail.size();) {
        const ssize_t n = retry_on_eintr([&] {
            return ::pread(fd_.get(), tail.data() + got, tail.size() - got, static_cast<off_t>(end + got));
        });
        if (n <= 0)
            throw_system_error(n < 0 ? errno : EIO, "read journal '{}'", path_.native());
        got += static_cast<std::size_t>(n);
    }
    write_all(out, tail, new_path);
    return tail.size();
}

void journal::sync_directory() {
    const std::filesystem::path dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path{"."};
    const unique_fd fd{retry_on_eintr([&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); })};
    if (!fd || ::fsync(fd.get()) != 0)
        throw_system_error(errno, "fsync the journal's directory '{}'", dir.native());
    directory_unsynced_ = false;
}

}  // namespace coffee::consumer
