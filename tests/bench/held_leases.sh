#!/usr/bin/env bash
# One kanband on a fresh SQLite file (or the --db given as DB), with
# held_leases_bench against it: the writer's mutations and transactions per
# heartbeat interval while --streams worker streams hold --leases leases and
# only heartbeat. Usage:
#   tests/bench/held_leases.sh BUILD_DIR [bench flags: --streams=100 --leases=1000 ...]
# DB=postgresql://... runs it on PostgreSQL; KANBAND=PATH another kanband.
set -euo pipefail
build="${1:?usage: held_leases.sh BUILD_DIR [FLAGS]}"
shift
work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
"${KANBAND:-$build/kanband}" --listen=127.0.0.1:0 --port_file="$work/port" \
  --metrics_listen=127.0.0.1:0 --metrics_port_file="$work/metrics.port" \
  --db="${DB:-$work/kanban.db}" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 150); do [ -s "$work/port" ] && [ -s "$work/metrics.port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "kanband did not start:"; cat "$work/log"; exit 1; }
"$build/tests/held_leases_bench" --server="127.0.0.1:$(cat "$work/port")" \
  --metrics_port="$(cat "$work/metrics.port")" "$@"
