#!/usr/bin/env bash
# PostgreSQL against SQLite, both in FULL, through kanban-bench, in
# interleaved pairs (the machine's speed drifts; a pair runs back to back):
# CreateTask and claim->complete on a kanband that kanban-bench starts, on a
# fresh schema of a private PostgreSQL 15 (tests/support/postgres_server.sh)
# and on a fresh SQLite file. Prints each run's figure and the ratio.
# Usage: tests/bench/postgres_bench.sh BUILD_DIR [PAIRS=3] [DURATION=8s]
set -euo pipefail
build="${1:?usage: postgres_bench.sh BUILD_DIR [PAIRS] [DURATION]}"
pairs="${2:-3}"
duration="${3:-8s}"
src="$(cd "$(dirname "$0")/../.." && pwd)"
bench="$build/kanban-bench"
[ -x "$bench" ] || bench="$build/client/bench/kanban-bench"
state="$(mktemp -d)"
trap '"$src/tests/support/postgres_server.sh" stop "$state"; rm -rf "$state"' EXIT
"$src/tests/support/postgres_server.sh" start "$state" >/dev/null
server="$(cat "$state/target")"

rps() { /usr/bin/python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["rps"])'; }

echo "scenario        pair  postgresql  sqlite  pg/sqlite   (synchronous full, $duration each)"
for scenario in create claim-complete; do
  for i in $(seq "$pairs"); do
    schema="bench_${scenario//-/_}_${i}_$$"
    psql -q "$server" -c "CREATE SCHEMA $schema"
    pg="$("$bench" "$scenario" --synchronous=full --duration="$duration" --no_check --json \
      --db="$server?options=-csearch_path%3D$schema" | rps)"
    lite="$("$bench" "$scenario" --synchronous=full --duration="$duration" --no_check --json | rps)"
    ratio="$(/usr/bin/python3 -c "print('%.2f' % ($pg / $lite))")"
    printf '%-15s %4s  %10s  %6s  %9s\n' "$scenario" "$i" "$pg" "$lite" "$ratio"
  done
done
