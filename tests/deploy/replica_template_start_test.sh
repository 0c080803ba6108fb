#!/usr/bin/env bash
# Runs deploy/kanband@.service's ExecStart as systemd would for the instance
# "a", without systemd: %i becomes "a", /etc/kanban/ a temporary directory,
# /usr/local/bin/kanband the built one, and the unit's Environment= lines
# are set (%d: the credentials directory, here the same temporary one). The
# shared flagfile is deploy/kanband.flags as shipped plus the lines an
# operator adds (--db on the suite's PostgreSQL), and also a --replica_id
# and a --listen that must lose: the id to %i, the listen to a.flags. The
# replica must then serve as "a" on a.flags' address.
# Exits 77 without the suite's PostgreSQL (KANBAN_TEST_POSTGRES_FILE).
# Usage: replica_template_start_test.sh KANBAND KANBANCTL UNIT_FILE FLAGS_FILE
set -euo pipefail

kanband="$(realpath "$1")"
kanbanctl="$(realpath "$2")"
unit="$3"
shipped_flags="$4"

if [ -z "${KANBAN_TEST_POSTGRES_FILE:-}" ] || [ ! -s "$KANBAN_TEST_POSTGRES_FILE" ]; then
  echo "SKIP: no PostgreSQL for tests: run through ctest (fixture postgres)"
  exit 77
fi
server_uri="$(cat "$KANBAN_TEST_POSTGRES_FILE")"
schema="kanban_template_$$_$(date +%s)"

tmp="$(mktemp -d)"
pid=""
cleanup() {
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  psql -q -X "$server_uri" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [ -s "$tmp/kanband.log" ] && tail -n 20 "$tmp/kanband.log" >&2
  exit 1
}

psql -q -X -v ON_ERROR_STOP=1 "$server_uri" -c "CREATE SCHEMA $schema" >/dev/null ||
  fail "could not create schema $schema"

# /etc/kanban, as README.md has the operator fill it.
etc="$tmp/etc"
mkdir -p "$etc"
{
  cat "$shipped_flags"
  echo "--db=$server_uri?options=-csearch_path%3D$schema"
  echo "--replica_id=from-the-shared-file"
  echo "--listen=127.0.0.1:1"
} >"$etc/kanband.flags"
printf -- '--listen=127.0.0.1:0\n--port_file=%s\n' "$tmp/a.port" >"$etc/a.flags"
# A password file libpq accepts (0600); the suite's server trusts anyway.
(umask 077; echo "*:*:*:*:unused" >"$tmp/pgpass")

# ExecStart=, with the instance's specifiers and paths filled in.
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
[ -n "$exec_start" ] || fail "no ExecStart= in $unit"
command_line="$(sed -e "s#^/usr/local/bin/kanband #$kanband #" -e "s#/etc/kanban/#$etc/#g" \
  -e 's/%i/a/g' <<<"$exec_start")"
[[ "$command_line" == "$kanband "* ]] || fail "ExecStart does not run /usr/local/bin/kanband"
if grep -q '%' <<<"$command_line"; then
  fail "ExecStart has specifiers this test does not fill in: $exec_start"
fi
read -r -a argv <<<"$command_line"
# Environment= lines (PGPASSFILE=%d/pgpass); systemd sets them before start.
env_args=()
while IFS= read -r assignment; do
  env_args+=("$(sed -e "s#%d/#$tmp/#g" <<<"$assignment")")
done < <(sed -n 's/^Environment=//p' "$unit")
grep -q '^PGPASSFILE=' <<<"${env_args[*]:-}" || fail "the unit sets no PGPASSFILE"

echo "running: ${env_args[*]} ${argv[*]}"
env "${env_args[@]}" "${argv[@]}" >"$tmp/kanband.log" 2>&1 &
pid=$!
end=$((SECONDS + 60))
until [ -s "$tmp/a.port" ]; do
  kill -0 "$pid" 2>/dev/null || fail "kanband exited before serving"
  [ "$SECONDS" -lt "$end" ] || fail "kanband did not write a.flags' --port_file within 60 s"
  sleep 0.1
done
out="$("$kanbanctl" --server "127.0.0.1:$(cat "$tmp/a.port")" info)" ||
  fail "kanbanctl info failed: $out"
grep -q '^replica: *a$' <<<"$out" || fail "want replica a (the instance name), got: $out"
grep -q '^backend: *postgresql' <<<"$out" || fail "want the PostgreSQL backend, got: $out"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || fail "kanband exited $status on SIGTERM"
echo "ok: kanband@a's command line serves as replica a on PostgreSQL, listening where a.flags says"
