#include "client/bench/options.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace kanban::bench {
namespace {

const std::set<std::string>& Scenarios() {
  static const auto* scenarios = new std::set<std::string>{
      "create",    "get",   "list",   "claim-complete", "stream",
      "heartbeat", "watch", "health", "modes"};
  return *scenarios;
}

// `kanband` in this program's directory, where the build (and an install
// of both) puts it; empty if there is none.
std::string KanbandBesideUs() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  std::filesystem::path kanband = self.parent_path() / "kanband";
  return access(kanband.c_str(), X_OK) == 0 ? kanband.string() : "";
}

absl::Status Bad(const std::string& flag, const std::string& value, const char* want) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, "=", value, ": expected ", want));
}

}  // namespace

std::string Usage() {
  return R"(usage: kanban-bench SCENARIO [flags]

Scenarios (each also runs grpc.health.v1.Health/Check with the same load on
the same server and prints the ratio scenario RPS / Check RPS):
  create          CreateTask (body of --payload bytes)
  get             GetTask on tasks created first (--prefill, default 1000)
  list            ListTasks of --board, --page_size per page (--prefill 200)
  claim-complete  ClaimTask then CompleteTask; one request = one cycle
                  (--prefill: --count, or 4000 per second of --duration)
  stream          --concurrency worker slots over --streams WorkerService.Work
                  streams: take a pushed assignment, complete it; one
                  request = one cycle (--prefill: 10000 per second)
  heartbeat       Heartbeat: each loop is a worker renewing --leases leases
  watch           --watchers WatchEvents streams while --concurrency writers
                  create tasks; latency = commit -> receipt, RPS = events/s
  health          Health/Check only
  modes           create against a fresh kanband in NORMAL, then in FULL;
                  prints FULL/NORMAL (needs --kanband, not --server)

Flags (--flag=value or --flag value):
  --server ADDR       load this server (else start kanband on a fresh db);
                      a,b,c: replicas of one database, each loop, connection
                      and watcher on one of them in turn (also ipv4:/dns:)
  --kanband PATH      kanband to start (default: the one beside this program)
  --dir DIR           where fresh databases go (default: $TMPDIR or /tmp)
  --synchronous MODE  normal or full, for a kanband we start (default normal)
  --db TARGET         the started kanband's --db: a PostgreSQL URI (default: a
                      fresh SQLite file in --dir); give it an empty database
  --concurrency N     calls in flight (default 64)
  --count N           stop after N calls
  --duration D        or run for D, e.g. 10s (default 10s)
  --rate R            start at most R calls/s in total (default: no limit)
  --payload BYTES     task body size (default 100)
  --board NAME        board to work on, created if missing (default bench)
  --connections N     HTTP/2 connections (default 1, as ghz)
  --timeout D         deadline of each call (default 20s)
  --watchers N        watch streams for `watch` (default 100)
  --idle_watchers N   `watch`: first open N streams that only wait and print
                      kanband's memory per stream and CPU (default 0: none)
  --streams N         worker streams for `stream` (default 8)
  --leases N          leases per Heartbeat for `heartbeat` (default 1)
  --page_size N       ListTasks page size (default 50)
  --prefill N         tasks created before measuring (see above)
  --no_check          skip the Health/Check comparison run
  --json              print one JSON object (ghz -O json fields + kanban ones)

Exit status: 0 when every call was OK and something completed, 1 otherwise,
2 on a usage error.
)";
}

absl::StatusOr<Options> ParseOptions(const std::vector<std::string>& args) {
  Options o;
  if (const char* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0') {
    o.dir = tmp;
  } else {
    o.dir = "/tmp";
  }
  bool duration_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      if (!o.scenario.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument: ", arg));
      }
      o.scenario = arg;
      continue;
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    absl::StrReplaceAll({{"-", "_"}}, &name);
    if (name == "help" || name == "h") return absl::CancelledError("help");
    if (name == "json" || name == "no_check") {
      if (has_value) return Bad(name, value, "no value");
      if (name == "json") {
        o.json = true;
      } else {
        o.check = false;
      }
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = args[++i];
    }
    int n = 0;
    if (name == "server") {
      o.server = value;
    } else if (name == "kanband") {
      o.kanband = value;
    } else if (name == "dir") {
      o.dir = value;
    } else if (name == "db") {
      o.db = value;
    } else if (name == "synchronous") {
      o.synchronous = absl::AsciiStrToLower(value);
      if (o.synchronous != "normal" && o.synchronous != "full") {
        return Bad(name, value, "normal or full");
      }
    } else if (name == "concurrency" || name == "c") {
      if (!absl::SimpleAtoi(value, &o.concurrency) || o.concurrency < 1) {
        return Bad(name, value, "a positive integer");
      }
    } else if (name == "count" || name == "n") {
      if (!absl::SimpleAtoi(value, &o.count) || o.count < 1) {
        return Bad(name, value, "a positive integer");
      }
    } else if (name == "duration" || name == "z") {
      if (!absl::ParseDuration(value, &o.duration) ||
          o.duration <= absl::ZeroDuration()) {
        return Bad(name, value, "a duration such as 10s or 500ms");
      }
      duration_given = true;
    } else if (name == "rate") {
      if (!absl::SimpleAtod(value, &o.rate) || o.rate < 0) {
        return Bad(name, value, "a non-negative number");
      }
    } else if (name == "payload") {
      if (!absl::SimpleAtoi(value, &o.payload) || o.payload < 0 || o.payload > 65536) {
        return Bad(name, value, "0 to 65536 (the server's body limit)");
      }
    } else if (name == "board") {
      o.board = value;
    } else if (name == "connections") {
      if (!absl::SimpleAtoi(value, &o.connections) || o.connections < 1) {
        return Bad(name, value, "a positive integer");
      }
    } else if (name == "timeout") {
      if (!absl::ParseDuration(value, &o.timeout) || o.timeout <= absl::ZeroDuration()) {
        return Bad(name, value, "a duration such as 20s");
      }
    } else if (name == "watchers") {
      if (!absl::SimpleAtoi(value, &o.watchers) || o.watchers < 1) {
        return Bad(name, value, "a positive integer");
      }
    } else if (name == "idle_watchers") {
      if (!absl::SimpleAtoi(value, &o.idle_watchers) || o.idle_watchers < 0) {
        return Bad(name, value, "a non-negative integer");
      }
    } else if (name == "leases") {
      if (!absl::SimpleAtoi(value, &o.leases) || o.leases < 1 || o.leases > 1000) {
        return Bad(name, value, "1 to 1000");
      }
    } else if (name == "streams") {
      if (!absl::SimpleAtoi(value, &o.streams) || o.streams < 1) {
        return Bad(name, value, "a positive integer");
      }
    } else if (name == "page_size") {
      if (!absl::SimpleAtoi(value, &n) || n < 1 || n > 1000) {
        return Bad(name, value, "1 to 1000");
      }
      o.page_size = n;
    } else if (name == "prefill") {
      if (!absl::SimpleAtoi(value, &o.prefill) || o.prefill < 0) {
        return Bad(name, value, "a non-negative integer");
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
  }
  if (o.scenario.empty()) return absl::InvalidArgumentError("no scenario given");
  if (Scenarios().count(o.scenario) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("unknown scenario ", o.scenario));
  }
  if (o.count > 0 && duration_given) {
    return absl::InvalidArgumentError("give --count or --duration, not both");
  }
  if (o.scenario == "modes" && !o.server.empty()) {
    return absl::InvalidArgumentError("modes starts its own servers; drop --server");
  }
  if (o.server.empty() && o.kanband.empty()) {
    o.kanband = KanbandBesideUs();
    if (o.kanband.empty()) {
      return absl::InvalidArgumentError(
          "no --server given and no kanband beside this program: give --kanband");
    }
  }
  return o;
}

}  // namespace kanban::bench
