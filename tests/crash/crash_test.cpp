// The crash-consistency suite: what `--sync` promises after a power cut.
//
// A real shop runs under journal_trace.so, which records in order what it
// does to the journal's directory (open, write, truncate, fdatasync, fsync
// of the directory, rename, unlink) and what it shows outside (bytes
// consumed from the FIFO, bytes written to stdout). disk_model turns each
// point of that recording into the states a power cut there could leave
// (synced data kept; each unsynced write kept, dropped, torn at 512 B or
// 4 KiB, zeros or garbage; names since the directory's fsync kept only as
// far as some prefix). On each image a real coffee-consumer starts, serves
// what the journal holds and stops; the suite checks:
//   (a) every order that had left the pipe and was not yet on stdout is served;
//   (b) nothing is served that was never an order;
//   (c) a crash during that start, then another start: no more lost, and
//       nothing served that the first start would not serve; a start after
//       a whole one serves nothing;
//   (d) damage in the journal is reported at warning level, with its bytes.
// It prints its counts. A violation fails and names its image, kept under
// crash-images/ in the build tree with the command that replays it;
// COFFEE_TEST_SEED=N draws the same images again.
#include "disk_model.hpp"
#include "faults/shop.hpp"

#include <journal_format.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_set>

using namespace coffee::test;
using namespace coffee::test::faults;
using namespace coffee::test::crash;
using coffee::trace::op;

namespace {

const std::filesystem::path shim_library = COFFEE_JOURNAL_TRACE;
// The consumer started on the images: this build's, or COFFEE_CRASH_CONSUMER
// (./setup.sh test gives the release build's: under ASan a start costs 0.1 s,
// ten times as much, and the shops recorded are this build's anyway).
const std::string image_consumer =
    std::getenv("COFFEE_CRASH_CONSUMER") != nullptr ? std::getenv("COFFEE_CRASH_CONSUMER") : consumer_program;
const std::filesystem::path kept_images = COFFEE_CRASH_IMAGES;

// The environment that puts a process under the shim.
std::map<std::string, std::string> traced_env(const std::filesystem::path& trace, const std::filesystem::path& dir,
                                              const std::filesystem::path& fifo) {
    std::string asan = std::getenv("ASAN_OPTIONS") != nullptr ? std::getenv("ASAN_OPTIONS") : "";
    // The shim comes first in the library list; ASan's runtime would refuse that.
    asan += std::string{asan.empty() ? "" : ":"} + "verify_asan_link_order=0";
    return {{"LD_PRELOAD", shim_library.native()},
            {"COFFEE_TRACE_FILE", trace.native()},
            {"COFFEE_TRACE_DIR", dir.native()},
            {"COFFEE_TRACE_FIFO", fifo.native()},
            {"ASAN_OPTIONS", asan}};
}

std::vector<coffee::trace::record> read_trace(const std::filesystem::path& path) {
    const std::string bytes = read_file(path);
    std::vector<coffee::trace::record> ops;
    std::size_t pos = 0;
    while (auto r = coffee::trace::decode(bytes, pos))
        ops.push_back(std::move(*r));
    REQUIRE_MESSAGE(pos == bytes.size(), "the trace ends in a partial record at byte ", pos);
    return ops;
}

// How often the traced process has truncated a file so far (the trace may
// end in a record being written).
std::size_t truncations(const std::filesystem::path& trace) {
    const std::string bytes = read_file(trace);
    std::size_t n = 0;
    std::size_t pos = 0;
    while (auto r = coffee::trace::decode(bytes, pos))
        if (r->kind == op::truncate)
            ++n;
    return n;
}

// A shop's run, recorded.
struct recording {
    std::string name;
    std::vector<coffee::trace::record> ops;
    std::vector<std::string> orders;        // in the order they went into the FIFO
    std::vector<std::uint64_t> line_ends;   // each one's end in the FIFO's byte stream
    std::unordered_set<std::string> known;  // the same orders, to look up
    std::string out;                        // what the shop wrote to stdout
};

// How one recorded shop is fed.
struct scenario {
    std::string name;
    std::vector<std::string> shop_args;  // after --fifo and --journal
    std::size_t points = 250;            // crash points drawn from the recording (and every point of a rewrite)
    std::size_t bursts = 4;              // the last one is still in the pipe at SIGTERM
    std::size_t per_burst = 200;
    std::size_t order_bytes = 14;
    bool quiet_between = false;  // after each burst, wait until the quiet shop empties its journal
};

std::string order_text(const std::string& scenario, std::size_t n, std::size_t bytes) {
    std::string text = fmt::format("{}-{:06}-", scenario, n);
    text.resize(std::max(bytes, text.size() + 3), 'x');
    text.replace(text.size() - 3, 3, "end");
    return text;
}

recording record_shop(const scenario& s, const temp_dir& dir) {
    recording rec;
    rec.name = s.name;
    const std::filesystem::path state = dir / (s.name + "-state");
    const std::filesystem::path fifo = dir / (s.name + "-orders");
    const std::filesystem::path trace = dir / (s.name + ".trace");
    std::filesystem::create_directory(state);
    std::filesystem::permissions(state, std::filesystem::perms::owner_all);
    const unique_fd holder = hold_fifo(fifo);

    std::vector<std::string> argv{consumer_program, "--fifo", fifo.native(), "--journal", (state / "journal").native()};
    argv.insert(argv.end(), s.shop_args.begin(), s.shop_args.end());
    std::vector<std::string> env;
    for (const auto& [name, value] : traced_env(trace, state, fifo))
        env.push_back(name + "=" + value);
    watched shop{argv, env};
    const collector& output = shop.output();

    std::uint64_t stream_bytes = 0;
    for (std::size_t b = 0; b < s.bursts; ++b) {
        // CRLF lines go the journal's way even at --brew-time 0.
        const std::string eol = b % 2 == 1 ? "\r\n" : "\n";
        std::vector<std::string> burst;
        for (std::size_t i = 0; i < s.per_burst; ++i) {
            burst.push_back(order_text(s.name, rec.orders.size(), s.order_bytes));
            rec.orders.push_back(burst.back());
            stream_bytes += burst.back().size() + eol.size();
            rec.line_ends.push_back(stream_bytes);
        }
        stream(holder.get(), burst, eol);
        if (b + 1 < s.bursts) {
            const bool served = eventually(
                [&] { return output.line_count() >= rec.orders.size() || output.wait_closed(0ms); }, 120s);
            REQUIRE_MESSAGE((served && output.line_count() >= rec.orders.size()), output.err());
            if (s.quiet_between) {
                const std::size_t emptied = truncations(trace);
                REQUIRE(eventually([&] { return truncations(trace) > emptied; }, 30s));
            }
        }
    }
    CHECK(shop.stop(60s) == 0);
    for (const std::string& line : output.lines())
        rec.out += line + "\n";
    rec.out += output.partial();
    rec.ops = read_trace(trace);
    rec.known.insert(rec.orders.begin(), rec.orders.end());

    std::uint64_t out_bytes = 0;
    for (const auto& r : rec.ops)
        out_bytes += r.kind == op::out ? r.a : 0;
    // The shim saw every byte the shop wrote to stdout, and nothing else.
    REQUIRE(out_bytes == rec.out.size());
    return rec;
}

// The lines within the first `bytes` of `text`, without their LF.
std::vector<std::string> lines_within(const std::string& text, std::uint64_t bytes) {
    const std::size_t end = text.rfind('\n', bytes == 0 ? std::string::npos : bytes - 1);
    return bytes == 0 || end == std::string::npos ? std::vector<std::string>{}
                                                  : split_lines(text.substr(0, end + 1));
}

// A start of the real consumer on an image: it serves what the journal
// holds, reads 'finish' from the FIFO and stops.
struct start_result {
    int code = -1;
    std::vector<std::string> served;
    std::string out;
    std::string err;
    std::vector<coffee::trace::record> ops;  // when traced
};

start_result start_on(const std::filesystem::path& image, bool traced) {
    const std::filesystem::path state = image / "state";
    const std::filesystem::path fifo = image / "orders";
    std::error_code ignored;
    std::filesystem::remove(fifo, ignored);
    std::filesystem::remove(image / "orders.lock", ignored);
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const unique_fd holder{::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC)};
    REQUIRE(holder);
    REQUIRE(::write(holder.get(), "finish\n", 7) == 7);
    spawn_options options;
    options.stdout_file = image / "out";
    options.stderr_file = image / "err";
    options.unset_env = {"JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET", "WATCHDOG_USEC"};
    if (traced)
        options.env = traced_env(image / "trace", state, fifo);
    start_result r;
    r.code = run({image_consumer, "--fifo", fifo.native(), "--journal", (state / "journal").native(), "--sync",
                  "--brew-time", "0", "--until-finish"},
                 options, 60s);
    r.out = read_file(options.stdout_file);
    r.served = split_lines(r.out);
    r.err = read_file(options.stderr_file);
    if (traced)
        r.ops = read_trace(image / "trace");
    return r;
}

void lay_out(const std::filesystem::path& image, const crash_image& files) {
    std::filesystem::remove_all(image);
    std::filesystem::create_directories(image / "state");
    std::filesystem::permissions(image, std::filesystem::perms::owner_all);
    std::filesystem::permissions(image / "state", std::filesystem::perms::owner_all);
    for (const auto& [n, bytes] : files.files) {
        const unique_fd fd{::open((image / "state" / n).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
        REQUIRE(fd);
        REQUIRE(write_all(fd.get(), bytes));
    }
}

// What a start must report of the damage in the journal it finds.
std::string damage_unreported(const crash_image& image, const std::string& err) {
    const auto it = image.files.find("journal");
    if (it == image.files.end() || it->second.empty())
        return {};
    coffee::consumer::memory_source source{it->second};
    coffee::consumer::journal_scanner scan{source, it->second.size()};
    std::vector<coffee::consumer::journal_damage> damage;
    while (scan.next([&](const coffee::consumer::journal_damage& d) { damage.push_back(d); })) {
    }
    for (std::size_t i = 0; i < std::min<std::size_t>(damage.size(), 10); ++i) {
        const std::string said = fmt::format("{} bytes at offset {} are not valid records", damage[i].bytes,
                                             damage[i].offset);
        const std::size_t at = err.find(said);
        const std::size_t line = at == std::string::npos ? 0 : err.rfind('\n', at) + 1;  // npos + 1 is 0
        const std::size_t level = err.find("warning:", line);
        if (at == std::string::npos || level == std::string::npos || level > at)
            return fmt::format("damage not reported at warning level: '{}'", said);
    }
    return {};
}

struct crash_tally {
    std::size_t images = 0;
    std::size_t synced_only = 0, all_kept = 0, random = 0;
    std::size_t damaged = 0;        // images whose journal has damage (all reported)
    std::size_t orders_needed = 0;  // orders that had left the pipe, not yet on stdout, summed
    std::size_t recovery_crashes = 0;
    std::size_t violations = 0;
    std::vector<std::string> reports;
};

struct job {
    const recording* rec = nullptr;
    std::size_t point = 0;
    draw how{};
    crash_image image;
    std::uint64_t consumed = 0;
    std::uint64_t written_out = 0;
    bool crash_recovery = false;
    std::uint32_t seed = 0;
};

const char* name(draw d) {
    return d == draw::synced_only ? "synced only" : d == draw::all_kept ? "all kept" : "random";
}

class checker {
public:
    explicit checker(const temp_dir& dir) : dir_{dir} {}

    void run_all(std::vector<job>& jobs) {
        std::atomic<std::size_t> next{0};
        const auto work = [&](unsigned worker) {
            for (std::size_t i; (i = next++) < jobs.size();)
                check(jobs[i], dir_ / fmt::format("image-{}", worker));
        };
        std::vector<std::thread> workers;
        const unsigned n = std::max(2U, std::thread::hardware_concurrency());
        for (unsigned w = 0; w < n; ++w)
            workers.emplace_back(work, w);
        for (auto& t : workers)
            t.join();
    }

    [[nodiscard]] const crash_tally& counts() const { return tally_; }

private:
    void check(job& j, const std::filesystem::path& image) {
        const recording& rec = *j.rec;
        std::set<std::string> needed;
        for (std::size_t i = 0; i < rec.orders.size() && rec.line_ends[i] <= j.consumed; ++i)
            needed.insert(rec.orders[i]);
        for (const std::string& line : lines_within(rec.out, j.written_out))
            needed.erase(line);

        lay_out(image, j.image);
        const start_result first = start_on(image, j.crash_recovery);
        std::vector<std::string> problems;
        if (first.code != 0)
            problems.push_back(fmt::format("the start exited {}", first.code));
        problems_of(first.served, needed, rec, problems);
        if (const std::string d = damage_unreported(j.image, first.err); !d.empty())
            problems.push_back(d);
        bool damaged = first.err.find("are not valid records") != std::string::npos;

        std::size_t recovery_crashes = 0;
        if (j.crash_recovery && problems.empty())
            recovery_crashes = crash_the_recovery(j, image, needed, first, problems);

        const std::lock_guard lock{mutex_};
        ++tally_.images;
        ++(j.how == draw::synced_only ? tally_.synced_only : j.how == draw::all_kept ? tally_.all_kept : tally_.random);
        tally_.damaged += damaged ? 1 : 0;
        tally_.orders_needed += needed.size();
        tally_.recovery_crashes += recovery_crashes;
        if (!problems.empty()) {
            ++tally_.violations;
            if (tally_.reports.size() < 5)
                tally_.reports.push_back(report(j, problems, first));
        }
    }

    static void problems_of(const std::vector<std::string>& served, const std::set<std::string>& needed,
                            const recording& rec, std::vector<std::string>& problems) {
        const std::set<std::string> got{served.begin(), served.end()};
        std::size_t lost = 0;
        std::string example;
        for (const std::string& order : needed) {
            if (got.count(order) == 0 && lost++ == 0)
                example = order;
        }
        if (lost > 0)
            problems.push_back(fmt::format("{} orders lost (that had left the pipe), e.g. '{}'", lost, example));
        for (const std::string& line : got) {
            if (rec.known.count(line) == 0) {
                problems.push_back(fmt::format("served a line that was never an order: '{}'", line.substr(0, 80)));
                break;
            }
        }
    }

    // (c): crash images of the start itself, then another start on each.
    std::size_t crash_the_recovery(const job& j, const std::filesystem::path& image, const std::set<std::string>& needed,
                                   const start_result& first, std::vector<std::string>& problems) {
        const std::set<std::string> would_serve{first.served.begin(), first.served.end()};
        std::mt19937 rng{j.seed};
        disk_model disk{j.image.files};
        const std::size_t n = first.ops.size();
        std::set<std::size_t> points{n};
        for (int i = 0; i < 2 && n > 0; ++i)
            points.insert(std::uniform_int_distribution<std::size_t>{0, n - 1}(rng));
        std::size_t crashes = 0;
        std::size_t done = 0;
        for (const std::size_t point : points) {
            for (; done < point; ++done)
                disk.apply(first.ops[done]);
            for (const draw how : {draw::synced_only, draw::random, draw::all_kept}) {
                if (how == draw::all_kept && point != n)
                    continue;
                const crash_image again = disk.crash(how, rng);
                lay_out(image, again);
                const start_result second = start_on(image, false);
                ++crashes;
                std::set<std::string> served{second.served.begin(), second.served.end()};
                for (const std::string& line : lines_within(first.out, disk.written_out()))
                    served.insert(line);
                std::vector<std::string> found;
                if (second.code != 0)
                    found.push_back(fmt::format("the second start exited {}", second.code));
                problems_of({served.begin(), served.end()}, needed, *j.rec, found);
                for (const std::string& line : served) {
                    if (would_serve.count(line) == 0) {
                        found.push_back(fmt::format("'{}' served after a crash of the start, not by the start", line));
                        break;
                    }
                }
                if (point == n && how == draw::all_kept && !second.served.empty())
                    found.push_back(fmt::format("a start after a whole start served {} orders again",
                                                second.served.size()));
                for (const std::string& f : found)
                    problems.push_back(fmt::format("start crashed after {} of its {} operations ({}; {}): {}", point, n,
                                                   name(how), again.how, f));
                if (!found.empty())
                    return crashes;
            }
        }
        return crashes;
    }

    static std::string report(const job& j, const std::vector<std::string>& problems, const start_result& first) {
        const std::filesystem::path keep =
            kept_images / fmt::format("{}-point-{}-{}", j.rec->name, j.point, j.how == draw::random ? "random" : name(j.how));
        std::error_code ignored;
        std::filesystem::remove_all(keep, ignored);
        std::filesystem::create_directories(keep.parent_path(), ignored);
        lay_out(keep, j.image);
        std::string text = fmt::format("{}: a power cut after operation {} of {} ({}; {}):\n", j.rec->name, j.point,
                                       j.rec->ops.size(), name(j.how), j.image.how);
        for (const std::string& p : problems)
            text += "  - " + p + "\n";
        text += fmt::format("  image kept at {}; replay: mkfifo {}/orders; {} --fifo {}/orders --journal {}/state/journal "
                            "--sync --brew-time 0\n  its log:\n{}",
                            keep.native(), keep.native(), image_consumer, keep.native(), keep.native(), first.err);
        return text;
    }

    const temp_dir& dir_;
    std::mutex mutex_;
    crash_tally tally_;
};

// The crash points of a recording and the images drawn at each: every
// point (a sample of them when there are more than `points`, and then every
// point of a rewrite), each as synced only, and, when something is
// unsynced there, all kept and `random` random draws.
// Hands them to `check` a batch at a time (an image of a big journal is
// megabytes). Returns how many there were.
template <typename Check>
std::size_t check_images(const recording& rec, std::size_t points, int random, std::uint32_t seed,
                         std::size_t recovery_every, Check&& check) {
    std::vector<job> jobs;
    std::size_t total = 0;
    disk_model disk;
    const std::size_t n = rec.ops.size();
    const std::size_t stride = std::max<std::size_t>(1, n / points);
    bool rewriting = false;
    std::size_t rewrite_until = 0;  // every point of a rewrite, and a few after it
    std::mt19937 rng{seed};
    std::size_t count = 0;
    for (std::size_t k = 0; k <= n; ++k) {
        if (k > 0) {
            const auto& r = rec.ops[k - 1];
            disk.apply(r);
            if (r.kind == op::open && r.name == "journal.rewrite")
                rewriting = true;
            if (r.kind == op::sync_dir && rewriting) {
                rewriting = false;
                rewrite_until = k + 8;
            }
        }
        if (k % stride != 0 && k != n && !rewriting && k > rewrite_until)
            continue;
        std::vector<draw> draws{draw::synced_only};
        if (disk.unsynced()) {
            draws.push_back(draw::all_kept);
            draws.insert(draws.end(), static_cast<std::size_t>(random), draw::random);
        }
        for (const draw how : draws) {
            job j;
            j.rec = &rec;
            j.point = k;
            j.how = how;
            j.seed = static_cast<std::uint32_t>(rng());
            std::mt19937 image_rng{j.seed};
            j.image = disk.crash(how, image_rng);
            j.consumed = disk.consumed();
            j.written_out = disk.written_out();
            j.crash_recovery = ++count % recovery_every == 0;
            jobs.push_back(std::move(j));
        }
        if (jobs.size() >= 64 || k == n) {
            total += jobs.size();
            check(jobs);
            jobs.clear();
        }
    }
    return total;
}

}  // namespace

TEST_CASE("a power cut at any point of a --sync shop's journal loses no order that left the pipe") {
    const std::uint32_t seed = test_seed();
    temp_dir dir;
    const std::vector<scenario> scenarios{
        // Orders straight to stdout, CRLF bursts through the journal, the last burst moved to it at the stop.
        {"instant", {"--sync", "--brew-time", "0"}, 250, 12, 100, 14},
        // Every order through the journal; two baristas mark them served.
        {"brewing", {"--sync", "--brew-time", "1ms", "--baristas", "2"}, 250, 4, 150, 14, true},
        // Orders far ahead of one barista: the journal passes 1 MiB with orders in flight and is rewritten.
        {"rewrite", {"--sync", "--brew-time", "1ms", "--queue-size", "65536"}, 100, 2, 1100, 1000},
    };
    MESSAGE("starting on the images: ", image_consumer);
    std::vector<recording> recordings;
    for (const scenario& s : scenarios)
        recordings.push_back(record_shop(s, dir));
    const auto renames = std::count_if(recordings[2].ops.begin(), recordings[2].ops.end(),
                                       [](const auto& r) { return r.kind == op::rename; });
    REQUIRE_MESSAGE(renames > 0, "the rewrite scenario did not rewrite its journal");

    // The images on a tmpfs where there is one: a start on an image is a
    // read of it, and its fdatasync then costs nothing.
    std::optional<env_guard> on_tmpfs;
    if (::access("/dev/shm", W_OK) == 0)
        on_tmpfs.emplace("TMPDIR", "/dev/shm");
    const temp_dir images;
    on_tmpfs.reset();
    checker check{images};
    // COFFEE_CRASH_SCALE=N draws N times the crash points (for a release).
    std::size_t scale = 1;
    if (const char* text = std::getenv("COFFEE_CRASH_SCALE")) {
        const auto parsed = parse_seed(text);
        REQUIRE_MESSAGE((parsed && *parsed >= 1 && *parsed <= 1000), "COFFEE_CRASH_SCALE=\"", std::string{text},
                        "\" is not a number from 1 to 1000");
        scale = *parsed;
        MESSAGE("COFFEE_CRASH_SCALE=", scale);
    }
    const std::size_t recovery_every = 10;
    std::uint32_t s = seed;
    for (std::size_t i = 0; i < recordings.size(); ++i) {
        const recording& rec = recordings[i];
        const auto began = std::chrono::steady_clock::now();
        const std::size_t drawn = check_images(rec, scenarios[i].points * scale, 1, s++, recovery_every, [&](std::vector<job>& jobs) { check.run_all(jobs); });
        std::size_t sums[9]{};
        for (const auto& r : rec.ops)
            ++sums[std::string_view{"owtsdrucO"}.find(static_cast<char>(r.kind)) % 9];
        MESSAGE(fmt::format("{}: {} operations (open {}, write {}, truncate {}, fdatasync/fsync {}, directory fsync {}, "
                            "rename {}, unlink {}, consume {}, stdout {}), {} images in {:.1f} s",
                            rec.name, rec.ops.size(), sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], sums[6],
                            sums[7], sums[8], drawn,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count()));
    }
    const crash_tally& t = check.counts();
    MESSAGE(fmt::format("crash images: {} ({} synced only, {} all kept, {} random), {} with damage (all reported), "
                        "{} orders that had left the pipe checked, {} crashes of a start; violations: {}",
                        t.images, t.synced_only, t.all_kept, t.random, t.damaged, t.orders_needed, t.recovery_crashes,
                        t.violations));
    for (const std::string& r : t.reports)
        MESSAGE(r);
    CHECK(t.violations == 0);
    CHECK(t.images + t.recovery_crashes >= 2000 * scale);
}
