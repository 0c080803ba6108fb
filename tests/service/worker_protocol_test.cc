// The worker protocol end to end: ClaimTask (at once and as a long poll),
// fenced CompleteTask / FailTask / ReleaseTask, HeartbeatService and the
// lease sweeper, on a real server at 127.0.0.1:0 over a real SQLite file,
// through the generated stubs. Leases are short and the sweeper fast so that
// expiry happens within a test; the store runs on the system clock.
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/server.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

using ::grpc::StatusCode;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using Stub = v1::KanbanService::Stub;
using HeartbeatStub = v1::HeartbeatService::Stub;
using SteadyClock = std::chrono::steady_clock;

// Only keeps a broken server from hanging the binary; never fires otherwise.
constexpr auto kCallTimeout = std::chrono::seconds(30);
// "Promptly": far below every wait that could otherwise have ended the call.
constexpr absl::Duration kPrompt = absl::Seconds(5);
// How long the sweeper gets to reclaim an expired lease.
constexpr absl::Duration kSweepTimeout = absl::Seconds(5);
// Nothing signals that a claim has parked in the server's waiter registry,
// so tests that mean to exercise the wake-up path give it this long to get
// there. Every assertion holds whether or not it had: a claim that has not
// parked yet finds the task by itself.
constexpr absl::Duration kParkTime = absl::Milliseconds(200);

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + kCallTimeout;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat("code ", static_cast<int>(s.error_code()), ": ", s.error_message());
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

void SetTime(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t micros = absl::ToUnixMicros(t);
  out->set_seconds(micros / 1000000);
  out->set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

void ExpectInvalid(const grpc::Status& status, const std::string& field) {
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(status);
  EXPECT_THAT(status.error_message(), StartsWith(field + ":")) << Describe(status);
}

// FAILED_PRECONDITION "lease lost: <reason>...".
void ExpectLeaseLost(const grpc::Status& status, const std::string& reason) {
  EXPECT_EQ(status.error_code(), StatusCode::FAILED_PRECONDITION) << Describe(status);
  EXPECT_THAT(status.error_message(), StartsWith("lease lost: " + reason))
      << Describe(status);
}

v1::ClaimTaskRequest ClaimRequest(const std::string& worker,
                                  absl::Duration wait = absl::ZeroDuration()) {
  v1::ClaimTaskRequest r;
  r.set_worker_id(worker);
  if (wait > absl::ZeroDuration()) SetDuration(wait, r.mutable_wait());
  return r;
}

// One ClaimTask call on its own thread, so that the test can act while the
// claim waits. The destructor cancels and joins a call still running.
class AsyncClaim {
 public:
  AsyncClaim(Stub* stub, v1::ClaimTaskRequest request,
             std::chrono::system_clock::duration timeout = kCallTimeout)
      : start_(SteadyClock::now()) {
    ctx_.set_deadline(std::chrono::system_clock::now() + timeout);
    thread_ = std::thread([this, stub, request = std::move(request)] {
      status_ = stub->ClaimTask(&ctx_, request, &response_);
      elapsed_ = absl::FromChrono(SteadyClock::now() - start_);
      ended_at_ = absl::Now();
      ended_.Notify();
    });
  }
  ~AsyncClaim() {
    if (thread_.joinable()) {
      ctx_.TryCancel();
      thread_.join();
    }
  }
  AsyncClaim(const AsyncClaim&) = delete;
  AsyncClaim& operator=(const AsyncClaim&) = delete;

  // True if the call ended within `timeout`; only then are the accessors
  // below valid.
  bool AwaitEnd(absl::Duration timeout) {
    if (!ended_.WaitForNotificationWithTimeout(timeout)) return false;
    if (thread_.joinable()) thread_.join();
    return true;
  }
  bool ended() const { return ended_.HasBeenNotified(); }
  void Cancel() { ctx_.TryCancel(); }

  const grpc::Status& status() const { return status_; }
  const v1::ClaimTaskResponse& response() const { return response_; }
  absl::Duration elapsed() const { return elapsed_; }  // From construction.
  absl::Time ended_at() const { return ended_at_; }

 private:
  const SteadyClock::time_point start_;
  grpc::ClientContext ctx_;
  grpc::Status status_;
  v1::ClaimTaskResponse response_;
  absl::Duration elapsed_;
  absl::Time ended_at_;
  absl::Notification ended_;
  std::thread thread_;
};

// Index of the first of `claims` to end within `timeout`, or -1.
int AwaitAnyEnd(const std::vector<AsyncClaim*>& claims, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    for (size_t i = 0; i < claims.size(); ++i) {
      if (claims[i]->ended()) return static_cast<int>(i);
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return -1;
}

class WorkerFixture : public testing::BackendTest {
 protected:
  void SetUp() override {
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.store.path = Database(dir_.File("kanban.db"));
    if (options.store.path.empty()) return;
    options.store.sweep_interval = absl::Milliseconds(50);
    options.store.retry.backoff_base = absl::Milliseconds(10);
    options.store.retry.backoff_cap = absl::Milliseconds(50);
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::KanbanService::NewStub(channel_);
    heartbeat_ = v1::HeartbeatService::NewStub(channel_);
  }

  void TearDown() override {
    stub_.reset();
    heartbeat_.reset();
    channel_.reset();
    if (server_) server_->Shutdown();
    server_.reset();
  }

  // One unary call with a deadline, e.g. Call(stub_.get(), &Stub::GetTask, r, &t).
  template <typename S, typename Request, typename Response>
  static grpc::Status Call(S* stub,
                           grpc::Status (S::*method)(grpc::ClientContext*, const Request&,
                                                     Response*),
                           const Request& request, Response* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    return (stub->*method)(&ctx, request, response);
  }

  v1::Task Create(const v1::CreateTaskRequest& request) {
    v1::Task task;
    grpc::Status s = Call(stub_.get(), &Stub::CreateTask, request, &task);
    EXPECT_TRUE(s.ok()) << Describe(s) << " for " << request.ShortDebugString();
    return task;
  }
  v1::Task Create(const std::string& title, int priority = 0) {
    v1::CreateTaskRequest r;
    r.set_title(title);
    r.set_priority(priority);
    return Create(r);
  }

  v1::Task Get(const std::string& id) {
    v1::GetTaskRequest r;
    r.set_task_id(id);
    v1::Task task;
    grpc::Status s = Call(stub_.get(), &Stub::GetTask, r, &task);
    EXPECT_TRUE(s.ok()) << Describe(s) << " for GetTask " << id;
    return task;
  }

  grpc::Status Claim(const v1::ClaimTaskRequest& request,
                     v1::ClaimTaskResponse* response) {
    return Call(stub_.get(), &Stub::ClaimTask, request, response);
  }
  // A claim expected to succeed (the response may hold no task).
  v1::ClaimTaskResponse MustClaim(const v1::ClaimTaskRequest& request) {
    v1::ClaimTaskResponse response;
    grpc::Status s = Claim(request, &response);
    EXPECT_TRUE(s.ok()) << Describe(s) << " for " << request.ShortDebugString();
    return response;
  }
  v1::ClaimTaskResponse MustClaim(const std::string& worker) {
    return MustClaim(ClaimRequest(worker));
  }

  grpc::Status Complete(const std::string& id, const std::string& token,
                        v1::Task* out = nullptr, const std::string& result = "ok") {
    v1::CompleteTaskRequest r;
    r.set_task_id(id);
    r.set_lease_token(token);
    r.set_result(result);
    v1::Task ignored;
    return Call(stub_.get(), &Stub::CompleteTask, r, out != nullptr ? out : &ignored);
  }
  grpc::Status Fail(const std::string& id, const std::string& token, bool retry,
                    v1::Task* out = nullptr, const std::string& error = "boom") {
    v1::FailTaskRequest r;
    r.set_task_id(id);
    r.set_lease_token(token);
    r.set_error(error);
    r.set_retry(retry);
    v1::Task ignored;
    return Call(stub_.get(), &Stub::FailTask, r, out != nullptr ? out : &ignored);
  }
  grpc::Status Release(const std::string& id, const std::string& token,
                       v1::Task* out = nullptr) {
    v1::ReleaseTaskRequest r;
    r.set_task_id(id);
    r.set_lease_token(token);
    v1::Task ignored;
    return Call(stub_.get(), &Stub::ReleaseTask, r, out != nullptr ? out : &ignored);
  }
  grpc::Status Move(const std::string& id, v1::Status to, v1::Task* out = nullptr) {
    v1::MoveTaskRequest r;
    r.set_task_id(id);
    r.set_to_status(to);
    v1::Task ignored;
    return Call(stub_.get(), &Stub::MoveTask, r, out != nullptr ? out : &ignored);
  }

  // One heartbeat for `leases` (task id, token); the response must hold one
  // status per lease.
  v1::HeartbeatResponse Beat(
      const std::string& worker,
      const std::vector<std::pair<std::string, std::string>>& leases) {
    v1::HeartbeatRequest r;
    r.set_worker_id(worker);
    for (const auto& [task_id, token] : leases) {
      v1::HeldLease* held = r.add_leases();
      held->set_task_id(task_id);
      held->set_lease_token(token);
    }
    v1::HeartbeatResponse response;
    grpc::Status s = Call(heartbeat_.get(), &HeartbeatStub::Heartbeat, r, &response);
    EXPECT_TRUE(s.ok()) << Describe(s);
    EXPECT_EQ(response.leases_size(), static_cast<int>(leases.size()));
    return response;
  }

  v1::ListWorkersResponse Workers(const std::string& board) {
    v1::ListWorkersRequest r;
    r.set_board(board);
    v1::ListWorkersResponse response;
    grpc::Status s = Call(heartbeat_.get(), &HeartbeatStub::ListWorkers, r, &response);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return response;
  }

  // Polls GetTask every 20 ms until `until` holds (true) or kSweepTimeout
  // passes (false). `last` gets the last task seen.
  bool PollTask(const std::string& id, const std::function<bool(const v1::Task&)>& until,
                v1::Task* last) {
    const absl::Time give_up = absl::Now() + kSweepTimeout;
    while (true) {
      *last = Get(id);
      if (until(*last)) return true;
      if (absl::Now() >= give_up) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  kanban::testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
  std::unique_ptr<HeartbeatStub> heartbeat_;
};

using ClaimTaskTest = WorkerFixture;
using ClaimWaitTest = WorkerFixture;
using LeaseTest = WorkerFixture;
using HeartbeatTest = WorkerFixture;
using WorkerProtocolTest = WorkerFixture;

// ---- ClaimTask, answered at once ---------------------------------------------

TEST_P(ClaimTaskTest, EmptyBoardAnswersAtOnceWithNoTask) {
  const SteadyClock::time_point start = SteadyClock::now();
  v1::ClaimTaskResponse response;
  grpc::Status s = Claim(ClaimRequest("w1"), &response);
  EXPECT_EQ(s.error_code(), StatusCode::OK) << Describe(s);
  EXPECT_FALSE(response.has_task());
  EXPECT_FALSE(response.has_lease());
  EXPECT_LT(absl::FromChrono(SteadyClock::now() - start), absl::Seconds(2));
}

TEST_P(ClaimTaskTest, ClaimsHighestPriorityThenOldest) {
  v1::Task low = Create("low", 1);
  v1::Task first_high = Create("first high", 5);
  v1::Task second_high = Create("second high", 5);
  v1::Task zero = Create("zero", 0);

  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    v1::ClaimTaskResponse r = MustClaim(absl::StrCat("w", i));
    ASSERT_TRUE(r.has_task()) << "claim " << i;
    order.push_back(r.task().id());
  }
  EXPECT_THAT(order, ElementsAre(first_high.id(), second_high.id(), low.id(), zero.id()));
  EXPECT_FALSE(MustClaim("w9").has_task());
}

TEST_P(ClaimTaskTest, ClaimMakesTheTaskRunningUnderANewLease) {
  v1::Task created = Create("work");
  v1::ClaimTaskRequest request = ClaimRequest("worker-1");
  SetDuration(absl::Seconds(5), request.mutable_lease_duration());
  const absl::Time before = absl::Now();
  v1::ClaimTaskResponse r = MustClaim(request);
  const absl::Time after = absl::Now();
  ASSERT_TRUE(r.has_task());
  ASSERT_TRUE(r.has_lease());

  const v1::Task& task = r.task();
  EXPECT_EQ(task.id(), created.id());
  EXPECT_EQ(task.status(), v1::RUNNING);
  EXPECT_EQ(task.attempt(), 1);
  EXPECT_EQ(task.worker_id(), "worker-1");
  EXPECT_EQ(task.version(), created.version() + 1);
  ASSERT_TRUE(task.has_lease_expires_at());

  const v1::Lease& lease = r.lease();
  EXPECT_FALSE(lease.token().empty());
  EXPECT_EQ(lease.task_id(), created.id());
  EXPECT_EQ(lease.worker_id(), "worker-1");
  EXPECT_EQ(lease.attempt(), 1);
  EXPECT_EQ(lease.duration().seconds(), 5);
  EXPECT_EQ(lease.duration().nanos(), 0);
  const absl::Time expires = FromProto(lease.expires_at());
  EXPECT_GE(expires, before + absl::Seconds(5) - absl::Milliseconds(1));
  EXPECT_LE(expires, after + absl::Seconds(5) + absl::Milliseconds(1));
  EXPECT_LE(absl::AbsDuration(FromProto(task.lease_expires_at()) - expires),
            absl::Milliseconds(1));

  v1::Task got = Get(created.id());
  EXPECT_EQ(got.status(), v1::RUNNING);
  EXPECT_EQ(got.attempt(), 1);
  EXPECT_EQ(got.worker_id(), "worker-1");
  EXPECT_LE(absl::AbsDuration(FromProto(got.lease_expires_at()) - expires),
            absl::Milliseconds(1));
}

TEST_P(ClaimTaskTest, LeaseDefaultsToSixtySeconds) {
  Create("work");
  const absl::Time before = absl::Now();
  v1::ClaimTaskResponse r = MustClaim("w1");
  const absl::Time after = absl::Now();
  ASSERT_TRUE(r.has_task());
  EXPECT_EQ(r.lease().duration().seconds(), 60);
  EXPECT_EQ(r.lease().duration().nanos(), 0);
  const absl::Time expires = FromProto(r.lease().expires_at());
  EXPECT_GE(expires, before + absl::Seconds(60) - absl::Milliseconds(1));
  EXPECT_LE(expires, after + absl::Seconds(60) + absl::Milliseconds(1));
}

TEST_P(ClaimTaskTest, LimitsOfLeaseDurationAndWaitAreAccepted) {
  Create("a");
  Create("b");
  Create("c");
  v1::ClaimTaskRequest one_second = ClaimRequest("w1");
  SetDuration(absl::Seconds(1), one_second.mutable_lease_duration());
  v1::ClaimTaskResponse r = MustClaim(one_second);
  ASSERT_TRUE(r.has_task());
  EXPECT_EQ(r.lease().duration().seconds(), 1);

  v1::ClaimTaskRequest one_hour = ClaimRequest("w2");
  SetDuration(absl::Hours(1), one_hour.mutable_lease_duration());
  r = MustClaim(one_hour);
  ASSERT_TRUE(r.has_task());
  EXPECT_EQ(r.lease().duration().seconds(), 3600);

  // The longest wait is allowed, and a claimable task answers it at once.
  const SteadyClock::time_point start = SteadyClock::now();
  r = MustClaim(ClaimRequest("w3", absl::Seconds(30)));
  EXPECT_TRUE(r.has_task());
  EXPECT_LT(absl::FromChrono(SteadyClock::now() - start), kPrompt);
}

TEST_P(ClaimTaskTest, TaskMustCarryEveryRequestedLabel) {
  v1::CreateTaskRequest gpu;
  gpu.set_title("gpu only");
  gpu.set_priority(9);
  gpu.add_labels("gpu");
  v1::Task gpu_task = Create(gpu);
  v1::CreateTaskRequest both;
  both.set_title("gpu on linux");
  both.add_labels("linux");
  both.add_labels("gpu");
  both.add_labels("big");
  v1::Task both_task = Create(both);

  v1::ClaimTaskRequest want_both = ClaimRequest("w1");
  want_both.add_labels("gpu");
  want_both.add_labels("linux");
  v1::ClaimTaskResponse r = MustClaim(want_both);
  ASSERT_TRUE(r.has_task());
  EXPECT_EQ(r.task().id(), both_task.id()) << "the higher-priority task lacks 'linux'";
  EXPECT_FALSE(MustClaim(want_both).has_task());

  v1::ClaimTaskRequest want_other = ClaimRequest("w2");
  want_other.add_labels("windows");
  EXPECT_FALSE(MustClaim(want_other).has_task());

  // No labels asked: any task will do.
  r = MustClaim("w3");
  ASSERT_TRUE(r.has_task());
  EXPECT_EQ(r.task().id(), gpu_task.id());
}

TEST_P(ClaimTaskTest, AssignedTaskGoesOnlyToItsAssignee) {
  v1::CreateTaskRequest for_ann;
  for_ann.set_title("ann's");
  for_ann.set_priority(9);
  for_ann.set_assignee("ann");
  v1::Task ann_task = Create(for_ann);
  v1::Task open_task = Create("anyone's", 0);

  v1::ClaimTaskResponse r = MustClaim("w1");  // Names no assignee.
  ASSERT_TRUE(r.has_task());
  EXPECT_EQ(r.task().id(), open_task.id());

  v1::ClaimTaskRequest as_bob = ClaimRequest("w2");
  as_bob.set_assignee("bob");
  EXPECT_FALSE(MustClaim(as_bob).has_task());
  EXPECT_FALSE(MustClaim("w3").has_task());

  v1::ClaimTaskRequest as_ann = ClaimRequest("w4");
  as_ann.set_assignee("ann");
  r = MustClaim(as_ann);
  ASSERT_TRUE(r.has_task());
  EXPECT_EQ(r.task().id(), ann_task.id());

  // Unassigned tasks go to anyone, also to a claim naming an assignee.
  v1::Task later = Create("unassigned, later");
  r = MustClaim(as_ann);
  ASSERT_TRUE(r.has_task());
  EXPECT_EQ(r.task().id(), later.id());
}

TEST_P(ClaimTaskTest, FutureNotBeforeIsNotClaimable) {
  v1::CreateTaskRequest later;
  later.set_title("later");
  SetTime(absl::Now() + absl::Hours(1), later.mutable_not_before());
  v1::Task task = Create(later);
  EXPECT_EQ(task.status(), v1::READY);

  EXPECT_FALSE(MustClaim("w1").has_task());
  v1::Task got = Get(task.id());
  EXPECT_EQ(got.status(), v1::READY);
  EXPECT_EQ(got.attempt(), 0);
}

TEST_P(ClaimTaskTest, InvalidRequestsNameTheFieldAndClaimNothing) {
  v1::Task task = Create("bystander");
  v1::ClaimTaskResponse response;

  ExpectInvalid(Claim(ClaimRequest(""), &response), "worker_id");

  v1::ClaimTaskRequest short_lease = ClaimRequest("w1");
  SetDuration(absl::Milliseconds(500), short_lease.mutable_lease_duration());
  ExpectInvalid(Claim(short_lease, &response), "lease_duration");

  v1::ClaimTaskRequest long_lease = ClaimRequest("w1");
  SetDuration(absl::Hours(2), long_lease.mutable_lease_duration());
  ExpectInvalid(Claim(long_lease, &response), "lease_duration");

  ExpectInvalid(Claim(ClaimRequest("w1", absl::Seconds(31)), &response), "wait");

  EXPECT_FALSE(response.has_task());
  v1::Task got = Get(task.id());
  EXPECT_EQ(got.status(), v1::READY);
  EXPECT_EQ(got.attempt(), 0);
  EXPECT_EQ(got.version(), task.version());
}

TEST_P(ClaimTaskTest, UnknownBoardIsNotFound) {
  v1::ClaimTaskRequest r = ClaimRequest("w1");
  r.set_board("nosuchboard");
  v1::ClaimTaskResponse response;
  grpc::Status s = Claim(r, &response);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);

  // Also when asked to wait: the board will not appear by waiting.
  SetDuration(absl::Seconds(10), r.mutable_wait());
  const SteadyClock::time_point start = SteadyClock::now();
  s = Claim(r, &response);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);
  EXPECT_LT(absl::FromChrono(SteadyClock::now() - start), kPrompt);
}

// ---- ClaimTask as a long poll ----------------------------------------------

TEST_P(ClaimWaitTest, NewTaskWakesAWaitingClaim) {
  AsyncClaim claim(stub_.get(), ClaimRequest("w1", absl::Seconds(10)));
  absl::SleepFor(kParkTime);
  v1::Task task = Create("new work");

  ASSERT_TRUE(claim.AwaitEnd(kPrompt)) << "the claim was not woken";
  EXPECT_EQ(claim.status().error_code(), StatusCode::OK) << Describe(claim.status());
  ASSERT_TRUE(claim.response().has_task());
  EXPECT_EQ(claim.response().task().id(), task.id());
  EXPECT_EQ(claim.response().task().status(), v1::RUNNING);
  EXPECT_FALSE(claim.response().lease().token().empty());
  EXPECT_LT(claim.elapsed(), kPrompt);
}

TEST_P(ClaimWaitTest, ChildPromotedByCompletedParentWakesAWaitingClaim) {
  v1::Task parent = Create("parent");
  v1::CreateTaskRequest child_request;
  child_request.set_title("child");
  child_request.add_parent_ids(parent.id());
  v1::Task child = Create(child_request);
  ASSERT_EQ(child.status(), v1::TODO);

  v1::ClaimTaskResponse held = MustClaim("parent-worker");
  ASSERT_TRUE(held.has_task());
  ASSERT_EQ(held.task().id(), parent.id());

  AsyncClaim claim(stub_.get(), ClaimRequest("w1", absl::Seconds(10)));
  absl::SleepFor(kParkTime);
  EXPECT_FALSE(claim.ended()) << "a TODO child is not claimable";
  grpc::Status s = Complete(parent.id(), held.lease().token());
  ASSERT_TRUE(s.ok()) << Describe(s);

  ASSERT_TRUE(claim.AwaitEnd(kPrompt)) << "the claim was not woken";
  EXPECT_EQ(claim.status().error_code(), StatusCode::OK) << Describe(claim.status());
  ASSERT_TRUE(claim.response().has_task());
  EXPECT_EQ(claim.response().task().id(), child.id());
  EXPECT_EQ(claim.response().task().status(), v1::RUNNING);
}

TEST_P(ClaimWaitTest, ExpiredWaitAnswersOkWithNoTask) {
  AsyncClaim claim(stub_.get(), ClaimRequest("w1", absl::Milliseconds(300)));
  ASSERT_TRUE(claim.AwaitEnd(kPrompt));
  EXPECT_EQ(claim.status().error_code(), StatusCode::OK) << Describe(claim.status());
  EXPECT_FALSE(claim.response().has_task());
  EXPECT_GE(claim.elapsed(), absl::Milliseconds(290));
}

TEST_P(ClaimWaitTest, CallerDeadlineShorterThanWaitAnswersEmptyNotDeadlineExceeded) {
  AsyncClaim claim(stub_.get(), ClaimRequest("w1", absl::Seconds(10)),
                   std::chrono::milliseconds(1500));
  ASSERT_TRUE(claim.AwaitEnd(kPrompt));
  EXPECT_EQ(claim.status().error_code(), StatusCode::OK) << Describe(claim.status());
  EXPECT_FALSE(claim.response().has_task());
  EXPECT_GE(claim.elapsed(), absl::Milliseconds(1000));
}

TEST_P(ClaimWaitTest, WaitingClaimGetsExistingTaskOnceNotBeforePasses) {
  v1::CreateTaskRequest later;
  later.set_title("soon");
  SetTime(absl::Now() + absl::Milliseconds(400), later.mutable_not_before());
  v1::Task task = Create(later);
  ASSERT_TRUE(task.has_not_before());

  AsyncClaim claim(stub_.get(), ClaimRequest("w1", absl::Seconds(5)));
  ASSERT_TRUE(claim.AwaitEnd(kPrompt + absl::Seconds(1)));
  EXPECT_EQ(claim.status().error_code(), StatusCode::OK) << Describe(claim.status());
  ASSERT_TRUE(claim.response().has_task()) << "woken at the deadline, not at not_before";
  EXPECT_EQ(claim.response().task().id(), task.id());
  EXPECT_GE(claim.ended_at(), FromProto(task.not_before()));
  EXPECT_LT(claim.elapsed(), absl::Seconds(4));
}

TEST_P(ClaimWaitTest, WaitingClaimGetsTaskCreatedWithNotBeforeOnceItPasses) {
  AsyncClaim claim(stub_.get(), ClaimRequest("w1", absl::Seconds(5)));
  absl::SleepFor(kParkTime);
  v1::CreateTaskRequest later;
  later.set_title("soon");
  SetTime(absl::Now() + absl::Milliseconds(400), later.mutable_not_before());
  v1::Task task = Create(later);
  ASSERT_TRUE(task.has_not_before());

  ASSERT_TRUE(claim.AwaitEnd(kPrompt + absl::Seconds(1)));
  EXPECT_EQ(claim.status().error_code(), StatusCode::OK) << Describe(claim.status());
  ASSERT_TRUE(claim.response().has_task()) << "woken at the deadline, not at not_before";
  EXPECT_EQ(claim.response().task().id(), task.id());
  EXPECT_GE(claim.ended_at(), FromProto(task.not_before()));
  EXPECT_LT(claim.elapsed(), absl::Seconds(4));
}

TEST_P(ClaimWaitTest, ClaimWhoseLabelsDoNotMatchKeepsWaiting) {
  // The mismatched claim parks first, so it is the oldest waiter.
  v1::ClaimTaskRequest gpu = ClaimRequest("gpu-worker", absl::Milliseconds(1500));
  gpu.add_labels("gpu");
  AsyncClaim mismatched(stub_.get(), gpu);
  absl::SleepFor(kParkTime);
  v1::ClaimTaskRequest cpu = ClaimRequest("cpu-worker", absl::Seconds(10));
  cpu.add_labels("cpu");
  AsyncClaim matching(stub_.get(), cpu);
  absl::SleepFor(kParkTime);

  v1::CreateTaskRequest request;
  request.set_title("cpu work");
  request.add_labels("cpu");
  v1::Task task = Create(request);

  ASSERT_TRUE(matching.AwaitEnd(kPrompt)) << "the matching claim was not woken";
  EXPECT_EQ(matching.status().error_code(), StatusCode::OK)
      << Describe(matching.status());
  ASSERT_TRUE(matching.response().has_task());
  EXPECT_EQ(matching.response().task().id(), task.id());

  ASSERT_TRUE(mismatched.AwaitEnd(kPrompt));
  EXPECT_EQ(mismatched.status().error_code(), StatusCode::OK)
      << Describe(mismatched.status());
  EXPECT_FALSE(mismatched.response().has_task());
  EXPECT_GE(mismatched.elapsed(), absl::Milliseconds(1400)) << "ended before its wait";
}

TEST_P(ClaimWaitTest, OneNewTaskGoesToExactlyOneOfTwoWaitingClaims) {
  AsyncClaim a(stub_.get(), ClaimRequest("wa", absl::Seconds(10)));
  AsyncClaim b(stub_.get(), ClaimRequest("wb", absl::Seconds(10)));
  absl::SleepFor(kParkTime);

  v1::Task first = Create("first");
  const int winner = AwaitAnyEnd({&a, &b}, kPrompt);
  ASSERT_NE(winner, -1) << "no claim was woken";
  AsyncClaim& won = winner == 0 ? a : b;
  AsyncClaim& other = winner == 0 ? b : a;
  ASSERT_TRUE(won.AwaitEnd(kPrompt));
  EXPECT_EQ(won.status().error_code(), StatusCode::OK) << Describe(won.status());
  ASSERT_TRUE(won.response().has_task());
  EXPECT_EQ(won.response().task().id(), first.id());
  EXPECT_FALSE(other.ended()) << "the other claim should still be waiting";

  v1::Task second = Create("second");
  ASSERT_TRUE(other.AwaitEnd(kPrompt)) << "the other claim was not woken";
  EXPECT_EQ(other.status().error_code(), StatusCode::OK) << Describe(other.status());
  ASSERT_TRUE(other.response().has_task());
  EXPECT_EQ(other.response().task().id(), second.id());
  EXPECT_NE(won.response().lease().worker_id(), other.response().lease().worker_id());
}

// Two tasks become claimable in one commit (both children of one parent),
// with three claims waiting. The wake-up for the low-priority task goes to a
// claim that then takes the high-priority one (it asked for no labels), and
// the wake-up for the high-priority task goes to a "gpu" claim that finds it
// gone. The low-priority task must still reach the third waiting claim, not
// sit READY until that claim's wait runs out.
TEST_P(ClaimWaitTest, WakeUpIsNotLostWhenTheWokenClaimTakesAnotherTask) {
  v1::Task parent = Create("parent");
  v1::CreateTaskRequest plain_request;
  plain_request.set_title("plain, low priority");
  plain_request.set_priority(0);
  plain_request.add_parent_ids(parent.id());
  v1::Task plain = Create(plain_request);  // Promoted first (older).
  v1::CreateTaskRequest gpu_request;
  gpu_request.set_title("gpu, high priority");
  gpu_request.set_priority(9);
  gpu_request.add_labels("gpu");
  gpu_request.add_parent_ids(parent.id());
  v1::Task gpu = Create(gpu_request);
  ASSERT_EQ(plain.status(), v1::TODO);
  ASSERT_EQ(gpu.status(), v1::TODO);
  v1::ClaimTaskResponse held = MustClaim("parent-worker");
  ASSERT_TRUE(held.has_task());
  ASSERT_EQ(held.task().id(), parent.id());

  // Oldest first: the gpu claim, then two claims without labels.
  v1::ClaimTaskRequest wants_gpu = ClaimRequest("gpu-worker", absl::Seconds(10));
  wants_gpu.add_labels("gpu");
  AsyncClaim gpu_claim(stub_.get(), wants_gpu);
  absl::SleepFor(kParkTime);
  AsyncClaim any_claim(stub_.get(), ClaimRequest("any-worker", absl::Seconds(10)));
  absl::SleepFor(kParkTime);
  AsyncClaim third_claim(stub_.get(), ClaimRequest("third-worker", absl::Seconds(10)));
  absl::SleepFor(kParkTime);

  grpc::Status s = Complete(parent.id(), held.lease().token());
  ASSERT_TRUE(s.ok()) << Describe(s);

  v1::Task last;
  EXPECT_TRUE(PollTask(
      gpu.id(), [](const v1::Task& t) { return t.status() == v1::RUNNING; }, &last))
      << last.ShortDebugString();
  EXPECT_TRUE(PollTask(
      plain.id(), [](const v1::Task& t) { return t.status() == v1::RUNNING; }, &last))
      << "a claimable task stayed READY while a matching claim waited: "
      << last.ShortDebugString();
}

TEST_P(ClaimWaitTest, ClientCancelEndsCancelledAndHoldsNothing) {
  AsyncClaim claim(stub_.get(), ClaimRequest("w1", absl::Seconds(10)));
  absl::SleepFor(kParkTime);
  std::thread canceller([&claim] { claim.Cancel(); });
  canceller.join();
  ASSERT_TRUE(claim.AwaitEnd(kPrompt));
  EXPECT_EQ(claim.status().error_code(), StatusCode::CANCELLED)
      << Describe(claim.status());
  EXPECT_FALSE(claim.response().has_task());

  v1::Task task = Create("after the cancel");
  // The cancel reaches the server on its own time: the create may still
  // wake the parked claim, which then gives the task back at once (its
  // caller will never learn the token). Either way the task is READY again
  // soon, not held until a lease runs out.
  v1::Task got = Get(task.id());
  for (absl::Time end = absl::Now() + kPrompt;
       got.status() != v1::READY && absl::Now() < end; got = Get(task.id())) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(got.status(), v1::READY);
  EXPECT_EQ(got.attempt(), 0);
  EXPECT_TRUE(got.worker_id().empty());
  v1::ClaimTaskResponse r = MustClaim("w2");
  ASSERT_TRUE(r.has_task()) << "the task is held by someone";
  EXPECT_EQ(r.task().id(), task.id());
  EXPECT_EQ(r.task().attempt(), 1);
}

// ---- Whole-server behaviour -------------------------------------------------

TEST_P(WorkerProtocolTest, ShutdownEndsAWaitingClaimWithUnavailable) {
  AsyncClaim claim(stub_.get(), ClaimRequest("w1", absl::Seconds(10)));
  absl::SleepFor(kParkTime);

  absl::Notification shut_down;
  std::thread shutdown([this, &shut_down] {
    server_->Shutdown();
    shut_down.Notify();
  });
  const bool ended = claim.AwaitEnd(kPrompt);
  const bool server_down = shut_down.WaitForNotificationWithTimeout(kPrompt);
  shutdown.join();
  ASSERT_TRUE(ended) << "the claim kept waiting through shutdown";
  EXPECT_EQ(claim.status().error_code(), StatusCode::UNAVAILABLE)
      << Describe(claim.status());
  EXPECT_FALSE(claim.response().has_task());
  EXPECT_LT(claim.elapsed(), kPrompt);
  EXPECT_TRUE(server_down) << "Shutdown waited for the claim's grace period";
}

TEST_P(WorkerProtocolTest, ConcurrentWorkersCompleteEveryTaskExactlyOnce) {
  constexpr int kTasks = 500;
  constexpr int kWorkers = 32;
  std::set<std::string> created;
  for (int i = 0; i < kTasks; ++i) {
    v1::Task t = Create(absl::StrCat("task ", i), i % 7);
    ASSERT_FALSE(t.id().empty());
    created.insert(t.id());
  }
  ASSERT_EQ(created.size(), static_cast<size_t>(kTasks));

  absl::Mutex mu;
  std::vector<std::string> completed;  // Guarded by mu.
  std::vector<std::string> errors;     // Guarded by mu.
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      const std::string worker = absl::StrCat("worker-", w);
      for (int round = 0; round < 2 * kTasks; ++round) {
        v1::ClaimTaskResponse claimed;
        grpc::Status s = Claim(ClaimRequest(worker), &claimed);
        if (!s.ok()) {
          absl::MutexLock lock(&mu);
          errors.push_back(absl::StrCat(worker, " claim: ", Describe(s)));
          return;
        }
        if (!claimed.has_task()) return;  // The board is drained.
        v1::Task done;
        s = Complete(claimed.task().id(), claimed.lease().token(), &done);
        absl::MutexLock lock(&mu);
        if (!s.ok() || done.status() != v1::DONE) {
          errors.push_back(
              absl::StrCat(worker, " complete ", claimed.task().id(), ": ", Describe(s)));
          return;
        }
        completed.push_back(claimed.task().id());
      }
    });
  }
  for (std::thread& t : workers) t.join();

  EXPECT_THAT(errors, IsEmpty());
  EXPECT_EQ(completed.size(), static_cast<size_t>(kTasks));
  std::set<std::string> unique(completed.begin(), completed.end());
  EXPECT_EQ(unique.size(), completed.size()) << "a task was completed twice";
  EXPECT_EQ(unique, created);

  v1::ListTasksRequest list;
  list.set_page_size(1000);
  v1::ListTasksResponse all;
  grpc::Status s = Call(stub_.get(), &Stub::ListTasks, list, &all);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(all.tasks_size(), kTasks);
  for (const v1::Task& t : all.tasks()) {
    EXPECT_EQ(t.status(), v1::DONE) << t.id();
    EXPECT_EQ(t.attempt(), 1) << t.id();
  }
}

TEST_P(WorkerProtocolTest, ListWorkersShowsHoldersAndFiltersByBoard) {
  v1::CreateBoardRequest board;
  board.set_name("other");
  v1::Board ignored;
  grpc::Status s = Call(stub_.get(), &Stub::CreateBoard, board, &ignored);
  ASSERT_TRUE(s.ok()) << Describe(s);
  v1::Task here = Create("on default");
  v1::CreateTaskRequest there_request;
  there_request.set_title("on other");
  there_request.set_board("other");
  v1::Task there = Create(there_request);

  v1::ClaimTaskResponse one = MustClaim("w-default");
  ASSERT_TRUE(one.has_task());
  v1::ClaimTaskRequest on_other = ClaimRequest("w-other");
  on_other.set_board("other");
  v1::ClaimTaskResponse two = MustClaim(on_other);
  ASSERT_TRUE(two.has_task());
  ASSERT_EQ(two.task().id(), there.id());

  v1::ListWorkersResponse all = Workers("");
  ASSERT_EQ(all.workers_size(), 2);
  // Most recently seen first.
  EXPECT_EQ(all.workers(0).worker_id(), "w-other");
  EXPECT_THAT(all.workers(0).task_ids(), ElementsAre(there.id()));
  EXPECT_EQ(all.workers(1).worker_id(), "w-default");
  EXPECT_THAT(all.workers(1).task_ids(), ElementsAre(here.id()));
  for (const v1::Worker& w : all.workers()) {
    EXPECT_TRUE(w.has_first_seen()) << w.worker_id();
    EXPECT_TRUE(w.has_last_seen()) << w.worker_id();
    EXPECT_LE(FromProto(w.first_seen()), FromProto(w.last_seen())) << w.worker_id();
  }

  v1::ListWorkersResponse other = Workers("other");
  ASSERT_EQ(other.workers_size(), 1);
  EXPECT_EQ(other.workers(0).worker_id(), "w-other");
  v1::ListWorkersResponse by_default = Workers("default");
  ASSERT_EQ(by_default.workers_size(), 1);
  EXPECT_EQ(by_default.workers(0).worker_id(), "w-default");

  // A finished lease is no longer listed against its worker.
  s = Complete(here.id(), one.lease().token());
  ASSERT_TRUE(s.ok()) << Describe(s);
  v1::ListWorkersResponse after = Workers("");
  for (const v1::Worker& w : after.workers()) {
    if (w.worker_id() == "w-default") {
      EXPECT_THAT(w.task_ids(), IsEmpty());
    }
  }
}

// ---- Fencing, failure, release ----------------------------------------------

TEST_P(LeaseTest, WrongTokenIsLeaseLostAndChangesNothing) {
  Create("work");
  v1::ClaimTaskResponse r = MustClaim("w1");
  ASSERT_TRUE(r.has_task());
  const std::string id = r.task().id();
  const std::string wrong = r.lease().token() == "0123456789abcdef0123456789abcdef"
                                ? "fedcba9876543210fedcba9876543210"
                                : "0123456789abcdef0123456789abcdef";

  ExpectLeaseLost(Complete(id, wrong), "");
  ExpectLeaseLost(Fail(id, wrong, /*retry=*/true), "");
  ExpectLeaseLost(Release(id, wrong), "");
  v1::Task got = Get(id);
  EXPECT_EQ(got.status(), v1::RUNNING);
  EXPECT_EQ(got.version(), r.task().version());

  // Another task's token does not fit this task either.
  Create("second");
  v1::ClaimTaskResponse r2 = MustClaim("w2");
  ASSERT_TRUE(r2.has_task());
  ExpectLeaseLost(Complete(id, r2.lease().token()), "");

  v1::Task done;
  grpc::Status s = Complete(id, r.lease().token(), &done, "all good");
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(done.status(), v1::DONE);
  EXPECT_EQ(done.result(), "all good");
  EXPECT_TRUE(done.worker_id().empty());
  EXPECT_FALSE(done.has_lease_expires_at());
  // A finished lease stays fenced.
  ExpectLeaseLost(Complete(id, r.lease().token()), "completed");
}

TEST_P(LeaseTest, ReclaimedLeaseIsFencedAndTheNewHolderCompletes) {
  v1::Task created = Create("work");
  v1::ClaimTaskRequest request = ClaimRequest("w1");
  SetDuration(absl::Seconds(1), request.mutable_lease_duration());
  v1::ClaimTaskResponse old = MustClaim(request);
  ASSERT_TRUE(old.has_task());
  const std::string id = old.task().id();
  const std::string old_token = old.lease().token();

  v1::Task reclaimed;
  ASSERT_TRUE(PollTask(
      id, [](const v1::Task& t) { return t.status() == v1::READY; }, &reclaimed))
      << "the sweeper did not reclaim the lease; last seen: "
      << reclaimed.ShortDebugString();
  EXPECT_EQ(reclaimed.attempt(), 1);
  EXPECT_TRUE(reclaimed.worker_id().empty());
  EXPECT_FALSE(reclaimed.has_lease_expires_at());

  ExpectLeaseLost(Complete(id, old_token), "reclaimed");
  ExpectLeaseLost(Fail(id, old_token, /*retry=*/true), "reclaimed");
  ExpectLeaseLost(Release(id, old_token), "reclaimed");
  v1::HeartbeatResponse beat = Beat("w1", {{id, old_token}});
  ASSERT_EQ(beat.leases_size(), 1);
  EXPECT_EQ(beat.leases(0).state(), v1::LeaseStatus::LOST);
  EXPECT_EQ(beat.leases(0).reason(), "reclaimed");
  EXPECT_EQ(beat.leases(0).task_id(), id);
  EXPECT_EQ(beat.leases(0).lease_token(), old_token);
  EXPECT_EQ(Get(id).version(), reclaimed.version()) << "a fenced call changed the task";

  // The requeued task carries a (short) backoff; a waiting claim gets it.
  AsyncClaim again(stub_.get(), ClaimRequest("w2", absl::Seconds(5)));
  ASSERT_TRUE(again.AwaitEnd(kPrompt + absl::Seconds(1)));
  ASSERT_EQ(again.status().error_code(), StatusCode::OK) << Describe(again.status());
  ASSERT_TRUE(again.response().has_task());
  EXPECT_EQ(again.response().task().id(), id);
  EXPECT_EQ(again.response().task().attempt(), 2);
  EXPECT_EQ(again.response().lease().attempt(), 2);
  EXPECT_NE(again.response().lease().token(), old_token);

  ExpectLeaseLost(Complete(id, old_token), "reclaimed");
  v1::Task done;
  grpc::Status s = Complete(id, again.response().lease().token(), &done);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(done.status(), v1::DONE);
  EXPECT_EQ(done.attempt(), 2);
}

TEST_P(LeaseTest, FailWithRetryRequeuesAfterABackoff) {
  Create("flaky");
  v1::ClaimTaskResponse r = MustClaim("w1");
  ASSERT_TRUE(r.has_task());
  const std::string id = r.task().id();

  const absl::Time before = absl::Now();
  v1::Task failed;
  grpc::Status s = Fail(id, r.lease().token(), /*retry=*/true, &failed, "disk on fire");
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(failed.status(), v1::READY);
  EXPECT_EQ(failed.last_error(), "disk on fire");
  EXPECT_EQ(failed.attempt(), 1);
  EXPECT_TRUE(failed.worker_id().empty());
  ASSERT_TRUE(failed.has_not_before());
  // Backoff for attempt 1 with a 10 ms base: 5 to 10 ms.
  EXPECT_GE(FromProto(failed.not_before()), before);
  EXPECT_LE(FromProto(failed.not_before()), absl::Now() + absl::Milliseconds(50));
  ExpectLeaseLost(Complete(id, r.lease().token()), "failed");

  // Claimable again once the backoff passed.
  AsyncClaim again(stub_.get(), ClaimRequest("w2", absl::Seconds(5)));
  ASSERT_TRUE(again.AwaitEnd(kPrompt + absl::Seconds(1)));
  ASSERT_TRUE(again.response().has_task()) << Describe(again.status());
  EXPECT_EQ(again.response().task().id(), id);
  EXPECT_EQ(again.response().task().attempt(), 2);
  EXPECT_EQ(again.response().task().last_error(), "disk on fire");
  EXPECT_GE(again.ended_at(), FromProto(failed.not_before()));
}

TEST_P(LeaseTest, FailWithoutRetryBlocks) {
  Create("broken");
  v1::ClaimTaskResponse r = MustClaim("w1");
  ASSERT_TRUE(r.has_task());
  v1::Task failed;
  grpc::Status s =
      Fail(r.task().id(), r.lease().token(), /*retry=*/false, &failed, "bad input");
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(failed.status(), v1::BLOCKED);
  EXPECT_EQ(failed.last_error(), "bad input");
  EXPECT_TRUE(failed.worker_id().empty());
  EXPECT_EQ(Get(r.task().id()).status(), v1::BLOCKED);
  EXPECT_FALSE(MustClaim("w2").has_task());
}

TEST_P(LeaseTest, FailWithRetryOnTheLastAttemptBlocks) {
  v1::CreateTaskRequest once;
  once.set_title("one shot");
  once.set_max_attempts(1);
  Create(once);
  v1::ClaimTaskResponse r = MustClaim("w1");
  ASSERT_TRUE(r.has_task());
  v1::Task failed;
  grpc::Status s =
      Fail(r.task().id(), r.lease().token(), /*retry=*/true, &failed, "again");
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(failed.status(), v1::BLOCKED);
  EXPECT_EQ(failed.attempt(), 1);
  EXPECT_EQ(failed.last_error(), "again");
  EXPECT_FALSE(MustClaim("w2").has_task());
}

TEST_P(LeaseTest, ReleaseRequeuesAtOnceWithoutCountingTheAttempt) {
  Create("hand back");
  v1::ClaimTaskResponse r = MustClaim("w1");
  ASSERT_TRUE(r.has_task());
  ASSERT_EQ(r.task().attempt(), 1);
  v1::Task released;
  grpc::Status s = Release(r.task().id(), r.lease().token(), &released);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(released.status(), v1::READY);
  EXPECT_EQ(released.attempt(), 0);
  EXPECT_TRUE(released.worker_id().empty());
  EXPECT_FALSE(released.has_lease_expires_at());
  ExpectLeaseLost(Complete(r.task().id(), r.lease().token()), "released");

  v1::ClaimTaskResponse again = MustClaim("w2");
  ASSERT_TRUE(again.has_task()) << "a released task is claimable at once";
  EXPECT_EQ(again.task().id(), r.task().id());
  EXPECT_EQ(again.task().attempt(), 1);
}

// ---- Heartbeats ---------------------------------------------------------------

TEST_P(HeartbeatTest, ExtendsALeaseStillHeld) {
  Create("long job");
  v1::ClaimTaskRequest request = ClaimRequest("w1");
  SetDuration(absl::Seconds(30), request.mutable_lease_duration());
  v1::ClaimTaskResponse r = MustClaim(request);
  ASSERT_TRUE(r.has_task());
  const std::string id = r.task().id();

  v1::HeartbeatResponse beat = Beat("w1", {{id, r.lease().token()}});
  ASSERT_EQ(beat.leases_size(), 1);
  const v1::LeaseStatus& status = beat.leases(0);
  EXPECT_EQ(status.state(), v1::LeaseStatus::EXTENDED) << status.ShortDebugString();
  EXPECT_EQ(status.task_id(), id);
  EXPECT_EQ(status.lease_token(), r.lease().token());
  ASSERT_TRUE(status.has_expires_at());
  EXPECT_GT(FromProto(status.expires_at()), FromProto(r.lease().expires_at()));
  EXPECT_LE(FromProto(status.expires_at()), absl::Now() + absl::Seconds(30));
  // The task shows the new expiry.
  EXPECT_LE(absl::AbsDuration(FromProto(Get(id).lease_expires_at()) -
                              FromProto(status.expires_at())),
            absl::Milliseconds(1));

  grpc::Status s = Complete(id, r.lease().token());
  EXPECT_TRUE(s.ok()) << Describe(s);
}

TEST_P(HeartbeatTest, AnotherWorkersLeaseIsNotHeldAndUnknownTokensAreUnknown) {
  Create("work");
  v1::ClaimTaskResponse r = MustClaim("w1");
  ASSERT_TRUE(r.has_task());
  const std::string id = r.task().id();

  v1::HeartbeatResponse beat =
      Beat("w2", {{id, r.lease().token()}, {id, "00000000000000000000000000000000"}});
  ASSERT_EQ(beat.leases_size(), 2);
  EXPECT_EQ(beat.leases(0).state(), v1::LeaseStatus::LOST);
  EXPECT_EQ(beat.leases(0).reason(), "not_held");
  EXPECT_FALSE(beat.leases(0).has_expires_at());
  EXPECT_EQ(beat.leases(1).state(), v1::LeaseStatus::LOST);
  EXPECT_EQ(beat.leases(1).reason(), "unknown");

  // The real holder's lease was not touched by that and is still good.
  EXPECT_LE(absl::AbsDuration(FromProto(Get(id).lease_expires_at()) -
                              FromProto(r.lease().expires_at())),
            absl::Milliseconds(1));
  grpc::Status s = Complete(id, r.lease().token());
  EXPECT_TRUE(s.ok()) << Describe(s);
}

TEST_P(HeartbeatTest, InvalidHeartbeatsNameTheField) {
  v1::HeartbeatRequest r;
  v1::HeartbeatResponse response;
  ExpectInvalid(Call(heartbeat_.get(), &HeartbeatStub::Heartbeat, r, &response),
                "worker_id");
  r.set_worker_id("w1");
  v1::HeldLease* held = r.add_leases();
  held->set_task_id("01sometask");
  ExpectInvalid(Call(heartbeat_.get(), &HeartbeatStub::Heartbeat, r, &response),
                "leases[0].lease_token");
}

TEST_P(HeartbeatTest, OperatorMoveOutOfRunningCancelsTheLease) {
  Create("stuck");
  v1::ClaimTaskResponse r = MustClaim("w1");
  ASSERT_TRUE(r.has_task());
  const std::string id = r.task().id();

  v1::Task moved;
  grpc::Status s = Move(id, v1::BLOCKED, &moved);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(moved.status(), v1::BLOCKED);
  EXPECT_TRUE(moved.worker_id().empty());

  v1::HeartbeatResponse beat = Beat("w1", {{id, r.lease().token()}});
  ASSERT_EQ(beat.leases_size(), 1);
  EXPECT_EQ(beat.leases(0).state(), v1::LeaseStatus::LOST);
  EXPECT_EQ(beat.leases(0).reason(), "cancelled");

  ExpectLeaseLost(Complete(id, r.lease().token()), "cancelled");
  EXPECT_EQ(Get(id).status(), v1::BLOCKED);
}

INSTANTIATE_TEST_SUITE_P(Backends, ClaimTaskTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, ClaimWaitTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, LeaseTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, HeartbeatTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, WorkerProtocolTest, testing::AllBackends(),
                         testing::BackendName);

}  // namespace
}  // namespace kanban::service
