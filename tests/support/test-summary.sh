#!/usr/bin/env bash
# The end of `./setup.sh test`: for each suite, every skipped test with the
# reason it gave ("SKIP: ..." in its output), every "NOTE: ..." line (a check a
# test could not make here), every failed test, then one count line per suite
# and, last, the total, all taken from the JUnit files ctest writes:
#   asan+ubsan: 205 passed, 0 failed, 6 skipped
#   total: 290 passed, 0 failed, 7 skipped
# A suite whose JUnit file is missing did not run (its configure or build
# failed): it is named, and the last line then says "incomplete:", not "total:".
# Usage: test-summary.sh NAME JUNIT.xml STATUS [NAME JUNIT.xml STATUS]...
#   STATUS: the exit status of the suite's run (its cmake --workflow).
#   JUNIT.xml "-": the suite is one test (a fuzz target's run), passed if STATUS is 0.
# Exits 0 when every suite ran and passed, else 1.
set -euo pipefail
(($# > 0 && $# % 3 == 0)) || { echo "usage: $0 NAME JUNIT.xml STATUS..." >&2; exit 64; }

counts=()   # "NAME: N passed, N failed, N skipped", one per suite
passed=0 failed=0 skipped=0 missing=0 bad=0
while (($# > 0)); do
  name=$1 file=$2 status=$3
  shift 3
  if [[ $file == - ]]; then
    p=$((status == 0)) f=$((status != 0))
    if ((f)); then echo "$name: FAILED (exit $status: see above)"; bad=1; fi
    passed=$((passed + p)) failed=$((failed + f))
    counts+=("$name: $p passed, $f failed, 0 skipped")
    continue
  fi
  if [[ ! -f $file ]]; then
    echo "$name: NOT RUN: no test results in '$file' (its configure or build failed, exit $status: see above)"
    counts+=("$name: not run")
    missing=1 bad=1
    continue
  fi
  # One line "P F S" last; before it the skips, notes and failures to print.
  out=$(awk -v file="$file" -v name="$name" '
    function unescape(s) {
      gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&quot;/, "\"", s); gsub(/&apos;/, "\047", s); gsub(/&amp;/, "\\&", s)
      return s
    }
    function attr(line, key,    m) {
      if (!match(line, key "=\"[^\"]*\"")) return ""
      return substr(line, RSTART + length(key) + 2, RLENGTH - length(key) - 3)
    }
    /<testcase / { test = unescape(attr($0, "name")); status = attr($0, "status"); why = ""; reason = "" }
    # ctest marks a skip "notrun" with the message SKIP_REGULAR_EXPRESSION_MATCHED
    # or SKIP_RETURN_CODE=N; any other "notrun" (a missing executable, a
    # failed fixture) is a failure, as ctest itself counts it.
    /<skipped / { why = unescape(attr($0, "message")) }
    {
      line = $0; sub(/^[ \t]*<system-out>/, "", line)
      if (line ~ /^SKIP: /) reason = reason (reason == "" ? "" : "; ") unescape(substr(line, 7))
      else if (line ~ /^NOTE: /) notes[++n] = test ": " unescape(substr(line, 7))
    }
    /<\/testcase>/ {
      if (status == "run") ++p
      else if (status == "disabled") skips[++s] = test ": (disabled)"
      else if (status == "notrun" && why ~ /^SKIP_(REGULAR_EXPRESSION_MATCHED|RETURN_CODE)/)
        skips[++s] = test ": " (reason == "" ? "(the test gave no reason)" : reason)
      else fails[++f] = test (status == "notrun" ? " (not run: " why ")" : "")
    }
    END {
      if (s > 0) { printf "%s: skipped tests, and why (%s):\n", name, file; for (i = 1; i <= s; ++i) print "  " skips[i] }
      if (n > 0) { printf "%s: checks not made here:\n", name; for (i = 1; i <= n; ++i) print "  " notes[i] }
      if (f > 0) { printf "%s: FAILED tests:\n", name; for (i = 1; i <= f; ++i) print "  " fails[i] }
      if (p + f + s == 0) printf "%s: no test in %s\n", name, file
      printf "%d %d %d\n", p, f, s
    }' "$file")
  [[ $out == *$'\n'* ]] && printf '%s\n' "${out%$'\n'*}"
  read -r p f s <<<"${out##*$'\n'}"
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  # A run that failed with no failed test in its file (ctest itself failed) is a failure too.
  if ((f > 0 || status != 0 || p + s == 0)); then bad=1; fi
  if ((f == 0 && status != 0)); then echo "$name: ctest exited $status with no failed test in '$file': see above"; fi
  counts+=("$name: $p passed, $f failed, $s skipped")
done
printf '%s\n' "${counts[@]}"
echo "$( ((missing)) && echo incomplete || echo total): $passed passed, $failed failed, $skipped skipped"
exit $bad
