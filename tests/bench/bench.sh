#!/usr/bin/env bash
# Throughput, memory and idle latency of the shop, against the pipe itself
# (wc -l, cat), in one run on the same data. Not a test: it prints figures.
# With --brew-time 0 the consumer serves orders straight from the pipe
# (docs/design.md, "Taking orders"): its journal is open but they need no record; (e)
# with --sync sends every order through the journal.
# Usage:
#   tests/bench/bench.sh [ORDERS (default 5000000)] [BUILD_DIR (default build/release)] [RUNS (default 3)] [LATENCY_ORDERS (default 2000)]
# The consumer's order journal is open (it always is: <fifo>.journal here);
# (e) adds --sync (every order through the journal, fdatasync before it
# leaves the pipe). (a2) is wc -l through a 1 MiB pipe, the size the
# consumer gives its own FIFO, so that both read the same pipe.
# (f) is dd conv=fdatasync writing the same bytes to a file beside the
# journal: what the file system takes to make them durable, the limit of
# (e). (p1), (p4), (p16): 1, 4 and 16 coffee-producer --count at once
# (ORDERS in all), into the plain shop and into the --sync one.
# Each figure is the best of RUNS runs: the machine is shared, and noise only
# ever makes a run slower. Figures that make a ratio with each other run in
# turn: (e) and (f), 3 * RUNS times (they are short), and each (pN) with its
# --sync twin.
set -euo pipefail
orders=${1:-5000000}
build=${2:-build/release}
runs=${3:-3}
latency_orders=${4:-2000}
producer=$build/producer/coffee-producer
consumer=$build/consumer/coffee-consumer
one_write=$build/tests/one_write_per_order
latency=$build/tests/order_latency
count_lines=$build/tests/count_lines
for bin in "$producer" "$consumer" "$one_write" "$latency" "$count_lines"; do
  [[ -x $bin ]] || { echo "bench: $bin missing; build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
done

work=$(mktemp -d /tmp/coffee-bench-XXXXXX)
# At exit, only the background jobs still running (jobs -p): a pid this
# script already waited for may belong to someone else by then.
cleanup() { local p; for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The same orders coffee-producer --count generates: "Espresso #1", ...
awk -v n="$orders" 'BEGIN { split("Espresso Arabica Latte Cappuccino", m, " ");
  for (i = 1; i <= n; i++) print m[(i - 1) % 4 + 1] " #" i }' > "$work/orders"
bytes=$(stat -c %s "$work/orders")

now() { date +%s%N; }
seconds() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
rate() { awk -v n="$orders" -v ns="$1" 'BEGIN { printf "%.0f", n / (ns / 1e9) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# Starts a consumer on $1 under GNU time (peak RSS into $1.rss); waits until
# it reads the FIFO.
start_consumer() {
  rm -f "$1.journal"
  /usr/bin/time -f %M -o "$1.rss" "$consumer" --fifo "$1" --brew-time 0 --baristas 4 --until-finish -q ${sync:-} > "$1.out" &
  consumer_pid=$!
  for _ in $(seq 500); do [[ -p $1 ]] && break; sleep 0.01; done
  sleep 0.1
}
check_served() {
  local served
  served=$(wc -l < "$1.out")
  [[ $served == "$orders" ]] || { echo "bench: $2 served $served of $orders orders" >&2; exit 1; }
}

measure_a() {
  rm -f "$work/a"; mkfifo "$work/a"
  local start; start=$(now)
  wc -l < "$work/a" > "$work/a.count" &
  cat "$work/orders" > "$work/a"
  wait $!
  elapsed=$(( $(now) - start ))
  [[ $(cat "$work/a.count") == "$orders" ]] || { echo "bench: wc counted $(cat "$work/a.count")" >&2; exit 1; }
}

measure_a2() {
  rm -f "$work/a2"; mkfifo "$work/a2"
  local start; start=$(now)
  "$count_lines" "$work/a2" > "$work/a2.count" &
  cat "$work/orders" > "$work/a2"
  wait $!
  elapsed=$(( $(now) - start ))
  [[ $(cat "$work/a2.count") == "$orders" ]] || { echo "bench: count_lines counted $(cat "$work/a2.count")" >&2; exit 1; }
}

# cat file > fifo into the consumer; $sync is passed on (--sync, or nothing).
cat_into_consumer() {  # NAME
  start_consumer "$work/$1"
  local start; start=$(now)
  cat "$work/orders" > "$work/$1"
  echo finish > "$work/$1"
  wait "$consumer_pid"
  elapsed=$(( $(now) - start ))
  check_served "$work/$1" "($1)"
}
measure_b() { sync= cat_into_consumer b; }
measure_e() { sync=--sync cat_into_consumer e; }

measure_f() {
  rm -f "$work/f.out"
  local start; start=$(now)
  dd if="$work/orders" of="$work/f.out" bs=1M conv=fdatasync status=none
  elapsed=$(( $(now) - start ))
}

# NAME PRODUCERS: that many producers at once, ORDERS in all, into a shop
# with $sync.
producers_into_consumer() {
  start_consumer "$work/$1"
  local start i pids=() each=$(( orders / $2 ))
  start=$(now)
  for (( i = 0; i < $2; i++ )); do
    "$producer" --fifo "$work/$1" --count $(( i < $2 - 1 ? each : orders - each * ($2 - 1) )) -q & pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i"; done
  echo finish > "$work/$1"
  wait "$consumer_pid"
  elapsed=$(( $(now) - start ))
  check_served "$work/$1" "($1)"
}
for n in 1 4 16; do
  eval "measure_p$n() { sync= producers_into_consumer p$n $n; }"
  eval "measure_s$n() { sync=--sync producers_into_consumer s$n $n; }"
done

measure_c() {
  start_consumer "$work/c"
  local start; start=$(now)
  "$producer" --fifo "$work/c" --count "$orders" --finish -q
  wait "$consumer_pid"
  elapsed=$(( $(now) - start ))
  check_served "$work/c" "(c)"
}

measure_d() {
  start_consumer "$work/d"
  local start; start=$(now)
  "$one_write" "$work/d" < "$work/orders"
  echo finish > "$work/d"
  wait "$consumer_pid"
  elapsed=$(( $(now) - start ))
  check_served "$work/d" "(d)"
}

# best_of ROUNDS NAME...: measure_NAME for each NAME in turn, ROUNDS times;
# the fastest run of each in t_NAME (ns), the peak RSS of its consumers (max
# over runs) in $work/NAME.rss.max. Figures to be compared with each other
# are measured in turn, so that both see the machine as it is at that
# moment: a ratio of two figures taken a minute apart on a shared machine
# measures its noise as much as the shop.
best_of() {
  local rounds=$1 r name
  shift
  local -A best=() rss=()
  for (( r = 0; r < rounds; r++ )); do
    for name in "$@"; do
      "measure_$name"
      (( ${best[$name]:-0} == 0 || elapsed < best[$name] )) && best[$name]=$elapsed
      if [[ -f $work/$name.rss ]] && (( $(cat "$work/$name.rss") > ${rss[$name]:-0} )); then
        rss[$name]=$(cat "$work/$name.rss")
      fi
    done
  done
  for name in "$@"; do
    echo "${rss[$name]:-0}" > "$work/$name.rss.max"
    printf -v "t_$name" '%s' "${best[$name]}"
  done
}

for name in a a2 b c d; do best_of "$runs" "$name"; done
# (e) and (f) are short: 3 * RUNS rounds of the two in turn.
best_of $(( 3 * runs )) e f
for n in 1 4 16; do best_of "$runs" "p$n" "s$n"; done

rss_max=$(cat "$work"/*.rss.max | sort -n | tail -1)
echo "orders: $orders ($(( bytes / 1048576 )) MiB), consumer: --baristas 4 --brew-time 0 -q, best of $runs runs ((e) and (f) of $(( 3 * runs )); (e)/(f) and each --sync/plain pair in turn)"
printf '(a) cat file > fifo | wc -l          %8s s  %10s orders/s\n' "$(seconds $t_a)" "$(rate $t_a)"
printf '(a2) the same, 1 MiB pipe            %8s s  %10s orders/s\n' "$(seconds $t_a2)" "$(rate $t_a2)"
printf '(b) cat file > fifo | consumer       %8s s  %10s orders/s\n' "$(seconds $t_b)" "$(rate $t_b)"
printf '(c) producer --count | consumer      %8s s  %10s orders/s\n' "$(seconds $t_c)" "$(rate $t_c)"
printf '(d) one write per order | consumer   %8s s  %10s orders/s\n' "$(seconds $t_d)" "$(rate $t_d)"
printf '(e) (b) with --sync                  %8s s  %10s orders/s\n' "$(seconds $t_e)" "$(rate $t_e)"
printf '(f) dd conv=fdatasync, same bytes    %8s s  %10s orders/s\n' "$(seconds $t_f)" "$(rate $t_f)"
for n in 1 4 16; do
  eval "tp=\$t_p$n ts=\$t_s$n"
  printf '(p%d) %2d producers at once         %8s s  %10s orders/s   with --sync %8s s  %10s orders/s\n' \
    "$n" "$n" "$(seconds $tp)" "$(rate $tp)" "$(seconds $ts)" "$(rate $ts)"
done
echo "(b)/(a) = $(ratio "$t_a" "$t_b")   (journal open, orders served straight from the pipe; target >= 0.5)"
echo "(b)/(a2) = $(ratio "$t_a2" "$t_b")  (both through a 1 MiB pipe)"
echo "(e)/(a) = $(ratio "$t_a" "$t_e")   (--sync: every order through the journal)"
echo "(e)/(f) = $(ratio "$t_f" "$t_e")   (--sync against the file system's own durable write; target >= 0.5)"
echo "--sync/plain, producers at once: 1: $(ratio "$t_p1" "$t_s1")  4: $(ratio "$t_p4" "$t_s4")  16: $(ratio "$t_p16" "$t_s16")   (target at 16 >= 0.5)"
echo "(c)/(a) = $(ratio "$t_a" "$t_c")"
echo "(c)/(d) = $(ratio "$t_d" "$t_c")   (target >= 10)"
echo "consumer peak RSS: $(( rss_max / 1024 )) MiB ($rss_max KiB; b $(cat "$work/b.rss.max"), c $(cat "$work/c.rss.max"), d $(cat "$work/d.rss.max") KiB)   (target <= 16 MiB)"

# Idle latency: one order at a time into a quiet shop (brew 0), timed from its
# write into the FIFO to its line on the relay's stdout (a pipe), against cat
# relaying a FIFO of its own, with a --sync shop beside them. They run side
# by side and take turns order by order, 2 ms apart, so that the machine's
# noise falls on all alike; each run prints its own figures and ratios.
latency_run() {  # writes "p50 p99 max" (us) for cat, b1, b4, s1 to $work/lat/figures
  local dir=$work/lat name pid status=0
  local relays=()
  rm -rf "$dir"; mkdir "$dir"
  mkfifo "$dir/cat" "$dir/cat.out" "$dir/b1.out" "$dir/b4.out" "$dir/s1.out"
  cat "$dir/cat" > "$dir/cat.out" & relays+=($!)
  for name in b1 b4; do
    "$consumer" --brew-time 0 --baristas "${name#b}" -q --fifo "$dir/$name" > "$dir/$name.out" & relays+=($!)
  done
  "$consumer" --brew-time 0 --baristas 1 --sync -q --fifo "$dir/s1" > "$dir/s1.out" & relays+=($!)
  "$latency" "$latency_orders" 2000 20 "$dir/cat" "$dir/cat.out" "$dir/b1" "$dir/b1.out" "$dir/b4" "$dir/b4.out" \
    "$dir/s1" "$dir/s1.out" > "$dir/figures" || status=$?
  for pid in "${relays[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  (( status == 0 )) || { echo "bench: the latency run failed ($status)" >&2; exit 1; }
}
echo "idle latency, order written to line served (us; $runs runs of $latency_orders orders each, relays in turn):"
for (( r = 0; r < runs; r++ )); do
  latency_run
  { read -r c50 c99 _; read -r a50 a99 _; read -r b50 b99 _; read -r s50 s99 _; } < "$work/lat/figures"
  printf '  run %d: cat p50 %6s p99 %6s | --baristas 1 p50 %6s p99 %6s | --baristas 4 p50 %6s p99 %6s\n' \
    $((r + 1)) "$c50" "$c99" "$a50" "$a99" "$b50" "$b99"
  printf '         ratio to cat: --baristas 1 p50 %s p99 %s | --baristas 4 p50 %s p99 %s   (targets: p50 <= 1.5, p99 <= 2)\n' \
    "$(ratio "$a50" "$c50")" "$(ratio "$a99" "$c99")" "$(ratio "$b50" "$c50")" "$(ratio "$b99" "$c99")"
  printf '         --sync --baristas 1 p50 %6s p99 %6s: %s and %s times --baristas 1 (one fdatasync per order when idle)\n' \
    "$s50" "$s99" "$(ratio "$s50" "$a50")" "$(ratio "$s99" "$a99")"
done
