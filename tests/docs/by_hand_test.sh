#!/usr/bin/env bash
# README's "Using the shop by hand", word for word, as root and as a fresh
# user (a throw-away one, removed afterwards), each with a home of its own and
# the environment `su` leaves (no XDG_RUNTIME_DIR): the served orders on the
# consumer's stdout must be exactly the ones the commands sent, once each.
# The build commands are not run: the install takes the build tree under test.
# As root the install runs as the tree's owner (a user cannot write root's
# tree; the install writes the units there), into the user's home.
# Not root: the commands run as this user only, and the test says SKIP.
#   by_hand_test.sh README.md BUILD_DIR
# Exit 0 passed (or SKIP: printed), 1 failed.
set -euo pipefail
readme=$1 build=$(cd "$2" && pwd)
# What the commands order, each served once.
expected=$'Espresso\nFlat White\nLatte\nMocha #1\nMocha #2\nMocha #3\nMocha #4\nMocha #5'

fail() { echo "FAIL: $*"; exit 1; }

# The section's first sh block.
block=$(awk '/^## Using the shop by hand/ { s = 1; next } s && /^## / { exit }
             s == 1 && /^```sh/ { s = 2; next } s == 2 && /^```/ { exit } s == 2' "$readme")
[[ -n $block ]] || fail "no sh block under '## Using the shop by hand' in $readme"
install="" setup="" consumer="" customer="" where=setup
while IFS= read -r line; do
  [[ -z ${line// /} ]] && continue
  case $line in
  "cmake --preset "* | "cmake --build "*) ;;  # built already: the tree under test
  "cmake --install build/release "*) install=${line/build\/release/$build} ;;
  *"# terminal 1"*) consumer=$line where=customer ;;
  *)
    if [[ $where == setup ]]; then setup+="$line"$'\n'; else customer+="$line"$'\n'; fi
    ;;
  esac
done <<<"$block"
[[ -n $install && -n $consumer && -n $customer ]] ||
  fail "the block lacks an install line, a '# terminal 1' line or commands after it:"$'\n'"$block"

scratch=$(mktemp -d /tmp/coffee-by-hand-XXXXXX)
chmod 0755 "$scratch"
user=""
cleanup() {
  local pid
  for pid in $(cat "$scratch"/*.pid 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $user ]]; then
    userdel "$user" 2>/dev/null || true
    groupdel "$user" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

# Runs the commands as `who` (a user name; "" for whoever runs this) in a
# fresh home; prints what went wrong and returns 1, or returns 0.
run_as() {
  local who=$1 name=${1:-$(id -un)} home=$scratch/${1:-self} as=()
  mkdir -m 0700 "$home"
  [[ -n $who ]] && as=(setpriv --reuid="$who" --regid="$who" --init-groups --)
  local env=(env -i PATH=/usr/bin:/bin HOME="$home" USER="$name" LOGNAME="$name" SHELL=/bin/bash)
  # The install, as the build tree's owner (this script's user), into the
  # home; one at a time, since each writes the units into the tree.
  flock "$scratch/install.lock" "${env[@]}" bash -euc "$install" >"$home.install" 2>&1 || { cat "$home.install"; echo "$name: the install failed"; return 1; }
  [[ -n $who ]] && chown -R "$who:" "$home"
  "${as[@]}" "${env[@]}" bash -euc "$setup exec $consumer" >"$home.out" 2>"$home.err" </dev/null &
  local shop=$!
  echo "$shop" >"$home.pid"
  # Terminal 2 once the shop's FIFO is there (without COFFEE_FIFO, once the
  # shop says it is open), as a person would wait for it; bounded: a safety net.
  local fifo i
  fifo=$("${env[@]}" bash -euc "$setup printf %s \"\${COFFEE_FIFO:-}\"")
  ready() { if [[ -n $fifo ]]; then [[ -p $fifo ]]; else grep -q 'open for orders' "$home.err"; fi; }
  for ((i = 0; i < 1200; ++i)); do
    ready && break
    kill -0 "$shop" 2>/dev/null || break
    sleep 0.1
  done
  ready || { cat "$home.err"; echo "$name: the shop did not open ${fifo:+its FIFO '$fifo'}"; return 1; }
  "${as[@]}" "${env[@]}" bash -euc "$setup$customer" >"$home.customer" 2>&1 </dev/null ||
    { cat "$home.customer"; echo "$name: the customer's commands failed"; return 1; }
  # Each order brews 4 s; wait for the eighth line (bounded: a safety net).
  for ((i = 0; i < 3000; ++i)); do
    (($(wc -l <"$home.out") >= 8)) && break
    kill -0 "$shop" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$shop"
  local rc=0
  wait "$shop" || rc=$?
  local served
  served=$(sort "$home.out")
  echo "$name: served $(wc -l <"$home.out") orders, consumer exit $rc"
  if [[ $served != "$expected" || $rc != 0 ]]; then
    tail -n 20 "$home.err"
    echo "$name: served, sorted:"$'\n'"$served"$'\n'"expected:"$'\n'"$expected"
    return 1
  fi
}

if ((EUID != 0)); then
  run_as "" || fail "as $(id -un)"
  echo "SKIP: not root: the commands ran as $(id -un) only; as root and as a fresh user they need root"
  exit 0
fi

for tool in useradd userdel groupadd groupdel getent setpriv flock; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is missing, so no throw-away user"; exit 0; }
done
# A throw-away user whose name cannot clash with a real one.
for _ in 1 2 3 4 5; do
  name=cfs$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')
  getent passwd "$name" >/dev/null || getent group "$name" >/dev/null || { user=$name; break; }
done
[[ -n $user ]] || fail "no free user name found"
groupadd "$user" || { user=""; fail "groupadd failed"; }
useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --gid "$user" "$user" ||
  fail "useradd $user failed"

# Both at once: each waits 32 s for its brews.
run_as "" >"$scratch/root.log" 2>&1 &
root_run=$!
run_as "$user" >"$scratch/user.log" 2>&1 &
user_run=$!
status=0
wait $root_run || status=1
wait $user_run || status=1
cat "$scratch/root.log" "$scratch/user.log"
((status == 0)) || fail "the README's commands did not work as written"
