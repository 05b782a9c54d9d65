// Opening the shop: the FIFO (inherited from systemd, or opened and locked
// here), its pipe's size, the journal beside it, and the watch on a
// supervisor; then the shop runs (shop.cpp).
#include "consumer.hpp"

#include "journal.hpp"
#include "old_backlog.hpp"
#include "pipe_intake.hpp"
#include "shop.hpp"
#include "stdout_sink.hpp"

#include <coffee/errors.hpp>
#include <coffee/fifo.hpp>
#include <coffee/line_protocol.hpp>
#include <coffee/logging.hpp>
#include <coffee/pipe_fill.hpp>
#include <coffee/pipe_size_watch.hpp>
#include <coffee/posix.hpp>
#include <coffee/safe_path.hpp>
#include <coffee/sd_daemon.hpp>
#include <coffee/signals.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

namespace coffee::consumer {

namespace {

// Sets the pipe's size to at least `wanted` bytes (a bigger one is kept) and
// returns the size it has: the size to keep it at. What a writer shrank it to
// while no consumer ran is not kept. 1 MiB may be more than the user may
// have (pipe-user-pages-soft): then at least a new pipe's size.
int keep_pipe_size(int fd, const std::filesystem::path& name, int wanted) {
    const int size = ::fcntl(fd, F_GETPIPE_SZ);
    if (size < 0 || size >= wanted)
        return std::max(size, 0);
    const int set = grow_pipe(fd, wanted, default_pipe_size);
    if (set < 0 || set == size)
        spdlog::warn("the pipe of '{}' holds {} bytes; cannot set it to {}: {}", name.native(), size, wanted,
                     std::strerror(errno));
    else if (size < default_pipe_size)
        spdlog::warn("the pipe of '{}' was shrunk to {} bytes (F_SETPIPE_SZ) before the shop opened; set it to {}",
                     name.native(), size, set);
    return set < 0 ? size : set;
}

// $STATE_DIRECTORY, when set and not empty (systemd's StateDirectory=).
std::optional<std::string_view> state_directory() {
    const char* state = std::getenv("STATE_DIRECTORY");
    if (state == nullptr || *state == '\0')
        return std::nullopt;
    return std::string_view{state};
}

// $STATE_DIRECTORY may list several directories, separated by colons.
std::filesystem::path default_journal(const std::filesystem::path& fifo_path) {
    if (const auto dirs = state_directory())
        return std::filesystem::path{dirs->substr(0, dirs->find(':'))} / "journal";
    return fifo_path.native() + ".journal";
}

// Under coffee-launcher serve ($COFFEE_SUPERVISOR_PID, its pid): the death
// of the supervisor sends us SIGTERM (PR_SET_PDEATHSIG), so that we stop as
// asked, moving the pipe's whole lines into the journal, instead of keeping
// the FIFO and the journal's lock from the next supervisor. Called once
// SIGTERM is blocked, so it comes through the signalfd; a supervisor that
// died before is seen by getppid(), and the SIGTERM sent here instead.
void watch_supervisor() {
    const char* value = std::getenv("COFFEE_SUPERVISOR_PID");
    if (value == nullptr)
        return;
    char* end = nullptr;
    const long supervisor = std::strtol(value, &end, 10);
    if (end == value || *end != '\0' || supervisor < 1 || supervisor > std::numeric_limits<pid_t>::max()) {
        spdlog::warn("ignoring COFFEE_SUPERVISOR_PID='{}': not a pid", printable(value));
    } else if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        throw_system_error(errno, "prctl PR_SET_PDEATHSIG");
    } else if (::getppid() != static_cast<pid_t>(supervisor)) {
        spdlog::warn("the supervisor (pid {}) is gone: stopping", supervisor);
        (void)::kill(::getpid(), SIGTERM);
    }
    (void)::unsetenv("COFFEE_SUPERVISOR_PID");  // no thread yet
}

// The path behind an inherited descriptor, for logs and the journal's name.
std::filesystem::path path_of_fd(int fd) {
    std::error_code ec;
    auto path = std::filesystem::read_symlink(fmt::format("/proc/self/fd/{}", fd), ec);
    return ec ? std::filesystem::path{} : path;
}

// The FIFO the shop reads: handed over by socket activation, or opened
// (and locked) by us.
struct shop_fifo {
    std::filesystem::path path;
    unique_fd fd = {};
    unique_fd lock = {};  // only when we opened it
    int pipe_size = 0;
};

shop_fifo take_inherited_fifo(const options& opts, unique_fd inherited) {
    shop_fifo fifo{.path = opts.fifo, .fd = std::move(inherited)};
    check_is_fifo(fifo.fd.get(), "inherited fd 3 (LISTEN_FDS)");
    check_open_for_reading(fifo.fd.get(), "inherited fd 3 (LISTEN_FDS)");
    set_nonblocking(fifo.fd.get(), true);
    if (fifo.path.empty()) {
        fifo.path = path_of_fd(fifo.fd.get());
        // An anonymous pipe ("pipe:[N]") or a FIFO since removed has no path
        // to keep the journal beside, and the working directory is no place
        // for it.
        const bool named = fifo.path.is_absolute() && !fifo.path.native().ends_with(" (deleted)");
        if (!named && opts.journal.empty() && !state_directory())
            throw exit_error(exit_config,
                             fmt::format("inherited fd 3 (LISTEN_FDS) is '{}', not a FIFO with a path beside which the "
                                         "journal could live; give --journal PATH, or set $STATE_DIRECTORY "
                                         "(StateDirectory= in the unit)",
                                         fifo.path.empty() ? std::string{"?"} : fifo.path.native()));
    }
    // No lock: the supervisor (systemd, coffee-launcher serve) starts one
    // consumer per FIFO, and a lock any writer could take would only let a
    // customer keep the shop closed. The FIFO keeps the size its supervisor
    // gave it (PipeSize=), if not smaller.
    fifo.pipe_size = keep_pipe_size(fifo.fd.get(), fifo.path, default_pipe_size);
    return fifo;
}

shop_fifo open_own_fifo(const options& opts) {
    shop_fifo fifo{.path = opts.fifo.empty() ? default_fifo_path(false) : opts.fifo};
    fifo.fd = open_fifo_for_reading(fifo.path, {opts.fifo_mode, opts.allow_world_writable});
    // One shop per FIFO: a second consumer would take half of the orders.
    fifo.lock = lock_fifo(fifo.path);
    // With instant brewing, a bigger pipe means fewer, bigger takes and fewer
    // wake-ups (as coffee-launcher serve does).
    fifo.pipe_size = keep_pipe_size(fifo.fd.get(), fifo.path, opts.instant() ? instant_pipe_size : default_pipe_size);
    return fifo;
}

// The journal beside the FIFO (or at --journal), with any backlog of an
// older version taken in. A read-only or full disk is an exit_error that
// says how many orders wait in the pipe: nothing was taken.
// (A journal holds a mutex: it cannot move, so it lives on the heap.)
std::unique_ptr<journal> open_journal(const options& opts, const shop_fifo& fifo) {
    const std::filesystem::path path = !opts.journal.empty() ? opts.journal : default_journal(fifo.path);
    // The journal's directory must be one nobody else can change, as the FIFO's.
    check_safe_directory(path.has_parent_path() ? path.parent_path() : std::filesystem::path{"."});
    try {
        const std::filesystem::path aside =
            opts.journal_may_be_old_backlog ? set_aside_old_backlog(path) : std::filesystem::path{};
        auto orders = std::make_unique<journal>(path, opts.sync);
        if (!aside.empty())
            import_old_backlog(*orders, aside);
        if (opts.journal.empty())
            import_old_backlog(*orders, default_old_backlog(fifo.path));
        return orders;
    } catch (const std::system_error& e) {
        throw exit_error(exit_code_for(e), fmt::format("{}; {} orders wait in the pipe '{}'", e.what(),
                                                       peek_pipe_lines(fifo.fd.get()).lines, fifo.path.native()));
    }
}

}  // namespace

int run(const options& opts) {
    ignore_sigpipe();  // a closed stdout is EPIPE, handled by the baristas
    // The inherited descriptors first: the signalfd below would otherwise
    // land on a closed fd 3 and be taken for the FIFO.
    std::vector<unique_fd> inherited = sd::take_listen_fds();
    // Before any thread starts, so that every thread inherits the mask.
    unique_fd signals = block_and_watch({SIGTERM, SIGINT, SIGHUP});
    watch_supervisor();

    if (inherited.size() > 1)
        spdlog::warn("socket activation passed {} descriptors; using the first, fd 3", inherited.size());
    shop_fifo fifo = inherited.empty() ? open_own_fifo(opts) : take_inherited_fifo(opts, std::move(inherited.front()));
    const std::unique_ptr<journal> orders_journal = open_journal(opts, fifo);
    cut_unfinished_write(orders_journal->loaded());
    const int fifo_fd = fifo.fd.get();
    shop coffee_shop{opts, std::move(fifo.fd), fifo.path.native(), *orders_journal, std::move(signals)};
    // Any writer can shrink the pipe; set it back (destroyed before the shop).
    const pipe_size_watch pipe_size_kept{fifo_fd, fmt::format("'{}'", fifo.path.native()), std::chrono::seconds{1},
                                         [](const std::string& message) { spdlog::warn("{}", message); },
                                         fifo.pipe_size};
    return coffee_shop.run();
}

}  // namespace coffee::consumer
