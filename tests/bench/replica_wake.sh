#!/usr/bin/env bash
# Two kanband replicas on one fresh schema of a PostgreSQL (the suite's, when
# KANBAN_TEST_POSTGRES_FILE names it, else a private one this script starts),
# and replica_wake_bench between them: how long a ClaimTask waiting on one
# replica takes to be answered after a task for it commits through the other.
# Usage: tests/bench/replica_wake.sh BUILD_DIR [ROUNDS=200]
set -euo pipefail
build="${1:?usage: replica_wake.sh BUILD_DIR [ROUNDS]}"
rounds="${2:-200}"
src="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
pids=()
own_pg=""
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "$own_pg" ] && "$src/tests/support/postgres_server.sh" stop "$work/pg" >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
if [ -n "${KANBAN_TEST_POSTGRES_FILE:-}" ] && [ -s "$KANBAN_TEST_POSTGRES_FILE" ]; then
  server="$(cat "$KANBAN_TEST_POSTGRES_FILE")"
else
  own_pg=1
  "$src/tests/support/postgres_server.sh" start "$work/pg" >/dev/null
  server="$(cat "$work/pg/target")"
fi
schema="wake_$$_$RANDOM"
psql -q "$server" -c "CREATE SCHEMA $schema"
db="$server?options=-csearch_path%3D$schema"
for r in a b; do
  "$build/kanband" --listen=127.0.0.1:0 --port_file="$work/$r.port" --db="$db" \
    --replica_id="$r" >"$work/$r.log" 2>&1 &
  pids+=($!)
done
for r in a b; do
  for _ in $(seq 150); do [ -s "$work/$r.port" ] && break; sleep 0.1; done
  [ -s "$work/$r.port" ] || { echo "replica $r did not start:"; cat "$work/$r.log"; exit 1; }
done
"$build/tests/replica_wake_bench" --producer="127.0.0.1:$(cat "$work/a.port")" \
  --waiter="127.0.0.1:$(cat "$work/b.port")" --rounds="$rounds"
psql -q "$server" -c "DROP SCHEMA $schema CASCADE" 2>/dev/null || true
