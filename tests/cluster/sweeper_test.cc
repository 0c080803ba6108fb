// The sweeper across replicas: of several kanband on one database exactly
// one reclaims expired leases at a time (GetServerInfo.sweeping); when that
// leader is SIGKILLed another takes over within two sweep intervals and a
// little, and reclaims the leases left behind exactly once.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/cluster/replicas.h"
#include "tests/support/backends.h"

namespace kanban {
namespace {

using ::kanban::testing::DatabaseEvents;
using ::kanban::testing::LoggedEvent;
using ::kanban::testing::Prepare;
using ::kanban::testing::Replicas;
using ::kanban::testing::WaitFor;

constexpr absl::Duration kCallTimeout = absl::Seconds(10);
constexpr absl::Duration kSweepInterval = absl::Milliseconds(500);

class ClusterSweeperTest : public testing::ClusterTest {};

// One round of GetServerInfo on every running replica: the ids of those
// that say they sweep. A replica that does not answer adds a failure.
std::vector<int> Sweeping(Replicas& replicas) {
  std::vector<int> sweeping;
  for (int i = 0; i < replicas.size(); ++i) {
    if (!replicas.Running(i)) continue;
    v1::ServerInfo info;
    grpc::ClientContext ctx;
    Prepare(ctx, absl::Seconds(2));
    grpc::Status s =
        replicas.Stub(i)->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
    if (!s.ok()) {
      ADD_FAILURE() << Replicas::Id(i) << " GetServerInfo: " << s.error_message();
      continue;
    }
    EXPECT_EQ(info.replica_id(), Replicas::Id(i));
    if (info.sweeping()) sweeping.push_back(i);
  }
  return sweeping;
}

std::string Names(const std::vector<int>& replicas) {
  std::vector<std::string> names;
  for (int i : replicas) names.push_back(Replicas::Id(i));
  return absl::StrCat("[", absl::StrJoin(names, ","), "]");
}

// Polls Sweeping() for `d`, failing each round in which more than one
// replica sweeps. Returns the last round's answer.
std::vector<int> NeverTwoFor(Replicas& replicas, absl::Duration d) {
  std::vector<int> now;
  const absl::Time until = absl::Now() + d;
  do {
    now = Sweeping(replicas);
    EXPECT_LE(now.size(), 1u) << "sweeping at once: " << Names(now);
    absl::SleepFor(absl::Milliseconds(50));
  } while (absl::Now() < until);
  return now;
}

TEST_F(ClusterSweeperTest, OneReplicaSweepsAndAnotherTakesOverTheExpiredLeasesOfAKill) {
  constexpr int kTasks = 20;
  Replicas replicas(
      KANBAND_PATH, database_, 3,
      {absl::StrCat("--sweep_interval=", absl::FormatDuration(kSweepInterval)),
       "--backoff_base=100ms", "--backoff_cap=200ms"});
  ASSERT_TRUE(replicas.ok()) << replicas.Logs();

  std::vector<int> leader;
  ASSERT_TRUE(WaitFor(absl::Seconds(10),
                      [&] {
                        leader = Sweeping(replicas);
                        return leader.size() == 1;
                      }))
      << "sweeping: " << Names(leader) << "\n"
      << replicas.Logs();
  std::vector<int> still = NeverTwoFor(replicas, absl::Seconds(2));
  EXPECT_EQ(still, leader) << "the leader changed with no replica stopping";
  const int old_leader = leader[0];
  const int follower = (old_leader + 1) % 3;

  // Leases that expire after the leader is gone, taken through a follower.
  std::unique_ptr<v1::KanbanService::Stub> stub = replicas.Stub(follower);
  std::map<std::string, std::string> tokens;  // task id -> its lost lease token
  for (int i = 0; i < kTasks; ++i) {
    v1::CreateTaskRequest create;
    create.set_title(absl::StrCat("orphan-", i));
    v1::Task task;
    grpc::ClientContext ctx;
    Prepare(ctx, kCallTimeout);
    ASSERT_TRUE(stub->CreateTask(&ctx, create, &task).ok());
  }
  for (int i = 0; i < kTasks; ++i) {
    v1::ClaimTaskRequest claim;
    claim.set_worker_id("gone");
    claim.mutable_lease_duration()->set_seconds(1);
    v1::ClaimTaskResponse claimed;
    grpc::ClientContext ctx;
    Prepare(ctx, kCallTimeout);
    ASSERT_TRUE(stub->ClaimTask(&ctx, claim, &claimed).ok());
    ASSERT_TRUE(claimed.has_task());
    EXPECT_EQ(claimed.task().attempt(), 1);
    tokens[claimed.task().id()] = claimed.lease().token();
  }

  const absl::Time killed_at = absl::Now();
  replicas.Kill(old_leader);
  std::vector<int> next;
  ASSERT_TRUE(WaitFor(absl::Seconds(10),
                      [&] {
                        next = Sweeping(replicas);
                        EXPECT_LE(next.size(), 1u) << "sweeping at once: " << Names(next);
                        return next.size() == 1;
                      }))
      << "no replica took over; sweeping: " << Names(next) << "\n"
      << replicas.Logs();
  const absl::Duration takeover = absl::Now() - killed_at;
  EXPECT_LT(takeover, 2 * kSweepInterval + absl::Seconds(1))
      << Replicas::Id(next[0]) << " took over after " << takeover;
  std::cout << Replicas::Id(next[0]) << " took over from " << Replicas::Id(old_leader)
            << " in " << takeover << "\n";

  // Every orphan comes back READY, without a claim (attempt still 1).
  auto ready = [&](const std::string& id) {
    v1::GetTaskRequest get;
    get.set_task_id(id);
    v1::Task task;
    grpc::ClientContext ctx;
    Prepare(ctx, kCallTimeout);
    return stub->GetTask(&ctx, get, &task).ok() && task.status() == v1::READY &&
           task.attempt() == 1;
  };
  EXPECT_TRUE(WaitFor(absl::Seconds(10), [&] {
    for (const auto& [id, token] : tokens) {
      if (!ready(id)) return false;
    }
    return true;
  })) << replicas.Logs();
  // Several sweeps more: nobody sweeps twice, nothing is reclaimed again.
  NeverTwoFor(replicas, 3 * kSweepInterval);

  // The lost tokens are refused on any replica, naming the reclaim.
  const int other = 3 - old_leader - follower;  // The third replica.
  for (const auto& [id, token] : tokens) {
    v1::CompleteTaskRequest complete;
    complete.set_task_id(id);
    complete.set_lease_token(token);
    v1::Task task;
    grpc::ClientContext ctx;
    Prepare(ctx, kCallTimeout);
    grpc::Status s = replicas.Stub(other)->CompleteTask(&ctx, complete, &task);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << id;
    EXPECT_TRUE(absl::StrContains(s.error_message(), "lease lost: reclaimed"))
        << s.error_message();
  }

  // The event log: one reclaim per orphan, and nothing else reclaimed.
  absl::StatusOr<std::vector<LoggedEvent>> log = DatabaseEvents(database_);
  ASSERT_TRUE(log.ok()) << log.status();
  std::map<std::string, int> reclaimed;
  for (const LoggedEvent& e : *log) {
    if (e.kind == "reclaimed" || e.kind == "gave_up") ++reclaimed[e.task_id];
  }
  EXPECT_EQ(reclaimed.size(), tokens.size());
  for (const auto& [id, token] : tokens) {
    EXPECT_EQ(reclaimed[id], 1)
        << "task " << id << " reclaimed " << reclaimed[id] << " times";
  }

  // Claimed again: the second attempt, not the third.
  v1::ClaimTaskRequest claim;
  claim.set_worker_id("next");
  v1::ClaimTaskResponse claimed;
  grpc::ClientContext ctx;
  Prepare(ctx, kCallTimeout);
  ASSERT_TRUE(stub->ClaimTask(&ctx, claim, &claimed).ok());
  ASSERT_TRUE(claimed.has_task());
  EXPECT_EQ(claimed.task().attempt(), 2);

  // The killed replica comes back (same port) and does not make two leaders.
  ASSERT_TRUE(replicas.Restart(old_leader)) << replicas.Logs();
  std::vector<int> after = NeverTwoFor(replicas, 4 * kSweepInterval);
  EXPECT_EQ(after.size(), 1u) << "sweeping: " << Names(after);
}

}  // namespace
}  // namespace kanban
