#!/usr/bin/env bash
# Instructions the writer thread spends per CreateTask, counted by callgrind
# (exact and repeatable, unlike timings on a shared machine; the kernel's
# part, WAL writes and fsync, is not counted). Runs store_bench under
# valgrind and prints the total per create and the largest parts.
#   tests/bench/writer_instructions.sh [BUILD_DIR] [TASKS]
# store_bench runs three configurations (NORMAL, FULL, FULL unbatched) of
# TASKS creates each (default 3000); the figure is per create over all.
set -euo pipefail
build="${1:-build}"; tasks="${2:-3000}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 77; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out" \
  --toggle-collect='kanban::storage::Writer::ApplyBatch*' \
  "$build/tests/store_bench" --tasks="$tasks" --inflight=32 >/dev/null 2>&1
creates=$((3 * tasks))
# The summary lines ("count (percent) file:function [object]"), one per name.
callgrind_annotate --inclusive=yes "$out" 2>/dev/null | awk -v n="$creates" '
  /PROGRAM TOTALS/ { gsub(",", "", $1); printf "%d instructions per create (%d creates)\n", $1 / n, n }
  /\[.*\]$/ && /(sql::InsertTask|sql::InsertEvent|Transaction::Commit|sql::BoardExists|Savepoint::Begin|Savepoint::Release|EncodeTaskJson)\(/ {
    gsub(",", "", $1); name = $0; sub(/.*:kanban::storage::/, "", name); sub(/\(.*/, "", name)
    if (!(name in seen)) { seen[name] = 1; printf "  %-24s %7d\n", name, $1 / n } }'
