#!/usr/bin/env bash
# Prints, for each ctest JUnit file given, every skipped test with the reason
# it gave ("SKIP: ..." in its output) and every "NOTE: ..." line (a check a
# test could not make here), so that the end of `./setup.sh test` says what
# was not tested and why, where the user looks.
# Usage: report-skips.sh JUNIT.xml...
set -euo pipefail
found=0
for f in "$@"; do
  [[ -f $f ]] || { echo "report-skips: no test results in '$f'"; found=1; continue; }
  awk -v file="$f" '
    function unescape(s) {
      gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&quot;/, "\"", s); gsub(/&apos;/, "\047", s); gsub(/&amp;/, "\\&", s)
      return s
    }
    /<testcase / {
      match($0, /name="[^"]*"/); name = substr($0, RSTART + 6, RLENGTH - 7)
      skipped = ($0 ~ /status="notrun"/); reason = ""
    }
    /<skipped / { skipped = 1 }
    {
      line = $0; sub(/^[ \t]*<system-out>/, "", line)
      if (line ~ /^SKIP: /) reason = reason (reason == "" ? "" : "; ") unescape(substr(line, 7))
      else if (line ~ /^NOTE: /) notes[++n] = unescape(name) ": " unescape(substr(line, 7))
    }
    /<\/testcase>/ {
      if (skipped) skips[++s] = unescape(name) ": " (reason == "" ? "(the test gave no reason)" : reason)
    }
    END {
      if (s > 0) { printf "Skipped tests (%s), and why:\n", file; for (i = 1; i <= s; ++i) print "  " skips[i] }
      if (n > 0) { printf "Checks not made here (%s):\n", file; for (i = 1; i <= n; ++i) print "  " notes[i] }
      if (s == 0 && n == 0) printf "No test skipped, no check left out (%s).\n", file
    }' "$f"
done
exit $found
