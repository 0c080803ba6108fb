#!/usr/bin/env bash
# kanban-bench against two kanband replicas on one PostgreSQL schema:
# `create` and `claim-complete` with --server A,B, checked by
# check_bench_json.py like the single-server smoke tests. The cross-replica
# watch figures are not checked here (they need the cross-replica feed).
#   replicas_smoke.sh KANBAN_BENCH KANBAND CHECK_BENCH_JSON
# Needs $KANBAN_TEST_POSTGRES_FILE (the CTest fixture `postgres`) and psql.
set -euo pipefail
bench="$1" kanband="$2" check="$3"
target="$(cat "${KANBAN_TEST_POSTGRES_FILE:?run through ctest (fixture postgres)}")"
schema="kanban_bench_replicas_$$"
psql -q -v ON_ERROR_STOP=1 "$target" -c "CREATE SCHEMA $schema"
db="$target?options=-csearch_path%3D$schema"
dir="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait || true
  rm -rf "$dir"
}
trap cleanup EXIT

servers=""
for replica in a b; do
  # One after the other: the first creates the schema's tables.
  "$kanband" --listen=127.0.0.1:0 --db="$db" --port_file="$dir/$replica.port" \
    --replica_id="$replica" >"$dir/$replica.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 300); do
    [ -s "$dir/$replica.port" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$dir/$replica.log" >&2; exit 1; }
    sleep 0.05  # Polls a file that has no change notification.
  done
  [ -s "$dir/$replica.port" ] || { echo "replica $replica did not start" >&2; exit 1; }
  servers="${servers:+$servers,}127.0.0.1:$(cat "$dir/$replica.port")"
done

for scenario in create claim-complete; do
  /usr/bin/python3 "$check" "$bench" "$scenario" --server="$servers" \
    --concurrency=8 --count=200 --connections=2
done
