#include "lifecycle.hpp"

namespace coffee::consumer {

std::string_view name(life state) noexcept {
    switch (state) {
    case life::taking:
        return "taking orders";
    case life::draining:
        return "draining";
    case life::stopping:
        return "stopping";
    }
    return "?";
}

std::string_view name(life_event event) noexcept {
    switch (event) {
    case life_event::finish_received:
        return "received 'finish'";
    case life_event::end_of_input:
        return "end of input";
    case life_event::signal:
        return "signal";
    case life_event::timeout:
        return "timeout";
    case life_event::stdout_failed:
        return "stdout failed";
    case life_event::journal_failed:
        return "the journal failed";
    }
    return "?";
}

}  // namespace coffee::consumer
