#!/usr/bin/env bash
# deploy/nginx/kanban-grpc.conf, as shipped, in front of two kanband
# replicas on one fresh PostgreSQL schema, with bearer tokens on. Only the
# upstream servers, the listen address and the access log path of the file
# are rewritten (to loopback, free ports and the test's directory); a small
# nginx.conf around it supplies what the file leaves to nginx.conf (events,
# temp paths). Everything below goes through nginx:
#   1. health, and `kanbanctl info` repeated: both replica ids answer.
#      Asked directly, exactly one replica says "sweeping: yes";
#   2. a watcher (`kanbanctl watch --from-now`) opens its stream, then tasks
#      are created and `kanbanctl work` claims and completes them: every task
#      ends DONE, and the watcher receives created, claimed and completed for
#      each. The access log shows that some tasks were created through the
#      replica that did not serve the watch: the cross-replica event feed;
#   TLS: a second nginx with the file's commented TLS lines in place of its
#      listen line serves `kanbanctl --tls-ca`, and refuses plaintext;
#   3. one replica stopped: calls keep succeeding (nginx retries a refused
#      connect on the other replica), all answered by the survivor, which
#      sweeps.
# Exits 77 (ctest SKIP_RETURN_CODE) without nginx or without the suite's
# PostgreSQL (KANBAN_TEST_POSTGRES_FILE, set by the ctest fixture `postgres`).
# Usage: nginx_balancer_test.sh KANBAND KANBANCTL NGINX_SITE_CONF
set -euo pipefail

kanband="$(realpath "$1")"
kanbanctl="$(realpath "$2")"
site_conf="$3"
tasks=6
board=lb

# Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
nginx="$(PATH="$PATH:/usr/sbin" command -v nginx || true)"
if [ -z "$nginx" ]; then
  echo "SKIP: nginx is not installed (Debian package: nginx)"
  exit 77
fi
if [ -z "${KANBAN_TEST_POSTGRES_FILE:-}" ] || [ ! -s "$KANBAN_TEST_POSTGRES_FILE" ]; then
  echo "SKIP: no PostgreSQL for tests: run through ctest (fixture postgres), or set" \
    "KANBAN_TEST_POSTGRES_FILE to a file holding a server's URI"
  exit 77
fi
for tool in psql python3 openssl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is needed"; exit 1; }
done

server_uri="$(cat "$KANBAN_TEST_POSTGRES_FILE")"
schema="kanban_nginx_$$_$(date +%s)"
db="$server_uri?options=-csearch_path%3D$schema"

tmp="$(mktemp -d)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -q -X "$server_uri" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for log in "$tmp"/*.log "$tmp"/nginx/logs/access.log; do
    [ -s "$log" ] || continue
    echo "---- $log (last 30 lines)" >&2
    tail -n 30 "$log" >&2
  done
  exit 1
}

# A failure after which the remaining checks still run: exit 1 at the end.
problems=0
problem() {
  echo "FAIL: $*" >&2
  problems=$((problems + 1))
}

# Polls `$@` every 0.1 s until it succeeds or $deadline seconds pass.
wait_for() {
  local deadline="$1" what="$2"
  shift 2
  local end=$((SECONDS + deadline))
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || fail "timed out after ${deadline}s waiting for $what"
    sleep 0.1
  done
}

# As wait_for, but a timeout is a problem, not the end of the test.
eventually() {
  local deadline="$1" what="$2"
  shift 2
  local end=$((SECONDS + deadline))
  until "$@"; do
    if [ "$SECONDS" -ge "$end" ]; then
      problem "timed out after ${deadline}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# How many of the replicas on ports $@ (asked directly) say "sweeping: yes".
count_sweepers() {
  local port n=0 out
  for port in "$@"; do
    out="$("$kanbanctl" --server "127.0.0.1:$port" --timeout 5 info)" || return 1
    if grep -q '^sweeping: *yes$' <<<"$out"; then n=$((n + 1)); fi
  done
  echo "$n"
}
one_sweeper() { [ "$(count_sweepers "$@")" = 1 ]; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- The database, its first admin token, two replicas. --------------------

psql -q -X -v ON_ERROR_STOP=1 "$server_uri" -c "CREATE SCHEMA $schema" >/dev/null ||
  fail "could not create schema $schema on $server_uri"
# The operator's bootstrap: the first admin token, made in the database.
token="$("$kanband" token create --db="$db" --role=admin --name=lb-test 2>"$tmp/token.log")" ||
  fail "kanband token create failed"
[[ "$token" == kb_* ]] || fail "kanband token create printed \"$token\", not a secret"
export KANBAN_TOKEN="$token"

declare -A replica_pid=()
start_replica() {
  local id="$1"
  "$kanband" --db="$db" --listen=127.0.0.1:0 --port_file="$tmp/$id.port" \
    --replica_id="$id" --auth=token --shutdown_grace_seconds=1 \
    >"$tmp/$id.log" 2>&1 &
  pids+=($!)
  replica_pid[$id]=$!
}
start_replica lb-a
start_replica lb-b
# Serving once its port file is written; a replica that exited fails at once.
replica_serving() {
  kill -0 "${replica_pid[$1]}" 2>/dev/null || fail "replica $1 exited before serving"
  test -s "$tmp/$1.port"
}
wait_for 60 "replica lb-a's port file" replica_serving lb-a
wait_for 60 "replica lb-b's port file" replica_serving lb-b
port_a="$(cat "$tmp/lb-a.port")"
port_b="$(cat "$tmp/lb-b.port")"

# ---- nginx with the shipped file. ------------------------------------------

mkdir -p "$tmp/nginx/logs" "$tmp/nginx/temp"
lb_port="$(free_port)"
# The shipped replicas (server kanband-X:7300 ...) become the two test ones,
# keeping the shipped parameters (max_fails, fail_timeout).
awk -v a="127.0.0.1:$port_a" -v b="127.0.0.1:$port_b" '
  /^[ \t]*server kanband-[a-z]+:7300[ ;]/ {
    if (!done) {
      line = $0
      sub(/kanband-[a-z]+:7300/, a, line); print line
      line = $0
      sub(/kanband-[a-z]+:7300/, b, line); print line
      done = 1
    }
    next
  }
  { print }' "$site_conf" |
  sed -e "s#^\([ \t]*listen\) 7300 #\1 127.0.0.1:$lb_port #" \
      -e "s#/var/log/nginx/#$tmp/nginx/logs/#" >"$tmp/nginx/site.conf"
grep -q "server 127.0.0.1:$port_a " "$tmp/nginx/site.conf" &&
  grep -q "server 127.0.0.1:$port_b " "$tmp/nginx/site.conf" ||
  fail "no 'server kanband-a:7300 ...' line in $site_conf to point at the replicas"
grep -q "listen 127.0.0.1:$lb_port http2;" "$tmp/nginx/site.conf" ||
  fail "no 'listen 7300 http2;' line in $site_conf"
if grep -nE '^[^#]*kanband-[a-z]+:7300' "$tmp/nginx/site.conf"; then
  fail "shipped replica addresses left in the rewritten copy (above)"
fi
grep -q "$tmp/nginx/logs/access.log" "$tmp/nginx/site.conf" ||
  fail "no 'access_log /var/log/nginx/access.log' line in $site_conf"

# Starts nginx on DIR/site.conf, in DIR, with what the shipped file leaves to
# nginx.conf. No `user`: as root the workers run as nginx's default
# unprivileged user, otherwise as the caller.
start_nginx() {
  local dir="$1" name
  name="$(basename "$dir")"
  mkdir -p "$dir/logs" "$dir/temp"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
events { worker_connections 1024; }
http {
  client_body_temp_path $dir/temp/body;
  proxy_temp_path $dir/temp/proxy;
  fastcgi_temp_path $dir/temp/fastcgi;
  uwsgi_temp_path $dir/temp/uwsgi;
  scgi_temp_path $dir/temp/scgi;
  include $dir/site.conf;
}
EOF
  # Under root the workers (another user) must reach the temp directories.
  chmod 755 "$tmp" "$dir" "$dir/temp"
  local args=(-p "$dir" -c "$dir/nginx.conf")
  local globals="daemon off; master_process on; pid $dir/nginx.pid; error_log stderr;"
  "$nginx" -t -q "${args[@]}" -g "$globals" >"$tmp/$name-t.log" 2>&1 ||
    fail "nginx -t rejects $dir/site.conf: $(cat "$tmp/$name-t.log")"
  "$nginx" "${args[@]}" -g "$globals" >"$tmp/$name.log" 2>&1 &
  pids+=($!)
}
start_nginx "$tmp/nginx"

lb="127.0.0.1:$lb_port"
ctl() { "$kanbanctl" --server "$lb" --timeout 10 "$@"; }

# Health needs no token, even with --auth=token; through nginx it also
# proves nginx is up and reaches a replica.
wait_for 30 "kanbanctl health through nginx" ctl --timeout 2 health >/dev/null 2>&1
for port in "$port_a" "$port_b"; do
  "$kanbanctl" --server "127.0.0.1:$port" health >/dev/null || fail "replica on $port not SERVING"
done

# ---- 1: calls spread over both replicas. -----------------------------------

seen=""
for i in 1 2 3 4 5 6; do
  out="$(ctl info)" || fail "kanbanctl info through nginx (call $i) failed: $out"
  grep -q '^backend: *postgresql' <<<"$out" || fail "info does not show postgresql: $out"
  replica="$(sed -n 's/^replica: *//p' <<<"$out")"
  [ -n "$replica" ] || fail "kanbanctl info shows no replica: $out"
  seen+="$replica"$'\n'
  sweeping="$(sed -n 's/^sweeping: *//p' <<<"$out")"
  echo "info $i: replica $replica, sweeping $sweeping"
done
grep -qx lb-a <<<"$seen" || fail "no info call reached replica lb-a: $(tr '\n' ' ' <<<"$seen")"
grep -qx lb-b <<<"$seen" || fail "no info call reached replica lb-b: $(tr '\n' ' ' <<<"$seen")"
echo "ok: info through nginx answered by both replicas"

# Exactly one replica reclaims leases and applies retention: the sweeper
# leader (each asked directly; nginx picks for us otherwise).
if eventually 30 "exactly one replica to say \"sweeping: yes\"" \
    one_sweeper "$port_a" "$port_b"; then
  echo "ok: exactly one replica sweeps"
else
  echo "  replicas sweeping now: $(count_sweepers "$port_a" "$port_b") of 2" >&2
fi

# Without the token: UNAUTHENTICATED from the replica, through nginx.
if out="$(KANBAN_TOKEN= "$kanbanctl" --server "$lb" info 2>&1)"; then
  fail "info without a token succeeded through nginx: $out"
fi
grep -q UNAUTHENTICATED <<<"$out" || fail "info without a token: $out (want UNAUTHENTICATED)"

# ---- 2: tasks, a worker and a watcher, all through nginx. ------------------

ctl board-create "$board" >/dev/null || fail "board-create $board through nginx failed"

"$kanbanctl" --server "$lb" watch --board "$board" --from-now --verbose --json \
  >"$tmp/watch.out" 2>"$tmp/watch.log" &
watch_pid=$!
pids+=("$watch_pid")
# The first response always carries a bookmark: the stream is open on a
# replica, and every event committed from now on must reach it.
wait_for 30 "the watcher's first bookmark" grep -q '^bookmark seq=' "$tmp/watch.log"

ids=()
for i in $(seq "$tasks"); do
  out="$(ctl --json create --board "$board" --title "through nginx $i")" ||
    fail "create $i through nginx failed: $out"
  # One line of JSON; "id" comes first.
  id="$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' <<<"$out")"
  [ -n "$id" ] || fail "create $i: no id in $out"
  ids+=("$id")
done
echo "created ${#ids[@]} tasks: ${ids[*]}"

status=0
timeout 120 "$kanbanctl" --server "$lb" work --board "$board" --worker lb-worker \
  --max-tasks "$tasks" --wait 5s -- sh -c 'echo "done $KANBAN_TASK_ID"' \
  >"$tmp/work.log" 2>&1 || status=$?
[ "$status" -eq 0 ] || fail "kanbanctl work through nginx exited $status"

for id in "${ids[@]}"; do
  out="$(ctl --json get "$id")" || fail "get $id through nginx failed: $out"
  grep -qF '"status":"DONE"' <<<"$out" || fail "task $id is not DONE: $out"
done
echo "ok: kanbanctl work completed all $tasks tasks through nginx"

# Every task's created, claimed and completed reach the watcher.
# (One JSON object per line, proto field names.)
watch_missing() {
  local id kind
  for id in "${ids[@]}"; do
    for kind in created claimed completed; do
      grep -F "\"task_id\":\"$id\"" "$tmp/watch.out" | grep -qF "\"kind\":\"$kind\"" ||
        echo "$id $kind"
    done
  done
}
watch_complete() { [ -z "$(watch_missing)" ]; }
# A miss here is reported at the end: part 3 still runs.
deadline=$((SECONDS + 30))
until watch_complete; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "---- events the watcher printed ($(wc -l <"$tmp/watch.out") lines):" >&2
    cat "$tmp/watch.out" >&2
    echo "---- (task kind) pairs it lacks:" >&2
    watch_missing >&2
    problem "the watcher through nginx did not receive created, claimed and completed" \
      "for every task within 30 s (the cross-replica event feed)"
    break
  fi
  sleep 0.2
done
kill -TERM "$watch_pid"
status=0
wait "$watch_pid" || status=$?
[ "$status" -eq 0 ] || fail "kanbanctl watch exited $status after SIGTERM"
[ "$problems" -gt 0 ] ||
  echo "ok: the watcher received every task's created, claimed and completed"

# The access log line of a call is written when it ends: the watch's is
# there now. Which replica served what:
log="$tmp/nginx/logs/access.log"
wait_for 10 "the WatchEvents line in nginx's access log" grep -q 'WatchEvents' "$log"
upstream_of() { sed -n "s#.*\"/kanban.v1.KanbanService/$1\" .* upstream=\([^ ]*\) .*#\1#p" "$log"; }
watch_upstream="$(upstream_of WatchEvents | head -n 1)"
create_upstreams="$(upstream_of CreateTask | sort | uniq -c)"
echo "WatchEvents served by $watch_upstream; CreateTask by:"
echo "$create_upstreams"
[ -n "$watch_upstream" ] || fail "no upstream logged for WatchEvents"
upstream_of CreateTask | grep -qvxF "$watch_upstream" ||
  fail "every CreateTask went to the watch's replica $watch_upstream: nothing crossed replicas"
[ "$problems" -gt 0 ] ||
  echo "ok: events committed through one replica reached a watcher on the other"
# Every call but the watch (cancelled by its client) and the refused info
# ended with status 0, and nginx logged it (trailers-only responses carry
# grpc-status in the headers, the others in the trailers).
if grep -v 'grpc-status=0 ' "$log" | grep -v '/WatchEvents" ' |
    grep -v '/GetServerInfo" 200 grpc-status=16 '; then
  fail "calls through nginx that did not end with grpc-status 0 (above)"
fi

# ---- TLS towards the clients, as the file's closing comment says. ---------

# Its commented listen/ssl_* lines, uncommented, replace the plaintext
# listen line; only the port and the certificate paths are rewritten.
tls_lines="$(sed -n -E 's/^[ \t]*#[ \t]+((listen 7300 ssl http2|ssl_[a-z_]+ [^;]+);)$/    \1/p' "$site_conf")"
grep -q 'listen 7300 ssl http2;' <<<"$tls_lines" && grep -q 'ssl_certificate_key ' <<<"$tls_lines" ||
  fail "no commented 'listen 7300 ssl http2;' and ssl_certificate lines in $site_conf"
mkdir -p "$tmp/nginx-tls" "$tmp/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost" -keyout "$tmp/tls/lb.key" -out "$tmp/tls/lb.pem" \
  >"$tmp/openssl.log" 2>&1 || fail "openssl could not make a certificate"
tls_port="$(free_port)"
tls_lines="$(sed -e "s#listen 7300 #listen 127.0.0.1:$tls_port #" -e "s#/etc/nginx/tls/#$tmp/tls/#" \
  <<<"$tls_lines")"
while IFS= read -r line; do
  if [[ "$line" =~ ^[[:space:]]*listen\ 127\.0\.0\.1:$lb_port\ http2\;$ ]]; then
    printf '%s\n' "$tls_lines"
  else
    printf '%s\n' "$line"
  fi
done <"$tmp/nginx/site.conf" |
  sed -e "s#$tmp/nginx/logs/#$tmp/nginx-tls/logs/#" >"$tmp/nginx-tls/site.conf"
grep -q "listen 127.0.0.1:$tls_port ssl http2;" "$tmp/nginx-tls/site.conf" ||
  fail "could not put the TLS lines in place of the listen line"
start_nginx "$tmp/nginx-tls"
tls_ctl() { "$kanbanctl" --server "localhost:$tls_port" --tls-ca "$tmp/tls/lb.pem" --timeout 10 "$@"; }
wait_for 30 "kanbanctl health over TLS through nginx" tls_ctl --timeout 2 health >/dev/null 2>&1
out="$(tls_ctl info)" || fail "kanbanctl info over TLS through nginx failed: $out"
grep -q '^replica: *lb-[ab]$' <<<"$out" || fail "info over TLS: $out"
if out="$("$kanbanctl" --server "127.0.0.1:$tls_port" --timeout 5 info 2>&1)"; then
  fail "a plaintext call to nginx's TLS port succeeded: $out"
fi
echo "ok: the file's TLS lines serve kanbanctl --tls-ca through nginx; plaintext is refused"

# ---- 3: one replica stops; nginx sends the calls to the other. -------------

kill -TERM "${replica_pid[lb-b]}"
status=0
wait "${replica_pid[lb-b]}" || status=$?
[ "$status" -eq 0 ] || fail "replica lb-b exited $status on SIGTERM"
for i in 1 2 3 4; do
  out="$(ctl info)" || fail "info $i through nginx with lb-b stopped failed: $out"
  replica="$(sed -n 's/^replica: *//p' <<<"$out")"
  [ "$replica" = lb-a ] || fail "info $i with lb-b stopped answered by \"$replica\""
done
ctl --json create --board "$board" --title "after lb-b stopped" >/dev/null ||
  fail "create through nginx with lb-b stopped failed"
echo "ok: with lb-b stopped every call went to lb-a"
# Whichever replica swept before, the survivor sweeps now.
if eventually 60 "lb-a to take over sweeping once lb-b stopped" one_sweeper "$port_a"; then
  echo "ok: lb-a sweeps"
fi

if [ "$problems" -gt 0 ]; then
  echo "FAIL: $problems problem(s), reported above" >&2
  exit 1
fi
echo "PASS"
