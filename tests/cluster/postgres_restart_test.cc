// PostgreSQL killed (pg_ctl stop -m immediate) and started again under
// load from three replicas: every replica serves again, without a restart
// of its own, within seconds, and nothing acknowledged is lost or doubled.
// The test kills a private server, never the suite's shared one.
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/cluster/replicas.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::CompareWithLog;
using ::kanban::testing::DatabaseEvents;
using ::kanban::testing::FeedReader;
using ::kanban::testing::LoggedEvent;
using ::kanban::testing::Prepare;
using ::kanban::testing::PrivatePostgres;
using ::kanban::testing::Problems;
using ::kanban::testing::Replicas;
using ::kanban::testing::WaitFor;

constexpr int kReplicas = 3;
constexpr int kWritersPerReplica = 2;

// What the writers saw, shared between them.
struct Ledger {
  absl::Mutex mu;
  std::set<std::string> acknowledged ABSL_GUARDED_BY(mu);  // Task ids.
  std::map<std::string, int> errors ABSL_GUARDED_BY(mu);   // "CODE message" -> count.
  std::atomic<int> acknowledged_count{0};
  // Per replica: writes acknowledged since `resumed` was set.
  std::atomic<int> after_resume[kReplicas] = {};
  std::atomic<bool> resumed{false};
  std::atomic<bool> stop{false};
};

// Creates tasks through replica `replica` until `ledger.stop`; a failed
// create is retried with the same idempotency key until it is answered OK
// (after "commit outcome unknown" the first may have committed), so every
// key it tried ends up acknowledged, once.
void Write(std::shared_ptr<grpc::Channel> channel, int replica, int writer,
           Ledger& ledger) {
  std::unique_ptr<v1::KanbanService::Stub> stub = v1::KanbanService::NewStub(channel);
  const absl::Time give_up = absl::Now() + absl::Seconds(50);
  for (int i = 0; !ledger.stop && absl::Now() < give_up; ++i) {
    v1::CreateTaskRequest create;
    create.set_title(absl::StrCat("r", replica, "w", writer, "-", i));
    create.set_idempotency_key(create.title());
    while (absl::Now() < give_up) {
      const bool resumed = ledger.resumed;
      v1::Task task;
      grpc::ClientContext ctx;
      Prepare(ctx, absl::Seconds(5));
      grpc::Status s = stub->CreateTask(&ctx, create, &task);
      if (s.ok()) {
        absl::MutexLock lock(&ledger.mu);
        ledger.acknowledged.insert(task.id());
        ++ledger.acknowledged_count;
        if (resumed) ++ledger.after_resume[replica];
        break;
      }
      {
        absl::MutexLock lock(&ledger.mu);
        ++ledger
              .errors[absl::StrCat(s.error_code(), " ", s.error_message().substr(0, 70))];
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
}

TEST(ClusterPostgresRestartTest, EveryReplicaServesAgainAndLosesNoAcknowledgedWrite) {
  if (!testing::PostgresServer().has_value()) {
    GTEST_SKIP() << "no PostgreSQL for tests (run through ctest: fixture `postgres`)";
  }
  testing::TempDir dir;
  PrivatePostgres server(dir.File("pg"));
  ASSERT_TRUE(server.ok());
  // FULL: synchronous_commit=on, so an acknowledged write survives the kill.
  Replicas replicas(KANBAND_PATH, server.target(), kReplicas,
                    {"--synchronous=full", "--sweep_interval=200ms"});
  ASSERT_TRUE(replicas.ok()) << replicas.Logs();

  // A watcher on each replica, open across the outage.
  std::vector<std::unique_ptr<FeedReader>> watchers;
  for (int r = 0; r < kReplicas; ++r) {
    v1::WatchEventsRequest watch;
    watch.set_after_seq(0);
    watchers.push_back(std::make_unique<FeedReader>(replicas.Channel(r), watch));
  }
  Ledger ledger;
  std::vector<std::thread> writers;
  for (int r = 0; r < kReplicas; ++r) {
    for (int w = 0; w < kWritersPerReplica; ++w) {
      writers.emplace_back(
          [&, r, w, channel = replicas.Channel(r)] { Write(channel, r, w, ledger); });
    }
  }
  ASSERT_TRUE(WaitFor(absl::Seconds(20), [&] {
    return ledger.acknowledged_count.load() >= 150;
  })) << replicas.Logs();
  ASSERT_EQ(server.Run("crash"), 0);
  absl::SleepFor(absl::Milliseconds(500));  // The outage itself.
  ASSERT_EQ(server.Run("resume"), 0);
  const absl::Time resumed_at = absl::Now();
  ledger.resumed = true;

  for (int r = 0; r < kReplicas; ++r) {
    EXPECT_TRUE(
        WaitFor(absl::Seconds(10), [&] { return ledger.after_resume[r].load() >= 30; }))
        << Replicas::Id(r) << " acknowledged " << ledger.after_resume[r].load()
        << " writes in the 10 s after PostgreSQL came back";
    std::cout << Replicas::Id(r) << " had 30 writes acknowledged "
              << absl::Now() - resumed_at << " after PostgreSQL came back\n";
  }
  ledger.stop = true;
  for (auto& t : writers) t.join();
  for (int r = 0; r < kReplicas; ++r) {
    EXPECT_TRUE(replicas.Running(r)) << Replicas::Id(r) << " exited\n" << replicas.Logs();
  }

  absl::MutexLock lock(&ledger.mu);
  EXPECT_FALSE(ledger.errors.empty()) << "the kill must have been noticed";
  for (const auto& [error, count] : ledger.errors) {
    std::cout << count << " x " << error << "\n";
    EXPECT_EQ(error.rfind(absl::StrCat(grpc::StatusCode::UNAVAILABLE, " "), 0), 0u)
        << "an outage is UNAVAILABLE (retry), not " << error;
  }
  // Every acknowledged task, and no other, in the event log: one created
  // event each (no twin from a retried create).
  absl::StatusOr<std::vector<LoggedEvent>> log = DatabaseEvents(server.target());
  ASSERT_TRUE(log.ok()) << log.status();
  std::map<std::string, int> created;
  for (const LoggedEvent& e : *log) {
    if (e.kind == "created") ++created[e.task_id];
  }
  Problems problems;
  for (const std::string& id : ledger.acknowledged) {
    if (created[id] != 1) {
      problems.Add(absl::StrCat(id, " acknowledged, created ", created[id], " times"));
    }
  }
  EXPECT_EQ(problems.count(), 0) << problems.Summary();
  EXPECT_EQ(created.size(), ledger.acknowledged.size());
  // The watchers that were open across the outage either went on or ended
  // UNAVAILABLE, and then resume on the same replica where they stopped:
  // either way they get exactly the log.
  const int64_t head = log->empty() ? 0 : log->back().seq;
  for (int r = 0; r < kReplicas; ++r) {
    SCOPED_TRACE(absl::StrCat("the watcher on ", Replicas::Id(r)));
    FeedReader& watcher = *watchers[r];
    std::vector<v1::Event> seen;
    // Patience for the first; the others had as long meanwhile.
    const absl::Duration patience = r == 0 ? absl::Seconds(10) : absl::Seconds(2);
    if (watcher.WaitForPosition(head, patience)) {
      seen = watcher.Events();
    } else if (watcher.Done()) {
      EXPECT_EQ(watcher.status().error_code(), grpc::StatusCode::UNAVAILABLE)
          << watcher.status().error_message();
      seen = watcher.Events();
      v1::WatchEventsRequest rest;
      rest.set_after_seq(watcher.Position());
      FeedReader resumed(replicas.Channel(r), rest);
      EXPECT_TRUE(resumed.WaitForPosition(head, absl::Seconds(5)))
          << "resumed after " << watcher.Position() << ", reached " << resumed.Position()
          << " of " << head;
      for (v1::Event& e : resumed.Events()) seen.push_back(std::move(e));
    } else {
      ADD_FAILURE() << "still open but stuck at " << watcher.Position() << " of " << head;
      seen = watcher.Events();
    }
    EXPECT_EQ(CompareWithLog(seen, *log), "");
  }
  // And a new reader of the whole feed, on each replica.
  for (int r = 0; r < kReplicas; ++r) {
    std::vector<v1::Event> feed =
        testing::ReadWholeFeed(replicas.Channel(r), head, absl::Seconds(5));
    EXPECT_EQ(CompareWithLog(feed, *log), "") << "the feed of " << Replicas::Id(r);
  }
  std::unique_ptr<v1::KanbanService::Stub> stub = replicas.Stub(2);
  for (const std::string& id : ledger.acknowledged) {
    v1::GetTaskRequest get;
    get.set_task_id(id);
    v1::Task task;
    grpc::ClientContext ctx;
    Prepare(ctx, absl::Seconds(10));
    grpc::Status s = stub->GetTask(&ctx, get, &task);
    ASSERT_TRUE(s.ok()) << id << ": " << s.error_message();
  }
}

}  // namespace
}  // namespace kanban
