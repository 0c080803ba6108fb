#!/usr/bin/env bash
# Where a call's CPU goes on each backend, and how long a batch holds the
# event counter: starts kanband (FULL) on a fresh SQLite file, then on a
# fresh schema of a private PostgreSQL 15, loads each with one kanban-bench
# scenario, and prints kanband's CPU per call by thread, PostgreSQL's server
# CPU per call (every postgres process of the private cluster, from /proc),
# and kanban_writer_seq_hold_seconds (mean per batch) from /metrics.
#   tests/bench/backend_profile.sh [BUILD_DIR] [SCENARIO] [DURATION]
set -euo pipefail
build="${1:-build}"; scenario="${2:-create}"; duration="${3:-8s}"
src="$(cd "$(dirname "$0")/../.." && pwd)"
bench="$build/kanban-bench"
[ -x "$bench" ] || bench="$build/client/bench/kanban-bench"
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
  "$src/tests/support/postgres_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"$src/tests/support/postgres_server.sh" start "$work/pg" >/dev/null
server="$(cat "$work/pg/target")"
hz=$(getconf CLK_TCK)

# ticks_of, postgres_pids
source "$src/tests/bench/proc_cpu.sh"
thread_ticks() {
  for t in /proc/"$pid"/task/*; do
    echo "$(tr ' ' '_' <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
metric() { curl -s "http://127.0.0.1:$(cat "$work/mport")/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

run() {  # NAME DB
  rm -f "$work/port" "$work/mport"
  "$build/kanband" --listen=127.0.0.1:0 --db="$2" --synchronous=full --port_file="$work/port" \
    --metrics_listen=127.0.0.1:0 --metrics_port_file="$work/mport" 2>"$work/log" &
  pid=$!
  for _ in $(seq 150); do [ -s "$work/port" ] && [ -s "$work/mport" ] && break; sleep 0.1; done
  [ -s "$work/port" ] || { echo "kanband did not start:" >&2; cat "$work/log" >&2; exit 1; }
  thread_ticks >"$work/before"
  local pg_before; pg_before=$(postgres_pids "$work/pg" | ticks_of)
  local hold_sum0 hold_n0
  hold_sum0=$(metric kanban_writer_seq_hold_seconds_sum); hold_n0=$(metric kanban_writer_seq_hold_seconds_count)
  local calls
  calls=$("$bench" "$scenario" --server "127.0.0.1:$(cat "$work/port")" --duration "$duration" \
    --no_check --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
  thread_ticks >"$work/after"
  local pg_after; pg_after=$(postgres_pids "$work/pg" | ticks_of)
  local hold_sum hold_n
  hold_sum=$(metric kanban_writer_seq_hold_seconds_sum); hold_n=$(metric kanban_writer_seq_hold_seconds_count)
  echo "$1 $scenario: $calls calls"
  join "$work/before" "$work/after" | awk -v n="$calls" -v hz="$hz" '
    { us = ($3 - $2) / hz * 1e6 / n; total += us
      if (us >= 0.5) printf "  %-18s %6.1f us/call\n", $1, us }
    END { printf "  %-18s %6.1f us/call\n", "kanband total", total }'
  if [ "$1" = postgresql ]; then
    awk -v a="$pg_before" -v b="$pg_after" -v n="$calls" -v hz="$hz" \
      'BEGIN { printf "  %-18s %6.1f us/call\n", "postgres (server)", (b - a) / hz * 1e6 / n }'
  fi
  awk -v s0="$hold_sum0" -v n0="$hold_n0" -v s="$hold_sum" -v n="$hold_n" -v c="$calls" \
    'BEGIN { if (n > n0) printf "  seq hold per batch %6.2f ms over %d batches (%.1f calls per batch)\n", (s - s0) / (n - n0) * 1000, n - n0, c / (n - n0) }'
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

run sqlite "$work/kanban.db"
psql -q "$server" -c "CREATE SCHEMA profile"
run postgresql "$server?options=-csearch_path%3Dprofile"
