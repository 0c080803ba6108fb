#!/usr/bin/env bash
# Where kanband's CPU goes per call: starts kanband on a fresh database,
# loads it with one kanban-bench scenario, and prints the CPU time each
# kanband thread (by name) used per completed call, from /proc.
#   tests/bench/thread_cpu.sh [BUILD_DIR] [SCENARIO] [kanband flags...]
# Example: tests/bench/thread_cpu.sh build create --synchronous=full
# DURATION (default 8s) sets how long the load runs; BENCH_FLAGS adds flags
# for kanban-bench, e.g. BENCH_FLAGS="--watchers 1000 --rate 100" with the
# watch scenario (there a call is one event delivered to one watcher).
set -euo pipefail
build="${1:-build}"; scenario="${2:-create}"
shift $(( $# < 2 ? $# : 2 ))
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
"$build/kanband" --listen=127.0.0.1:0 --db="$dir/kanban.db" --port_file="$dir/port" "$@" \
  2>"$dir/log" &
pid=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
[ -s "$dir/port" ] || { echo "kanband did not start:" >&2; cat "$dir/log" >&2; exit 1; }

# CPU ticks per thread name (utime + stime, fields 14 and 15 of stat).
ticks() {
  for t in /proc/"$pid"/task/*; do
    echo "$(tr ' ' '_' <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
ticks >"$dir/before"
calls=$("$build/kanban-bench" "$scenario" --server "127.0.0.1:$(cat "$dir/port")" \
  --duration "${DURATION:-8s}" ${BENCH_FLAGS:-} --no_check --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
ticks >"$dir/after"
hz=$(getconf CLK_TCK)
echo "$scenario: $calls calls"
join "$dir/before" "$dir/after" | awk -v n="$calls" -v hz="$hz" '
  { us = ($3 - $2) / hz * 1e6 / n; total += us
    if (us >= 0.5) printf "  %-16s %6.1f us/call\n", $1, us }
  END { printf "  %-16s %6.1f us/call\n", "kanband total", total }'
