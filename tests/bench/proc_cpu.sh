# Sourced by the bench scripts: CPU time from /proc.
# ticks_of: summed utime + stime ticks of the processes whose pids are on
# stdin (divide by `getconf CLK_TCK` for seconds).
ticks_of() { while read -r p; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
# postgres_pids STATE_DIR: the processes of the private cluster that
# tests/support/postgres_server.sh started in STATE_DIR (the postmaster, from
# its pid file, and its children).
postgres_pids() {
  local master; master=$(head -1 "$(cat "$1/cluster")/data/postmaster.pid")
  echo "$master"; pgrep -P "$master" || true
}
