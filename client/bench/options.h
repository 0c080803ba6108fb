// kanban-bench's command line: which scenario, against which server, how
// much load. Parsed once in main; read-only afterwards.
#ifndef KANBAN_CLIENT_BENCH_OPTIONS_H_
#define KANBAN_CLIENT_BENCH_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kanban::bench {

struct Options {
  // create, get, list, claim-complete, heartbeat, watch, health or modes.
  std::string scenario;
  // Server to load: any address ResolveServerAddress (client/cpp/channel.h)
  // takes; a list names replicas of one database, and the loops, connections
  // and watchers are spread over them in turn. Empty: start a kanband
  // (`kanband`) on a fresh database under `dir`. Default: empty.
  std::string server;
  // kanband to start when `server` is empty. Default: `kanband` beside this
  // program.
  std::string kanband;
  // Parent of the fresh database directories. Default: $TMPDIR or /tmp.
  std::string dir;
  // --synchronous for a kanband we start: "normal" or "full". Default: normal.
  std::string synchronous = "normal";
  // --db for a kanband we start (a PostgreSQL URI). Default: a fresh SQLite
  // file in `dir`.
  std::string db;
  // Calls in flight (for watch: CreateTask calls in flight). Default: 64.
  int concurrency = 64;
  // Stop after this many calls (cycles for claim-complete, writes for
  // watch). 0: run for `duration` instead. Default: 0.
  int64_t count = 0;
  // How long to run when `count` is 0. Default: 10 s.
  absl::Duration duration = absl::Seconds(10);
  // Started calls per second over all loops; 0 means as fast as the
  // responses come back. Default: 0.
  double rate = 0;
  // Body size of created tasks, in bytes. Default: 100.
  int payload = 100;
  // Board the bench works on; created if missing. Its tasks carry the label
  // "kanban-bench", and claims ask for it, so the bench never claims a task
  // it did not create. Default: "bench".
  std::string board = "bench";
  // HTTP/2 connections the loops are spread over. Default: 1 (like ghz).
  int connections = 1;
  // Deadline of each call. Default: 20 s (like ghz).
  absl::Duration timeout = absl::Seconds(20);
  // watch: number of watch streams. Default: 100.
  int watchers = 100;
  // watch: before the live phase, this many streams that only wait, to
  // measure what they cost kanband (memory each, CPU). Default: 0 (none).
  int idle_watchers = 0;
  // list: ListTasks page size. Default: 50.
  int streams = 8;  // Worker streams for `stream`.
  int leases = 1;   // Leases each `heartbeat` loop holds and renews.
  int page_size = 50;
  // Tasks created before measuring: get and list read them, claim-complete
  // claims them. -1: a default per scenario (see --help).
  int64_t prefill = -1;
  // Also run Health/Check with the same load and report the ratio.
  // Default: true.
  bool check = true;
  // One JSON object on stdout instead of the text summary. Default: false.
  bool json = false;

  bool own_server() const { return server.empty(); }
};

// The usage text printed by --help and after a usage error.
std::string Usage();

// Parses argv (`--flag=value` or `--flag value`; '-' and '_' alike in flag
// names). INVALID_ARGUMENT names the offending flag; `--help` yields
// CANCELLED so the caller prints the usage and exits 0.
absl::StatusOr<Options> ParseOptions(const std::vector<std::string>& args);

}  // namespace kanban::bench

#endif  // KANBAN_CLIENT_BENCH_OPTIONS_H_
