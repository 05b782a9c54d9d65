#include "live_view.hpp"

#include <coffee/line_protocol.hpp>
#include <coffee/posix.hpp>

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <limits.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>

namespace coffee::launcher {

namespace {

// SGR colours (ECMA-48); none under NO_COLOR (https://no-color.org).
constexpr std::string_view reset = "\x1b[0m";
constexpr std::string_view bold = "\x1b[1m";
constexpr std::string_view dim = "\x1b[2m";
constexpr std::string_view red = "\x1b[1;31m";
constexpr std::string_view green = "\x1b[32m";
constexpr std::string_view yellow = "\x1b[33m";
constexpr std::string_view cyan = "\x1b[36m";

constexpr std::string_view hide_cursor = "\x1b[?25l";
constexpr std::string_view show_cursor = "\x1b[?25h";

// One line of the frame, cut at `width` columns (one per UTF-8 code point:
// the frame is ASCII but for the orders' text).
class line_builder {
public:
    line_builder(unsigned width, bool color) : width_{width}, color_{color} {}

    line_builder& add(std::string_view text, std::string_view sgr = {}) {
        std::size_t end = 0;
        while (end < text.size() && cols_ < width_) {
            ++end;
            while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0U) == 0x80U)
                ++end;
            ++cols_;
        }
        if (end == 0)
            return *this;
        const bool styled = color_ && !sgr.empty();
        if (styled)
            out_ += sgr;
        out_.append(text.substr(0, end));
        if (styled)
            out_ += reset;
        return *this;
    }
    line_builder& pad_to(unsigned column) {
        if (cols_ < column)
            add(std::string(column - cols_, ' '));
        return *this;
    }
    [[nodiscard]] std::string take() { return std::move(out_); }

private:
    unsigned width_;
    bool color_;
    unsigned cols_ = 0;
    std::string out_;
};

unsigned count_state(const demo_snapshot& s, customer_state state) {
    return static_cast<unsigned>(
        std::count_if(s.customers.begin(), s.customers.end(), [&](const customer_view& c) { return c.state == state; }));
}

unsigned busy_baristas(const demo_snapshot& s) {
    return static_cast<unsigned>(
        std::count_if(s.shop.baristas.begin(), s.shop.baristas.end(), [](const std::string& o) { return !o.empty(); }));
}

unsigned baristas_total(const demo_snapshot& s) {
    return std::max<unsigned>(s.baristas, static_cast<unsigned>(s.shop.baristas.size()));
}

std::string fill_text(const demo_snapshot& s) {
    if (!s.pipe)
        return "pipe ?";
    const auto orders = static_cast<unsigned long>(std::lround(static_cast<double>(s.pipe->unread) / s.bytes_per_order));
    return fmt::format("pipe {} (~{} order{})", describe_fill(*s.pipe), orders, orders == 1 ? "" : "s");
}

std::string exit_text(int status) {
    if (WIFEXITED(status))
        return fmt::format("exit {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return fmt::format("killed by signal {}", WTERMSIG(status));
    return "gone";
}

std::string describe_customer(const customer_view& c, std::string_view& sgr) {
    switch (c.state) {
    case customer_state::not_yet_here:
        sgr = dim;
        return "not here yet";
    case customer_state::ordering:
        sgr = yellow;
        return "ordering: write() goes through";
    case customer_state::blocked:
        sgr = red;
        return "BLOCKED in write(): the pipe is full";
    case customer_state::done:
        const bool ok = WIFEXITED(c.wait_status) && WEXITSTATUS(c.wait_status) == 0;
        sgr = ok ? green : red;
        return fmt::format("done, {}", exit_text(c.wait_status));
    }
    return {};
}

// The frame, drawn section by section from the top: each one appends its lines.
class frame_renderer {
public:
    frame_renderer(const demo_snapshot& s, unsigned width, unsigned height, bool color)
        : s_{s}, width_{width}, height_{height}, color_{color} {}

    std::vector<std::string> render() {
        header();
        pipe_gauge();
        customers();
        shop();
        shop_totals();
        hint();
        if (lines_.size() > height_)
            lines_.resize(height_);
        return std::move(lines_);
    }

private:
    [[nodiscard]] line_builder line() const { return line_builder{width_, color_}; }

    void header() {
        const std::string clock = fmt::format("{:.1f}s", std::chrono::duration<double>(s_.elapsed).count());
        lines_.push_back(line().add("coffee shop over a pipe: ", bold).add(s_.title, bold).add("  ").add(clock).take());
    }

    void pipe_gauge() {
        lines_.push_back(line().add("THE PIPE", bold).add(fmt::format("  {}: write() blocks when full, read() when empty", s_.fifo), dim).take());
        const bool full = s_.pipe && pipe_full(*s_.pipe);
        // What is left of the line after "  [" and "] 63/64 KiB (~2257 orders)  FULL".
        const unsigned gauge = std::max(std::min(width_, 200U), 58U) - 48;
        const double ratio = s_.pipe && s_.pipe->capacity > 0 ? static_cast<double>(s_.pipe->unread) / static_cast<double>(s_.pipe->capacity) : 0;
        auto filled = static_cast<unsigned>(std::lround(ratio * gauge));
        if (s_.pipe && s_.pipe->unread > 0)
            filled = std::max(filled, 1U);  // a few bytes are not nothing
        const std::string_view sgr = full ? red : ratio >= 0.5 ? yellow : green;
        auto l = line();
        l.add("  [").add(std::string(filled, '#'), sgr).add(std::string(gauge - std::min(filled, gauge), '.'), dim).add("] ");
        l.add(fill_text(s_).substr(5));
        if (full)
            l.add("  FULL", red);
        else if (s_.pipe && s_.pipe->unread == 0)
            l.add("  empty", dim);
        lines_.push_back(l.take());
    }

    void customers() {
        lines_.push_back(line()
                             .add("CUSTOMERS", bold)
                             .add(fmt::format("  coffee-producer: whole lines, one write() of <= {} bytes (PIPE_BUF) at a time", PIPE_BUF), dim)
                             .take());
        // The shop's lines below take 5 + its baristas; a last line for the hint.
        const unsigned shop_lines = 5 + std::min(baristas_total(s_), 8U);
        const std::size_t room = height_ > lines_.size() + shop_lines + 2 ? height_ - lines_.size() - shop_lines - 2 : 1;
        if (s_.customers.size() <= room) {
            for (const customer_view& c : s_.customers)
                add_customer(c);
        } else {
            customers_blocked_first(room);
        }
    }

    // More customers than lines for them: as many as fit, then one line that counts them all.
    void customers_blocked_first(std::size_t room) {
        // Blocked ones first: they are the story.
        std::vector<const customer_view*> order;
        for (const customer_view& c : s_.customers)
            order.push_back(&c);
        std::stable_sort(order.begin(), order.end(), [](const customer_view* a, const customer_view* b) {
            return (a->state == customer_state::blocked) > (b->state == customer_state::blocked);
        });
        for (std::size_t i = 0; i + 1 < room; ++i)
            add_customer(*order[i]);
        lines_.push_back(line()
                             .add(fmt::format("  ... {} in all: {} blocked, {} ordering, {} done, {} not here yet", s_.customers.size(),
                                              count_state(s_, customer_state::blocked), count_state(s_, customer_state::ordering),
                                              count_state(s_, customer_state::done), count_state(s_, customer_state::not_yet_here)),
                                  dim)
                             .take());
    }

    void add_customer(const customer_view& c) {
        std::string_view sgr;
        const std::string state = describe_customer(c, sgr);
        auto l = line();
        l.add("  ").add(c.name).pad_to(14);
        l.add(c.pid > 0 ? fmt::format("pid {}", c.pid) : "").pad_to(25);
        l.add(state, sgr).pad_to(64);
        l.add(fmt::format("{} order{}", c.orders, c.orders == 1 ? "" : "s"), dim);
        lines_.push_back(l.take());
    }

    void shop() {
        lines_.push_back(line()
                             .add("THE SHOP", bold)
                             .add(fmt::format("  coffee-consumer{}: holds the FIFO read-write, so never reads end-of-file",
                                              s_.consumer_pid > 0 ? fmt::format(" pid {}", s_.consumer_pid) : ""),
                                  dim)
                             .take());
        const unsigned total = baristas_total(s_);
        for (unsigned i = 0; i < std::min(total, 8U); ++i)
            add_barista(i);
        if (total > 8)
            lines_.push_back(line().add(fmt::format("  ... {} baristas, {} busy", total, busy_baristas(s_)), dim).take());
    }

    void add_barista(unsigned i) {
        auto l = line();
        l.add(fmt::format("  barista {}", i + 1)).pad_to(14);
        // What the consumer reports is drawn escaped, as the logs show it:
        // no escape sequence or bidi control of theirs reaches the terminal.
        const std::string order = i < s_.shop.baristas.size() ? printable(s_.shop.baristas[i], max_line_bytes) : std::string{};
        if (!order.empty())
            l.add("brewing ", cyan).add(order, cyan);
        else if (s_.consumer_running && s_.shop.waiting.value_or(0) > 0)
            l.add("between two orders", dim);
        else if (s_.consumer_running)
            l.add("idle: nothing to brew, the shop waits in read()", dim);
        else
            l.add("gone home", dim);
        lines_.push_back(l.take());
    }

    void shop_totals() {
        lines_.push_back(line()
                             .add(fmt::format("  read ahead {}, ", s_.shop.waiting.value_or(0)))
                             .add(fmt::format("served {} of {}", s_.served, s_.ordered), s_.served == s_.ordered && s_.ordered > 0 ? green : std::string_view{})
                             .add(fmt::format(", {:.0f}/s", s_.per_second))
                             .take());
        std::string state = !s_.consumer_running ? "closed" : s_.shop.stopping ? "closing: serving what it accepted"
                                                          : s_.shop.ready    ? "open"
                                                                             : "opening";
        lines_.push_back(line().add("  ").add(state).add(s_.shop.status.empty() ? "" : fmt::format(", STATUS=\"{}\"", printable(s_.shop.status, max_line_bytes)), dim).take());
    }

    void hint() {
        const std::string_view hint = s_.stopping           ? "stopping: waiting for the orders being brewed"
                                      : s_.consumer_running ? "Ctrl-C stops the shop gracefully"
                                                            : "the shop is closed";
        lines_.push_back(line().add(hint, dim).take());
    }

    const demo_snapshot& s_;
    unsigned width_;
    unsigned height_;
    bool color_;
    std::vector<std::string> lines_;
};

}  // namespace

bool pipe_full(const pipe_fill& fill) noexcept { return fill.capacity > 0 && fill.capacity - std::min(fill.unread, fill.capacity) < PIPE_BUF; }

std::vector<std::string> render_frame(const demo_snapshot& s, unsigned width, unsigned height, bool color) {
    return frame_renderer{s, width, height, color}.render();
}

std::string summary_line(const demo_snapshot& s) {
    std::string full;
    if (s.pipe && pipe_full(*s.pipe))
        full = " FULL";
    else if (s.pipe && s.pipe->unread == 0)
        full = " empty";
    const unsigned to_come = count_state(s, customer_state::not_yet_here);
    return fmt::format("{:5.1f}s {}{}, customers {} blocked {} ordering {} done{}, baristas {}/{} busy, served {}/{} ({:.0f}/s)",
                       std::chrono::duration<double>(s.elapsed).count(), fill_text(s), full, count_state(s, customer_state::blocked),
                       count_state(s, customer_state::ordering), count_state(s, customer_state::done),
                       to_come > 0 ? fmt::format(" {} to come", to_come) : "", busy_baristas(s), baristas_total(s), s.served,
                       s.ordered, s.per_second);
}

bool stderr_can_go_live() {
    const char* term = std::getenv("TERM");
    return ::isatty(STDERR_FILENO) == 1 && term != nullptr && *term != '\0' && std::string_view{term} != "dumb";
}

namespace {

// Our own log lines, kept for live_view to print above its frame.
class above_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit above_sink(std::shared_ptr<std::string> into) : into_{std::move(into)} {}

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        into_->append(formatted.data(), formatted.size());
    }
    void flush_() override {}

private:
    std::shared_ptr<std::string> into_;
};

}  // namespace

live_view::live_view()
    : color_{[] {
          const char* no_color = std::getenv("NO_COLOR");
          return no_color == nullptr || *no_color == '\0';
      }()},
      stdout_is_terminal_{::isatty(STDOUT_FILENO) == 1}, above_err_{std::make_shared<std::string>()},
      saved_logger_{spdlog::default_logger()} {
    auto sink = std::make_shared<above_sink>(above_err_);
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>("%Y-%m-%d %H:%M:%S.%e %n[%P] %l: %v"));
    auto logger = std::make_shared<spdlog::logger>(saved_logger_->name(), std::move(sink));
    logger->set_level(saved_logger_->level());
    spdlog::set_default_logger(std::move(logger));
    put(STDERR_FILENO, hide_cursor);
}

live_view::~live_view() {
    spdlog::set_default_logger(saved_logger_);
    // Whatever came in after the last frame, below it; then the terminal as it was.
    put(STDOUT_FILENO, above_out_);
    put(STDERR_FILENO, *above_err_);
    put(STDERR_FILENO, fmt::format("{}{}", color_ ? reset : "", show_cursor));
}

void live_view::print_above(std::string_view text, bool to_stdout) {
    (to_stdout ? above_out_ : *above_err_).append(text);
}

void live_view::draw(const demo_snapshot& s) {
    winsize ws{};
    unsigned width = 80;
    unsigned height = 24;
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        width = ws.ws_col;
        height = ws.ws_row;
    }
    // The last column stays empty: writing there wraps on some terminals.
    const std::vector<std::string> lines = render_frame(s, width > 1 ? width - 1 : 1, height > 1 ? height - 1 : 1, color_);

    erase();
    // Whole lines only above the frame; a partial one waits for its end.
    for (auto [fd, text] : {std::pair{STDOUT_FILENO, &above_out_}, std::pair{STDERR_FILENO, above_err_.get()}}) {
        const std::size_t lf = text->rfind('\n');
        if (lf == std::string::npos)
            continue;
        put(fd, std::string_view{*text}.substr(0, lf + 1));
        text->erase(0, lf + 1);
    }
    std::string frame;
    for (const std::string& l : lines)
        frame += l + (color_ ? std::string{reset} : "") + "\x1b[K\n";
    put(STDERR_FILENO, frame);
    lines_drawn_ = static_cast<unsigned>(lines.size());
}

void live_view::erase() {
    if (lines_drawn_ > 0)
        put(STDERR_FILENO, fmt::format("\x1b[{}A\r\x1b[J", lines_drawn_));
    lines_drawn_ = 0;
}

void live_view::put(int fd, std::string_view text) {
    if (broken_ || text.empty())
        return;
    try {
        write_all(fd, text, fd == STDOUT_FILENO ? "stdout" : "the terminal");
    } catch (const std::system_error&) {
        broken_ = true;  // the terminal is gone (EIO, EPIPE): nothing to show any more
    }
}

}  // namespace coffee::launcher
