// What a PostgreSQL crash loses of what kanband acknowledged, by durability
// mode (README "Durability on PostgreSQL"). With --synchronous=normal
// kanband's sessions run synchronous_commit=off: COMMIT returns before its
// WAL is flushed, so a crash of the server may lose the newest acknowledged
// writes. This measures how many, and how old the oldest of them was.
//
// Each cycle, on a private PostgreSQL of its own and one kanband per mode:
// --writers threads create tasks (each ack timed), the server is killed
// (pg_ctl stop -m immediate: no shutdown checkpoint, unflushed WAL buffers
// gone, as when the postmaster is killed), started again, and every task
// acknowledged in the cycle is looked up in the event log. A writer stops at
// its first failed call and never retries it, so a lost write stays lost.
// Prints, per mode and cycle, the acknowledged and lost counts and the age
// at the kill of the oldest lost ack (the loss window), then a summary.
// `--synchronous=full` is the control: it must lose nothing.
//
// It is a gtest program only to use the cluster harness (tests/cluster);
// figures go to stdout. Usage:
//   postgres_loss_window [--modes=normal,full] [--cycles=5] [--writers=8]
//                        [--pause=0] [--load=1500ms]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/cluster/replicas.h"
#include "tests/support/temp_dir.h"

ABSL_FLAG(std::string, modes, "normal,full", "kanband --synchronous values to measure");
ABSL_FLAG(int, cycles, 5, "crashes per mode");
ABSL_FLAG(int, writers, 8, "threads creating tasks");
ABSL_FLAG(absl::Duration, pause, absl::ZeroDuration(),
          "each writer's pause between creates (light load: WAL pages fill slowly, "
          "so the WAL writer's timer, not full pages, flushes them)");
ABSL_FLAG(absl::Duration, load, absl::Milliseconds(1500),
          "writing before the kill (the kill itself falls 0-500 ms later, at random)");

namespace kanban {
namespace {

using ::kanban::testing::DatabaseEvents;
using ::kanban::testing::LoggedEvent;
using ::kanban::testing::Prepare;
using ::kanban::testing::PrivatePostgres;
using ::kanban::testing::Replicas;
using ::kanban::testing::WaitFor;

struct Ack {
  std::string task_id;
  absl::Time at;
};

// One cycle's writers: each creates tasks until its first failure.
class Writers {
 public:
  Writers(std::shared_ptr<grpc::Channel> channel, int count, int cycle) {
    for (int w = 0; w < count; ++w) {
      threads_.emplace_back([this, channel, w, cycle] { Write(channel, w, cycle); });
    }
  }
  ~Writers() { Join(); }

  void Join() {
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int acknowledged() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(acks_.size());
  }
  std::vector<Ack> acks() {
    absl::MutexLock lock(&mu_);
    return acks_;
  }
  // When the first call failed: the moment the server died, as the writers
  // saw it (InfiniteFuture if none has failed).
  absl::Time first_failure() {
    absl::MutexLock lock(&mu_);
    return first_failure_;
  }

 private:
  void Write(const std::shared_ptr<grpc::Channel>& channel, int writer, int cycle) {
    auto stub = v1::KanbanService::NewStub(channel);
    for (int i = 0;; ++i) {
      v1::CreateTaskRequest create;
      create.set_title(absl::StrCat("c", cycle, "w", writer, "-", i));
      create.set_idempotency_key(create.title());
      v1::Task task;
      grpc::ClientContext ctx;
      Prepare(ctx, absl::Seconds(5));
      const bool ok = stub->CreateTask(&ctx, create, &task).ok();
      const absl::Time at = absl::Now();
      {
        absl::MutexLock lock(&mu_);
        if (!ok) {  // The kill.
          first_failure_ = std::min(first_failure_, at);
          return;
        }
        acks_.push_back({task.id(), at});
      }
      absl::SleepFor(pause_);
    }
  }

  const absl::Duration pause_ = absl::GetFlag(FLAGS_pause);
  absl::Mutex mu_;
  std::vector<Ack> acks_ ABSL_GUARDED_BY(mu_);
  absl::Time first_failure_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::vector<std::thread> threads_;
};

struct CycleResult {
  int acknowledged = 0;
  int lost = 0;
  absl::Duration oldest_lost = absl::ZeroDuration();  // Age at the kill.
};

CycleResult RunCycle(PrivatePostgres& server, const Replicas& kanband, int cycle,
                     absl::BitGen& gen) {
  CycleResult result;
  Writers writers(kanband.Channel(0), absl::GetFlag(FLAGS_writers), cycle);
  absl::SleepFor(absl::GetFlag(FLAGS_load) +
                 absl::Milliseconds(absl::Uniform(gen, 0, 500)));
  EXPECT_EQ(server.Run("crash"), 0);
  writers.Join();
  // pg_ctl takes tens of milliseconds to start and to see the server gone;
  // the writers' first failure dates the kill more closely.
  const absl::Time killed = std::min(absl::Now(), writers.first_failure());
  EXPECT_EQ(server.Run("resume"), 0);

  absl::StatusOr<std::vector<LoggedEvent>> log;
  EXPECT_TRUE(WaitFor(absl::Seconds(30), [&] {
    log = DatabaseEvents(kanband.database());
    return log.ok();
  })) << log.status();
  if (!log.ok()) return result;
  std::set<std::string> created;
  for (const LoggedEvent& e : *log) {
    if (e.kind == "created") created.insert(e.task_id);
  }
  for (const Ack& ack : writers.acks()) {
    ++result.acknowledged;
    if (created.count(ack.task_id) != 0) continue;
    ++result.lost;
    result.oldest_lost = std::max(result.oldest_lost, killed - ack.at);
  }
  // kanband serves again before the next cycle (it reconnects by itself).
  auto stub = kanband.Stub(0);
  EXPECT_TRUE(WaitFor(absl::Seconds(30),
                      [&] {
                        v1::CreateTaskRequest create;
                        create.set_title(absl::StrCat("probe-", cycle));
                        create.set_idempotency_key(create.title());
                        v1::Task task;
                        grpc::ClientContext ctx;
                        Prepare(ctx, absl::Seconds(2));
                        return stub->CreateTask(&ctx, create, &task).ok();
                      }))
      << "kanband did not serve again\n"
      << kanband.Logs();
  return result;
}

TEST(PostgresLossWindow, Measure) {
  const std::vector<std::string> modes =
      absl::StrSplit(absl::GetFlag(FLAGS_modes), ',', absl::SkipEmpty());
  const int cycles = absl::GetFlag(FLAGS_cycles);
  absl::BitGen gen;
  for (const std::string& mode : modes) {
    testing::TempDir dir;
    PrivatePostgres server(dir.File("pg"));
    ASSERT_TRUE(server.ok());
    Replicas kanband(KANBAND_PATH, server.target(), 1, {"--synchronous=" + mode});
    ASSERT_TRUE(kanband.ok()) << kanband.Logs();
    int acknowledged = 0, lost = 0, cycles_with_loss = 0;
    absl::Duration window = absl::ZeroDuration();
    for (int cycle = 1; cycle <= cycles; ++cycle) {
      const CycleResult r = RunCycle(server, kanband, cycle, gen);
      std::printf("%s cycle %d: %d acknowledged, %d lost", mode.c_str(), cycle,
                  r.acknowledged, r.lost);
      if (r.lost > 0) {
        std::printf(", the oldest acknowledged %.1f ms before the kill",
                    absl::ToDoubleMilliseconds(r.oldest_lost));
      }
      std::printf("\n");
      std::fflush(stdout);
      acknowledged += r.acknowledged;
      lost += r.lost;
      cycles_with_loss += r.lost > 0;
      window = std::max(window, r.oldest_lost);
    }
    std::printf(
        "loss window %s: %d of %d acknowledged creates lost (%.2f%%) in %d of %d "
        "crashes; oldest lost ack %.1f ms before the kill\n",
        mode.c_str(), lost, acknowledged,
        acknowledged > 0 ? 100.0 * lost / acknowledged : 0.0, cycles_with_loss, cycles,
        absl::ToDoubleMilliseconds(window));
    if (mode == "full") {
      EXPECT_EQ(lost, 0) << "synchronous_commit=on lost acknowledged writes";
    }
  }
}

}  // namespace
}  // namespace kanban

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  absl::ParseCommandLine(argc, argv);
  return RUN_ALL_TESTS();
}
