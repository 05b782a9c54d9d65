#include "disk_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace coffee::test::crash {

using trace::op;

const char* name(fate f) noexcept {
    switch (f) {
    case fate::keep: return "kept";
    case fate::drop: return "dropped";
    case fate::torn_512: return "torn at 512 B";
    case fate::torn_4096: return "torn at 4 KiB";
    case fate::zeros: return "zeros";
    case fate::garbage: return "garbage";
    }
    return "?";
}

disk_model::disk_model(const std::map<std::string, std::string>& initial) {
    for (const auto& [n, bytes] : initial) {
        const int id = next_file_++;
        files_[id] = file{bytes, bytes, {}};
        synced_names_[n] = id;
        names_[n] = id;
    }
}

void disk_model::put(std::string& bytes, std::uint64_t at, std::string_view data) {
    if (bytes.size() < at + data.size())
        bytes.resize(at + data.size(), '\0');
    bytes.replace(at, data.size(), data);
}

int disk_model::file_of(std::uint32_t traced) const {
    const auto it = traced_.find(traced);
    if (it == traced_.end())
        throw std::runtime_error(fmt::format("trace: file {} used before it was opened", traced));
    return it->second;
}

void disk_model::apply(const trace::record& r) {
    switch (r.kind) {
    case op::open:
        if (const auto it = names_.find(r.name); it != names_.end()) {
            traced_[r.file] = it->second;
        } else {
            const int id = next_file_++;
            files_[id] = file{};
            traced_[r.file] = id;
            names_[r.name] = id;
            unsynced_names_.push_back({op::open, r.name, {}, id});
        }
        break;
    case op::write: {
        file& f = files_.at(file_of(r.file));
        put(f.now, r.a, r.data);
        f.unsynced.push_back({false, r.a, r.data});
        break;
    }
    case op::truncate: {
        file& f = files_.at(file_of(r.file));
        f.now.resize(r.a, '\0');
        f.unsynced.push_back({true, r.a, {}});
        break;
    }
    case op::sync: {
        file& f = files_.at(file_of(r.file));
        f.synced = f.now;
        f.unsynced.clear();
        break;
    }
    case op::sync_dir:
        synced_names_ = names_;
        unsynced_names_.clear();
        break;
    case op::rename:
        if (const auto it = names_.find(r.name); it != names_.end()) {
            const int id = it->second;
            names_.erase(it);
            names_[r.name2] = id;
            unsynced_names_.push_back({op::rename, r.name, r.name2, id});
        }
        break;
    case op::unlink:
        names_.erase(r.name);
        unsynced_names_.push_back({op::unlink, r.name, {}, 0});
        break;
    case op::consume:
        consumed_ += r.a;
        break;
    case op::out:
        out_ += r.a;
        break;
    default:
        throw std::runtime_error(fmt::format("trace: unknown record '{}'", static_cast<char>(r.kind)));
    }
}

bool disk_model::unsynced() const {
    return !unsynced_names_.empty() ||
           std::any_of(files_.begin(), files_.end(), [](const auto& f) { return !f.second.unsynced.empty(); });
}

namespace {

// The first boundary of `unit` inside [at, at + size), as a length from at; 0 when none.
std::uint64_t first_boundary(std::uint64_t at, std::uint64_t size, std::uint64_t unit) {
    const std::uint64_t next = (at / unit + 1) * unit;
    return next < at + size ? next - at : 0;
}

}  // namespace

crash_image disk_model::crash(draw how, std::mt19937& rng) const {
    crash_image image;
    const auto roll = [&rng](std::size_t n) { return std::uniform_int_distribution<std::size_t>{0, n - 1}(rng); };

    // The names: those synced, then a prefix of the changes since.
    std::size_t names_kept = 0;
    if (how == draw::all_kept)
        names_kept = unsynced_names_.size();
    else if (how == draw::random)
        names_kept = roll(unsynced_names_.size() + 1);
    std::map<std::string, int> names = synced_names_;
    for (std::size_t i = 0; i < names_kept; ++i) {
        const name_change& c = unsynced_names_[i];
        if (c.kind == op::open) {
            names[c.name] = c.file;
        } else if (c.kind == op::rename) {
            names.erase(c.name);
            names[c.to] = c.file;
        } else {
            names.erase(c.name);
        }
    }
    if (!unsynced_names_.empty())
        image.how += fmt::format("names: {} of {} changes since the directory's fsync; ", names_kept,
                                 unsynced_names_.size());

    for (const auto& [n, id] : names) {
        const file& f = files_.at(id);
        std::string bytes = f.synced;
        std::string fates;
        for (const change& c : f.unsynced) {
            fate x = how == draw::all_kept ? fate::keep : how == draw::synced_only ? fate::drop : static_cast<fate>(roll(6));
            if (c.truncate) {
                if (x != fate::drop)
                    x = fate::keep;
                if (x == fate::keep)
                    bytes.resize(c.at, '\0');
            } else {
                std::uint64_t size = c.data.size();
                if (x == fate::torn_512 || x == fate::torn_4096) {
                    const std::uint64_t cut = first_boundary(c.at, size, x == fate::torn_512 ? 512 : 4096);
                    if (cut == 0)
                        x = fate::keep;  // inside one sector (page): all or nothing
                    else
                        size = cut;
                }
                if (x == fate::zeros) {
                    put(bytes, c.at, std::string(size, '\0'));
                } else if (x == fate::garbage) {
                    std::string junk(size, '\0');
                    for (char& ch : junk)
                        ch = static_cast<char>(roll(256));
                    put(bytes, c.at, junk);
                } else if (x != fate::drop) {
                    put(bytes, c.at, std::string_view{c.data}.substr(0, size));
                }
            }
            if (how == draw::random)
                fates += fmt::format("{}{} {}@{}: {}", fates.empty() ? "" : ", ", c.truncate ? "truncate" : "write",
                                     c.truncate ? 0 : c.data.size(), c.at, name(x));
        }
        if (!f.unsynced.empty())
            image.how += fmt::format("{}: {} bytes synced, {} unsynced changes{}{}; ", n, f.synced.size(),
                                     f.unsynced.size(), fates.empty() ? "" : " (", fates.empty() ? "" : fates + ")");
        image.files[n] = std::move(bytes);
    }
    return image;
}

}  // namespace coffee::test::crash
