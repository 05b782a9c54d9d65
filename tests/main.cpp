// The one doctest main of every test binary. It adds one rule to doctest's:
// a run that executes no test case fails. ctest runs each TEST_CASE as
// `binary --test-case=NAME`; a name that matches nothing (a `;` in it splits
// the ctest entry, for one) would otherwise pass while testing nothing.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

namespace {

unsigned test_cases_run = 0;
bool run_ended = false;

// A listener sees every event without printing anything itself.
struct count_test_cases : doctest::IReporter {
    explicit count_test_cases(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats& stats) override {
        test_cases_run = stats.numTestCasesPassingFilters;
        run_ended = true;
    }
    void test_case_start(const doctest::TestCaseData&) override {}
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats&) override {}
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("count_test_cases", 1, count_test_cases);

int main(int argc, char** argv) {
    doctest::Context context;
    context.applyCommandLine(argc, argv);
    const int result = context.run();
    // Listing, --help and --version are queries: no run, nothing to count.
    if (result == 0 && run_ended && test_cases_run == 0) {
        std::fprintf(stderr, "%s: no test case matched the filters: nothing was tested\n", argv[0]);
        return 1;
    }
    return result;
}
