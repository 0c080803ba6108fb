#!/usr/bin/env bash
# One kanband against three on one PostgreSQL database (docs/scaling.md):
# for each of 1 and 3 replicas, a fresh schema of a private PostgreSQL 15,
# the replicas in FULL with metrics on, and one kanban-bench SCENARIO through
# all of them (`--server a,b,c`: its calls spread over the replicas). Prints
# calls/s, the replicas' CPU per call (all kanband processes, from /proc),
# PostgreSQL's server CPU per call, and from /metrics the event counter's
# hold per batch, the calls per batch, and the batches run again after a
# lost race (kanban_writer_conflict_retries_total). On this 2-core machine
# the client, every replica and PostgreSQL share the cores: read the CPU per
# call and the counter hold, which carry over to bigger machines, more than
# the calls/s.
# SCENARIO watch instead prints kanban-bench's watch report (WATCHERS=100
# streams spread over the replicas, RATE=100 events/s written through all
# of them; latency = commit -> receipt).
#   tests/bench/replicas_bench.sh [BUILD_DIR] [SCENARIO=create] [DURATION=8s]
set -euo pipefail
build="${1:-build}"; scenario="${2:-create}"; duration="${3:-8s}"
src="$(cd "$(dirname "$0")/../.." && pwd)"
bench="$build/kanban-bench"
[ -x "$bench" ] || bench="$build/client/bench/kanban-bench"
work=$(mktemp -d)
pids=()
stop_replicas() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_replicas
  "$src/tests/support/postgres_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"$src/tests/support/postgres_server.sh" start "$work/pg" >/dev/null
server="$(cat "$work/pg/target")"
hz=$(getconf CLK_TCK)

# ticks_of, postgres_pids
source "$src/tests/bench/proc_cpu.sh"
# The sum of metric $1 over every replica's /metrics.
metric() {
  local total=0 v
  for f in "$work"/m*.port; do
    v=$(curl -s "http://127.0.0.1:$(cat "$f")/metrics" | awk -v m="$1" '$1 == m {print $2}')
    total=$(awk -v a="$total" -v b="${v:-0}" 'BEGIN {print a + b}')
  done
  echo "$total"
}

run() {  # REPLICAS
  local n="$1" schema="bench_${scenario//-/_}_$1_$$"
  psql -q "$server" -c "CREATE SCHEMA $schema"
  rm -f "$work"/*.port
  local addresses=()
  for i in $(seq "$n"); do
    "$build/kanband" --listen=127.0.0.1:0 --db="$server?options=-csearch_path%3D$schema" \
      --synchronous=full --replica_id="r$i" --port_file="$work/g$i.port" \
      --metrics_listen=127.0.0.1:0 --metrics_port_file="$work/m$i.port" 2>"$work/r$i.log" &
    pids+=($!)
  done
  for i in $(seq "$n"); do
    for _ in $(seq 150); do [ -s "$work/g$i.port" ] && [ -s "$work/m$i.port" ] && break; sleep 0.1; done
    [ -s "$work/g$i.port" ] || { echo "replica r$i did not start:" >&2; cat "$work/r$i.log" >&2; exit 1; }
    addresses+=("127.0.0.1:$(cat "$work/g$i.port")")
  done
  local list; list=$(IFS=,; echo "${addresses[*]}")
  local k_before pg_before hold_s0 hold_n0 retries0
  k_before=$(printf '%s\n' "${pids[@]}" | ticks_of); pg_before=$(postgres_pids "$work/pg" | ticks_of)
  hold_s0=$(metric kanban_writer_seq_hold_seconds_sum); hold_n0=$(metric kanban_writer_seq_hold_seconds_count)
  retries0=$(metric kanban_writer_conflict_retries_total)
  if [ "$scenario" = watch ]; then
    # Watchers spread over the replicas, writes through all of them: the
    # commit -> receipt latency across replicas.
    echo "watch, $n replica(s), ${WATCHERS:-100} watchers, ${RATE:-100} events/s:"
    "$bench" watch --server "$list" --watchers "${WATCHERS:-100}" --rate "${RATE:-100}" \
      --duration "$duration" --no_check 2>&1 | sed 's/^/  /'
    stop_replicas
    return
  fi
  local json calls rps
  json=$("$bench" "$scenario" --server "$list" --duration "$duration" --no_check --json 2>"$work/bench.err") ||
    { echo "kanban-bench failed:" >&2; cat "$work/bench.err" >&2; exit 1; }
  calls=$(echo "$json" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
  rps=$(echo "$json" | /usr/bin/python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["rps"])')
  local k_after pg_after hold_s hold_n retries
  k_after=$(printf '%s\n' "${pids[@]}" | ticks_of); pg_after=$(postgres_pids "$work/pg" | ticks_of)
  hold_s=$(metric kanban_writer_seq_hold_seconds_sum); hold_n=$(metric kanban_writer_seq_hold_seconds_count)
  retries=$(metric kanban_writer_conflict_retries_total)
  awk -v n="$n" -v sc="$scenario" -v rps="$rps" -v c="$calls" -v hz="$hz" \
      -v k0="$k_before" -v k1="$k_after" -v p0="$pg_before" -v p1="$pg_after" \
      -v s0="$hold_s0" -v n0="$hold_n0" -v s1="$hold_s" -v n1="$hold_n" -v r0="$retries0" -v r1="$retries" '
    BEGIN {
      b = n1 - n0
      printf "%-15s %d replica(s): %7s calls/s  kanband %6.0f us/call  postgres %6.0f us/call  ", sc, n, rps,
        (k1 - k0) / hz * 1e6 / c, (p1 - p0) / hz * 1e6 / c
      if (b > 0) printf "counter held %.2f ms/batch, %.1f calls/batch, %d batches  ", (s1 - s0) / b * 1000, c / b, b
      printf "conflict retries %d\n", r1 - r0
    }'
  stop_replicas
}

echo "synchronous full, $duration each; client, replicas and PostgreSQL on the same cores"
run 1
run 3
