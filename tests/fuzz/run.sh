#!/usr/bin/env bash
# Builds the "fuzz" preset (clang, libFuzzer, ASan+UBSan) and fuzzes each
# TARGET for SECONDS (default 20) over a scratch copy of its seed corpus
# (tests/fuzz/corpus/TARGET/). Crashes, leaks and inputs over the memory
# limits are kept in build/fuzz/artifacts/TARGET-* and make this exit
# non-zero; every target runs, whatever became of the one before.
#   tests/fuzz/run.sh [SECONDS [TARGET...]]
# Targets: line_reader_fuzz (the line reader and validator), order_lines_fuzz
# (the one-pass line check against check_line), journal_scanner_fuzz (the
# journal's scanner over garbage); default: all three.
set -euo pipefail

seconds=${1:-20}
shift || true
targets=("$@")
((${#targets[@]} > 0)) || targets=(line_reader_fuzz order_lines_fuzz journal_scanner_fuzz)
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${targets[@]}"

work=$(mktemp -d /tmp/coffee-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p build/fuzz/artifacts

failed=0
for target in "${targets[@]}"; do
    case $target in
    # -max_len above 4096 so that over-long lines are reachable.
    line_reader_fuzz) options=(-max_len=20000) ;;
    # Padded and repeated, its inputs reach 8 x (20000 + 8191) bytes.
    order_lines_fuzz) options=(-max_len=20000) ;;
    # Memory bounded: one record (at most 1 MiB) plus a read buffer, whatever
    # the bytes claim; ASan's own memory comes on top of the RSS limit.
    journal_scanner_fuzz) options=(-max_len=65536 -rss_limit_mb=1024 -malloc_limit_mb=16) ;;
    *) echo "run.sh: no such fuzz target: $target" >&2; exit 64 ;;
    esac
    mkdir -p "$work/$target"
    cp tests/fuzz/corpus/"$target"/* "$work/$target/"
    status=0
    build/fuzz/tests/fuzz/"$target" \
        -max_total_time="$seconds" -timeout=10 "${options[@]}" \
        -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/"$target"- \
        "$work/$target" >"$work/$target.log" 2>&1 || status=$?

    grep -E '^(INFO: Seed|#[0-9]+ +DONE)|ERROR|SUMMARY|Done [0-9]+ runs' "$work/$target.log" || true
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$target.log")
    echo "$target: ${runs:-?} executions in ${seconds}s, ${rate:-?} exec/s, corpus $(ls "$work/$target" | wc -l) inputs"
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$work/$target.log"
        echo "$target FAILED (exit $status); reproducer in build/fuzz/artifacts/$target-*" >&2
        failed=$status
    else
        echo "$target: no crash, no leak"
    fi
done
exit "$failed"
