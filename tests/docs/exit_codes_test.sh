#!/usr/bin/env bash
# Each program's --help lists the exit codes its man page's EXIT STATUS
# section gives (the list is generated from it at build time: this reads
# both independently and compares the codes, each mode's for the launcher).
# Usage: exit_codes_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
failed=0

# The codes of the section: the .B/.BI line after each .TP, in the
# common part and in the subsection `mode` (all of it when none).
man_codes() {
  awk -v mode="$2" '
    /^\.SH "?EXIT STATUS/ { on = 1; part = ""; next }
    /^\.SH/ { on = 0 }
    !on { next }
    /^\.SS/ { part = $2; next }
    /^\.TP/ { tp = 1; next }
    tp { tp = 0; if (part == "" || part == mode) { sub(/^\.B[IR]? /, ""); gsub(/[ "]/, ""); print } }
  ' "$1" | sed 's/,/\n/g' | sort -u
}

help_codes() {
  "$@" --help | awk '/^Exit codes:/ { on = 1; next } on && /^  [0-9]/ { sub(/^  /, ""); split($0, f, "  "); gsub(/ /, "", f[1]); print f[1] }' |
    sed 's/,/\n/g' | sort -u
}

check() {
  local what=$1 man=$2 mode=$3; shift 3
  local want got
  want=$(man_codes "$man" "$mode")
  got=$(help_codes "$@")
  if [[ -z $want ]]; then
    echo "FAIL: $what: no exit codes found in $man"; failed=1
  elif [[ $want != "$got" ]]; then
    echo "FAIL: $what: --help lists [$(echo $got)], the man page [$(echo $want)]"; failed=1
  else
    echo "ok: $what: $(echo $got)"
  fi
}

check coffee-consumer "$src/systemd/man/coffee-consumer.1" "" "$build/consumer/coffee-consumer"
check coffee-producer "$src/systemd/man/coffee-producer.1" "" "$build/producer/coffee-producer"
for mode in demo pipe serve; do
  check "coffee-launcher $mode" "$src/systemd/man/coffee-launcher.1" "$mode" "$build/launcher/coffee-launcher" "$mode"
done
exit $failed
