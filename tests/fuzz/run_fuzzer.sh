#!/usr/bin/env bash
# Runs one libFuzzer target of tests/fuzz/ over a copy of its committed seed
# corpus (the source tree is never written to) for a bounded time.
#   tests/fuzz/run_fuzzer.sh BUILD_FUZZ/fuzz_requests [SECONDS] [libFuzzer flags...]
# SECONDS defaults to 20 (CTest's short run); the long run is e.g. 3600.
# Exits non-zero on any crash, sanitizer report, timeout or OOM. The work
# directory (grown corpus, crashing inputs, log) goes under $KANBAN_FUZZ_OUT
# (default ${TMPDIR:-/tmp}); it is removed after a clean short run and kept,
# with its path printed, after a failure or a run longer than a minute.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 FUZZER_BINARY [SECONDS] [libFuzzer flags...]" >&2
  exit 2
fi
binary=$1
seconds=${2:-20}
shift $(( $# < 2 ? $# : 2 ))
target=$(basename "$binary")
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/corpus/$target
if [ ! -x "$binary" ]; then
  echo "$0: no fuzzer at $binary: build it with" >&2
  echo "  cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DKANBAN_FUZZ=ON -DKANBAN_BUILD_TESTS=OFF" >&2
  echo "  cmake --build build-fuzz --target $target" >&2
  exit 2
fi
[ -d "$seeds" ] || { echo "$0: no seed corpus $seeds" >&2; exit 2; }

out=${KANBAN_FUZZ_OUT:-${TMPDIR:-/tmp}}
mkdir -p "$out"
work=$(mktemp -d "$out/$target.XXXXXX")
mkdir -p "$work/corpus" "$work/crashes"
cp -R "$seeds/." "$work/corpus/"

# UBSan findings already abort (-fno-sanitize-recover); this adds their stacks.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
dict=()
[ -f "$here/$target.dict" ] && dict=(-dict="$here/$target.dict")
status=0
# New inputs go to the copy, crashing ones to crashes/; the targets' own
# temporary files (fuzz_requests' database) to tmp/, kept with a crash.
mkdir -p "$work/tmp"
TMPDIR="$work/tmp" "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$work/crashes/" "${dict[@]}" "$@" \
  "$work/corpus" >"$work/log" 2>&1 || status=$?

grep -E '^(stat::|#[0-9]+[[:space:]]+DONE)' "$work/log" || true
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/crashes")" ]; then
  tail -n 60 "$work/log"
  echo "$target: FAILED (exit $status). Crashing inputs, log and corpus kept in $work" >&2
  echo "  reproduce: $binary $work/crashes/<file>" >&2
  echo "  then fix the bug and add the input to $seeds/" >&2
  exit 1
fi
if [ "$seconds" -gt 60 ]; then
  echo "$target: no findings in ${seconds}s; the grown corpus is in $work/corpus"
else
  rm -rf "$work"
fi
echo "$target: OK"
