#!/bin/bash
# coffee-launcher demo's live view in a real terminal: tmux at a fixed size,
# its screen captured (capture-pane) while the shop works.
#   live_view_test.sh rush|ctrl-c|sigterm LAUNCHER CONSUMER PRODUCER
# Exit 0 passed, 1 failed, 77 skipped (with "SKIP: <reason>").
set -u
what=$1 launcher=$2 consumer=$3 producer=$4

if ! command -v tmux >/dev/null 2>&1; then
  echo "SKIP: tmux is not installed (apt-get install tmux)"
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/coffee-live.XXXXXX")
sock="coffee-live-test-$$"
tm() { tmux -L "$sock" -f /dev/null "$@"; }
cleanup() {
  tm kill-server 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
check() {  # check DESCRIPTION COMMAND...: runs COMMAND, reports
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAILED: $what"
    failures=$((failures + 1))
  fi
}

# A shell in a 100x40 terminal, with a prompt we can recognise.
start_shell() {  # start_shell WIDTH HEIGHT [VAR=VALUE...]
  local width=$1 height=$2
  shift 2
  tm new-session -d -s t -x "$width" -y "$height" \
    env -i PATH=/usr/bin:/bin HOME="$work" TERM=screen TMPDIR="$work" PS1='PROMPT$ ' "$@" sh
  # The shell is ready when its prompt is on the screen.
  for _ in $(seq 100); do
    tm capture-pane -p -t t | grep -q 'PROMPT\$' && return 0
    sleep 0.1
  done
  echo "the shell in tmux did not start"
  exit 1
}
demo="$launcher demo --consumer $consumer --producer $producer --scenario rush"
screen() { tm capture-pane -p -t t; }
done_file=$work/rc

case $what in
rush)
  start_shell 100 40
  # Served orders to a file: the screen shows the view and the logs.
  tm send-keys -t t "$demo > $work/served; echo \$? > $done_file" Enter
  n=0
  while [ ! -s "$done_file" ] && [ $n -lt 600 ]; do
    screen > "$work/screen.$(printf %04d $n)"
    n=$((n + 1))
    sleep 0.1
  done
  screen > "$work/screen.final"
  screens=("$work"/screen.[0-9]*)
  echo "captured ${#screens[@]} screens"

  # The moments, in order: full (with a customer blocked), then empty.
  full_at= blocked_while_full= empty_after_full=
  for f in "${screens[@]}"; do
    gauge=$(grep -E '^  \[[#.]+\] [0-9]+/64 KiB' "$f" | head -1)
    if [ -z "$full_at" ] && echo "$gauge" | grep -qE '\] (6[0-4])/64 KiB .*FULL$'; then
      full_at=$f
    fi
    if echo "$gauge" | grep -q 'FULL$' && grep -q 'BLOCKED in write(): the pipe is full' "$f"; then
      blocked_while_full=$f
    fi
    if [ -n "$full_at" ] && echo "$gauge" | grep -qE '\] 0/64 KiB \(~0 orders\)  empty$'; then
      empty_after_full=$f
    fi
  done
  check "the gauge reaches full (60 KiB or more of 64, FULL)" test -n "$full_at"
  check "a customer is shown blocked in write() while the pipe is full" test -n "$blocked_while_full"
  check "the gauge returns to empty after it was full" test -n "$empty_after_full"
  [ -n "$full_at" ] && { echo "--- a screen when full:"; cat "$full_at"; }
  check "the demo exits 0" grep -qx 0 "$done_file"
  check "every order served: 3400 lines on stdout" test "$(wc -l < "$work/served")" -eq 3400
  check "every order served once" test "$(sort -u "$work/served" | wc -l)" -eq 3400
  check "the last frame says so" grep -q 'served 3400 of 3400' "$work/screen.final"
  check "and the summary" grep -q '3400 of 3400 orders served' "$work/screen.final"
  check "every customer done, exit 0" test "$(grep -c 'done, exit 0' "$work/screen.final")" -eq 8
  check "no line wider than the terminal" test "$(awk '{ if (length($0) > 100) n++ } END { print n + 0 }' "${screens[@]}")" -eq 0
  ;;
ctrl-c | sigterm)
  # Narrow, and without colours.
  start_shell 72 30 NO_COLOR=1
  tm send-keys -t t "$demo > /dev/null; echo \$? > $done_file" Enter
  for _ in $(seq 100); do
    screen | grep -q 'BLOCKED in write()' && break
    sleep 0.1
  done
  launcher_pid=$(ps -o pid= --ppid "$(tm display -p -t t '#{pane_pid}')" | tr -d ' ' | head -1)
  children=$(ps -o pid= --ppid "$launcher_pid" | tr -d ' ')
  echo "launcher pid $launcher_pid, children: $(echo $children)"
  check "the demo runs with children (consumer, customers)" test "$(echo "$children" | wc -w)" -ge 2
  tm capture-pane -p -e -t t > "$work/screen.running"
  check "the view is on the screen" grep -q 'BLOCKED in write()' "$work/screen.running"
  check "NO_COLOR: no colours on the screen" test "$(grep -c "$(printf '\033')\[[0-9;]*3[0-9]m" "$work/screen.running")" -eq 0
  check "no line wider than 72 columns" test "$(screen | awk '{ if (length($0) > 72) n++ } END { print n + 0 }')" -eq 0
  if [ "$what" = ctrl-c ]; then
    tm send-keys -t t C-c
    expected=130
  else
    kill -TERM "$launcher_pid"
    expected=143
  fi
  for _ in $(seq 150); do
    [ -s "$done_file" ] && break
    sleep 0.1
  done
  sleep 0.3  # the prompt
  screen > "$work/screen.final"
  tm capture-pane -p -e -t t > "$work/screen.escapes"
  echo "--- the screen after $what:"
  cat "$work/screen.final"
  check "the demo stopped on $what: $expected" grep -qx "$expected" "$done_file"
  check "the cursor is shown again" test "$(tm display -p -t t '#{cursor_flag}')" = 1
  last=$(grep -v '^$' "$work/screen.escapes" | tail -1)
  check "the prompt comes back clean, no escape sequence left" test "$last" = 'PROMPT$'
  check "the last frame stays, saying it stopped" grep -q 'stopping: waiting for the orders being brewed' "$work/screen.final"
  for pid in $launcher_pid $children; do
    check "pid $pid is gone" test ! -e "/proc/$pid"
  done
  ;;
*)
  echo "usage: $0 rush|ctrl-c|sigterm LAUNCHER CONSUMER PRODUCER" >&2
  exit 64
  ;;
esac

if [ "$failures" -gt 0 ]; then
  echo "--- last screen:"
  cat "$work/screen.final"
  exit 1
fi
