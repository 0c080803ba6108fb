// Tests of the C++ Worker (client/cpp/worker.h) against a real kanband: every
// test starts its own server on a fresh database, creates tasks through the
// generated stub and checks what the worker made of them.
#include "client/cpp/worker.h"

#include <signal.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::client::TaskContext;
using ::kanban::client::Worker;
using ::kanban::client::WorkerEvent;
using ::kanban::client::WorkerOptions;
using ::kanban::testing::Kanband;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;
using Kind = WorkerEvent::Kind;

// Long enough never to be hit by a passing test; a bound for a failing one.
constexpr absl::Duration kPatience = absl::Seconds(20);

class WorkerTest : public ::kanban::testing::BackendTest {
 protected:
  void SetUp() override {
    const std::string& db = Database(dir_.File("kanban.db"));
    if (db.empty()) return;  // Skipped: no PostgreSQL.
    kanband_ = StartKanband(KANBAND_PATH, db, {}, {"KANBAN_SYNCHRONOUS_MODE"});
    ASSERT_TRUE(kanband_.ok());
    channel_ = grpc::CreateChannel(kanband_.address, grpc::InsecureChannelCredentials());
    stub_ = v1::KanbanService::NewStub(channel_);
  }

  v1::Task CreateTask(const std::string& title, int priority = 0, int max_attempts = 0,
                      std::vector<std::string> labels = {}) {
    v1::CreateTaskRequest request;
    request.set_title(title);
    request.set_priority(priority);
    request.set_max_attempts(max_attempts);
    for (const std::string& label : labels) request.add_labels(label);
    grpc::ClientContext context;
    v1::Task task;
    grpc::Status status = stub_->CreateTask(&context, request, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return task;
  }

  v1::Task GetTask(const std::string& id) {
    v1::GetTaskRequest request;
    request.set_task_id(id);
    grpc::ClientContext context;
    v1::Task task;
    grpc::Status status = stub_->GetTask(&context, request, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return task;
  }

  grpc::Status MoveTask(const std::string& id, v1::Status to) {
    v1::MoveTaskRequest request;
    request.set_task_id(id);
    request.set_to_status(to);
    request.set_reason("operator says stop");
    grpc::ClientContext context;
    v1::Task task;
    return stub_->MoveTask(&context, request, &task);
  }

  // Options for one worker that records its events in events_.
  WorkerOptions Options() {
    WorkerOptions options;
    options.worker_id = "test-worker";
    options.claim_wait = absl::Seconds(5);
    options.on_event = [this](const WorkerEvent& event) {
      absl::MutexLock lock(&mu_);
      events_.push_back(event);
    };
    return options;
  }

  // "claimed ID", "completed ID", ... for every event so far.
  std::vector<std::string> EventNames() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> names;
    for (const WorkerEvent& event : events_) {
      names.push_back(
          absl::StrCat(client::WorkerEventName(event.kind), " ", event.task_id));
    }
    return names;
  }

  // The detail of the first event of `kind`; "<none>" if there is none.
  std::string DetailOf(Kind kind) {
    absl::MutexLock lock(&mu_);
    for (const WorkerEvent& event : events_) {
      if (event.kind == kind) return event.detail;
    }
    return "<none>";
  }

  TempDir dir_;  // Outlives the server that uses it.
  Kanband kanband_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KanbanService::Stub> stub_;
  absl::Mutex mu_;
  std::vector<WorkerEvent> events_ ABSL_GUARDED_BY(mu_);
};

INSTANTIATE_TEST_SUITE_P(Backends, WorkerTest, ::kanban::testing::AllBackends(),
                         ::kanban::testing::BackendName);

TEST_P(WorkerTest, CompletesEachTaskWithTheHandlersResult) {
  std::vector<v1::Task> tasks = {CreateTask("first", 3), CreateTask("second", 2),
                                 CreateTask("third", 1)};
  WorkerOptions options = Options();
  options.max_tasks = 3;
  Worker worker(channel_, options);

  absl::Status status =
      worker.Run([](TaskContext& context) -> absl::StatusOr<std::string> {
        EXPECT_EQ(context.task().status(), v1::RUNNING);
        EXPECT_FALSE(context.lease().token().empty());
        EXPECT_FALSE(context.cancelled());
        return absl::StrCat("done: ", context.task().title());
      });
  ASSERT_TRUE(status.ok()) << status;

  std::vector<std::string> expected_events;
  for (const v1::Task& created : tasks) {
    v1::Task task = GetTask(created.id());
    EXPECT_EQ(task.status(), v1::DONE) << task.DebugString();
    EXPECT_EQ(task.result(), absl::StrCat("done: ", created.title()));
    EXPECT_EQ(task.attempt(), 1);
    expected_events.push_back(absl::StrCat("claimed ", created.id()));
    expected_events.push_back(absl::StrCat("completed ", created.id()));
  }
  EXPECT_EQ(EventNames(), expected_events);
}

TEST_P(WorkerTest, HandlerErrorFailsTheTaskForARetry) {
  v1::Task created = CreateTask("flaky", 0, 3);
  WorkerOptions options = Options();
  options.max_tasks = 1;
  Worker worker(channel_, options);

  absl::Status status = worker.Run([](TaskContext&) -> absl::StatusOr<std::string> {
    return absl::UnavailableError("disk on fire");
  });
  ASSERT_TRUE(status.ok()) << status;

  v1::Task task = GetTask(created.id());
  EXPECT_EQ(task.status(), v1::READY) << task.DebugString();
  EXPECT_EQ(task.attempt(), 1);
  EXPECT_EQ(task.last_error(), "disk on fire");
  EXPECT_TRUE(task.result().empty());
  EXPECT_EQ(EventNames(),
            (std::vector<std::string>{absl::StrCat("claimed ", created.id()),
                                      absl::StrCat("failed ", created.id())}));
  EXPECT_EQ(DetailOf(Kind::kFailed), "disk on fire");
}

TEST_P(WorkerTest, InvalidArgumentFromTheHandlerBlocksTheTask) {
  v1::Task created = CreateTask("hopeless", 0, 3);
  WorkerOptions options = Options();
  options.max_tasks = 1;
  Worker worker(channel_, options);

  absl::Status status = worker.Run([](TaskContext&) -> absl::StatusOr<std::string> {
    return absl::InvalidArgumentError("malformed input");
  });
  ASSERT_TRUE(status.ok()) << status;

  v1::Task task = GetTask(created.id());
  EXPECT_EQ(task.status(), v1::BLOCKED) << task.DebugString();
  EXPECT_EQ(task.attempt(), 1);
  EXPECT_EQ(task.last_error(), "malformed input");
}

TEST_P(WorkerTest, CancelledFromTheHandlerReleasesTheTask) {
  v1::Task created = CreateTask("not now");
  WorkerOptions options = Options();
  options.max_tasks = 1;
  Worker worker(channel_, options);

  absl::Status status = worker.Run([](TaskContext&) -> absl::StatusOr<std::string> {
    return absl::CancelledError("shutting down");
  });
  ASSERT_TRUE(status.ok()) << status;

  v1::Task task = GetTask(created.id());
  EXPECT_EQ(task.status(), v1::READY) << task.DebugString();
  EXPECT_TRUE(task.last_error().empty()) << task.DebugString();
  EXPECT_EQ(EventNames(),
            (std::vector<std::string>{absl::StrCat("claimed ", created.id()),
                                      absl::StrCat("released ", created.id())}));
}

TEST_P(WorkerTest, OperatorCancellingTheLeaseCancelsTheContext) {
  v1::Task created = CreateTask("long job");
  WorkerOptions options = Options();
  options.max_tasks = 1;
  options.lease_duration = absl::Seconds(3);  // A heartbeat every second.
  Worker worker(channel_, options);

  absl::Notification started;
  bool saw_cancel = false;
  std::string reason;
  absl::Status status;
  std::thread runner([&] {
    status = worker.Run([&](TaskContext& context) -> absl::StatusOr<std::string> {
      started.Notify();
      saw_cancel = context.WaitForCancel(kPatience);
      reason = context.cancel_reason();
      return "finished anyway";
    });
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kPatience));
  grpc::Status moved = MoveTask(created.id(), v1::BLOCKED);
  runner.join();

  ASSERT_TRUE(moved.ok()) << moved.error_message();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(saw_cancel);
  EXPECT_EQ(reason, "cancelled");
  v1::Task task = GetTask(created.id());
  EXPECT_EQ(task.status(), v1::BLOCKED) << task.DebugString();
  EXPECT_TRUE(task.result().empty()) << task.DebugString();
  EXPECT_EQ(EventNames(),
            (std::vector<std::string>{absl::StrCat("claimed ", created.id()),
                                      absl::StrCat("lost ", created.id())}));
  EXPECT_EQ(DetailOf(Kind::kLost), "cancelled");
}

TEST_P(WorkerTest, LeaseRunsOutWhenNoHeartbeatGetsThrough) {
  CreateTask("orphaned");
  WorkerOptions options = Options();
  options.max_tasks = 1;
  options.lease_duration = absl::Seconds(1);  // The shortest the server grants.
  options.rpc_timeout = absl::Milliseconds(200);
  Worker worker(channel_, options);

  absl::Notification started;
  bool saw_cancel = false;
  std::string reason;
  absl::Status status;
  std::thread runner([&] {
    status = worker.Run([&](TaskContext& context) -> absl::StatusOr<std::string> {
      started.Notify();
      saw_cancel = context.WaitForCancel(kPatience);
      reason = context.cancel_reason();
      return "too late";
    });
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kPatience));
  ASSERT_EQ(kanband_.process.Signal(SIGKILL), 0);
  runner.join();

  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(saw_cancel);
  EXPECT_EQ(reason, "expired");
  EXPECT_EQ(DetailOf(Kind::kLost), "expired");
  EXPECT_EQ(DetailOf(Kind::kCompleted), "<none>");
}

TEST_P(WorkerTest, StopLetsTheRunningHandlerFinishAndClaimsNothingMore) {
  v1::Task current = CreateTask("current", 5);
  v1::Task next = CreateTask("next", 1);
  Worker worker(channel_, Options());

  absl::Notification started;
  absl::Notification proceed;
  bool saw_stopping = false;
  absl::Status status;
  std::thread runner([&] {
    status = worker.Run([&](TaskContext& context) -> absl::StatusOr<std::string> {
      started.Notify();
      EXPECT_TRUE(proceed.WaitForNotificationWithTimeout(kPatience));
      saw_stopping = context.stopping();
      return "drained";
    });
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kPatience));
  worker.Stop();
  proceed.Notify();
  runner.join();

  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(saw_stopping);
  v1::Task done = GetTask(current.id());
  EXPECT_EQ(done.status(), v1::DONE) << done.DebugString();
  EXPECT_EQ(done.result(), "drained");
  v1::Task untouched = GetTask(next.id());
  EXPECT_EQ(untouched.status(), v1::READY) << untouched.DebugString();
  EXPECT_EQ(untouched.attempt(), 0);
}

TEST_P(WorkerTest, StopCutsAWaitingClaimShort) {
  WorkerOptions options = Options();
  options.claim_wait = absl::Seconds(30);
  Worker worker(channel_, options);

  const absl::Time start = absl::Now();
  absl::Status status;
  std::thread runner([&] {
    status = worker.Run([](TaskContext&) -> absl::StatusOr<std::string> {
      ADD_FAILURE() << "there was nothing to claim";
      return "";
    });
  });
  // Nothing signals that the claim is waiting on the server; this pause only
  // makes that the likely case. Run() must return promptly either way.
  absl::SleepFor(absl::Milliseconds(300));
  worker.Stop();
  runner.join();

  EXPECT_TRUE(status.ok()) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_TRUE(worker.stopping());
  // Sticky: a later Run() returns at once.
  EXPECT_TRUE(
      worker.Run([](TaskContext&) -> absl::StatusOr<std::string> { return ""; }).ok());
}

TEST_P(WorkerTest, UnreachableServerIsRetriedUntilStopped) {
  ASSERT_EQ(kanband_.process.Signal(SIGTERM), 0);
  ASSERT_EQ(kanband_.process.Wait(kPatience), 0) << kanband_.Log();
  WorkerOptions options = Options();
  options.rpc_timeout = absl::Seconds(2);
  options.retry_delay = absl::Milliseconds(10);
  std::vector<std::string> errors;
  Worker* worker_pointer = nullptr;
  options.on_event = [&](const WorkerEvent& event) {
    EXPECT_EQ(event.kind, Kind::kRpcError);
    errors.push_back(event.detail);
    if (errors.size() == 3) worker_pointer->Stop();
  };
  Worker worker(channel_, options);
  worker_pointer = &worker;

  absl::Status status = worker.Run([](TaskContext&) -> absl::StatusOr<std::string> {
    ADD_FAILURE() << "there is no server to claim from";
    return "";
  });
  EXPECT_TRUE(status.ok()) << status;
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_TRUE(absl::StartsWith(errors[0], "Work: UNAVAILABLE")) << errors[0];
}

TEST_P(WorkerTest, ClaimsOnlyTasksWithAllItsLabels) {
  v1::Task plain = CreateTask("plain", 9);
  v1::Task gpu = CreateTask("gpu job", 1, 0, {"gpu", "big"});
  WorkerOptions options = Options();
  options.labels = {"gpu"};
  options.claim_wait = absl::ZeroDuration();
  options.exit_when_idle = true;
  Worker worker(channel_, options);

  std::vector<std::string> handled;
  absl::Status status =
      worker.Run([&](TaskContext& context) -> absl::StatusOr<std::string> {
        handled.push_back(context.task().id());
        return "ok";
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(handled, std::vector<std::string>{gpu.id()});
  EXPECT_EQ(GetTask(plain.id()).status(), v1::READY);
}

TEST_P(WorkerTest, BadOptionsAndUnknownBoardsAreErrors) {
  WorkerOptions no_id = Options();
  no_id.worker_id = "";
  EXPECT_EQ(
      Worker(channel_, no_id).Run([](TaskContext&) { return std::string(); }).code(),
      absl::StatusCode::kInvalidArgument);

  WorkerOptions no_board = Options();
  no_board.board = "nosuchboard";
  EXPECT_EQ(
      Worker(channel_, no_board).Run([](TaskContext&) { return std::string(); }).code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace kanban
