#!/bin/sh
# Host-side checks of the installed units and man pages, no systemd needed:
#   check-units.sh BUILD_DIR OUT_DIR
# 1. `cmake --install` into a DESTDIR with prefix /usr (as the .deb does);
# 2. systemd-analyze verify on every unit (ExecStart= pointed into the staging
#    tree, since nothing is installed on the host; the container test verifies
#    the real installation);
# 3. systemd-analyze security --offline: exposure of coffee-consumer.service <= 1.5;
# 4. the man pages render without warnings and name every option --help lists
#    (for coffee-launcher: its own --help and each MODE --help).
set -u
build=${1:?usage: check-units.sh BUILD_DIR OUT_DIR} out=${2:?usage: check-units.sh BUILD_DIR OUT_DIR}
max_exposure=1.5
fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
command -v systemd-analyze >/dev/null 2>&1 || { echo "SKIP: systemd-analyze not found (apt-get install systemd)"; exit 77; }

stage=$out/stage
rm -rf "$stage" "$out/verify"
mkdir -p "$out/verify"
out=$(readlink -f "$out")
DESTDIR=$stage "${CMAKE:-cmake}" --install "$build" --prefix /usr >"$out/install.log" 2>&1 \
    || { cat "$out/install.log"; echo "FAIL: cmake --install"; exit 1; }
units=$stage/usr/lib/systemd/system
for u in coffee-consumer.socket coffee-consumer.service coffee-producer.service coffee-producer.timer; do
    [ -f "$units/$u" ] && pass "installed $u" || fail "not installed: /usr/lib/systemd/system/$u"
done
[ -f "$stage/usr/lib/sysusers.d/coffee-shop.conf" ] && pass "installed sysusers.d/coffee-shop.conf" || fail "no sysusers.d/coffee-shop.conf"
grep -q '^ExecStart=/usr/bin/coffee-consumer ' "$units/coffee-consumer.service" \
    && pass "ExecStart= names the installed /usr/bin/coffee-consumer" || fail "ExecStart= of coffee-consumer.service: $(grep ^ExecStart= "$units/coffee-consumer.service")"

for f in "$units"/coffee-*; do
    sed "s|^ExecStart=/usr/bin/|ExecStart=$stage/usr/bin/|" "$f" > "$out/verify/${f##*/}"
done
if systemd-analyze verify --man=no "$out"/verify/coffee-* >"$out/verify.log" 2>&1 && ! [ -s "$out/verify.log" ]; then
    pass "systemd-analyze verify: no complaints about any unit"
else
    cat "$out/verify.log"; fail "systemd-analyze verify"
fi

systemd-analyze security --offline=true --no-pager "$units/coffee-consumer.service" >"$out/security.txt" 2>&1
score=$(sed -n 's/.*Overall exposure level for coffee-consumer.service: \([0-9.]*\).*/\1/p' "$out/security.txt")
echo "offline exposure of coffee-consumer.service: ${score:-?} (limit $max_exposure)"
echo "${score:-}" > "$out/offline-exposure.txt"
if [ -n "$score" ] && awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }'; then
    pass "exposure $score <= $max_exposure"
else
    grep -E '^✗' "$out/security.txt"; fail "exposure '$score' > $max_exposure"
fi
systemd-analyze security --offline=true --no-pager "$units/coffee-producer.service" 2>&1 | sed -n 's/^→ //p'

# Every help text of a program: the launcher has one per mode besides its own.
help_texts() {
    "$stage/usr/bin/coffee-$1" --help
    if [ "$1" = launcher ]; then
        for mode in demo pipe serve; do "$stage/usr/bin/coffee-launcher" $mode --help; done
    fi
}
for prog in consumer producer launcher; do
    page=$stage/usr/share/man/man1/coffee-$prog.1
    [ -f "$page" ] || { fail "coffee-$prog.1 not installed"; continue; }
    if ! command -v groff >/dev/null 2>&1; then
        echo "NOTE: no groff here (apt-get install groff-base): coffee-$prog.1 not rendered"
    elif warn=$(groff -man -ww -z "$page" 2>&1) && [ -z "$warn" ]; then
        pass "coffee-$prog.1 renders without warnings"
    else
        fail "coffee-$prog.1: groff warnings: $warn"
    fi
    missing=""
    opts=$(help_texts $prog | grep -oE -- '--[a-z][a-z-]+' | sort -u)
    [ -n "$opts" ] || { fail "coffee-$prog: no options found in its --help"; continue; }
    for opt in $opts; do
        # whole names: --input is not documented by --input-file
        sed 's/\\-/-/g' "$page" | grep -qE -- "$opt([^a-z-]|\$)" || missing="$missing $opt"
    done
    [ -z "$missing" ] && pass "coffee-$prog.1 documents every option of --help ($(echo $opts | wc -w) options)" || fail "coffee-$prog.1 lacks:$missing"
done
echo "$fails failed"
[ $fails = 0 ]
