# Helpers for the in-container tests (POSIX sh; source it).

SUITE_T0=$(date +%s.%N)
PASSES=0
FAILS=0

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

section() { echo; echo "=== $* (t=$(elapsed "$SUITE_T0")s)"; }

check() {  # DESCRIPTION COMMAND...: PASS/FAIL line, counted
    _desc=$1; shift
    if "$@"; then
        echo "PASS: $_desc"; PASSES=$((PASSES + 1))
    else
        echo "FAIL: $_desc"; FAILS=$((FAILS + 1))
    fi
}

summary() {
    echo
    echo "suite_seconds=$(elapsed "$SUITE_T0")"
    echo "$PASSES passed, $FAILS failed"
    [ "$FAILS" = 0 ]
}

wait_until() {  # TIMEOUT_S COMMAND...: poll every 0.1 s until COMMAND succeeds
    _end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -ge "$_end" ] && return 1
        sleep 0.1
    done
}

# Writes stdin into an EXISTING FIFO. A plain `>` while the socket is down
# would create a regular file in its place, and the socket could then never
# start again ("File exists"); conv=nocreat refuses that, timeout bounds a
# FIFO that nobody holds open.
fifo_write() {  # FIFO
    [ -p "$1" ] || { echo "fifo_write: $1 is not a FIFO" >&2; return 1; }
    timeout 5 dd of="$1" conv=nocreat,notrunc status=none
}

as_user() {  # USER COMMAND...: like a login of USER from cron or ssh, minus XDG_RUNTIME_DIR
    _u=$1; shift
    setpriv --reuid="$_u" --regid="$(id -g "$_u")" --init-groups \
        env -i PATH=/usr/bin:/bin HOME=/ LANG=C.UTF-8 "$@"
}

journal() {  # UNIT [journalctl args]: message texts only
    _u=$1; shift
    journalctl -u "$_u" -o cat --no-pager "$@" 2>/dev/null
}

# Orders served by the shop: the consumer writes each served order's text as
# one line to stdout, which StandardOutput=journal puts in the unit's journal.
served() {  # EXTENDED_REGEX: served lines matching ^REGEX$
    journal coffee-consumer.service | grep -E -- "^($1)\$"
}
served_count() { served "$1" | wc -l; }
served_at_least() { [ "$(served_count "$1")" -ge "$2" ]; }

status_text() { systemctl show -p StatusText --value coffee-consumer.service; }
status_number() {  # served|waiting|rejected: the number in STATUS=
    status_text | sed -n "s/.*$1 \\([0-9][0-9]*\\).*/\\1/p"
}

main_pid() { systemctl show -p MainPID --value coffee-consumer.service; }
is_active() { [ "$(systemctl is-active "$1")" = active ]; }
