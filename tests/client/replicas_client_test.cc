// Clients given several replicas of one kanban (kanband processes sharing a
// fresh PostgreSQL schema): one channel to "addr1,addr2" spreads its calls
// over both (round_robin, seen through GetServerInfo.replica_id), keeps
// working when one replica is SIGKILLed, and so do kanbanctl (info, watch)
// and a Worker on such a channel. Runs on the suite's private PostgreSQL (the CTest
// fixture `postgres`); usage errors need no database.
#include <signal.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cpp/channel.h"
#include "client/cpp/worker.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::ChildProcess;
using ::kanban::testing::Describe;
using ::kanban::testing::JsonValue;
using ::kanban::testing::Kanband;
using ::kanban::testing::ReadFileOrEmpty;
using ::kanban::testing::RunResult;
using ::kanban::testing::StartKanband;

// The replica that answered GetServerInfo on `stub`, or "" after an error
// (whose status goes to `error` when given).
std::string ReplicaId(v1::KanbanService::Stub& stub, grpc::Status* error = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ServerInfo info;
  grpc::Status status = stub.GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
  if (error != nullptr) *error = status;
  return status.ok() ? info.replica_id() : "";
}

class ReplicasClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kanban::testing::PostgresServer().has_value()) {
      GTEST_SKIP() << "no PostgreSQL for tests (run through ctest: fixture `postgres`)";
    }
    absl::StatusOr<std::string> db = kanban::testing::NewPostgresDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    // One after the other: the first creates the schema's tables.
    a_ = StartKanband(KANBAND_PATH, *db, {"--replica_id=a"});
    ASSERT_TRUE(a_.ok());
    b_ = StartKanband(KANBAND_PATH, *db, {"--replica_id=b"});
    ASSERT_TRUE(b_.ok());
    both_ = absl::StrCat(a_.address, ",", b_.address);
  }

  // Calls GetServerInfo through `stub` until both replicas have answered
  // (round_robin only picks a replica once its connection is up), or 15 s.
  void AwaitBothReplicas(v1::KanbanService::Stub& stub) {
    std::map<std::string, int> seen;
    const absl::Time deadline = absl::Now() + absl::Seconds(15);
    while (seen.size() < 2 && absl::Now() < deadline) {
      grpc::Status status;
      const std::string id = ReplicaId(stub, &status);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ++seen[id];
    }
    ASSERT_EQ(seen.size(), 2u) << "only " << seen.begin()->first << " answered";
  }

  // SIGKILLs replica A and reaps it.
  void KillA() {
    ASSERT_EQ(a_.process.Signal(SIGKILL), 0);
    ASSERT_EQ(a_.process.Wait(absl::Seconds(10)), 128 + SIGKILL);
  }

  Kanband a_;
  Kanband b_;
  std::string both_;  // "A,B"
};

TEST_F(ReplicasClientTest, OneChannelSpreadsCallsAndSurvivesAReplicaKill) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      client::OpenChannel(both_, client::TlsFiles{}, "");
  ASSERT_TRUE(channel.ok()) << channel.status();
  std::unique_ptr<v1::KanbanService::Stub> stub = v1::KanbanService::NewStub(*channel);
  AwaitBothReplicas(*stub);

  // With both connections up, round_robin alternates.
  std::map<std::string, int> answered;
  for (int i = 0; i < 20; ++i) {
    grpc::Status status;
    const std::string id = ReplicaId(*stub, &status);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ++answered[id];
  }
  EXPECT_EQ(answered.size(), 2u);
  EXPECT_GE(answered["a"], 5);
  EXPECT_GE(answered["b"], 5);

  KillA();
  // The channel notices the dead connection and stops picking it; a call
  // already under way when it died may fail. Within a short window, 20
  // calls in a row succeed, all on B.
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  int in_a_row = 0;
  int failed = 0;
  grpc::Status last_error;
  while (in_a_row < 20 && absl::Now() < deadline) {
    grpc::Status status;
    const std::string id = ReplicaId(*stub, &status);
    if (!status.ok()) {
      ++failed;
      last_error = status;
      in_a_row = 0;
      continue;
    }
    EXPECT_EQ(id, "b");
    ++in_a_row;
  }
  EXPECT_EQ(in_a_row, 20) << failed << " calls failed, the last with "
                          << last_error.error_message();
  EXPECT_LE(failed, 2) << "more than the calls racing the kill failed";
}

TEST_F(ReplicasClientTest, KanbanctlTakesAListInTheFlagAndTheEnvironment) {
  // Written through the list, read back through each replica alone: one
  // database behind both.
  RunResult created = kanban::testing::Run(
      {KANBANCTL_PATH, "--json", "--server", both_, "create", "--title", "replicated"},
      {"KANBAN_SERVER"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  const std::string id = JsonValue(created.out, "id");
  ASSERT_FALSE(id.empty()) << created.out;
  for (const Kanband* replica : {&a_, &b_}) {
    RunResult got = kanban::testing::Run(
        {KANBANCTL_PATH, "--json", "--server", replica->address, "get", id});
    EXPECT_EQ(got.exit_code, 0) << Describe(got);
    EXPECT_EQ(JsonValue(got.out, "title"), "replicated") << got.out;
  }

  KillA();
  // Each run is a fresh channel: round_robin connects to both, and the
  // call goes to the one that is up.
  RunResult info =
      kanban::testing::Run({KANBANCTL_PATH, "--json", "--server",
                            absl::StrCat(a_.address, " , ", b_.address), "info"});
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  EXPECT_EQ(JsonValue(info.out, "replica_id"), "b") << info.out;

  RunResult from_env = kanban::testing::Run({KANBANCTL_PATH, "--json", "info"},
                                            {"KANBAN_SERVER=" + both_});
  ASSERT_EQ(from_env.exit_code, 0) << Describe(from_env);
  EXPECT_EQ(JsonValue(from_env.out, "replica_id"), "b") << from_env.out;
}

TEST_F(ReplicasClientTest, WorkerOnAListCarriesOnWhenAReplicaDies) {
  // Tasks go in through B alone, which stays up.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> to_b =
      client::OpenChannel(b_.address, client::TlsFiles{}, "");
  ASSERT_TRUE(to_b.ok());
  std::unique_ptr<v1::KanbanService::Stub> b = v1::KanbanService::NewStub(*to_b);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    grpc::ClientContext ctx;
    v1::CreateTaskRequest request;
    request.set_title(absl::StrCat("task ", i));
    v1::Task task;
    ASSERT_TRUE(b->CreateTask(&ctx, request, &task).ok());
    ids.push_back(task.id());
  }

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      client::OpenChannel(both_, client::TlsFiles{}, "");
  ASSERT_TRUE(channel.ok());
  AwaitBothReplicas(*v1::KanbanService::NewStub(*channel));
  client::WorkerOptions options;
  options.worker_id = "replicas-test";
  options.claim_wait = absl::Seconds(1);
  options.retry_delay = absl::Milliseconds(100);
  options.rpc_timeout = absl::Seconds(5);
  options.max_tasks = 4;
  client::Worker worker(*channel, options);
  int handled = 0;
  absl::Status status =
      worker.Run([&](client::TaskContext&) -> absl::StatusOr<std::string> {
        // Mid-way, replica A dies under the worker.
        if (++handled == 2) KillA();
        return "done";
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(handled, 4);
  for (const std::string& id : ids) {
    // Run() reports each task before it claims the next, retrying a report
    // that met the dead replica: every task is DONE by now.
    grpc::ClientContext ctx;
    v1::GetTaskRequest request;
    request.set_task_id(id);
    v1::Task task;
    ASSERT_TRUE(b->GetTask(&ctx, request, &task).ok());
    EXPECT_EQ(task.status(), v1::DONE) << id;
  }
}

// The complete lines of `text` that are events (JSON objects).
std::vector<std::string> EventLines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  lines.pop_back();  // After the last newline: empty, or a partial line.
  std::vector<std::string> events;
  for (std::string& line : lines) {
    if (absl::StartsWith(line, "{")) events.push_back(std::move(line));
  }
  return events;
}

TEST_F(ReplicasClientTest, KanbanctlWatchResumesOnAnotherReplica) {
  // B is stopped while the watch connects, so its stream is on A: round_robin
  // only picks a replica whose connection is up.
  ASSERT_EQ(b_.process.Signal(SIGSTOP), 0);
  kanban::testing::TempDir dir;
  const std::string output = dir.File("watch.out");
  ChildProcess watch;
  ASSERT_TRUE(watch
                  .Start({KANBANCTL_PATH, "--json", "--server", both_, "watch", "--after",
                          "0", "--verbose"},
                         {"KANBAN_SERVER"}, output)
                  .ok());
  // The first response always carries a bookmark: the stream is up.
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!absl::StrContains(ReadFileOrEmpty(output), "bookmark seq=") &&
         absl::Now() < deadline) {
    ASSERT_EQ(watch.Wait(absl::Milliseconds(20)), -1) << ReadFileOrEmpty(output);
  }
  ASSERT_TRUE(absl::StrContains(ReadFileOrEmpty(output), "bookmark seq="))
      << ReadFileOrEmpty(output);
  ASSERT_EQ(b_.process.Signal(SIGCONT), 0);

  const auto create_on_b = [&](const std::string& title) {
    RunResult r = kanban::testing::Run(
        {KANBANCTL_PATH, "--json", "--server", b_.address, "create", "--title", title});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return JsonValue(r.out, "id");
  };
  const std::string first = create_on_b("before the kill");
  KillA();
  const std::string second = create_on_b("after the kill");

  // Both, once each and in order, whether the first reached the watch live
  // (a cross-replica feed) or from B's history when it resumed there.
  deadline = absl::Now() + absl::Seconds(30);
  std::vector<std::string> events;
  while ((events = EventLines(ReadFileOrEmpty(output))).size() < 2 &&
         absl::Now() < deadline) {
    ASSERT_EQ(watch.Wait(absl::Milliseconds(20)), -1) << ReadFileOrEmpty(output);
  }
  ASSERT_EQ(events.size(), 2u) << ReadFileOrEmpty(output);
  EXPECT_EQ(JsonValue(events[0], "task_id"), first) << events[0];
  EXPECT_EQ(JsonValue(events[1], "task_id"), second) << events[1];
  EXPECT_EQ(JsonValue(events[0], "kind"), "created");
  EXPECT_EQ(JsonValue(events[1], "kind"), "created");
  ASSERT_EQ(watch.Signal(SIGTERM), 0);
  EXPECT_EQ(watch.Wait(absl::Seconds(10)), 0) << ReadFileOrEmpty(output);
}

TEST(ReplicasUsageTest, KanbanctlNamesTheFlagOfABadList) {
  RunResult r = kanban::testing::Run(
      {KANBANCTL_PATH, "--server", "127.0.0.1:1,,127.0.0.1:2", "info"},
      {"KANBAN_SERVER"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(absl::StrContains(
      r.err,
      "--server (or $KANBAN_SERVER): \"127.0.0.1:1,,127.0.0.1:2\" has an empty address"))
      << Describe(r);

  RunResult env = kanban::testing::Run({KANBANCTL_PATH, "info"},
                                       {"KANBAN_SERVER=127.0.0.1:1,127.0.0.1"});
  EXPECT_EQ(env.exit_code, 2) << Describe(env);
  EXPECT_TRUE(absl::StrContains(env.err, "\"127.0.0.1\" has no port")) << Describe(env);
}

}  // namespace
}  // namespace kanban
