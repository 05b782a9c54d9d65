#!/bin/bash
# nspawn-harness.sh - run a command inside a throw-away systemd (PID 1 of a
# systemd-nspawn container) for the coffee shop's systemd tests.
#
#   nspawn-harness.sh [options] -- COMMAND [ARG...]
#
#   --out DIR           results (created; not below /run): result, timings.txt,
#                       console.log, test.log, journal.txt, units.txt,
#                       failed-units.txt.  Writable inside at /coffee/out.
#   --bind-ro HOST:CT   read-only bind into the container (repeatable), e.g.
#                       the source tree and the directory with the .deb.
#   --target UNIT       boot target (default basic.target: ~0.5 s instead of
#                       ~3 s, and no services the host happens to enable;
#                       sockets.target and timers.target are part of it).
#   --boot-timeout S    until `systemctl is-system-running` (default 60)
#   --test-timeout S    for COMMAND (default 150)
#   --timeout S         hard limit for everything, SIGKILL (default 300)
#
# COMMAND runs inside as root via nsenter, with a clean environment, cwd
# /coffee/out; its exit status is the test's.  Exit: 0 pass, 1 fail, 2 usage,
# 77 skip (this machine cannot boot systemd in a container; a line
# "SKIP: <reason>" says why).  COFFEE_SYSTEMD_TESTS=require turns skips into
# failures (for CI, which installs systemd-container and must not skip).
#
# Safety (why it may run on a developer's machine):
#   * systemd never boots on the real root: the container's / is an overlay
#     (systemd-nspawn --volatile=overlay) over a NON-recursive, READ-ONLY bind
#     of the host root; all writes land in a tmpfs and vanish.  Its /run, /tmp,
#     /dev, /proc, /sys are its own; --private-network.
#   * Everything runs in a private mount + pid namespace (unshare --kill-child)
#     under parent-death signals and `timeout`: if this script dies, even by
#     SIGKILL, the namespace, nspawn and the container die with it and the
#     mounts vanish.  /run and /tmp are covered by tmpfs there, so nspawn's
#     scratch files never reach the host's.
#   * On a host whose PID 1 is not systemd (CI sandboxes) we create our own
#     cgroup (coffee-nspawn-<time>-<pid>, in name=systemd v1 and/or cgroup2)
#     and give it to nspawn; afterwards we kill what is left in it (only our
#     processes) and remove it, and check that the host's mount table has not
#     changed.  On a systemd host, systemd-run --scope gives us a delegated
#     scope instead.
# Derived from shared/systemd-in-container/systemd-harness.sh (REPORT.md there
# explains the recipe and what failed on the way).

set -u
umask 022
SELF=$(readlink -f "$0")
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
log() { echo "[nspawn-harness +$(since "$T0")s] $*" >&2; }
skip() {
    echo "SKIP: $*" >&2
    if [ "${COFFEE_SYSTEMD_TESTS:-}" = require ]; then
        echo "COFFEE_SYSTEMD_TESTS=require: a skip is a failure here" >&2
        exit 1
    fi
    exit 77
}
usage() { echo "nspawn-harness: $*" >&2; exit 2; }
cg2_mount() { awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo; }
cg1_systemd_mount() { awk '$9 == "cgroup" && $NF ~ /(^|,)name=systemd(,|$)/ { print $5; exit }' /proc/self/mountinfo; }

# ---------------------------------------------------------------------------
# Inner part: PID 1 of a private pid + mount namespace.
# ---------------------------------------------------------------------------
inner() {
    local s=/run/coffee-nspawn out
    out=$s/out
    # This shell and every nsenter'd command live in <cgroup>/harness, so the
    # outer part finds and kills all of it.
    [ -n "$CG1" ] && echo $$ > "$CG1/harness/cgroup.procs"
    [ -n "$CG2" ] && echo $$ > "$CG2/harness/cgroup.procs"

    mount -n -t tmpfs -o mode=0755,size=64m,nosuid,nodev coffee-nspawn-run /run || skip "cannot mount a tmpfs (need CAP_SYS_ADMIN)"
    mkdir -p $s/out $s/root
    mount -n --bind "$OUT" $s/out || skip "cannot bind-mount $OUT"
    local -a binds=()
    local i=0 spec host
    for spec in $BINDS; do
        host=${spec%%:*}
        mkdir -p $s/bind$i
        mount -n --bind -o ro "$host" $s/bind$i || skip "cannot bind-mount $host"
        binds+=("--bind-ro=$s/bind$i:${spec#*:}")
        i=$((i + 1))
    done
    # After the binds: $OUT or a bind source may be below /tmp.
    mount -n -t tmpfs -o mode=1777,size=256m,nosuid,nodev coffee-nspawn-tmp /tmp || skip "cannot mount a tmpfs on /tmp"
    mount -n --bind / $s/root || skip "cannot bind-mount /"
    mount -n -o remount,bind,ro $s/root || skip "cannot make the bind of / read-only"
    if touch $s/root/.coffee-nspawn-write-test 2>/dev/null; then
        rm -f $s/root/.coffee-nspawn-write-test
        echo "FAIL: the container image (bind of /) is writable; refusing to boot" >&2
        exit 1
    fi

    local tb
    tb=$(now)
    (
        [ -n "$CG1" ] && echo $BASHPID > "$CG1/ct/cgroup.procs"
        [ -n "$CG2" ] && echo $BASHPID > "$CG2/ct/cgroup.procs"
        # --register=no --keep-unit: there is no machined/dbus on a host
        # without systemd.  --link-journal=no: the container shares the
        # host's machine-id.  --console=read-only: boot messages in console.log.
        exec systemd-nspawn --quiet -D $s/root --volatile=overlay \
            --register=no --keep-unit --link-journal=no --private-network \
            --console=read-only -M "coffee-$$-$RANDOM" \
            --bind=$s/out:/coffee/out "${binds[@]}" \
            -b "systemd.unit=$TARGET" systemd.firstboot=off \
            </dev/null >$out/console.log 2>&1
    ) &
    local nspawn=$!

    # The container's PID 1: nspawn's child whose executable is systemd.
    local pid1="" p n
    for n in $(seq 1 300); do
        kill -0 $nspawn 2>/dev/null || break
        for p in $(child_pids $nspawn); do
            case "$(readlink /proc/$p/exe 2>/dev/null)" in */systemd) pid1=$p ;; esac
        done
        [ -n "$pid1" ] && break
        sleep 0.05
    done
    if [ -z "$pid1" ]; then
        wait $nspawn
        echo "systemd-nspawn exited ($?) before the container's systemd started; console.log:" >&2
        tail -n 20 $out/console.log >&2
        skip "systemd-nspawn cannot start a container here"
    fi
    PID1=$pid1
    echo $pid1 > $out/container.pid

    local state="" deadline=$(( $(date +%s) + BOOT_TIMEOUT ))
    while [ "$(date +%s)" -lt $deadline ] && kill -0 $nspawn 2>/dev/null; do
        if ct test -S /run/systemd/private 2>/dev/null; then
            state=$(timeout $(( deadline - $(date +%s) + 1 )) nsenter -t $pid1 -a \
                systemctl is-system-running --wait 2>/dev/null | tail -n 1)
            break
        fi
        sleep 0.05
    done
    local boot
    boot=$(since "$tb")
    echo "boot_seconds=$boot" >> $out/timings.txt
    echo "system_state=$state" >> $out/timings.txt
    case "$state" in
        running|degraded) log "container booted to $TARGET: $state in ${boot}s" ;;
        *)  collect
            shut_down $nspawn
            skip "the container's systemd did not reach running/degraded in ${BOOT_TIMEOUT}s (state '${state:-none}'; see $OUT/console.log)" ;;
    esac
    ct systemctl --failed --no-legend --plain > $out/failed-units-at-boot.txt 2>&1

    local tt rc
    tt=$(now)
    log "running inside: $TEST_CMD"
    timeout -k 5 "$TEST_TIMEOUT" nsenter -t $pid1 -a \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 TERM=dumb COFFEE_OUT=/coffee/out \
        sh -c 'cd /coffee/out && exec "$@"' test "${TEST_ARGV[@]}" \
        </dev/null > $out/test.log 2>&1
    rc=$?
    [ $rc = 124 ] && echo "TIMEOUT: the test ran longer than ${TEST_TIMEOUT}s" >> $out/test.log
    echo "test_seconds=$(since "$tt")" >> $out/timings.txt
    echo "test_rc=$rc" >> $out/timings.txt
    collect
    local ts
    ts=$(now)
    shut_down $nspawn
    echo "shutdown_seconds=$(since "$ts")" >> $out/timings.txt
    [ $rc = 0 ] && exit 0
    exit 1
}

ct() { timeout -k 5 30 nsenter -t "$PID1" -a "$@"; }

child_pids() {  # PID: its children. Field 4 of /proc/N/stat is the parent; the
    # command name (field 2) may contain blanks, so split after its last ')'.
    local f stat
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        stat=${stat##*) }
        stat=${stat#* }
        [ "${stat%% *}" = "$1" ] && { f=${f#/proc/}; echo "${f%/stat}"; }
    done
    return 0
}

collect() {
    local out=/run/coffee-nspawn/out
    ct journalctl --no-pager -b -o short-precise > $out/journal.txt 2>&1
    ct systemctl --failed --no-legend --plain > $out/failed-units.txt 2>&1
    ct systemctl list-units --all --no-legend --plain > $out/units.txt 2>&1
}

shut_down() {  # NSPAWN_PID
    local nspawn=$1 i
    timeout 10 nsenter -t "$PID1" -a systemctl poweroff --no-block >/dev/null 2>&1
    for i in $(seq 1 200); do kill -0 $nspawn 2>/dev/null || break; sleep 0.05; done
    if kill -0 $nspawn 2>/dev/null; then
        log "container did not power off in 10s: SIGTERM to systemd-nspawn ($nspawn)"
        kill -TERM $nspawn 2>/dev/null
        for i in $(seq 1 100); do kill -0 $nspawn 2>/dev/null || break; sleep 0.05; done
    fi
    kill -0 $nspawn 2>/dev/null && { log "SIGKILL to container PID 1 and nspawn"; kill -KILL "$PID1" $nspawn 2>/dev/null; }
    wait $nspawn 2>/dev/null
    echo "nspawn_rc=$?" >> /run/coffee-nspawn/out/timings.txt
}

if [ "${1:-}" = --inner ]; then
    shift
    TEST_ARGV=("$@")
    TEST_CMD="$*"
    PID1=""
    inner
    exit 2
fi

# ---------------------------------------------------------------------------
# Outer part: options, preflight, cgroups, the namespace chain, cleanup.
# ---------------------------------------------------------------------------
T0=$(now)
OUT="" BINDS="" TARGET=basic.target BOOT_TIMEOUT=60 TEST_TIMEOUT=150 TOTAL=300
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=${2:?}; shift 2 ;;
        --bind-ro) BINDS="$BINDS ${2:?}"; shift 2 ;;
        --target) TARGET=${2:?}; shift 2 ;;
        --boot-timeout) BOOT_TIMEOUT=${2:?}; shift 2 ;;
        --test-timeout) TEST_TIMEOUT=${2:?}; shift 2 ;;
        --timeout) TOTAL=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$SELF"; exit 0 ;;
        --) shift; break ;;
        *) usage "unknown argument '$1' (try --help)" ;;
    esac
done
[ $# -gt 0 ] || usage "no command given (… -- COMMAND)"
[ -n "$OUT" ] || usage "--out DIR is required"
for v in BOOT_TIMEOUT TEST_TIMEOUT TOTAL; do
    case "${!v}" in ''|*[!0-9]*) usage "$v must be whole seconds" ;; esac
done
for spec in $BINDS; do
    case "$spec" in *:/*) ;; *) usage "--bind-ro wants HOST:/CONTAINER/PATH, not '$spec'" ;; esac
    [ -d "${spec%%:*}" ] || usage "--bind-ro: no directory ${spec%%:*}"
done

# Preflight: whatever is missing here means "this machine cannot do it".
[ "$(id -u)" = 0 ] || skip "must run as root to boot systemd in a container"
for c in systemd-nspawn unshare nsenter setpriv timeout mount awk; do
    command -v $c >/dev/null 2>&1 || skip "'$c' not found (apt-get install systemd-container util-linux)"
done
[ -x /lib/systemd/systemd ] || [ -x /usr/lib/systemd/systemd ] || skip "systemd is not installed"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null
grep -qw overlay /proc/filesystems || skip "the kernel has no overlayfs"
# Say what unshare said: "need a capability" is one cause among several (a
# chroot whose / is not a mount point fails with EINVAL, for one).
# That one cannot be worked around here: with / left shared, the tmpfs on
# /run and /tmp would reach the host.
if ! why=$(unshare --mount --propagation private --pid --fork --kill-child --mount-proc true 2>&1); then
    case $why in
    *propagation*) why="$why; / is not a mount point here (a chroot?): bind-mount the chroot's directory onto itself (mount --bind DIR DIR) before entering it" ;;
    esac
    skip "cannot create mount + pid namespaces: ${why:-unshare failed}"
fi

mkdir -p "$OUT" || usage "cannot create $OUT"
OUT=$(readlink -f "$OUT")
case "$OUT/" in /run/*) usage "--out must not be below /run (covered by a tmpfs inside)" ;; esac
rm -f "$OUT"/result "$OUT"/timings.txt "$OUT"/*.log "$OUT"/journal.txt "$OUT"/*units*.txt "$OUT"/container.pid
: > "$OUT/timings.txt"
MOUNTS_BEFORE=$(wc -l < /proc/self/mountinfo)
ID=$(date +%s)-$$
CG1="" CG2=""

cg_remove_stale() {  # empty coffee-nspawn-* cgroups of harness runs that are gone
    local d pid
    for d in "$@"; do
        [ -d "$d" ] || continue
        pid=${d##*-}
        kill -0 "$pid" 2>/dev/null && continue
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
}
cg_make() {  # MOUNT CONTROLLER-FIELD-AWK: our cgroup below the one we are in
    local m=$1 here=$2 d
    d="$m${here%/}/coffee-nspawn-$ID"
    cg_remove_stale "$m${here%/}"/coffee-nspawn-*
    mkdir "$d" "$d/harness" "$d/ct" 2>/dev/null || { rmdir "$d/harness" "$d/ct" "$d" 2>/dev/null; return 1; }
    echo "$d"
}
cg_pids() {
    local d
    for d in $CG1 $CG2; do [ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -un
}
cg_cleanup() {
    local i left d
    for i in $(seq 1 20); do [ -z "$(cg_pids)" ] && break; sleep 0.05; done
    for i in $(seq 1 10); do
        left=$(cg_pids)
        [ -z "$left" ] && break
        [ $i = 1 ] && log "killing what is left in our cgroup: $(for p in $left; do printf '%s(%s) ' $p "$(cat /proc/$p/comm 2>/dev/null)"; done)"
        [ -n "$CG2" ] && [ -e "$CG2/cgroup.kill" ] && echo 1 > "$CG2/cgroup.kill" 2>/dev/null
        kill -KILL $left 2>/dev/null
        sleep 0.2
    done
    for d in $CG1 $CG2; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    for d in $CG1 $CG2; do [ -d "$d" ] && log "WARNING: could not remove cgroup $d"; done
    return 0
}

RUNNER=()
if [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    RUNNER=(systemd-run --quiet --scope --collect -p Delegate=yes -u "coffee-nspawn-$ID" --)
else
    m=$(cg1_systemd_mount)
    if [ -n "$m" ]; then
        CG1=$(cg_make "$m" "$(awk -F: '$2 == "name=systemd" { print $3 }' /proc/self/cgroup)") \
            || skip "cannot create a cgroup in $m (hierarchy not writable)"
    fi
    m=$(cg2_mount)
    if [ -n "$m" ]; then
        # A hybrid host may have a read-only cgroup2 mount; v1 name=systemd alone will do.
        CG2=$(cg_make "$m" "$(awk -F: '$1 == "0" && $2 == "" { print $3 }' /proc/self/cgroup)") || CG2=""
    fi
    [ -n "$CG1$CG2" ] || skip "no writable cgroup hierarchy (need name=systemd v1 or cgroup2)"
    trap cg_cleanup EXIT
fi
export CG1 CG2 OUT BINDS TARGET BOOT_TIMEOUT TEST_TIMEOUT T0
CHILD=""
trap '[ -n "$CHILD" ] && kill -TERM $CHILD 2>/dev/null; exit 130' INT TERM HUP

# Each link dies with its parent (pdeathsig) and `timeout` is the hard brake;
# unshare --kill-child takes the whole pid namespace down with it.
"${RUNNER[@]}" setpriv --pdeathsig KILL timeout -s KILL "$TOTAL" \
    setpriv --pdeathsig KILL unshare --mount --propagation private --pid --fork \
        --kill-child --mount-proc -- "$SELF" --inner "$@" &
CHILD=$!
wait $CHILD
RC=$?
CHILD=""
[ $RC = 137 ] && { log "hard time limit (${TOTAL}s) hit: everything was killed"; RC=1; }
[ -n "$CG1$CG2" ] && cg_cleanup && trap - EXIT
MOUNTS_AFTER=$(wc -l < /proc/self/mountinfo)
if [ "$MOUNTS_AFTER" != "$MOUNTS_BEFORE" ]; then
    log "host mount table changed ($MOUNTS_BEFORE -> $MOUNTS_AFTER lines): leaked mount"
    RC=1
fi
echo "total_seconds=$(since "$T0")" >> "$OUT/timings.txt"
case $RC in
    0) echo PASS > "$OUT/result" ;;
    77) echo SKIP > "$OUT/result" ;;
    *) echo FAIL > "$OUT/result" ;;
esac
exit $RC
