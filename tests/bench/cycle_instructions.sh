#!/usr/bin/env bash
# Instructions kanband's writer thread spends per claim -> complete cycle,
# counted by callgrind (exact and repeatable, unlike timings on a shared
# machine; the kernel's part is not counted), for the unary loop
# (`claim-complete`) and for worker streams (`stream`). Each run starts a
# kanband under valgrind on a fresh SQLite file with counting off, creates
# CYCLES + 500 tasks, turns counting on (callgrind_control), runs CYCLES
# cycles with 64 in flight, turns it off, and divides what
# Writer::ApplyBatch executed meanwhile.
#   tests/bench/cycle_instructions.sh [BUILD_DIR] [CYCLES=3000] [KANBAND]
# KEEP=DIR keeps the callgrind files (callgrind_annotate --inclusive=yes).
set -euo pipefail
build="${1:-build}"; cycles="${2:-3000}"; kanband="${3:-$build/kanband}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 77; }
work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && { kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  [ -n "${KEEP:-}" ] && cp "$work"/*.out "$KEEP"/ 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
for scenario in claim-complete stream; do
  rm -f "$work/port" "$work/kanban.db"*
  valgrind --tool=callgrind --callgrind-out-file="$work/$scenario.out" --instr-atstart=no \
    --toggle-collect='kanban::storage::Writer::ApplyBatch*' \
    "$kanband" --listen=127.0.0.1:0 --port_file="$work/port" --db="$work/kanban.db" \
    --synchronous=full >"$work/$scenario.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -s "$work/port" ] && break; sleep 0.1; done
  [ -s "$work/port" ] || { echo "kanband did not start:"; cat "$work/$scenario.log"; exit 1; }
  server="127.0.0.1:$(cat "$work/port")"
  "$build/kanban-bench" create --server "$server" --count $((cycles + 500)) --no_check \
    >"$work/$scenario.create" 2>&1 || { cat "$work/$scenario.create"; exit 1; }
  callgrind_control -i on "$pid" >/dev/null
  "$build/kanban-bench" "$scenario" --server "$server" --count "$cycles" --prefill 0 \
    --no_check >"$work/$scenario.bench" 2>&1 || { cat "$work/$scenario.bench"; exit 1; }
  callgrind_control -i off "$pid" >/dev/null
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  total=$(callgrind_annotate "$work/$scenario.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  printf "%-15s %9d writer instructions per claim -> complete cycle (%d cycles)\n" \
    "$scenario" $((total / cycles)) "$cycles"
done
