#!/usr/bin/env bash
# Checks that deploy/kanband.flags and deploy/kanband.env document kanband
# completely and correctly:
#   1. every flag that `kanband --helpfull` lists outside Abseil's own
#      appears in kanband.flags as a "#--name=value" line, and nothing else
#      does (a new flag without documentation fails here);
#   2. each commented value is the one in effect: kanband's default, or the
#      value the unit's ExecStart passes (--db, --listen);
#   3. every KANBAN_* variable named in kanband's usage text appears in
#      kanband.env;
#   4. kanband starts with the example files as written and with every line
#      uncommented (so each value really parses), and takes the variable
#      from the environment file.
# Usage: config_documented_test.sh KANBAND DEPLOY_DIR
set -euo pipefail

kanband="$1"
deploy="$2"
flags_file="$deploy/kanband.flags"
env_file="$deploy/kanband.env"
unit_file="$deploy/kanband.service"

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# ---- What kanband defines. ---------------------------------------------------

# `--helpfull` prints "  Flags from FILE:" headers, then one entry per flag:
#     --name (help text, possibly
#       wrapped); default: VALUE;
# Entries are joined to one line each; flags from Abseil's own files
# (--flagfile, --fromenv, ...) are not kanband's settings.
"$kanband" --helpfull >"$tmp/helpfull" 2>&1 || true
awk '
  /^  Flags from / { file = $3; sub(/:$/, "", file); next }
  /^    --/ { if (entry != "") print entry; entry = (file ~ /(^|\/)absl\//) ? "" : $0; next }
  /^      / { if (entry != "") { line = $0; sub(/^ +/, " ", line); entry = entry line } next }
  { if (entry != "") print entry; entry = "" }
  END { if (entry != "") print entry }
' "$tmp/helpfull" |
  sed -E 's/^ +--([a-z0-9_]+) .*; default: (.*);$/\1 \2/' >"$tmp/defined"
# Strings print quoted ("./data/kanban.db", ""); a flagfile has no quotes.
sed -i -E 's/^([a-z0-9_]+) "(.*)"$/\1 \2/; s/^([a-z0-9_]+) $/\1/' "$tmp/defined"

count=$(wc -l <"$tmp/defined")
if [ "$count" -lt 5 ]; then
  echo "FAIL: found only $count kanband flags in --helpfull; the parser is broken:" >&2
  cat "$tmp/helpfull" >&2
  exit 1
fi
if grep -vqE '^[a-z0-9_]+( .*)?$' "$tmp/defined"; then
  echo "FAIL: could not parse these --helpfull entries:" >&2
  grep -vE '^[a-z0-9_]+( .*)?$' "$tmp/defined" >&2
  exit 1
fi

# The values the unit's ExecStart passes before the flagfile.
declare -A unit_value=()
exec_start="$(sed -n 's/^ExecStart=//p' "$unit_file")"
for word in $exec_start; do
  if [[ "$word" =~ ^--([a-z0-9_]+)=(.*)$ ]] && [ "${BASH_REMATCH[1]}" != flagfile ]; then
    unit_value["${BASH_REMATCH[1]}"]="${BASH_REMATCH[2]}"
  fi
done

# ---- 1 and 2: the flags file. --------------------------------------------------

declare -A documented=()
while IFS= read -r line; do
  if [[ "$line" =~ ^#--([a-z0-9_]+)=(.*)$ ]]; then
    documented["${BASH_REMATCH[1]}"]="${BASH_REMATCH[2]}"
  elif [[ "$line" =~ ^[[:space:]]*-- ]]; then
    fail "kanband.flags: an active setting in the example: $line"
  fi
done <"$flags_file"

declare -A defined=()
while read -r name default; do
  defined["$name"]=1
  if [ -z "${documented[$name]+set}" ]; then
    fail "--$name is not documented in deploy/kanband.flags (add \"#--$name=VALUE\" with a comment)"
    continue
  fi
  expected="${unit_value[$name]-$default}"
  if [ "${documented[$name]}" != "$expected" ]; then
    fail "kanband.flags shows --$name=${documented[$name]}, but the value in effect is \"$expected\""
  fi
done <"$tmp/defined"
for name in "${!documented[@]}"; do
  [ -n "${defined[$name]+set}" ] || fail "kanband.flags documents --$name, which kanband does not define"
done

# ---- 3: the environment file. ------------------------------------------------

"$kanband" --help >"$tmp/help" 2>&1 || true
variables="$(grep -oE 'KANBAN_[A-Z0-9_]+' "$tmp/help" | sort -u)"
if [ -z "$variables" ]; then
  fail "kanband --help names no KANBAN_* variable; expected at least KANBAN_SYNCHRONOUS_MODE"
fi
for variable in $variables; do
  grep -qE "^#?$variable=" "$env_file" ||
    fail "$variable (named in kanband --help) is not documented in deploy/kanband.env"
done

# ---- 4: kanband accepts the files. -------------------------------------------

# Runs kanband with `flagfile`, then the test's own --listen/--db/--port_file
# (later flags win), in the environment from `envfile`; waits for it to serve,
# stops it with SIGTERM and expects exit 0. Leaves the log in $tmp/log.
serve_with() {
  local flagfile="$1" envfile="$2"
  rm -rf "$tmp/data" "$tmp/port" "$tmp/log"
  # The env file's NAME=value lines; `env -u` drops the variable first, so
  # the test's own environment cannot leak in.
  local -a vars=()
  while IFS= read -r line; do
    [[ "$line" =~ ^[A-Z_][A-Z0-9_]*= ]] && vars+=("$line")
  done <"$envfile"
  env -u KANBAN_SYNCHRONOUS_MODE "${vars[@]}" "$kanband" --flagfile="$flagfile" \
    --listen=127.0.0.1:0 --db="$tmp/data/kanban.db" --port_file="$tmp/port" \
    >"$tmp/log" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do
    [ -s "$tmp/port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$tmp/port" ]; then
    fail "kanband did not start with $flagfile and $envfile:"
    cat "$tmp/log" >&2
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    return
  fi
  kill -TERM "$server_pid"
  local status=0
  wait "$server_pid" || status=$?
  server_pid=""
  [ "$status" -eq 0 ] || { fail "kanband exited $status after SIGTERM:"; cat "$tmp/log" >&2; }
}

serve_with "$flags_file" "$env_file"
grep -q "(from default)" "$tmp/log" ||
  fail "with the example files as shipped, durability should come from the default:
$(cat "$tmp/log")"

sed -E 's/^#--/--/' "$flags_file" >"$tmp/all.flags"
sed -E 's/^#([A-Z_][A-Z0-9_]*=)/\1/' "$env_file" >"$tmp/all.env"
serve_with "$tmp/all.flags" "$tmp/all.env"
grep -q "(from KANBAN_SYNCHRONOUS_MODE)" "$tmp/log" ||
  fail "with kanband.env uncommented, durability should come from KANBAN_SYNCHRONOUS_MODE:
$(cat "$tmp/log")"

if [ "$failures" -gt 0 ]; then
  echo "$failures problem(s) with deploy/kanband.flags or deploy/kanband.env" >&2
  exit 1
fi
echo "ok: $count kanband flags and $(echo "$variables" | wc -w) variable(s) documented;" \
  "kanband accepts both example files"
