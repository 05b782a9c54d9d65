#!/bin/sh
# ctest entry point: boot a throw-away systemd, install the .deb that
# build-deb.sh made, run in-container.sh (tests 1-7), print timings.
#   run-container-tests.sh SRC_DIR PKG_DIR OUT_DIR
set -u
src=${1:?usage: run-container-tests.sh SRC_DIR PKG_DIR OUT_DIR}
pkg=${2:?usage: run-container-tests.sh SRC_DIR PKG_DIR OUT_DIR}
out=${3:?usage: run-container-tests.sh SRC_DIR PKG_DIR OUT_DIR}
src=$(readlink -f "$src")
deb=$(ls "$pkg"/coffee-shop_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "FAIL: no coffee-shop_*.deb in $pkg (the systemd.package test makes it)"; exit 1; }
"$src/tests/systemd/nspawn-harness.sh" --out "$out" \
    --bind-ro "$src:/coffee/src" --bind-ro "$(dirname "$(readlink -f "$deb")"):/coffee/pkg" \
    -- sh /coffee/src/tests/systemd/in-container.sh "/coffee/pkg/${deb##*/}" /coffee/src
rc=$?
[ $rc = 77 ] && exit 77
cat "$out/test.log" 2>/dev/null
echo "--- timings:"
sed 's/^/  /' "$out/timings.txt"
if [ $rc != 0 ]; then
    echo "--- failed units:"; cat "$out/failed-units.txt" 2>/dev/null
    echo "--- journal tail (whole journal: $out/journal.txt):"; tail -n 60 "$out/journal.txt" 2>/dev/null
fi
exit $rc
