#!/usr/bin/env bash
# Builds the "fuzz" preset (clang, libFuzzer, ASan+UBSan) and fuzzes the line
# reader for N seconds (default 60) over a scratch copy of the seed corpus.
# Crashes and leaks are kept in build/fuzz/artifacts/ and make this exit non-zero.
#   tests/fuzz/run.sh [SECONDS]
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target line_reader_fuzz

work=$(mktemp -d /tmp/coffee-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" build/fuzz/artifacts
cp tests/fuzz/corpus/* "$work/corpus/"

status=0
# -max_len above 4096 so that over-long lines are reachable.
build/fuzz/tests/fuzz/line_reader_fuzz \
    -max_total_time="$seconds" -max_len=20000 -timeout=10 \
    -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/ \
    "$work/corpus" >"$work/log" 2>&1 || status=$?

grep -E '^(INFO: Seed|#[0-9]+ +DONE)|ERROR|SUMMARY|Done [0-9]+ runs' "$work/log" || true
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
echo "line_reader_fuzz: ${runs:-?} executions in ${seconds}s, ${rate:-?} exec/s, corpus $(ls "$work/corpus" | wc -l) inputs"
if [ "$status" -ne 0 ]; then
    tail -n 60 "$work/log"
    echo "line_reader_fuzz FAILED (exit $status); reproducer in build/fuzz/artifacts/" >&2
    exit "$status"
fi
echo "line_reader_fuzz: no crash, no leak"
