// The shop's lifecycle table, read cell by cell: every state and event,
// against the rules as the man page states them (a drain serves what was
// accepted; a stop leaves the queue to the journal; nothing undoes a stop).
#include <lifecycle.hpp>

#include <doctest/doctest.h>

#include <string>

using coffee::consumer::all_life_events;
using coffee::consumer::all_lives;
using coffee::consumer::life;
using coffee::consumer::life_event;
using coffee::consumer::lifecycle;
using coffee::consumer::step;

namespace {

bool drains(life_event e) { return e == life_event::finish_received || e == life_event::end_of_input; }

}  // namespace

TEST_CASE("the lifecycle table: every state and event leads where the rules say") {
    int cells = 0;
    for (const life now : all_lives) {
        for (const life_event event : all_life_events) {
            const auto s = step(now, event);
            INFO("from '" << std::string{name(now)} << "' on '" << std::string{name(event)} << "'");
            ++cells;
            switch (now) {
            case life::taking:
                // The pipe's whole lines go to the journal on the way out of taking, whichever way.
                CHECK(s.empty_pipe);
                CHECK(s.next == (drains(event) ? life::draining : life::stopping));
                CHECK(s.close_queue == !drains(event));
                break;
            case life::draining:
                CHECK_FALSE(s.empty_pipe);  // emptied when the drain began
                CHECK(s.next == (drains(event) ? life::draining : life::stopping));
                CHECK(s.close_queue == !drains(event));
                break;
            case life::stopping:
                CHECK(s.next == life::stopping);
                CHECK_FALSE(s.close_queue);
                CHECK_FALSE(s.empty_pipe);
                break;
            }
        }
    }
    CHECK(cells == 18);
}

TEST_CASE("a lifecycle: finish drains, a signal then stops, and nothing brings it back") {
    lifecycle l;
    CHECK(l.taking());
    CHECK(l.on(life_event::finish_received).next == life::draining);
    CHECK_FALSE(l.taking());
    CHECK(l.on(life_event::end_of_input).next == life::draining);
    CHECK(l.on(life_event::signal).close_queue);
    CHECK(l.stopping());
    for (const life_event event : all_life_events)
        CHECK(l.on(event).next == life::stopping);
    CHECK(l.stopping());
}

TEST_CASE("every state and event has a name for the log") {
    for (const life now : all_lives)
        CHECK(name(now) != "?");
    for (const life_event event : all_life_events)
        CHECK(name(event) != "?");
}
