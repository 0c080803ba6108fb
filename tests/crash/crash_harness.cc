// crash_harness: proves that kill -9 never loses an acknowledged write and
// never leaves a half-applied one. Each cycle runs concurrent writers against
// a real kanband, SIGKILLs it at a random moment, checks the database file
// directly (db_check.h), restarts kanband on it and reads the acknowledged
// tasks back over gRPC. The database grows across cycles, and every check
// covers every cycle's acknowledged writes. Exits 1 on any violation.
//
//   crash_harness --cycles=30 --synchronous=full --writers=4 --seed=7

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/crash/db_check.h"
#include "tests/crash/kanband_process.h"
#include "tests/crash/ledger.h"
#include "tests/crash/writers.h"

ABSL_FLAG(std::string, kanband, KANBAND_PATH, "the kanband binary to test");
ABSL_FLAG(int, cycles, 30, "kill/check/restart cycles");
ABSL_FLAG(uint64_t, seed, 0, "seed for every random choice; 0 picks one (printed)");
ABSL_FLAG(std::string, synchronous, "normal", "kanband's --synchronous: normal or full");
ABSL_FLAG(int, writers, 4, "concurrent writer threads");
ABSL_FLAG(int, min_delay_ms, 20, "earliest kill, after the writers start");
ABSL_FLAG(int, max_delay_ms, 400, "latest kill, after the writers start");
ABSL_FLAG(std::string, dir, "",
          "where to make the work directory; default $TMPDIR or /tmp");
ABSL_FLAG(int, max_seconds, 0,
          "if > 0, start no new cycle after this many seconds (the run then ends "
          "with the final restart and checks, and reports the cycles done)");
ABSL_FLAG(bool, keep, false,
          "keep the work directory (database, kanband.log) on success too");
ABSL_FLAG(int, readback_sample, 100,
          "tasks from earlier cycles read back over gRPC after each restart, besides "
          "every task acknowledged in the cycle before");

namespace kanban::crash {
namespace {

namespace v1 = kanban::v1;

constexpr absl::Duration kStartTimeout = absl::Seconds(60);

struct Totals {
  int64_t acked = 0;
  int64_t unacked = 0;
  int64_t unacked_creates = 0;
  int64_t unacked_creates_applied = 0;
};

std::string MakeWorkDir() {
  std::string parent = absl::GetFlag(FLAGS_dir);
  if (parent.empty()) {
    const char* tmp = getenv("TMPDIR");
    parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  std::string templ = parent + "/kanban_crash_XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    std::perror("crash_harness: mkdtemp");
    exit(2);
  }
  return templ;
}

// After a restart: what kanband serves is what the file held at the check
// (unless the sweeper has changed a task since, which only raises its
// version), and every create whose answer was lost can be retried and
// succeeds, returning the task the file held if it was applied.
void ReadBack(const std::shared_ptr<grpc::Channel>& channel, const DbReport& db,
              const std::set<std::string>& touched, Ledger& ledger, std::mt19937_64& rng,
              std::vector<std::string>& violations) {
  auto stub = v1::KanbanService::NewStub(channel);
  std::vector<std::string> ids(touched.begin(), touched.end());
  const int sample = absl::GetFlag(FLAGS_readback_sample);
  if (!db.rows.empty()) {
    for (int i = 0; i < sample; ++i) {
      auto it = db.rows.begin();
      std::advance(it, static_cast<long>(rng() % db.rows.size()));
      ids.push_back(it->first);
    }
  }
  for (const std::string& id : ids) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::GetTaskRequest req;
    req.set_task_id(id);
    v1::Task got;
    grpc::Status s = stub->GetTask(&ctx, req, &got);
    auto row = db.rows.find(id);
    if (!s.ok() || row == db.rows.end()) {
      violations.push_back(absl::StrCat("GetTask ", id, " after restart: code ",
                                        s.error_code(), " ", s.error_message()));
    } else if (got.version() < row->second.version ||
               (got.version() == row->second.version && FromProto(got) != row->second)) {
      violations.push_back(absl::StrCat("GetTask ", id,
                                        " after restart differs from the "
                                        "file: ",
                                        Diff(FromProto(got), row->second)));
    }
  }
  std::map<std::string, std::string> by_key;
  for (const auto& [id, row] : db.rows) {
    if (!row.idempotency_key.empty()) by_key[row.idempotency_key] = id;
  }
  for (const v1::CreateTaskRequest& req : ledger.TakeUnackedCreates()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::Task got;
    grpc::Status s = stub->CreateTask(&ctx, req, &got);
    auto applied = by_key.find(req.idempotency_key());
    if (!s.ok()) {
      violations.push_back(absl::StrCat("retrying CreateTask ", req.idempotency_key(),
                                        " after restart: code ", s.error_code(), " ",
                                        s.error_message()));
    } else if (applied != by_key.end() && got.id() != applied->second) {
      violations.push_back(absl::StrCat("retrying CreateTask ", req.idempotency_key(),
                                        " returned ", got.id(), ", not the applied ",
                                        applied->second));
    } else {
      ledger.AckTask(got);
    }
  }
}

// The mode kanband reports must be the one asked for.
void CheckMode(const std::shared_ptr<grpc::Channel>& channel, const std::string& want,
               std::vector<std::string>& violations) {
  auto stub = v1::KanbanService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ServerInfo info;
  grpc::Status s = stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
  std::string upper = want;
  for (char& c : upper) c = static_cast<char>(toupper(c));
  if (!s.ok() || info.synchronous() != upper || info.journal_mode() != "wal") {
    violations.push_back(absl::StrCat(
        "GetServerInfo: code ", s.error_code(), ", synchronous ", info.synchronous(),
        ", journal_mode ", info.journal_mode(), "; wanted ", upper, ", wal"));
  }
}

int Fail(const std::vector<std::string>& violations, const std::string& dir) {
  std::printf("VIOLATIONS (%zu):\n", violations.size());
  for (size_t i = 0; i < violations.size() && i < 50; ++i) {
    std::printf("  %s\n", violations[i].c_str());
  }
  std::printf("work directory kept for inspection: %s\n", dir.c_str());
  std::printf("crash_harness: FAIL\n");
  return 1;
}

int Main() {
  const int cycles = absl::GetFlag(FLAGS_cycles);
  const std::string mode = absl::GetFlag(FLAGS_synchronous);
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  if (seed == 0)
    seed = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) % 1000000007;
  const int min_delay = absl::GetFlag(FLAGS_min_delay_ms);
  const int max_delay = std::max(min_delay, absl::GetFlag(FLAGS_max_delay_ms));
  const std::string dir = MakeWorkDir();
  std::printf("crash_harness: %d cycles, synchronous=%s, %d writers, seed=%llu, dir=%s\n",
              cycles, mode.c_str(), absl::GetFlag(FLAGS_writers),
              static_cast<unsigned long long>(seed), dir.c_str());
  std::fflush(stdout);

  std::mt19937_64 rng(seed);
  Ledger ledger;
  KanbandProcess kanband(absl::GetFlag(FLAGS_kanband), dir + "/kanban.db", dir,
                         {"--synchronous=" + mode});
  Totals totals;
  DbChecker checker;
  DbReport last;
  std::set<std::string> touched;  // Tasks acknowledged in the previous cycle.
  const absl::Time started = absl::Now();
  std::vector<std::string> violations;

  const int max_seconds = absl::GetFlag(FLAGS_max_seconds);
  int done = 0;
  for (int cycle = 1;; ++cycle) {
    const bool final_round =
        cycle > cycles ||
        (max_seconds > 0 && absl::Now() - started > absl::Seconds(max_seconds));
    if (absl::Status s = kanband.Start(kStartTimeout); !s.ok()) {
      violations.push_back(absl::StrCat("cycle ", cycle, ": start: ", s.ToString()));
      return Fail(violations, dir);
    }
    ledger.StartCycle();
    CheckMode(kanband.channel(), mode, violations);
    if (cycle > 1) ReadBack(kanband.channel(), last, touched, ledger, rng, violations);
    if (!violations.empty()) return Fail(violations, dir);

    if (final_round) {
      // End as an operator would: SIGTERM must drain and exit 0, and the
      // file must still pass every check.
      if (absl::Status s = kanband.Stop(absl::Seconds(60)); !s.ok()) {
        violations.push_back(absl::StrCat("final stop: ", s.ToString()));
      }
    } else {
      std::atomic<bool> killed{false};
      const int delay = min_delay + static_cast<int>(rng() % (max_delay - min_delay + 1));
      Writers writers(kanband.channel(), ledger, killed, absl::GetFlag(FLAGS_writers),
                      seed, cycle);
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      killed.store(true);
      if (absl::Status s = kanband.Kill(); !s.ok()) {
        violations.push_back(absl::StrCat("cycle ", cycle, ": kill: ", s.ToString()));
      }
      writers.Join();
      std::printf("cycle %d/%d: killed after %d ms; ", cycle, cycles, delay);
    }

    const CycleCounts counts = ledger.counts();
    const size_t unacked_creates = ledger.unacked_creates().size();
    const absl::Time check_start = absl::Now();
    last = checker.Check(dir + "/kanban.db", ledger);
    const absl::Duration check_time = absl::Now() - check_start;
    totals.acked += counts.acked;
    totals.unacked += counts.unacked;
    totals.unacked_creates += static_cast<int64_t>(unacked_creates);
    totals.unacked_creates_applied += last.unacked_creates_applied;
    touched = counts.touched;
    if (final_round) std::printf("after SIGTERM: ");
    std::printf(
        "acked %lld (rejected %lld), unacked in flight %lld (creates %zu, applied %lld); "
        "db %lld tasks, %lld events, %lld comments; check %lld ms; %s\n",
        static_cast<long long>(counts.acked), static_cast<long long>(counts.rejected),
        static_cast<long long>(counts.unacked), unacked_creates,
        static_cast<long long>(last.unacked_creates_applied),
        static_cast<long long>(last.tasks), static_cast<long long>(last.events),
        static_cast<long long>(last.comments),
        static_cast<long long>(absl::ToInt64Milliseconds(check_time)),
        last.violations.empty() && ledger.violations().empty() ? "ok" : "VIOLATED");
    std::fflush(stdout);
    violations.insert(violations.end(), ledger.violations().begin(),
                      ledger.violations().end());
    violations.insert(violations.end(), last.violations.begin(), last.violations.end());
    if (!violations.empty()) return Fail(violations, dir);
    if (final_round) break;
    done = cycle;
  }

  std::printf(
      "summary: %d cycles, synchronous=%s, seed=%llu: %lld acked writes, %lld "
      "unacknowledged in flight at kill (%lld creates, %lld of them applied), "
      "0 violations, %.1f s\n",
      done, mode.c_str(), static_cast<unsigned long long>(seed),
      static_cast<long long>(totals.acked), static_cast<long long>(totals.unacked),
      static_cast<long long>(totals.unacked_creates),
      static_cast<long long>(totals.unacked_creates_applied),
      absl::ToDoubleSeconds(absl::Now() - started));
  std::printf("crash_harness: PASS\n");
  if (absl::GetFlag(FLAGS_keep)) {
    std::printf("work directory kept: %s\n", dir.c_str());
  } else {
    std::filesystem::remove_all(dir);
  }
  return 0;
}

}  // namespace
}  // namespace kanban::crash

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return kanban::crash::Main();
}
