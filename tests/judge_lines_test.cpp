// The orders among whole lines, as the journal's path judges them: which
// are orders (normalised as check_line says), which are refused, where
// 'finish' falls, and when the text can be taken as it stands (no copy).
#include <order_lines.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using coffee::checked_line;
using coffee::line_problem;
using coffee::consumer::judge_lines;
using coffee::consumer::judged_lines;
using coffee::consumer::order_batch;

namespace {

struct judged {
    judged_lines result;
    order_batch batch;
    std::vector<std::string> rejected;  // the raw lines refused
    std::vector<line_problem> problems;
};

judged judge(std::string_view lines, bool stop_at_finish = false) {
    judged j;
    j.result = judge_lines(lines, stop_at_finish, j.batch, [&](const checked_line& check, std::string_view raw) {
        j.rejected.emplace_back(raw);
        j.problems.push_back(check.problem);
    });
    return j;
}

}  // namespace

TEST_CASE("lines that are all orders as they stand are taken verbatim: no copy, every one counted") {
    const auto j = judge("Latte\nEspresso #2\nCappuccino with oat milk\n");
    CHECK(j.result.verbatim);
    CHECK(j.batch.text.empty());  // the caller moves the take in
    CHECK(j.batch.count == 3);
    CHECK(j.result.before_finish == 3);
    CHECK(j.result.finishes == 0);
    CHECK(j.rejected.empty());
}

TEST_CASE("CRLF, blanks and tabs are normalised away: the orders are copied out, none lost") {
    const auto j = judge("Latte\r\n  Mocha  \n\tTea\t\nEspresso\n");
    CHECK_FALSE(j.result.verbatim);
    CHECK(j.batch.text == "Latte\nMocha\nTea\nEspresso\n");
    CHECK(j.batch.count == 4);
    CHECK(j.result.before_finish == 4);
}

TEST_CASE("an order as it stands after a normalised one is copied too, in order") {
    const auto j = judge("Latte\nMocha \nTea\n");
    CHECK(j.batch.text == "Latte\nMocha\nTea\n");
    CHECK(j.batch.count == 3);
}

TEST_CASE("empty and blank lines are no orders and no rejections") {
    const auto j = judge("\nLatte\n   \n\r\nTea\n");
    CHECK_FALSE(j.result.verbatim);
    CHECK(j.batch.text == "Latte\nTea\n");
    CHECK(j.batch.count == 2);
    CHECK(j.rejected.empty());
}

TEST_CASE("malformed lines are refused, each once, with its problem, and the orders around them kept") {
    const std::string too_long(coffee::max_order_bytes + 1, 'x');
    const std::string lines = std::string{"Latte\nbad\x01" "byte\n"} + too_long + "\nTea\n\xff\xfe\nMocha\n";
    const auto j = judge(lines);
    CHECK_FALSE(j.result.verbatim);
    CHECK(j.batch.text == "Latte\nTea\nMocha\n");
    CHECK(j.batch.count == 3);
    REQUIRE(j.rejected.size() == 3);
    CHECK(j.problems[0] == line_problem::control_char);
    CHECK(j.problems[1] == line_problem::too_long);
    CHECK(j.problems[2] == line_problem::invalid_utf8);
    CHECK(j.rejected[0] == "bad\x01" "byte");
}

TEST_CASE("finish: the orders before it are counted apart when asked to stop there, and it is no order") {
    const auto j = judge("Latte\nTea\nfinish\nMocha\nfinish\n", true);
    CHECK(j.batch.text == "Latte\nTea\nMocha\n");  // the journal keeps every order, even after finish
    CHECK(j.batch.count == 3);
    CHECK(j.result.before_finish == 2);
    CHECK(j.result.finishes == 2);
}

TEST_CASE("finish not asked for: counted, and every order is before it") {
    const auto j = judge("Latte\nfinish\nMocha\n", false);
    CHECK(j.batch.count == 2);
    CHECK(j.result.before_finish == 2);
    CHECK(j.result.finishes == 1);
}

TEST_CASE("finish with blanks or CRLF is still finish, and 'finished' is an order") {
    const auto j = judge(" finish\r\nfinished\n", true);
    CHECK(j.result.finishes == 1);
    CHECK(j.batch.text == "finished\n");
    CHECK(j.result.before_finish == 0);
}

TEST_CASE("UTF-8 orders are orders as they stand, counted one per line") {
    const auto j = judge("Caf\xc3\xa9 cr\xc3\xa8me\n\xe2\x98\x95\n");
    CHECK(j.result.verbatim);
    CHECK(j.batch.count == 2);
    CHECK(j.rejected.empty());
}
