// State across replicas: a write acknowledged by one replica is seen by the
// next call on any other. And the harness itself: a killed replica leaves
// the round_robin channel serving, and comes back on its old port.
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/cluster/replicas.h"
#include "tests/support/backends.h"

namespace kanban {
namespace {

using ::kanban::testing::Prepare;
using ::kanban::testing::Problems;
using ::kanban::testing::Replicas;
using ::kanban::testing::WaitFor;

constexpr absl::Duration kCallTimeout = absl::Seconds(10);

class ClusterStateTest : public testing::ClusterTest {};

TEST_F(ClusterStateTest, EveryReplicaSeesAWriteAcknowledgedByAnother) {
  Replicas replicas(KANBAND_PATH, database_, 3, {"--sweep_interval=200ms"});
  ASSERT_TRUE(replicas.ok()) << replicas.Logs();
  std::unique_ptr<v1::KanbanService::Stub> stubs[3] = {replicas.Stub(0), replicas.Stub(1),
                                                       replicas.Stub(2)};
  Problems problems;
  for (int i = 0; i < 300; ++i) {
    // Created on one replica, read on the next, updated (compare-and-set on
    // the version just read) on the third, read back on the first.
    v1::KanbanService::Stub& first = *stubs[i % 3];
    v1::KanbanService::Stub& second = *stubs[(i + 1) % 3];
    v1::KanbanService::Stub& third = *stubs[(i + 2) % 3];
    v1::CreateTaskRequest create;
    create.set_title(absl::StrCat("task ", i));
    v1::Task created;
    grpc::ClientContext create_ctx;
    Prepare(create_ctx, kCallTimeout);
    ASSERT_TRUE(first.CreateTask(&create_ctx, create, &created).ok());

    v1::GetTaskRequest get;
    get.set_task_id(created.id());
    v1::Task read;
    grpc::ClientContext get_ctx;
    Prepare(get_ctx, kCallTimeout);
    grpc::Status s = second.GetTask(&get_ctx, get, &read);
    if (!s.ok() || read.version() != created.version()) {
      problems.Add(absl::StrCat(created.id(), " created on ", Replicas::Id(i % 3),
                                ", read on ", Replicas::Id((i + 1) % 3), ": ",
                                s.error_message(), " version ", read.version()));
      continue;
    }
    v1::UpdateTaskRequest update;
    update.set_task_id(created.id());
    update.set_title(absl::StrCat("task ", i, " renamed"));
    update.set_expected_version(read.version());
    v1::Task updated;
    grpc::ClientContext update_ctx;
    Prepare(update_ctx, kCallTimeout);
    s = third.UpdateTask(&update_ctx, update, &updated);
    if (!s.ok()) {
      problems.Add(absl::StrCat(created.id(), " updated on ", Replicas::Id((i + 2) % 3),
                                ": ", s.error_code(), " ", s.error_message()));
      continue;
    }
    v1::Task again;
    grpc::ClientContext again_ctx;
    Prepare(again_ctx, kCallTimeout);
    s = first.GetTask(&again_ctx, get, &again);
    if (!s.ok() || again.version() != updated.version() ||
        again.title() != update.title()) {
      problems.Add(absl::StrCat(created.id(), " updated on ", Replicas::Id((i + 2) % 3),
                                ", read back on ", Replicas::Id(i % 3), " as version ",
                                again.version(), " \"", again.title(), "\""));
    }
  }
  EXPECT_EQ(problems.count(), 0) << problems.Summary();
}

TEST_F(ClusterStateTest, AKilledReplicaLeavesTheOthersServingAndRestartsOnItsPort) {
  Replicas replicas(KANBAND_PATH, database_, 2, {"--sweep_interval=200ms"});
  ASSERT_TRUE(replicas.ok()) << replicas.Logs();
  std::unique_ptr<v1::KanbanService::Stub> any =
      v1::KanbanService::NewStub(replicas.RoundRobin());
  auto serves = [&](v1::KanbanService::Stub& stub, std::string* replica) {
    v1::ServerInfo info;
    grpc::ClientContext ctx;
    Prepare(ctx, absl::Seconds(2));
    if (!stub.GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info).ok()) return false;
    if (replica != nullptr) *replica = info.replica_id();
    return true;
  };
  // round_robin reaches both.
  std::set<std::string> seen;
  ASSERT_TRUE(WaitFor(kCallTimeout,
                      [&] {
                        std::string id;
                        if (serves(*any, &id)) seen.insert(id);
                        return seen.size() == 2;
                      }))
      << "round_robin reached only " << seen.size() << " replicas";

  replicas.Kill(0);
  EXPECT_FALSE(replicas.Running(0));
  // After the calls that were on it, every call goes to the survivor.
  int ok_in_a_row = 0;
  EXPECT_TRUE(WaitFor(kCallTimeout, [&] {
    std::string id;
    ok_in_a_row = serves(*any, &id) && id == Replicas::Id(1) ? ok_in_a_row + 1 : 0;
    return ok_in_a_row >= 20;
  }));

  const std::string address = replicas.address(0);
  ASSERT_TRUE(replicas.Restart(0)) << replicas.Logs();
  EXPECT_EQ(replicas.address(0), address);
  std::string id;
  std::unique_ptr<v1::KanbanService::Stub> back = replicas.Stub(0);
  EXPECT_TRUE(WaitFor(kCallTimeout, [&] { return serves(*back, &id); }));
  EXPECT_EQ(id, Replicas::Id(0));
  // The round_robin channel finds it again.
  seen.clear();
  EXPECT_TRUE(WaitFor(kCallTimeout, [&] {
    std::string replica;
    if (serves(*any, &replica)) seen.insert(replica);
    return seen.size() == 2;
  }));
}

}  // namespace
}  // namespace kanban
