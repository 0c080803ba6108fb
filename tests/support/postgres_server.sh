#!/usr/bin/env bash
# A private PostgreSQL 15 for the test suite: the CTest fixture `postgres`
# runs `start` before the tests that need it and `stop` after them.
#   postgres_server.sh start STATE_DIR   initdb + pg_ctl start on 127.0.0.1 and a
#                                        free port; writes STATE_DIR/target (a
#                                        libpq URI for the `postgres` database)
#   postgres_server.sh stop STATE_DIR    pg_ctl stop, and removes the cluster
#   postgres_server.sh crash STATE_DIR   pg_ctl stop -m immediate (as a power cut
#                                        or a killed server would: no shutdown
#                                        checkpoint; the next start replays WAL)
#   postgres_server.sh resume STATE_DIR  starts the same cluster on the same port
# The cluster lives in a fresh directory under /tmp, owned by an unprivileged
# user when run as root (initdb and postgres refuse to run as root). No system
# service is touched.
set -euo pipefail
cmd="${1:?usage: postgres_server.sh start|stop|crash|resume STATE_DIR}"
state="${2:?usage: postgres_server.sh start|stop|crash|resume STATE_DIR}"
bin="${KANBAN_PG_BIN:-/usr/lib/postgresql/15/bin}"

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    if [ ! -x "$bin/initdb" ]; then
      echo "postgres_server: no $bin/initdb (apt-get install postgresql-15)" >&2
      exit 1
    fi
    mkdir -p "$state"
    if [ -f "$state/cluster" ]; then "$0" stop "$state" || true; fi
    cluster="$(mktemp -d /tmp/kanban-pg.XXXXXX)"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$cluster"
    echo "$cluster" >"$state/cluster"
    port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    as_owner "$bin/initdb" -D "$cluster/data" -A trust -U kanban -E UTF8 --no-locale \
      >"$cluster/initdb.log" 2>&1 || { cat "$cluster/initdb.log" >&2; exit 1; }
    echo "$port" >"$state/port"
    "$0" resume "$state"
    echo "postgresql://kanban@127.0.0.1:$port/postgres" >"$state/target"
    echo "postgres_server: PostgreSQL on 127.0.0.1:$port, data in $cluster/data"
    ;;
  resume)
    cluster="$(cat "$state/cluster")"
    port="$(cat "$state/port")"
    # fsync stays on: the suite's durability tests mean it, and they ask for
    # synchronous_commit=on (kanband --synchronous=full). The server's own
    # default is off: most tests commit one write at a time, and a WAL flush
    # each would make them slow without testing anything more; it also
    # shows that kanband leaves the server's setting alone when not told.
    # Small buffers: the databases are tiny and the machine has other work.
    as_owner "$bin/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 60 \
      -o "-p $port -k $cluster -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=32MB -c synchronous_commit=off" \
      start >/dev/null || { cat "$cluster/server.log" >&2; exit 1; }
    ;;
  crash)
    cluster="$(cat "$state/cluster")"
    as_owner "$bin/pg_ctl" -D "$cluster/data" -m immediate -w stop >/dev/null
    ;;
  stop)
    [ -f "$state/cluster" ] || exit 0
    cluster="$(cat "$state/cluster")"
    if [ -d "$cluster/data" ]; then
      as_owner "$bin/pg_ctl" -D "$cluster/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$cluster"
    rm -f "$state/cluster" "$state/target" "$state/port"
    ;;
  *)
    echo "usage: postgres_server.sh start|stop|crash|resume STATE_DIR" >&2
    exit 2
    ;;
esac
