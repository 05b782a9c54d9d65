// The orders among any whole lines, as check_line normalises them: the
// journal's path, for takes that are not all orders as they stand. Apart
// from order_lines.cpp, which the fuzz target compiles a second time.
#include "order_lines.hpp"

#include <coffee/line_protocol.hpp>

namespace coffee::consumer {

judged_lines judge_lines(std::string_view lines, bool stop_at_finish, order_batch& batch, const reject_line& reject) {
    const std::string_view all = lines;
    judged_lines judged;
    if (std::uint64_t count = 0; orders_as_they_stand(all, count)) {  // the common case, in one pass
        batch.count += count;
        judged.before_finish = batch.count;
        return judged;
    }
    std::size_t verbatim_end = 0;
    const auto copy_out = [&] {
        if (judged.verbatim) {
            batch.text.assign(all.substr(0, verbatim_end));
            judged.verbatim = false;
        }
    };
    const auto add = [&](std::string_view order) {
        if (judged.verbatim) {
            verbatim_end += order.size() + 1;
            ++batch.count;
        } else {
            batch.add(order);
        }
        if (!stop_at_finish || judged.finishes == 0)
            judged.before_finish = batch.count;
    };
    // Orders are mostly printable ASCII: then plain_order says what
    // check_line would, without looking at each byte again.
    const bool plain = plain_lines(all);
    while (!lines.empty()) {
        const std::size_t lf = lines.find('\n');
        const std::string_view raw = lines.substr(0, lf);
        lines.remove_prefix(lf + 1);
        if (plain && plain_order(raw)) {
            add(raw);
            continue;
        }
        const checked_line check = check_line(raw);
        if (check.problem != line_problem::none) {
            copy_out();
            reject(check, raw);
        } else if (check.text.empty() || check.text == finish_message) {
            copy_out();
            if (!check.text.empty())
                ++judged.finishes;
        } else if (judged.verbatim && check.text.size() == raw.size()) {
            add(raw);
        } else {
            copy_out();
            add(check.text);
        }
    }
    return judged;
}

}  // namespace coffee::consumer
