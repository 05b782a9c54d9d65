#!/bin/sh
# Benchmark: `coffee-launcher pipe -- cat` moving a file to /dev/null, against
# the shell pipeline `cat file | cat | cat > /dev/null` in the same run (both
# have one `cat` in the middle and two pipes). Prints MiB/s for each and the
# ratio launcher/shell (goal: >= 0.5). Not a ctest test: timings flake.
#
#   tests/launcher/bench_pipe.sh [LAUNCHER] [MIB] [RUNS]
#   (defaults: build/release/launcher/coffee-launcher, 1024 MiB, best of 3)
set -eu

launcher=${1:-build/release/launcher/coffee-launcher}
mib=${2:-1024}
runs=${3:-3}
[ -x "$launcher" ] || { echo "bench_pipe.sh: no launcher at '$launcher' (cmake --preset release && cmake --build build/release)" >&2; exit 64; }

file=$(mktemp "${TMPDIR:-/tmp}/coffee-bench.XXXXXX")
trap 'rm -f "$file"' EXIT INT TERM
head -c $((mib * 1024 * 1024)) /dev/urandom > "$file"
cat "$file" > /dev/null  # into the page cache, for both sides alike

now() { date +%s.%N; }

# best_of CMD...: the shortest wall time of $runs runs, in seconds.
best_of() {
    best=
    i=0
    while [ "$i" -lt "$runs" ]; do
        start=$(now)
        sh -c "$1"
        end=$(now)
        t=$(echo "$end - $start" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" -eq 1 ]; then best=$t; fi
        i=$((i + 1))
    done
    echo "$best"
}

shell_s=$(best_of "cat '$file' | cat | cat > /dev/null")
file_s=$(best_of "'$launcher' pipe --input-file '$file' -- cat > /dev/null")
stdin_s=$(best_of "'$launcher' pipe -- cat < '$file' > /dev/null")

rate() { echo "scale=0; $mib / $1" | bc -l; }
ratio() { printf '%.2f' "$(echo "$shell_s / $1" | bc -l)"; }
echo "moved $mib MiB, best of $runs runs"
printf '  %-60s %6s MiB/s\n' "cat file | cat | cat > /dev/null" "$(rate "$shell_s")"
printf '  %-60s %6s MiB/s  ratio %s\n' "coffee-launcher pipe --input-file file -- cat > /dev/null" "$(rate "$file_s")" "$(ratio "$file_s")"
printf '  %-60s %6s MiB/s  ratio %s\n' "coffee-launcher pipe -- cat < file > /dev/null" "$(rate "$stdin_s")" "$(ratio "$stdin_s")"
