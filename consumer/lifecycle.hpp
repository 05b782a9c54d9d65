#pragma once
// The shop's life, as a table: taking orders, then draining (serving what
// it accepted, taking no more), then stopping (the orders being brewed
// finish, the rest wait in the journal). What moves it on is an event; the
// table says where each event leads from each state, and what to do on the
// way, so that every stop path is decided in one place.

#include <array>
#include <cstddef>
#include <string_view>

namespace coffee::consumer {

enum class life { taking, draining, stopping };

enum class life_event {
    finish_received,  // the line 'finish', with --until-finish
    end_of_input,     // no writer left, not even the shop
    signal,           // SIGTERM, SIGINT, or the supervisor's death
    timeout,          // --timeout reached
    stdout_failed,
    journal_failed,
};

inline constexpr std::array all_lives{life::taking, life::draining, life::stopping};
inline constexpr std::array all_life_events{life_event::finish_received, life_event::end_of_input, life_event::signal,
                                            life_event::timeout,         life_event::stdout_failed, life_event::journal_failed};

// What an event does to the shop in a state.
struct life_step {
    life next;
    bool close_queue = false;  // the baristas leave after the order in hand
    bool empty_pipe = false;   // the pipe's whole lines move to the journal
};

// The table. A draining shop closes its queue for draining once it has
// handed the baristas what it accepted; it ignores another reason to drain.
// A stopping one ignores everything (a second signal only says it is
// stopping).
constexpr life_step step(life now, life_event event) noexcept {
    const bool drain = event == life_event::finish_received || event == life_event::end_of_input;
    switch (now) {
    case life::taking:
        return drain ? life_step{life::draining, false, true} : life_step{life::stopping, true, true};
    case life::draining:
        return drain ? life_step{life::draining} : life_step{life::stopping, true, false};
    case life::stopping:
        break;
    }
    return life_step{life::stopping};
}

std::string_view name(life state) noexcept;
std::string_view name(life_event event) noexcept;

// The shop's state. Used by the reader thread alone.
class lifecycle {
public:
    [[nodiscard]] life state() const noexcept { return state_; }
    [[nodiscard]] bool taking() const noexcept { return state_ == life::taking; }
    [[nodiscard]] bool stopping() const noexcept { return state_ == life::stopping; }

    // Moves on by the table; returns the step, whose `next` equals the old
    // state when the event changed nothing.
    life_step on(life_event event) noexcept {
        const life_step s = step(state_, event);
        state_ = s.next;
        return s;
    }

private:
    life state_ = life::taking;
};

}  // namespace coffee::consumer
