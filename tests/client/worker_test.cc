// Tests of the C++ Worker (client/cpp/worker.h) against a real kanband: every
// test starts its own server on a fresh database, creates tasks through the
// generated stub and checks what the worker made of them. Each test runs on
// both backends twice: "Backends/" with the default worker stream, and
// "UnaryLoop/" with WorkerOptions::use_streams = false.
#include "client/cpp/worker.h"

#include <signal.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
    streams_ = !absl::StartsWith(
        ::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name(),
        "UnaryLoop/");
    const std::string& db = Database(dir_.File("kanban.db"));
    if (db.empty()) return;  // Skipped: no PostgreSQL.
    StartServer({});
  }

  // True for the instantiation that uses worker streams.
  bool Streams() const { return streams_; }

  // Starts kanband on the test's database with `args`, on `port` if given
  // (a restart: the worker's channel reconnects), else on a new port with a
  // new channel and stub.
  void StartServer(std::vector<std::string> args, const std::string& port = "") {
    if (!port.empty()) args.push_back(absl::StrCat("--listen=127.0.0.1:", port));
    kanband_ =
        StartKanband(KANBAND_PATH, Database(""), args, {"KANBAN_SYNCHRONOUS_MODE"});
    ASSERT_TRUE(kanband_.ok());
    if (!port.empty()) return;
    // A restarted server is found quickly (gRPC's reconnect backoff starts
    // at 1 s).
    grpc::ChannelArguments channel_args;
    channel_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
    channel_ = grpc::CreateCustomChannel(
        kanband_.address, grpc::InsecureChannelCredentials(), channel_args);
    stub_ = v1::KanbanService::NewStub(channel_);
  }

  // Ends the running kanband with `signal` and waits for it.
  void StopServer(int signal = SIGTERM) {
    ASSERT_EQ(kanband_.process.Signal(signal), 0);
    const int exit_code = kanband_.process.Wait(kPatience);
    if (signal == SIGTERM) ASSERT_EQ(exit_code, 0) << kanband_.Log();
  }

  // Stops kanband with `signal` and starts it again on the same database
  // and port, with the same flags as `args`.
  void RestartServer(int signal, std::vector<std::string> args = {}) {
    const std::string port = kanband_.address.substr(kanband_.address.rfind(':') + 1);
    StopServer(signal);
    StartServer(std::move(args), port);
  }

  // How many of the running kanband's access lines (--log_rpcs) are for
  // `method` ("KanbanService/ClaimTask", ...). A call's line is written
  // before its status is sent, so a finished call always has its line.
  int RpcLines(const std::string& method) {
    const std::string needle = absl::StrCat(" method=/kanban.v1.", method, " ");
    int lines = 0;
    for (absl::string_view line : absl::StrSplit(kanband_.Log(), '\n')) {
      if (absl::StrContains(line, needle)) ++lines;
    }
    return lines;
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

  // The task once it has `status`, or as it is after kPatience. A Work
  // stream's server claims the replacement of a lease whose outcome is in
  // flight; when the worker has closed its side, that claim is given back
  // as the stream ends, not before: the task can be RUNNING a moment
  // after Run() returned.
  v1::Task AwaitStatus(const std::string& id, v1::Status status) {
    const absl::Time deadline = absl::Now() + kPatience;
    v1::Task task = GetTask(id);
    while (task.status() != status && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
      task = GetTask(id);
    }
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
    options.use_streams = Streams();
    options.on_event = [this](const WorkerEvent& event) {
      absl::MutexLock lock(&mu_);
      events_.push_back(event);
    };
    return options;
  }

  // "claimed ID", "completed ID", ... for every event so far, or only for
  // those not of kind `except`.
  std::vector<std::string> EventNames(std::optional<Kind> except = std::nullopt) {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> names;
    for (const WorkerEvent& event : events_) {
      if (event.kind == except) continue;
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
  bool streams_ = true;
  Kanband kanband_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KanbanService::Stub> stub_;
  absl::Mutex mu_;
  std::vector<WorkerEvent> events_ ABSL_GUARDED_BY(mu_);
};

// The prefix decides the loop (see SetUp): the unary one is kept as the
// fallback, so it stays tested as a whole.
INSTANTIATE_TEST_SUITE_P(Backends, WorkerTest, ::kanban::testing::AllBackends(),
                         ::kanban::testing::BackendName);
INSTANTIATE_TEST_SUITE_P(UnaryLoop, WorkerTest, ::kanban::testing::AllBackends(),
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

  v1::Task task = AwaitStatus(created.id(), v1::READY);
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
  v1::Task untouched = AwaitStatus(next.id(), v1::READY);
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
  // Also how long a stream waits for a connection.
  options.rpc_timeout = absl::Milliseconds(200);
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
  EXPECT_TRUE(absl::StartsWith(
      errors[0], absl::StrCat(Streams() ? "Work" : "ClaimTask", ": UNAVAILABLE")))
      << errors[0];
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

TEST_P(WorkerTest, ProcessesEachTaskExactlyOnceAndClaimsNoMoreThanMaxTasks) {
  constexpr int kTasks = 20;
  std::vector<v1::Task> tasks;
  // In priority order; the last one is left over.
  for (int i = 0; i <= kTasks; ++i) {
    tasks.push_back(CreateTask(absl::StrCat("task-", i), kTasks + 1 - i));
  }
  WorkerOptions options = Options();
  options.max_tasks = kTasks;
  Worker worker(channel_, options);

  absl::Mutex mu;
  std::map<std::string, int> runs;
  absl::Status status =
      worker.Run([&](TaskContext& context) -> absl::StatusOr<std::string> {
        absl::MutexLock lock(&mu);
        ++runs[context.task().id()];
        return context.task().title();
      });
  ASSERT_TRUE(status.ok()) << status;

  std::vector<std::string> expected_events;
  for (int i = 0; i < kTasks; ++i) {
    const std::string& id = tasks[i].id();
    v1::Task task = GetTask(id);
    EXPECT_EQ(task.status(), v1::DONE) << task.DebugString();
    EXPECT_EQ(task.result(), tasks[i].title());
    EXPECT_EQ(task.attempt(), 1) << task.DebugString();
    EXPECT_EQ(runs[id], 1) << id;
    expected_events.push_back(absl::StrCat("claimed ", id));
    expected_events.push_back(absl::StrCat("completed ", id));
  }
  EXPECT_EQ(EventNames(), expected_events);
  // The worker closed its side of the stream right behind its last report:
  // a replacement the server claimed meanwhile went back at once, the
  // attempt not counted, and was never run.
  v1::Task left = AwaitStatus(tasks[kTasks].id(), v1::READY);
  EXPECT_EQ(left.status(), v1::READY) << left.DebugString();
  EXPECT_EQ(left.attempt(), 0) << left.DebugString();
  EXPECT_EQ(runs.count(left.id()), 0u);
}

TEST_P(WorkerTest, ClaimsHeartbeatsAndReportsTravelTheWayAsked) {
  StopServer();
  StartServer({"--log_rpcs"});
  std::vector<v1::Task> tasks = {CreateTask("first", 2), CreateTask("second", 1)};
  WorkerOptions options = Options();
  options.max_tasks = 2;
  // The first handler outlives the first lease: only heartbeats keep it.
  options.lease_duration = absl::Seconds(1);
  Worker worker(channel_, options);

  absl::Status status =
      worker.Run([&](TaskContext& context) -> absl::StatusOr<std::string> {
        if (context.task().id() == tasks[0].id() &&
            context.WaitForCancel(absl::Milliseconds(1300))) {
          return absl::CancelledError(context.cancel_reason());
        }
        return "kept";
      });
  ASSERT_TRUE(status.ok()) << status;
  for (const v1::Task& created : tasks) {
    v1::Task task = GetTask(created.id());
    EXPECT_EQ(task.status(), v1::DONE) << task.DebugString();
    EXPECT_EQ(task.result(), "kept");
  }
  EXPECT_EQ(DetailOf(Kind::kLost), "<none>");
  EXPECT_EQ(RpcLines("WorkerService/Work"), Streams() ? 1 : 0) << kanband_.Log();
  const int unary = Streams() ? 0 : 2;
  EXPECT_EQ(RpcLines("KanbanService/CompleteTask"), unary) << kanband_.Log();
  if (Streams()) {
    EXPECT_EQ(RpcLines("KanbanService/ClaimTask"), 0) << kanband_.Log();
    EXPECT_EQ(RpcLines("HeartbeatService/Heartbeat"), 0) << kanband_.Log();
  } else {
    EXPECT_GE(RpcLines("KanbanService/ClaimTask"), 2) << kanband_.Log();
    EXPECT_GE(RpcLines("HeartbeatService/Heartbeat"), 1) << kanband_.Log();
  }
}

TEST_P(WorkerTest, OperatorsMoveReachesTheHandlerAtOnceOnAStream) {
  if (!Streams()) GTEST_SKIP() << "the unary loop hears of it at the next heartbeat";
  v1::Task created = CreateTask("long job");
  WorkerOptions options = Options();
  options.max_tasks = 1;
  // A heartbeat every 20 s: only the server's push can be prompt.
  options.lease_duration = absl::Seconds(60);
  Worker worker(channel_, options);

  absl::Notification started;
  bool saw_cancel = false;
  absl::Time cancelled_at;
  absl::Status status;
  std::thread runner([&] {
    status = worker.Run([&](TaskContext& context) -> absl::StatusOr<std::string> {
      started.Notify();
      saw_cancel = context.WaitForCancel(kPatience);
      cancelled_at = absl::Now();
      return "finished anyway";
    });
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kPatience));
  const absl::Time moved_at = absl::Now();
  grpc::Status moved = MoveTask(created.id(), v1::BLOCKED);
  runner.join();

  ASSERT_TRUE(moved.ok()) << moved.error_message();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(saw_cancel);
  EXPECT_LT(cancelled_at - moved_at, absl::Seconds(2));
  EXPECT_EQ(EventNames(),
            (std::vector<std::string>{absl::StrCat("claimed ", created.id()),
                                      absl::StrCat("lost ", created.id())}));
  EXPECT_EQ(DetailOf(Kind::kLost), "cancelled");
  EXPECT_EQ(GetTask(created.id()).status(), v1::BLOCKED);
}

TEST_P(WorkerTest, WithoutWorkerStreamsTheUnaryCallsDoTheWork) {
  StopServer();
  StartServer({"--worker_streams=false", "--log_rpcs"});
  std::vector<v1::Task> tasks = {CreateTask("first", 2), CreateTask("second", 1)};
  WorkerOptions options = Options();
  options.max_tasks = 2;
  Worker worker(channel_, options);

  absl::Status status =
      worker.Run([](TaskContext& context) -> absl::StatusOr<std::string> {
        return absl::StrCat("unary: ", context.task().title());
      });
  ASSERT_TRUE(status.ok()) << status;
  std::vector<std::string> expected_events;
  for (const v1::Task& created : tasks) {
    v1::Task task = GetTask(created.id());
    EXPECT_EQ(task.status(), v1::DONE) << task.DebugString();
    EXPECT_EQ(task.result(), absl::StrCat("unary: ", created.title()));
    expected_events.push_back(absl::StrCat("claimed ", created.id()));
    expected_events.push_back(absl::StrCat("completed ", created.id()));
  }
  EXPECT_EQ(EventNames(), expected_events);  // No error events either.
  EXPECT_GE(RpcLines("KanbanService/ClaimTask"), 2) << kanband_.Log();
  EXPECT_EQ(RpcLines("KanbanService/CompleteTask"), 2) << kanband_.Log();
}

// The worker's thread for tests that restart the server under it.
class BackgroundRun {
 public:
  BackgroundRun(Worker& worker, client::TaskHandler handler)
      : thread_([this, &worker, handler = std::move(handler)] {
          status_ = worker.Run(handler);
        }) {}
  absl::Status Join() {
    thread_.join();
    return status_;
  }

 private:
  absl::Status status_;
  std::thread thread_;
};

TEST_P(WorkerTest, HandlerRunsOnThroughAServerRestartAndReportsOnce) {
  if (!Streams()) {
    GTEST_SKIP() << "the unary loop's fail-fast calls leave reconnecting to gRPC's "
                    "backup poller (every 5 s), longer than this lease";
  }
  v1::Task created = CreateTask("survivor");
  WorkerOptions options = Options();
  options.max_tasks = 1;
  options.lease_duration = absl::Seconds(3);
  options.retry_delay = absl::Milliseconds(100);
  Worker worker(channel_, options);

  absl::Notification started;
  absl::Notification proceed;
  bool saw_cancel = true;
  BackgroundRun run(worker, [&](TaskContext& context) -> absl::StatusOr<std::string> {
    started.Notify();
    EXPECT_TRUE(proceed.WaitForNotificationWithTimeout(kPatience));
    saw_cancel = context.cancelled();
    return "after the restart";
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kPatience));
  // SIGTERM: go_away, then the stream ends with UNAVAILABLE.
  RestartServer(SIGTERM, {"--log_rpcs"});
  proceed.Notify();
  absl::Status status = run.Join();

  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(saw_cancel);
  v1::Task task = GetTask(created.id());
  EXPECT_EQ(task.status(), v1::DONE) << task.DebugString();
  EXPECT_EQ(task.result(), "after the restart");
  EXPECT_EQ(task.attempt(), 1);
  EXPECT_EQ(EventNames(Kind::kRpcError),
            (std::vector<std::string>{absl::StrCat("claimed ", created.id()),
                                      absl::StrCat("completed ", created.id())}));
  EXPECT_TRUE(absl::StartsWith(DetailOf(Kind::kRpcError), "Work: UNAVAILABLE"))
      << DetailOf(Kind::kRpcError);
  // On the stream: the restarted server saw no unary call.
  EXPECT_EQ(RpcLines("KanbanService/CompleteTask"), 0) << kanband_.Log();
}

TEST_P(WorkerTest, ReportMadeWhileTheServerIsDownIsDeliveredOnceItIsBack) {
  if (!Streams()) {
    GTEST_SKIP() << "the unary loop's fail-fast calls leave reconnecting to gRPC's "
                    "backup poller (every 5 s), longer than this lease";
  }
  v1::Task created = CreateTask("patient");
  WorkerOptions options = Options();
  options.max_tasks = 1;
  options.lease_duration = absl::Seconds(3);
  options.retry_delay = absl::Milliseconds(100);
  Worker worker(channel_, options);

  absl::Notification started;
  absl::Notification proceed;
  BackgroundRun run(worker, [&](TaskContext& context) -> absl::StatusOr<std::string> {
    started.Notify();
    EXPECT_TRUE(proceed.WaitForNotificationWithTimeout(kPatience));
    return absl::UnavailableError("try again later");
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kPatience));
  const std::string port = kanband_.address.substr(kanband_.address.rfind(':') + 1);
  StopServer(SIGKILL);
  proceed.Notify();
  // The report cannot go anywhere for a while.
  absl::SleepFor(absl::Milliseconds(300));
  StartServer({}, port);
  absl::Status status = run.Join();

  ASSERT_TRUE(status.ok()) << status;
  v1::Task task = GetTask(created.id());
  EXPECT_EQ(task.status(), v1::READY) << task.DebugString();
  EXPECT_EQ(task.attempt(), 1) << task.DebugString();
  EXPECT_EQ(task.last_error(), "try again later");
  EXPECT_EQ(EventNames(Kind::kRpcError),
            (std::vector<std::string>{absl::StrCat("claimed ", created.id()),
                                      absl::StrCat("failed ", created.id())}));
}

}  // namespace
}  // namespace kanban
