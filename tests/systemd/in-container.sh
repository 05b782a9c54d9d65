#!/bin/sh
# The coffee shop under a real systemd: tests 1-7 of the systemd issue (and 8: restarts), run by
# nspawn-harness.sh INSIDE the throw-away container (as root, cwd /coffee/out):
#   in-container.sh DEB SRC_DIR
# DEB is the package built by build-deb.sh; SRC_DIR the source tree (for the
# crontab line in docs/systemd.md). Everything here happens on the container's tmpfs
# overlay and vanishes with it.
set -u
deb=${1:?usage: in-container.sh DEB SRC_DIR} src=${2:?usage: in-container.sh DEB SRC_DIR}
. "$src/tests/systemd/lib.sh"

fifo=/run/coffee-shop/orders
svc=coffee-consumer.service
sock=coffee-consumer.socket
dropins=/etc/systemd/system/$svc.d

consumer_args() {  # ARGS: the unit's COFFEE_CONSUMER_ARGS for the next start
    mkdir -p "$dropins"
    printf '[Service]\nEnvironment="COFFEE_CONSUMER_ARGS=%s"\n' "$*" > "$dropins/50-test-args.conf"
    systemctl daemon-reload
}

section "install the package"
# Test speed only: skip man-db's 4 s index rebuild that dpkg triggers.
rm -f /var/lib/man-db/auto-update
check "dpkg -i ${deb##*/}" dpkg -i "$deb"
check "postinst created the group 'coffee' (sysusers.d)" getent group coffee
check "units are known to systemd" systemctl cat $sock $svc coffee-producer.service coffee-producer.timer >/dev/null
# The container's /etc/passwd starts as the host's: test users get names no
# host user has (a random suffix, checked with getent), so a host with its
# own 'alice' does not break the suite.
new_user_name() {  # PREFIX: PREFIX-<8 hex digits>, not yet in passwd or group
    while :; do
        _n="$1-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
        getent passwd "$_n" >/dev/null || getent group "$_n" >/dev/null || { echo "$_n"; return; }
    done
}
alice=$(new_user_name ct-alice)
mallory=$(new_user_name ct-mallory)
echo "test users: $alice (in coffee), $mallory (not)"
useradd -M -N -G coffee -s /bin/sh "$alice"
useradd -M -N -s /bin/sh "$mallory"
check "$alice is in coffee, $mallory is not" sh -c 'id -nG "$1" | grep -qw coffee && ! id -nG "$2" | grep -qw coffee' sh "$alice" "$mallory"

# Test-only settings, on top of the shipped unit: a short brew so 100 orders
# take a moment, and a 2 s watchdog so that any missed WATCHDOG=1 during the
# suite kills the shop (and the "same MainPID" checks below catch it).
mkdir -p "$dropins"
printf '[Service]\nWatchdogSec=2s\n' > "$dropins/40-test-watchdog.conf"
if ldd /usr/bin/coffee-consumer 2>/dev/null | grep -q 'lib[at]san'; then
    # Sanitizer build (ctest of the ci preset): LeakSanitizer needs ptrace and
    # ASan its core-dump setrlimit, which the units' SystemCallFilter= refuse.
    echo "sanitizer build: ASAN_OPTIONS=detect_leaks=0:disable_coredump=0 for both services"
    for d in "$dropins" /etc/systemd/system/coffee-producer.service.d; do
        mkdir -p "$d"
        printf '[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0:disable_coredump=0\n' > "$d/45-test-sanitizer.conf"
    done
fi
consumer_args "--baristas 2 --brew-time 0"

section "1. enable the socket: FIFO 0620 root:coffee, service waits for the first order"
check "systemctl enable --now $sock" systemctl enable --now $sock
check "$sock is active" test "$(systemctl is-active $sock)" = active
check "$fifo is a FIFO" test -p $fifo
ls -ld /run/coffee-shop $fifo
check "$fifo mode 0620, owner root, group coffee" test "$(stat -c '%a %U %G' $fifo)" = "620 root coffee"
check "/run/coffee-shop mode 0755" test "$(stat -c %a /run/coffee-shop)" = 755
check "PID 1 holds the FIFO open" sh -c "ls -l /proc/1/fd | grep -q ' $fifo\$'"
check "$svc inactive before any order" test "$(systemctl is-active $svc)" = inactive

section "2. $alice (group coffee) sends 100 orders"
t=$(date +%s.%N)
seq 1 100 | sed 's/^/order-/' > /tmp/orders
as_user "$alice" coffee-producer < /tmp/orders; rc=$?
check "coffee-producer as $alice exits 0 (got $rc)" test $rc = 0
check "socket activation started $svc" wait_until 10 is_active $svc
check "100 orders served (journalctl -u coffee-consumer)" wait_until 20 served_at_least 'order-[0-9]+' 100
echo "100 orders from producer start to journal: $(elapsed "$t")s"
check "each of the 100 exactly once" test "$(served 'order-[0-9]+' | sort | uniq | wc -l)" = 100
check "no order twice" test "$(served 'order-[0-9]+' | wc -l)" = 100
check "STATUS= reaches 'served 100'" wait_until 5 sh -c "systemctl show -p StatusText --value $svc | grep -q 'served 100,'"
systemctl status --no-pager $svc | sed -n '1,8p'
check "systemctl status shows the STATUS text" sh -c "systemctl status --no-pager $svc | grep -qE 'Status: \"served [0-9]+, waiting [0-9]+, pipe [0-9]+/[0-9]+ KiB, baristas [0-9]+/[0-9]+ busy, rejected [0-9]+\"'"
pid=$(main_pid)
user=$(stat -c %U "/proc/$pid" 2>/dev/null)
echo "main PID $pid runs as '$user' (uid $(stat -c %u "/proc/$pid" 2>/dev/null))"
check "runs as a dynamic user, not root" test -n "$user" -a "$user" != root

section "3. $mallory (not in coffee) is refused"
err=$(as_user "$mallory" coffee-producer intruder-1 2>&1 </dev/null); rc=$?
echo "coffee-producer as $mallory: exit $rc: $err"
check "exit 77 (permission denied)" test $rc = 77
check "the error says why (permission / group coffee)" sh -c "echo \"\$1\" | grep -qiE 'permission|group'" sh "$err"
err=$(as_user "$mallory" sh -c "echo intruder-2 > $fifo" 2>&1); rc=$?
echo "shell write as $mallory: exit $rc: $err"
check "a plain shell write is refused too" sh -c "test $rc != 0 && echo \"\$1\" | grep -q 'Permission denied'" sh "$err"
sleep 0.5
check "nothing from $mallory got in" test "$(journal $svc | grep -c intruder)" = 0
check "$mallory could not put a file in /run/coffee-shop" test "$(ls -A /run/coffee-shop)" = orders

section "4. stop with orders waiting: exit 0, journal and pipe served after the next start, none twice"
# 300 orders of ~1 KB: more than the consumer holds (takes of 4 KiB while brewing,
# queue of 1 batch) plus the pipe (PipeSize=64K), so at the stop some are in the
# consumer's journal (taken, and the whole lines the stop moves from the pipe), and
# some still in the blocked producer, which then writes them into the pipe.
consumer_args "--baristas 1 --brew-time 200ms --queue-size 1"
systemctl reset-failed $svc $sock
systemctl restart $svc
pad=$(head -c 1000 /dev/zero | tr '\0' x)
seq 1 300 | sed "s/\$/-$pad/; s/^/slow-/" > /tmp/slow-orders
as_user "$alice" coffee-producer --wait 60s < /tmp/slow-orders > /tmp/slow-producer.log 2>&1 &
producer=$!
slow='slow-[0-9]+-x+'
check "a few brewed" wait_until 10 served_at_least "$slow" 2
waiting() { [ "$(status_number waiting)" -gt 0 ] 2>/dev/null; }
check "STATUS= shows orders waiting" wait_until 3 waiting
echo "before stop: STATUS '$(status_text)'"
consumer_args "--baristas 1 --brew-time 0"   # for the next start
since=$(date '+%Y-%m-%d %H:%M:%S')
pid=$(main_pid)
t=$(date +%s.%N)
systemctl stop $svc; rc=$?
stop_s=$(elapsed "$t")
echo "systemctl stop took ${stop_s}s"
check "systemctl stop succeeds" test $rc = 0
check "stopped well inside TimeoutStopSec" awk -v s="$stop_s" 'BEGIN { exit !(s < 10) }'
deactivated_ok() { journal $svc --since "$since" | grep -q 'Deactivated successfully'; }
no_failure() { ! journal $svc --since "$since" | grep -qE 'Failed with result|status=[1-9]'; }
check "the consumer exited 0 ('Deactivated successfully')" deactivated_ok
check "no failure result" no_failure
journal $svc --since "$since" | grep -iE 'journal' | head -n 5
saved=$(journal $svc --since "$since" | sed -n 's/^\([0-9]*\) orders wait in the journal.*/\1/p' | head -n 1)
old_served=$(journalctl _PID="$pid" -o cat --no-pager | grep -cE "^($slow)\$")
from_pipe=$((300 - old_served - ${saved:-0}))
echo "stopped instance served $old_served, left ${saved:-0} in its journal; $from_pipe were still in the producer"
check "some orders wait in the journal" test "${saved:-0}" -gt 0
check "some orders were still in the producer" test "$from_pipe" -gt 0
# The socket is still listening and the pipe still holds orders, so PID 1
# starts the consumer again by itself (systemctl warned about exactly that).
new_pid() { _p=$(main_pid); [ "$_p" != 0 ] && [ "$_p" != "$pid" ]; }
check "the socket starts the shop again by itself (orders in the pipe)" wait_until 10 new_pid
check "all 300 served in the end" wait_until 30 served_at_least "$slow" 300
wait $producer; rc=$?
sed 's/^/  producer: /' /tmp/slow-producer.log
check "the producer, blocked on the full pipe meanwhile, exits 0 (got $rc)" test $rc = 0
check "none twice: exactly 300 lines" test "$(served_count "$slow")" = 300
check "300 different orders" test "$(served "$slow" | sort -u | wc -l)" = 300
check "served in the order sent (the journal first, then the pipe)" \
    test "$(served "$slow" | sed 's/^slow-\([0-9]*\)-.*/\1/' | tr '\n' ' ')" = "$(seq 1 300 | tr '\n' ' ')"
journal_empty() { test ! -s /var/lib/private/coffee-shop/journal; }
check "the journal is compacted to nothing once all are served" wait_until 5 journal_empty

section "5. garbage into the FIFO: still active, warnings at warning priority only"
wait_until 5 is_active $svc
pid_before=$(systemctl show -p MainPID --value $svc)
restarts_before=$(systemctl show -p NRestarts --value $svc)
rejected_before=$(status_number rejected)
since=$(date '+%Y-%m-%d %H:%M:%S')
{
    printf 'bad\001control\n'
    printf 'bad-utf8-\377\376\n'
    printf 'nul\000inside\n'
    head -c 5000 /dev/zero | tr '\0' x; printf '\n'
    printf '\033[31mescape\n'
    printf '\r\n\n   \n'
    printf 'after-garbage\n'
} | fifo_write $fifo
check "the order after the garbage is served" wait_until 10 served_at_least 'after-garbage' 1
check "$svc still active" test "$(systemctl is-active $svc)" = active
check "same process (no crash, no restart)" test "$(systemctl show -p MainPID --value $svc)" = "$pid_before"
check "NRestarts unchanged" test "$(systemctl show -p NRestarts --value $svc)" = "$restarts_before"
check "STATUS counts 5 more rejected" wait_until 5 sh -c "test \"\$(systemctl show -p StatusText --value $svc | sed -n 's/.*rejected \\([0-9]*\\).*/\\1/p')\" -ge $(( ${rejected_before:-0} + 5 ))"
echo "journalctl -p warning -u coffee-consumer since the garbage:"
journalctl -u $svc -p warning -o short-precise --no-pager --since "$since" | sed 's/^/  /'
nwarn=$(journalctl -u $svc -p warning -o cat --no-pager --since "$since" | wc -l)
check "5 warnings, one per bad line (got $nwarn)" test "$nwarn" = 5
check "all of them at priority 4 (warning)" sh -c "test \"\$(journalctl -u $svc -p warning -o export --no-pager --since '$since' | grep -c '^PRIORITY=')\" = \"\$(journalctl -u $svc -p warning..warning -o export --no-pager --since '$since' | grep -c '^PRIORITY=')\""
check "orders and routine logs are not at warning priority" sh -c "! journalctl -u $svc -p warning -o cat --no-pager | grep -qE '^(order-|slow-)|Processing order'"
check "served orders are in the journal at info" sh -c "journalctl -u $svc -p info..info -o cat --no-pager | grep -qx after-garbage"

section "6. coffee-producer.timer fires; the crontab line of docs/systemd.md delivers under cron's environment"
menu='(Espresso|Arabica|Latte|Cappuccino) #[0-9]+'
before=$(served_count "$menu")
mkdir -p /etc/systemd/system/coffee-producer.timer.d
printf '[Timer]\nOnCalendar=\nOnActiveSec=1s\nRandomizedDelaySec=0\nAccuracySec=100ms\n' \
    > /etc/systemd/system/coffee-producer.timer.d/50-test.conf
systemctl daemon-reload
check "systemd-analyze verify with the test drop-in" systemd-analyze verify coffee-producer.timer
t=$(date +%s.%N)
check "start coffee-producer.timer" systemctl start coffee-producer.timer
check "the timer's 4 orders (--count 4) are served" wait_until 15 served_at_least "$menu" $((before + 4))
echo "timer: start to 4 orders served: $(elapsed "$t")s"
check "coffee-producer.service succeeded (DynamicUser + SupplementaryGroups=coffee)" \
    test "$(systemctl show -p Result,ExecMainStatus --value coffee-producer.service | tr '\n' ' ')" = "success 0 "
journal coffee-producer.service | tail -n 3

line=""
for doc in "$src/docs/systemd.md"; do
    [ -f "$doc" ] || continue
    line=$(grep -E '^([0-9*/,-]+[[:space:]]+){5}/usr/bin/coffee-producer' "$doc" | head -n 1)
    [ -n "$line" ] && break
done
check "docs/systemd.md has a crontab line for coffee-producer" test -n "$line"
cmd=$(printf '%s\n' "$line" | sed -E 's/^([^[:space:]]+[[:space:]]+){5}//')
echo "crontab line: $line"
echo "command part: $cmd"
before=$(served_count "$menu")
out=$(setpriv --reuid="$alice" --regid="$(id -g "$alice")" --init-groups env -i PATH=/usr/bin:/bin HOME=/ sh -c "$cmd" </dev/null 2>&1); rc=$?
check "under env -i PATH=/usr/bin:/bin HOME=/ as $alice: exit 0 (got $rc)" test $rc = 0
check "silent on success (cron would mail any output): '$out'" test -z "$out"
check "its orders are served" wait_until 15 served_at_least "$menu" $((before + 4))

section "7. systemd-analyze: verify and security inside the booted system"
man=yes
command -v man >/dev/null 2>&1 || { man=no; echo "NOTE: no man(1) here: verify cannot check Documentation=man:"; }
check "systemd-analyze verify (man pages: $man) on every installed unit" \
    systemd-analyze verify --man=$man /usr/lib/systemd/system/coffee-consumer.socket /usr/lib/systemd/system/coffee-consumer.service \
    /usr/lib/systemd/system/coffee-producer.service /usr/lib/systemd/system/coffee-producer.timer
online=$(systemd-analyze security --no-pager $svc 2>&1 | sed -n 's/.*Overall exposure level for coffee-consumer.service: \([0-9.]*\).*/\1/p')
offline=$(systemd-analyze security --offline=true --no-pager /usr/lib/systemd/system/$svc 2>&1 | sed -n 's/.*Overall exposure level for coffee-consumer.service: \([0-9.]*\).*/\1/p')
echo "exposure of $svc: running system $online, offline $offline"
check "exposure in the running system <= 1.5" awk -v s="${online:-99}" 'BEGIN { exit !(s <= 1.5) }'
check "same as the offline check" test -n "$online" -a "$online" = "$offline"
echo "producer: $(systemd-analyze security --no-pager coffee-producer.service 2>&1 | sed -n 's/^→ //p')"

section "8. restarts: a crash restarts the shop, a usage error does not; closing the shop"
systemctl reset-failed $svc
pid=$(main_pid)
restarts=$(systemctl show -p NRestarts --value $svc)
kill -KILL "$pid"
restarted() { _p=$(main_pid); [ "$_p" != 0 ] && [ "$_p" != "$pid" ] && is_active $svc; }
check "SIGKILL: Restart=on-failure brings the shop back (RestartSec=2s)" wait_until 10 restarted
check "NRestarts went up by one" test "$(systemctl show -p NRestarts --value $svc)" = $((restarts + 1))
echo after-crash | as_user "$alice" coffee-producer
check "orders are served after the crash" wait_until 5 served_at_least after-crash 1

consumer_args "--baristas 1 --no-such-option"
systemctl restart $svc 2>/dev/null
failed_64() { [ "$(systemctl show -p ExecMainStatus --value $svc)" = 64 ] && ! is_active $svc; }
check "a usage error exits 64" wait_until 5 failed_64
restarts=$(systemctl show -p NRestarts --value $svc)
sleep 2.5
check "... and is not restarted (RestartPreventExitStatus=64)" test "$(systemctl show -p NRestarts --value $svc)" = "$restarts" -a "$(systemctl is-active $svc)" != active
check "the socket stays up meanwhile" is_active $sock
consumer_args "--baristas 2 --brew-time 0"
systemctl reset-failed $svc
echo after-usage-error | as_user "$alice" coffee-producer
check "fixed config: the next order starts the shop again" wait_until 10 served_at_least after-usage-error 1

check "closing the shop: stop socket and service" systemctl stop $sock $svc
check "RemoveOnStop=yes: the FIFO is gone" test ! -e $fifo
t=$(date +%s.%N)
as_user "$alice" coffee-producer --wait 1s late-order 2>/dev/null </dev/null; rc=$?
check "a producer waits --wait 1s, then exits 69 (got $rc after $(elapsed "$t")s)" test $rc = 69
check "... and created nothing in its place" test ! -e $fifo
check "the socket starts again (FIFO re-created)" systemctl start $sock
check "FIFO back as 0620 root:coffee" test "$(stat -c '%a %U %G %F' $fifo)" = "620 root coffee fifo"
echo reopened | as_user "$alice" coffee-producer
check "orders flow again" wait_until 10 served_at_least reopened 1

section "9. hostile customers: a member's flock() on the FIFO, an order forging a journal priority"
# A throw-away member of coffee, named so that it cannot clash with a user of
# the host (whose /etc/passwd the container's overlay starts from).
member=
for _try in 1 2 3 4 5; do
    _name=cfs$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')
    getent passwd "$_name" >/dev/null || getent group "$_name" >/dev/null || { member=$_name; break; }
done
check "a free name for a throw-away member of coffee ($member)" sh -c "[ -n '$member' ] && useradd -M -N -G coffee -s /bin/sh '$member'"
systemctl stop $svc
restarts=$(systemctl show -p NRestarts --value $svc)
check "$svc stopped, the socket still holds the FIFO" sh -c "! systemctl -q is-active $svc && systemctl -q is-active $sock"
# The member opens the FIFO for writing (PID 1 holds the read end) and holds flock() on it.
as_user "$member" sh -c "exec 9>$fifo && flock -n 9 && echo locked && exec sleep 120" > /tmp/locker.out 2>&1 &
locker=$!
check "$member holds flock() on $fifo before the first order" wait_until 5 grep -qx locked /tmp/locker.out
echo locked-out-order | as_user "$alice" coffee-producer
check "the shop still starts and serves" wait_until 10 served_at_least locked-out-order 1
check "... without a restart (no exit 75)" test "$(systemctl show -p NRestarts --value $svc)" = "$restarts"
check "... and the socket is still active" is_active $sock
kill "$locker" 2>/dev/null; wait "$locker" 2>/dev/null

tag=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
since=$(date '+%Y-%m-%d %H:%M:%S')
echo "<0>panic-$tag" | as_user "$alice" coffee-producer
check "the order '<0>panic-$tag' is served" wait_until 10 served_at_least ".*panic-$tag" 1
journalctl -u $svc -o export --no-pager --since "$since" | grep -E '^(PRIORITY|MESSAGE)=' | grep -B1 "panic-$tag" | sed 's/^/  /'
check "journalctl -p 0 (emerg) is empty: no order sets its own priority" test -z "$(journalctl -p 0 -q -o cat --no-pager)"
userdel "$member" 2>/dev/null

section "end state"
no_watchdog() { ! journal $svc | grep -qi 'watchdog timeout'; }
check "watchdog (2 s) never fired during the suite" no_watchdog
check "no failed units of ours" sh -c "! systemctl --failed --no-legend --plain | grep -q coffee"
check "the socket is still active" test "$(systemctl is-active $sock)" = active
systemctl status --no-pager $sock $svc | head -n 20

section "10. kill -9 and a watchdog abort during a 10,000-order run: none lost"
# 4 producers x 2,500 fixed-width orders; the shop is killed twice while it
# works: SIGKILL, then a real watchdog timeout (the process is stopped, the 2 s
# WatchdogSec= runs out, PID 1 sends SIGABRT). Restart=on-failure brings it back
# each time; the journal and the socket's pipe keep every order.
# Served orders are counted in journald: no rate limit may drop them.
printf '[Service]\nLogRateLimitIntervalSec=0\n' > "$dropins/60-test-no-log-rate-limit.conf"
consumer_args "--baristas 2 --brew-time 1ms -q"
systemctl reset-failed $svc
systemctl restart $svc
for p in 0 1 2 3; do seq -f "k$p-%05g-end" 1 2500 > /tmp/k$p; done
kpids=""
for p in 0 1 2 3; do
    as_user "$alice" coffee-producer --wait 60s < /tmp/k$p > /tmp/k$p.log 2>&1 &
    kpids="$kpids $!"
done
korder='k[0-3]-[0-9]{5}-end'
check "orders are being served" wait_until 20 served_at_least "$korder" 1500
pid=$(main_pid)
kill -KILL "$pid"
echo "kill -9 of pid $pid after $(served_count "$korder") served"
restarted() { _p=$(main_pid); [ "$_p" != 0 ] && [ "$_p" != "$pid" ] && is_active $svc; }
check "restarted after kill -9" wait_until 15 restarted
n=$(served_count "$korder")
check "serving again" wait_until 20 served_at_least "$korder" $((n + 1000))
pid=$(main_pid)
since=$(date '+%Y-%m-%d %H:%M:%S')
kill -STOP "$pid"
echo "SIGSTOP of pid $pid after $(served_count "$korder") served: the 2 s watchdog runs out"
watchdog_fired() { journalctl -u $svc --since "$since" -o cat --no-pager | grep -qi 'watchdog timeout'; }
check "the watchdog fires" wait_until 15 watchdog_fired
kill -CONT "$pid" 2>/dev/null   # the pending SIGABRT is delivered
check "restarted after the watchdog abort" wait_until 20 restarted
journalctl -u $svc --since "$since" -o cat --no-pager | grep -iE 'watchdog|abort|journal|Main process' | head -n 8
rc_all=0
for k in $kpids; do wait "$k" || rc_all=1; done
check "the producers, blocked meanwhile, all exit 0" test $rc_all = 0
all_k() { [ "$(served "$korder" | sort -u | wc -l)" -ge 10000 ]; }
check "lost = 0: all 10,000 served in the end" wait_until 60 all_k
distinct=$(served "$korder" | sort -u | wc -l)
total=$(served_count "$korder")
torn=$(journal $svc | grep -E '^k[0-9]' | grep -cvE "^($korder)\$")
echo "10,000 orders, 2 kills: served $distinct distinct, lost $((10000 - distinct)), duplicated $((total - distinct)), torn $torn"
check "torn = 0" test "$torn" = 0
check "duplicates within the bound (one per barista per kill: 4)" test $((total - distinct)) -le 4

userdel "$alice"; userdel "$mallory"
summary
