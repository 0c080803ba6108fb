#!/usr/bin/env bash
# Checks a kanband unit (deploy/kanband.service, or the template
# deploy/kanband@.service through its instance kanband@a.service) with
# systemd's own tools:
#   - `systemd-analyze verify` finds nothing to report. It needs ExecStart's
#     program to exist, so a copy of the unit points at the built kanband.
#     verify exits 0 even for unknown keys and unparsable values (it only
#     warns), so any output about the unit counts as a failure; a broken copy
#     checks first that this detection works here.
#   - `systemd-analyze security --offline=yes` rates the sandbox at most
#     2.0 ("OK" is below 4.5), so dropping a protection fails the suite.
# Exits 77 (ctest SKIP_RETURN_CODE) when systemd-analyze is not installed.
# Usage: systemd_unit_test.sh KANBAND UNIT_FILE
set -euo pipefail

kanband="$1"
unit="$2"
max_exposure=20  # Tenths: 2.0.

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIP: systemd-analyze is not installed (Debian package: systemd)"
  exit 77
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The file keeps its name (unit names matter to systemd); a template is
# checked as one of its instances, which systemd-analyze loads from the
# template file beside it.
name="$(basename "$unit")"
target="$name"
case "$name" in
  *@.service) target="${name%@.service}@a.service" ;;
esac

# Prints what `systemd-analyze verify` says about the unit file $1 (its exit
# status, then its output); nothing when it is happy.
verify() {
  local status=0 output
  output="$(systemd-analyze verify --man=no "$1" 2>&1)" || status=$?
  if [ "$status" -ne 0 ] || [ -n "$output" ]; then
    echo "systemd-analyze verify exited $status:"
    echo "$output"
  fi
}

# A template names the replica after its instance and reads the instance's
# own flagfile after the shared one (README.md).
if [ "$target" != "$name" ]; then
  exec_start="$(grep '^ExecStart=' "$unit")"
  for needed in '--replica_id=%i' '--flagfile=/etc/kanban/%i.flags'; do
    grep -qF -- "$needed" <<<"$exec_start" ||
      { echo "FAIL: $unit: ExecStart lacks $needed"; exit 1; }
  done
fi

# A copy under the same name, with the built kanband as its program.
mkdir "$tmp/ok" "$tmp/broken"
grep -q '^ExecStart=/usr/local/bin/kanband ' "$unit" || {
  echo "FAIL: expected ExecStart=/usr/local/bin/kanband ... in $unit"
  exit 1
}
sed "s#^ExecStart=/usr/local/bin/kanband #ExecStart=$(realpath "$kanband") #" "$unit" \
  >"$tmp/ok/$name"

# The self-check: a misspelled key and a bad value, which systemd ignores
# with a warning and exit status 0.
sed -e 's/^Restart=on-failure$/Restart=sometimes/' -e 's/^UMask=/UMaks=/' \
  "$tmp/ok/$name" >"$tmp/broken/$name"
if cmp -s "$tmp/ok/$name" "$tmp/broken/$name"; then
  echo "FAIL: could not break the copy (no Restart=on-failure or UMask= line?)"
  exit 1
fi
if [ -z "$(verify "$tmp/broken/$target")" ]; then
  echo "FAIL: systemd-analyze verify reports nothing for a broken unit here;" \
    "this test could not catch a mistake"
  exit 1
fi

problems="$(verify "$tmp/ok/$target")"
if [ -n "$problems" ]; then
  echo "FAIL: $unit (as $target):"
  echo "$problems"
  exit 1
fi
echo "ok: systemd-analyze verify has nothing to report"

# `security --offline` came with systemd 250 (Debian 12 has 252).
if ! systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
  echo "note: this systemd-analyze has no 'security --offline'; sandbox not rated"
  exit 0
fi
status=0
systemd-analyze security --offline=yes --threshold="$max_exposure" \
  "$tmp/ok/$target" >"$tmp/security" 2>&1 || status=$?
grep 'Overall exposure level' "$tmp/security" || true
if [ "$status" -ne 0 ]; then
  echo "FAIL: the sandbox is rated above $((max_exposure / 10)).$((max_exposure % 10))" \
    "(exit $status); what it lacks:"
  grep -v '^✓' "$tmp/security"
  exit 1
fi
