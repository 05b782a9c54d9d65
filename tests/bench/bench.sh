#!/usr/bin/env bash
# Throughput and memory of the shop, against the pipe itself, in one run on
# the same data. Not a test: it prints figures. Usage:
#   tests/bench/bench.sh [ORDERS (default 5000000)] [BUILD_DIR (default build/release)] [RUNS (default 3)]
# Each figure is the best of RUNS runs: the machine is shared, and noise only
# ever makes a run slower.
set -euo pipefail
orders=${1:-5000000}
build=${2:-build/release}
runs=${3:-3}
producer=$build/producer/coffee-producer
consumer=$build/consumer/coffee-consumer
one_write=$build/tests/one_write_per_order
for bin in "$producer" "$consumer" "$one_write"; do
  [[ -x $bin ]] || { echo "bench: $bin missing; build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
done

work=$(mktemp -d /tmp/coffee-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
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
  /usr/bin/time -f %M -o "$1.rss" "$consumer" --fifo "$1" --brew-time 0 --baristas 4 --until-finish -q > "$1.out" &
  pids+=($!)
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

measure_b() {
  start_consumer "$work/b"
  local start; start=$(now)
  cat "$work/orders" > "$work/b"
  echo finish > "$work/b"
  wait "$consumer_pid"
  elapsed=$(( $(now) - start ))
  check_served "$work/b" "(b)"
}

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

# best_of NAME: the fastest of $runs runs of measure_NAME, in ns; the peak
# RSS of its consumers (max over runs) in $work/NAME.rss.max.
best_of() {
  local best=0 rss=0 r
  for (( r = 0; r < runs; r++ )); do
    "measure_$1"
    (( best == 0 || elapsed < best )) && best=$elapsed
    if [[ -f $work/$1.rss ]]; then
      (( $(cat "$work/$1.rss") > rss )) && rss=$(cat "$work/$1.rss")
    fi
  done
  echo "$rss" > "$work/$1.rss.max"
  echo "$best"
}

t_a=$(best_of a)
t_b=$(best_of b)
t_c=$(best_of c)
t_d=$(best_of d)

rss_max=$(cat "$work/b.rss.max" "$work/c.rss.max" "$work/d.rss.max" | sort -n | tail -1)
echo "orders: $orders ($(( bytes / 1048576 )) MiB), consumer: --baristas 4 --brew-time 0 -q, best of $runs runs"
printf '(a) cat file > fifo | wc -l          %8s s  %10s orders/s\n' "$(seconds $t_a)" "$(rate $t_a)"
printf '(b) cat file > fifo | consumer       %8s s  %10s orders/s\n' "$(seconds $t_b)" "$(rate $t_b)"
printf '(c) producer --count | consumer      %8s s  %10s orders/s\n' "$(seconds $t_c)" "$(rate $t_c)"
printf '(d) one write per order | consumer   %8s s  %10s orders/s\n' "$(seconds $t_d)" "$(rate $t_d)"
echo "(b)/(a) = $(ratio "$t_a" "$t_b")   (target >= 0.25)"
echo "(c)/(a) = $(ratio "$t_a" "$t_c")"
echo "(c)/(d) = $(ratio "$t_d" "$t_c")   (target >= 10)"
echo "consumer peak RSS: $(( rss_max / 1024 )) MiB ($rss_max KiB; b $(cat "$work/b.rss.max"), c $(cat "$work/c.rss.max"), d $(cat "$work/d.rss.max") KiB)   (target <= 16 MiB)"
