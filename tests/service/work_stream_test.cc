// WorkerService.Work end to end on a real server at 127.0.0.1:0, on each
// backend, through the generated stubs: the attach and its refusals, pushed
// assignments under the window, batched outcomes answered after commit
// (each alone: a stale token is LOST without touching the others), stream
// heartbeats, a silent stream ended while its leases run on, stream and
// unary calls settling each other's leases, several streams never holding
// one task, and the go-away at shutdown.
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/convert.h"
#include "service/server.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

using ::grpc::StatusCode;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Only keeps a broken server from hanging the binary.
constexpr auto kCallTimeout = std::chrono::seconds(60);
// "Promptly": far below every wait that could otherwise have ended things.
constexpr absl::Duration kPrompt = absl::Seconds(10);

std::string Describe(const grpc::Status& s) {
  return absl::StrCat("code ", static_cast<int>(s.error_code()), ": ", s.error_message());
}

v1::WorkRequest Attach(const std::string& worker, int window,
                       absl::Duration lease = absl::Seconds(30)) {
  v1::WorkRequest r;
  r.mutable_attach()->mutable_claim()->set_worker_id(worker);
  DurationToProto(lease, r.mutable_attach()->mutable_claim()->mutable_lease_duration());
  r.mutable_attach()->set_max_outstanding(window);
  return r;
}

v1::WorkOutcome Complete(uint64_t op_id, const v1::Lease& lease,
                         const std::string& result = "ok") {
  v1::WorkOutcome o;
  o.set_op_id(op_id);
  o.set_task_id(lease.task_id());
  o.set_lease_token(lease.token());
  o.set_complete(result);
  return o;
}

// One Work stream; a thread of its own reads every response into a list the
// test can wait on.
class WorkStream {
 public:
  explicit WorkStream(v1::WorkerService::Stub* stub) {
    ctx_.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    stream_ = stub->Work(&ctx_);
    reader_ = std::thread([this] {
      v1::WorkResponse response;
      while (stream_->Read(&response)) {
        absl::MutexLock lock(&mu_);
        responses_.push_back(response);
      }
      absl::MutexLock lock(&mu_);
      ended_ = true;
    });
  }
  ~WorkStream() {
    ctx_.TryCancel();
    if (reader_.joinable()) reader_.join();
    if (!finished_) stream_->Finish();
  }

  bool Send(const v1::WorkRequest& request) { return stream_->Write(request); }
  bool Send(std::vector<v1::WorkOutcome> outcomes) {
    v1::WorkRequest r;
    for (v1::WorkOutcome& o : outcomes) *r.add_outcomes() = std::move(o);
    return Send(r);
  }

  // Waits until `done` holds for what was received, or the stream ended.
  bool Await(const std::function<bool(const std::vector<v1::WorkResponse>&)>& done,
             absl::Duration timeout = kPrompt) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return done(responses_) || ended_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return done(responses_);
  }
  bool AwaitAssignments(size_t n, absl::Duration timeout = kPrompt) {
    return Await([n](const auto& r) { return CountAssignments(r) >= n; }, timeout);
  }
  bool AwaitResults(size_t n) {
    return Await([n](const auto& r) { return CountResults(r) >= n; });
  }
  bool AwaitLeaseStatuses(size_t n) {
    return Await([n](const auto& r) { return CountLeaseStatuses(r) >= n; });
  }

  std::vector<v1::WorkResponse> responses() {
    absl::MutexLock lock(&mu_);
    return responses_;
  }
  std::vector<v1::ClaimTaskResponse> assignments() {
    std::vector<v1::ClaimTaskResponse> out;
    for (const v1::WorkResponse& r : responses()) {
      out.insert(out.end(), r.assignments().begin(), r.assignments().end());
    }
    return out;
  }
  std::map<uint64_t, v1::WorkResult> results() {
    std::map<uint64_t, v1::WorkResult> out;
    for (const v1::WorkResponse& r : responses()) {
      for (const v1::WorkResult& result : r.results()) out[result.op_id()] = result;
    }
    return out;
  }

  // Closes the worker's side and returns how the stream ended.
  grpc::Status Close() {
    stream_->WritesDone();
    return End();
  }
  // Cuts the stream from the worker's side, as a broken connection does.
  grpc::Status Cut() {
    ctx_.TryCancel();
    return End();
  }
  // The stream id of the attach answer ("" before it came).
  std::string id() {
    absl::MutexLock lock(&mu_);
    return responses_.empty() ? "" : responses_[0].attached().stream_id();
  }
  // Waits for the server to end the stream.
  grpc::Status End() {
    reader_.join();
    finished_ = true;
    return stream_->Finish();
  }

  static size_t CountAssignments(const std::vector<v1::WorkResponse>& responses) {
    size_t n = 0;
    for (const v1::WorkResponse& r : responses) n += r.assignments_size();
    return n;
  }
  static size_t CountLeaseStatuses(const std::vector<v1::WorkResponse>& responses) {
    size_t n = 0;
    for (const v1::WorkResponse& r : responses) n += r.leases_size();
    return n;
  }
  static size_t CountResults(const std::vector<v1::WorkResponse>& responses) {
    size_t n = 0;
    for (const v1::WorkResponse& r : responses) n += r.results_size();
    return n;
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WorkRequest, v1::WorkResponse>> stream_;
  std::thread reader_;
  bool finished_ = false;
  absl::Mutex mu_;
  std::vector<v1::WorkResponse> responses_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

v1::WorkRequest Resume(const std::string& worker, int window,
                       const std::string& stream_id,
                       absl::Duration lease = absl::Seconds(30)) {
  v1::WorkRequest r = Attach(worker, window, lease);
  r.mutable_attach()->set_resume_stream_id(stream_id);
  return r;
}

v1::WorkRequest Received(const v1::Lease& lease) {
  v1::WorkRequest r;
  r.add_received(lease.token());
  return r;
}

// The LOST lease statuses the stream was sent.
std::vector<v1::LeaseStatus> Lost(const std::vector<v1::WorkResponse>& responses) {
  std::vector<v1::LeaseStatus> lost;
  for (const v1::WorkResponse& r : responses) {
    for (const v1::LeaseStatus& l : r.leases()) {
      if (l.state() == v1::LeaseStatus::LOST) lost.push_back(l);
    }
  }
  return lost;
}

class WorkStreamTest : public testing::BackendTest {
 protected:
  void SetUp() override {
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.store.path = Database(dir_.File("kanban.db"));
    if (options.store.path.empty()) return;
    options.store.sweep_interval = absl::Milliseconds(50);
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::KanbanService::NewStub(channel_);
    worker_ = v1::WorkerService::NewStub(channel_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  v1::Task Create(const std::string& title) {
    v1::CreateTaskRequest r;
    r.set_title(title);
    v1::Task task;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    grpc::Status s = stub_->CreateTask(&ctx, r, &task);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return task;
  }
  v1::Task Get(const std::string& id) {
    v1::GetTaskRequest r;
    r.set_task_id(id);
    v1::Task task;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    grpc::Status s = stub_->GetTask(&ctx, r, &task);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return task;
  }
  std::unique_ptr<WorkStream> Open() {
    return std::make_unique<WorkStream>(worker_.get());
  }

  kanban::testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KanbanService::Stub> stub_;
  std::unique_ptr<v1::WorkerService::Stub> worker_;
};

TEST_P(WorkStreamTest, AttachIsAnsweredWithAStreamIdAndTheHeartbeatInterval) {
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w1", 2, absl::Seconds(3))));
  ASSERT_TRUE(stream->Await([](const auto& r) { return !r.empty(); }));
  const v1::WorkResponse first = stream->responses().front();
  ASSERT_TRUE(first.has_attached());
  EXPECT_FALSE(first.attached().stream_id().empty());
  EXPECT_EQ(DurationFromProto(first.attached().heartbeat_interval(), "interval").value(),
            absl::Seconds(1));
  EXPECT_EQ(first.assignments_size(), 0);  // Nothing to claim.
  EXPECT_TRUE(stream->Close().ok());
}

TEST_P(WorkStreamTest, BadAttachIsRefusedNamingTheField) {
  struct Case {
    std::string name;
    v1::WorkRequest request;
    std::string field;
  };
  std::vector<Case> cases;
  {
    v1::WorkRequest r;
    r.add_heartbeat()->set_task_id("t");
    cases.push_back({"no attach", r, "attach:"});
  }
  cases.push_back({"no worker", Attach("", 1), "attach.claim.worker_id:"});
  cases.push_back({"window 0", Attach("w", 0), "attach.max_outstanding:"});
  cases.push_back({"window 1001", Attach("w", 1001), "attach.max_outstanding:"});
  cases.push_back({"short lease", Attach("w", 1, absl::Milliseconds(10)),
                   "attach.claim.lease_duration:"});
  {
    v1::WorkRequest r = Attach("w", 1);
    r.mutable_attach()->mutable_claim()->set_board("bad board!");
    cases.push_back({"bad board", r, "attach.claim.board:"});
  }
  for (const Case& c : cases) {
    auto stream = Open();
    stream->Send(c.request);
    const grpc::Status status = stream->End();
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT)
        << c.name << ": " << Describe(status);
    EXPECT_THAT(status.error_message(), StartsWith(c.field)) << c.name;
  }
  // A second attach on a working stream.
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w", 1)));
  stream->Send(Attach("w", 1));
  const grpc::Status status = stream->End();
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(status);
  EXPECT_THAT(status.error_message(), StartsWith("attach:"));
}

TEST_P(WorkStreamTest, BadOutcomeEndsTheStreamNamingTheFieldAndChangesNothing) {
  Create("a");
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w", 1)));
  ASSERT_TRUE(stream->AwaitAssignments(1));
  const v1::Lease lease = stream->assignments()[0].lease();
  v1::WorkOutcome good = Complete(1, lease);
  v1::WorkOutcome bad = Complete(2, lease);
  bad.clear_outcome();
  stream->Send({good, bad});
  const grpc::Status status = stream->End();
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(status);
  EXPECT_THAT(status.error_message(), StartsWith("outcomes[1]:"));
  EXPECT_EQ(Get(lease.task_id()).status(),
            v1::RUNNING);  // The good one was not run either.
}

TEST_P(WorkStreamTest, AssignmentsNeverExceedTheWindowAndSettlingRefillsIt) {
  for (int i = 0; i < 10; ++i) Create(absl::StrCat("t", i));
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w", 3)));
  ASSERT_TRUE(stream->AwaitAssignments(3));
  absl::SleepFor(absl::Milliseconds(300));  // Room for a wrong fourth.
  std::vector<v1::ClaimTaskResponse> held = stream->assignments();
  ASSERT_EQ(held.size(), 3u);
  for (const auto& a : held) {
    EXPECT_EQ(a.task().status(), v1::RUNNING);
    EXPECT_EQ(a.lease().worker_id(), "w");
  }

  // Settling one brings exactly one more, after the result.
  ASSERT_TRUE(stream->Send({Complete(7, held[0].lease(), "done!")}));
  ASSERT_TRUE(stream->AwaitResults(1));
  ASSERT_TRUE(stream->AwaitAssignments(4));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(stream->assignments().size(), 4u);
  const v1::WorkResult result = stream->results().at(7);
  EXPECT_EQ(result.state(), v1::WorkResult::DONE);
  EXPECT_EQ(result.task_id(), held[0].task().id());
  EXPECT_EQ(result.task().status(), v1::DONE);
  // Answered after the commit: a read sees it.
  const v1::Task task = Get(held[0].task().id());
  EXPECT_EQ(task.status(), v1::DONE);
  EXPECT_EQ(task.result(), "done!");
  EXPECT_TRUE(Lost(stream->responses()).empty()) << "its own outcome pushed as a loss";
  EXPECT_TRUE(stream->Close().ok());
}

TEST_P(WorkStreamTest, AStaleTokenInABatchIsLostAloneAndTheOthersAreDone) {
  for (int i = 0; i < 3; ++i) Create(absl::StrCat("t", i));
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w", 3)));
  ASSERT_TRUE(stream->AwaitAssignments(3));
  std::vector<v1::ClaimTaskResponse> held = stream->assignments();
  v1::WorkOutcome fail;
  fail.set_op_id(3);
  fail.set_task_id(held[2].task().id());
  fail.set_lease_token(held[2].lease().token());
  fail.mutable_fail()->set_error("boom");
  fail.mutable_fail()->set_retry(false);
  v1::WorkOutcome wrong_task = Complete(4, held[1].lease());
  wrong_task.set_task_id(held[0].task().id());  // Another task's token.
  ASSERT_TRUE(stream->Send(
      {Complete(1, held[0].lease()), Complete(2, held[0].lease()), fail, wrong_task}));
  ASSERT_TRUE(stream->AwaitResults(4));
  std::map<uint64_t, v1::WorkResult> results = stream->results();
  EXPECT_EQ(results[1].state(), v1::WorkResult::DONE);
  // The same outcome twice: the second finds its first try committed.
  EXPECT_EQ(results[2].state(), v1::WorkResult::DONE) << results[2].ShortDebugString();
  EXPECT_EQ(results[2].task().status(), v1::DONE);
  EXPECT_EQ(results[3].state(), v1::WorkResult::DONE);
  EXPECT_EQ(results[3].task().status(), v1::BLOCKED);
  EXPECT_EQ(results[4].state(), v1::WorkResult::LOST) << results[4].ShortDebugString();
  EXPECT_EQ(Get(held[1].task().id()).status(), v1::RUNNING);  // Untouched.
  EXPECT_TRUE(stream->Close().ok());
}

TEST_P(WorkStreamTest, UnaryCallsSettleStreamLeasesAndTheStreamSettlesUnaryOnes) {
  Create("a");
  Create("b");
  v1::ClaimTaskResponse unary;
  {
    v1::ClaimTaskRequest r;
    r.set_worker_id("w");
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ClaimTask(&ctx, r, &unary).ok());
    ASSERT_TRUE(unary.has_task());
  }
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w", 1)));
  ASSERT_TRUE(stream->AwaitAssignments(1));
  const v1::Lease streamed = stream->assignments()[0].lease();
  ASSERT_NE(streamed.task_id(), unary.task().id());
  {
    v1::CompleteTaskRequest r;
    r.set_task_id(streamed.task_id());
    r.set_lease_token(streamed.token());
    v1::Task task;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->CompleteTask(&ctx, r, &task);
    ASSERT_TRUE(s.ok()) << Describe(s);
    EXPECT_EQ(task.status(), v1::DONE);
  }
  ASSERT_TRUE(stream->Send({Complete(1, unary.lease())}));
  ASSERT_TRUE(stream->AwaitResults(1));
  EXPECT_EQ(stream->results()[1].state(), v1::WorkResult::DONE);
  EXPECT_EQ(Get(unary.task().id()).status(), v1::DONE);
  EXPECT_TRUE(stream->Close().ok());
}

TEST_P(WorkStreamTest, ResumingWithinTheGraceSendsTheUnconfirmedAssignmentsAgain) {
  for (int i = 0; i < 3; ++i) Create(absl::StrCat("t", i));
  auto first = Open();
  ASSERT_TRUE(first->Send(Attach("w", 3)));
  ASSERT_TRUE(first->AwaitAssignments(3));
  const std::vector<v1::ClaimTaskResponse> sent = first->assignments();
  // One confirmed by `received`, one by a heartbeat; the third never.
  ASSERT_TRUE(first->Send(Received(sent[0].lease())));
  v1::WorkRequest heartbeat;
  heartbeat.add_heartbeat()->set_task_id(sent[1].task().id());
  heartbeat.mutable_heartbeat(0)->set_lease_token(sent[1].lease().token());
  ASSERT_TRUE(first->Send(heartbeat));
  ASSERT_TRUE(first->AwaitLeaseStatuses(1));
  const std::string id = first->id();
  first->Cut();

  // Held from before: the two confirmed leases, listed with the attach.
  v1::WorkRequest attach = Resume("w", 3, id);
  for (int i = 0; i < 2; ++i) {
    v1::HeldLease* held = attach.add_heartbeat();
    held->set_task_id(sent[i].task().id());
    held->set_lease_token(sent[i].lease().token());
  }
  auto second = Open();
  ASSERT_TRUE(second->Send(attach));
  ASSERT_TRUE(second->AwaitAssignments(1));
  absl::SleepFor(absl::Milliseconds(300));  // Nothing more comes: the window is full.
  const std::vector<v1::WorkResponse> responses = second->responses();
  EXPECT_TRUE(responses[0].attached().resumed());
  ASSERT_EQ(second->assignments().size(), 1u);
  const v1::ClaimTaskResponse again = second->assignments()[0];
  EXPECT_EQ(again.task().id(), sent[2].task().id());
  EXPECT_EQ(again.lease().token(), sent[2].lease().token());  // The same lease.
  EXPECT_EQ(again.lease().attempt(), sent[2].lease().attempt());
  for (int i = 0; i < 3; ++i) {
    const v1::Lease& lease = i < 2 ? sent[i].lease() : again.lease();
    ASSERT_TRUE(second->Send({Complete(i + 1, lease)}));
  }
  ASSERT_TRUE(second->AwaitResults(3));
  for (const auto& [op, result] : second->results()) {
    EXPECT_EQ(result.state(), v1::WorkResult::DONE) << result.ShortDebugString();
  }
  EXPECT_TRUE(second->Close().ok());
}

TEST_P(WorkStreamTest,
       PastTheGraceUnconfirmedAssignmentsAreReleasedAndConfirmedOnesRunOn) {
  Create("confirmed");
  Create("unconfirmed");
  auto first = Open();
  // A 3 s lease: heartbeat interval and resume grace 1 s.
  ASSERT_TRUE(first->Send(Attach("w", 2, absl::Seconds(3))));
  ASSERT_TRUE(first->AwaitAssignments(2));
  const std::vector<v1::ClaimTaskResponse> sent = first->assignments();
  EXPECT_EQ(first->responses()[0].attached().resume_grace().seconds(), 1);
  ASSERT_TRUE(first->Send(Received(sent[0].lease())));
  absl::SleepFor(absl::Milliseconds(200));  // Read before the cut.
  const std::string id = first->id();
  first->Cut();

  const absl::Time deadline = absl::Now() + kPrompt;
  while (Get(sent[1].task().id()).status() != v1::READY && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  const v1::Task released = Get(sent[1].task().id());
  EXPECT_EQ(released.status(), v1::READY);
  EXPECT_EQ(released.attempt(), sent[1].lease().attempt() - 1);  // Not counted.
  EXPECT_EQ(Get(sent[0].task().id()).status(), v1::RUNNING);

  auto late = Open();
  ASSERT_TRUE(late->Send(Resume("w", 1, id, absl::Seconds(3))));
  ASSERT_TRUE(late->AwaitAssignments(1));
  EXPECT_FALSE(late->responses()[0].attached().resumed());
  // Claimed afresh: a new lease on the released task.
  EXPECT_EQ(late->assignments()[0].task().id(), sent[1].task().id());
  EXPECT_NE(late->assignments()[0].lease().token(), sent[1].lease().token());
  // The confirmed lease is still the worker's to settle.
  ASSERT_TRUE(late->Send({Complete(1, sent[0].lease())}));
  ASSERT_TRUE(late->AwaitResults(1));
  EXPECT_EQ(late->results()[1].state(), v1::WorkResult::DONE);
  EXPECT_TRUE(late->Close().ok());
}

TEST_P(WorkStreamTest,
       ResumingAStreamTheServerStillHoldsOpenEndsItAndTakesItsAssignments) {
  Create("a");
  auto first = Open();
  ASSERT_TRUE(first->Send(Attach("w", 1)));
  ASSERT_TRUE(first->AwaitAssignments(1));
  const v1::ClaimTaskResponse sent = first->assignments()[0];

  // Another worker cannot take them.
  auto thief = Open();
  ASSERT_TRUE(thief->Send(Resume("other", 1, first->id())));
  ASSERT_TRUE(thief->Await([](const auto& r) { return !r.empty(); }));
  EXPECT_FALSE(thief->responses()[0].attached().resumed());
  EXPECT_TRUE(thief->Close().ok());

  auto second = Open();
  ASSERT_TRUE(second->Send(Resume("w", 1, first->id())));
  ASSERT_TRUE(second->AwaitAssignments(1));
  EXPECT_TRUE(second->responses()[0].attached().resumed());
  EXPECT_EQ(second->assignments()[0].lease().token(), sent.lease().token());
  const grpc::Status ended = first->End();
  EXPECT_EQ(ended.error_code(), StatusCode::ABORTED) << Describe(ended);
  ASSERT_TRUE(second->Send({Complete(1, sent.lease())}));
  ASSERT_TRUE(second->AwaitResults(1));
  EXPECT_EQ(second->results()[1].state(), v1::WorkResult::DONE);
  EXPECT_TRUE(second->Close().ok());
}

TEST_P(WorkStreamTest, AnOutcomeSentAgainAfterItsFirstTryCommittedIsDone) {
  Create("done");
  Create("failed");
  Create("released");
  auto first = Open();
  ASSERT_TRUE(first->Send(Attach("w", 3)));
  ASSERT_TRUE(first->AwaitAssignments(3));
  const std::vector<v1::ClaimTaskResponse> sent = first->assignments();
  v1::WorkOutcome fail;
  fail.set_op_id(2);
  fail.set_task_id(sent[1].task().id());
  fail.set_lease_token(sent[1].lease().token());
  fail.mutable_fail()->set_error("boom");
  v1::WorkOutcome release;
  release.set_op_id(3);
  release.set_task_id(sent[2].task().id());
  release.set_lease_token(sent[2].lease().token());
  release.set_release(true);
  ASSERT_TRUE(first->Send({Complete(1, sent[0].lease()), fail, release}));
  ASSERT_TRUE(first->AwaitResults(3));
  first->Cut();  // As if the results had been lost with the stream.

  auto second = Open();
  ASSERT_TRUE(second->Send(Resume("w", 1, first->id())));
  v1::WorkOutcome complete_released = Complete(4, sent[2].lease());
  ASSERT_TRUE(
      second->Send({Complete(1, sent[0].lease()), fail, release, complete_released}));
  ASSERT_TRUE(second->AwaitResults(4));
  std::map<uint64_t, v1::WorkResult> results = second->results();
  EXPECT_EQ(results[1].state(), v1::WorkResult::DONE) << results[1].ShortDebugString();
  EXPECT_EQ(results[1].task().status(), v1::DONE);
  EXPECT_EQ(results[1].task().result(), "ok");
  EXPECT_EQ(results[2].state(), v1::WorkResult::DONE) << results[2].ShortDebugString();
  EXPECT_EQ(results[3].state(), v1::WorkResult::DONE) << results[3].ShortDebugString();
  // Another outcome than the one that ended the lease is still LOST.
  EXPECT_EQ(results[4].state(), v1::WorkResult::LOST);
  EXPECT_EQ(results[4].reason(), "released");
  EXPECT_TRUE(second->Close().ok());
}

TEST_P(WorkStreamTest, LeasesListedWithTheAttachCountInTheWindow) {
  Create("a");
  Create("b");
  v1::ClaimTaskResponse unary;
  {
    v1::ClaimTaskRequest r;
    r.set_worker_id("w");
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ClaimTask(&ctx, r, &unary).ok());
  }
  v1::WorkRequest attach = Attach("w", 1);
  v1::HeldLease* held = attach.add_heartbeat();
  held->set_task_id(unary.task().id());
  held->set_lease_token(unary.lease().token());
  auto stream = Open();
  ASSERT_TRUE(stream->Send(attach));
  // Extended as by a heartbeat, and nothing pushed: the window is full.
  ASSERT_TRUE(stream->AwaitLeaseStatuses(1));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(stream->assignments().size(), 0u);
  ASSERT_TRUE(stream->Send({Complete(1, unary.lease())}));
  ASSERT_TRUE(stream->AwaitAssignments(1));  // Room again.
  EXPECT_NE(stream->assignments()[0].task().id(), unary.task().id());
  EXPECT_TRUE(stream->Close().ok());
}

TEST_P(WorkStreamTest, AWaitingStreamIsPushedATaskCreatedLater) {
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w", 2)));
  ASSERT_TRUE(stream->Await([](const auto& r) { return !r.empty(); }));
  absl::SleepFor(absl::Milliseconds(200));  // Parked by now, most likely.
  const v1::Task task = Create("late");
  ASSERT_TRUE(stream->AwaitAssignments(1));
  EXPECT_EQ(stream->assignments()[0].task().id(), task.id());
  EXPECT_TRUE(stream->Close().ok());
}

// Every lease status the stream was sent, in order.
std::vector<v1::LeaseStatus> Statuses(const std::vector<v1::WorkResponse>& responses) {
  std::vector<v1::LeaseStatus> statuses;
  for (const v1::WorkResponse& r : responses) {
    statuses.insert(statuses.end(), r.leases().begin(), r.leases().end());
  }
  return statuses;
}

TEST_P(WorkStreamTest, HeartbeatsOnTheStreamExtendLeasesAndReportLostOnes) {
  Create("a");
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w", 1, absl::Seconds(2))));
  ASSERT_TRUE(stream->AwaitAssignments(1));
  const v1::Lease lease = stream->assignments()[0].lease();
  const absl::Time claimed_until = TimeFromProto(lease.expires_at(), "claimed").value();
  v1::WorkRequest beat;
  v1::HeldLease* held = beat.add_heartbeat();
  held->set_task_id(lease.task_id());
  held->set_lease_token(lease.token());
  v1::HeldLease* stale = beat.add_heartbeat();
  stale->set_task_id(lease.task_id());
  stale->set_lease_token("not-a-token");

  // Early, with more than half the lease left: answered without a write.
  ASSERT_TRUE(stream->Send(beat));
  ASSERT_TRUE(stream->AwaitLeaseStatuses(2));
  std::vector<v1::LeaseStatus> statuses = Statuses(stream->responses());
  std::map<std::string, v1::LeaseStatus> by_token;
  for (const v1::LeaseStatus& status : statuses) by_token[status.lease_token()] = status;
  EXPECT_EQ(by_token[lease.token()].state(), v1::LeaseStatus::EXTENDED);
  EXPECT_EQ(TimeFromProto(by_token[lease.token()].expires_at(), "early").value(),
            claimed_until);
  EXPECT_EQ(TimeFromProto(Get(lease.task_id()).lease_expires_at(), "stored").value(),
            claimed_until);
  EXPECT_EQ(by_token["not-a-token"].state(), v1::LeaseStatus::LOST);

  // Past half of it: extended in the database.
  absl::SleepFor(claimed_until - absl::Now() - absl::Milliseconds(700));
  ASSERT_TRUE(stream->Send(beat));
  ASSERT_TRUE(stream->AwaitLeaseStatuses(4));
  statuses = Statuses(stream->responses());
  for (size_t i = 2; i < statuses.size(); ++i)
    by_token[statuses[i].lease_token()] = statuses[i];
  EXPECT_EQ(by_token[lease.token()].state(), v1::LeaseStatus::EXTENDED);
  const absl::Time extended =
      TimeFromProto(by_token[lease.token()].expires_at(), "late").value();
  EXPECT_GT(extended, claimed_until);
  EXPECT_EQ(TimeFromProto(Get(lease.task_id()).lease_expires_at(), "stored").value(),
            extended);
  EXPECT_EQ(by_token["not-a-token"].state(), v1::LeaseStatus::LOST);
  EXPECT_TRUE(stream->Close().ok());
}

TEST_P(WorkStreamTest, ASilentStreamIsEndedAndItsLeasesRunOn) {
  Create("a");
  auto stream = Open();
  // Heartbeat interval 2 s: ended after about 4 s of silence, lease to 6 s.
  ASSERT_TRUE(stream->Send(Attach("w", 1, absl::Seconds(6))));
  ASSERT_TRUE(stream->AwaitAssignments(1));
  const v1::Lease lease = stream->assignments()[0].lease();
  const absl::Time start = absl::Now();
  const grpc::Status status = stream->End();
  EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED) << Describe(status);
  EXPECT_THAT(status.error_message(), HasSubstr("no heartbeat"));
  EXPECT_GE(absl::Now() - start, absl::Seconds(3));
  // The lease was not ended with the stream: the worker may still finish.
  v1::CompleteTaskRequest r;
  r.set_task_id(lease.task_id());
  r.set_lease_token(lease.token());
  v1::Task task;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->CompleteTask(&ctx, r, &task);
  EXPECT_TRUE(s.ok()) << Describe(s);
}

TEST_P(WorkStreamTest, SeveralStreamsCompleteEveryTaskOnceAndNeverShareOne) {
  constexpr int kTasks = 60;
  constexpr int kStreams = 3;
  for (int i = 0; i < kTasks; ++i) Create(absl::StrCat("t", i));
  std::vector<std::unique_ptr<WorkStream>> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(Open());
    ASSERT_TRUE(streams.back()->Send(Attach(absl::StrCat("w", i), 4)));
  }
  // Each stream completes what it is given until every task is done.
  std::vector<std::thread> workers;
  for (int i = 0; i < kStreams; ++i) {
    workers.emplace_back([&, i] {
      size_t sent = 0;
      uint64_t op = 0;
      const absl::Time give_up = absl::Now() + absl::Seconds(60);
      while (absl::Now() < give_up) {
        streams[i]->AwaitAssignments(sent + 1, absl::Milliseconds(200));
        std::vector<v1::ClaimTaskResponse> got = streams[i]->assignments();
        std::vector<v1::WorkOutcome> batch;
        for (; sent < got.size(); ++sent)
          batch.push_back(Complete(++op, got[sent].lease()));
        if (!batch.empty()) streams[i]->Send(std::move(batch));
        size_t results = 0;
        for (const auto& s : streams) results += s->results().size();
        if (results >= kTasks) break;
      }
    });
  }
  for (std::thread& t : workers) t.join();
  std::set<std::string> seen;
  size_t assigned = 0;
  for (const auto& s : streams) {
    for (const auto& a : s->assignments()) {
      EXPECT_TRUE(seen.insert(a.task().id()).second) << a.task().id() << " given twice";
      ++assigned;
    }
    for (const auto& [op, result] : s->results()) {
      EXPECT_EQ(result.state(), v1::WorkResult::DONE) << result.ShortDebugString();
    }
  }
  EXPECT_EQ(assigned, static_cast<size_t>(kTasks));
  for (const auto& s : streams) EXPECT_TRUE(s->Close().ok());
}

TEST_P(WorkStreamTest, AnOperatorsMoveIsPushedAsALossAndTheWindowRefills) {
  const v1::Task first = Create("first");
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w", 1)));
  ASSERT_TRUE(stream->AwaitAssignments(1));
  const v1::Lease lease = stream->assignments()[0].lease();
  ASSERT_EQ(lease.task_id(), first.id());
  const v1::Task second = Create("second");
  {
    v1::MoveTaskRequest r;
    r.set_task_id(first.id());
    r.set_to_status(v1::BLOCKED);
    r.set_reason("needs a person");
    v1::Task moved;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->MoveTask(&ctx, r, &moved);
    ASSERT_TRUE(s.ok()) << Describe(s);
  }
  ASSERT_TRUE(stream->Await([](const auto& r) { return !Lost(r).empty(); }));
  const std::vector<v1::LeaseStatus> lost = Lost(stream->responses());
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].task_id(), first.id());
  EXPECT_EQ(lost[0].lease_token(), lease.token());
  EXPECT_EQ(lost[0].reason(), "cancelled");
  // The window has room again.
  ASSERT_TRUE(stream->AwaitAssignments(2));
  EXPECT_EQ(stream->assignments()[1].task().id(), second.id());
  EXPECT_TRUE(stream->Close().ok());
}

TEST_P(WorkStreamTest, AUnaryCompletionAndASweepArePushedAsLosses) {
  Create("a");
  Create("b");
  auto stream = Open();
  // Lease 1 s; the stream stays alive on empty messages that extend nothing.
  ASSERT_TRUE(stream->Send(Attach("w", 2, absl::Seconds(1))));
  ASSERT_TRUE(stream->AwaitAssignments(2));
  const std::vector<v1::ClaimTaskResponse> held = stream->assignments();
  {
    v1::CompleteTaskRequest r;
    r.set_task_id(held[0].task().id());
    r.set_lease_token(held[0].lease().token());
    v1::Task task;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->CompleteTask(&ctx, r, &task);
    ASSERT_TRUE(s.ok()) << Describe(s);
  }
  const absl::Time give_up = absl::Now() + kPrompt;
  while (Lost(stream->responses()).size() < 2 && absl::Now() < give_up) {
    ASSERT_TRUE(stream->Send(v1::WorkRequest()));
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::map<std::string, std::string> reasons;
  for (const v1::LeaseStatus& l : Lost(stream->responses()))
    reasons[l.task_id()] = l.reason();
  EXPECT_EQ(reasons[held[0].task().id()], "completed");
  EXPECT_EQ(reasons[held[1].task().id()], "reclaimed");
  EXPECT_TRUE(stream->Close().ok());
}

TEST_P(WorkStreamTest, ClosingAnswersWhatIsInFlightThenEndsOk) {
  Create("a");
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w", 1)));
  ASSERT_TRUE(stream->AwaitAssignments(1));
  const v1::Lease lease = stream->assignments()[0].lease();
  ASSERT_TRUE(stream->Send({Complete(1, lease)}));
  EXPECT_TRUE(stream->Close().ok());
  ASSERT_EQ(stream->results().count(1), 1u);
  EXPECT_EQ(stream->results()[1].state(), v1::WorkResult::DONE);
  EXPECT_EQ(Get(lease.task_id()).status(), v1::DONE);
}

TEST_P(WorkStreamTest, AReplacementClaimedWhileClosingIsBackBeforeTheEnd) {
  // The outcome and the half-close arrive together: the replacement claim
  // queued behind the outcome is still in flight when the stream drains.
  std::vector<std::string> tasks;
  std::set<std::string> sent;  // Unsettled assignments that went out.
  // Without the wait, about one round in 75 ends before the give-back.
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 2; ++i) tasks.push_back(Create(absl::StrCat(round, "/", i)).id());
    auto stream = Open();
    ASSERT_TRUE(stream->Send(Attach("w", 1)));
    ASSERT_TRUE(stream->AwaitAssignments(1));
    const v1::Lease lease = stream->assignments()[0].lease();
    ASSERT_TRUE(stream->Send({Complete(1, lease)}));
    EXPECT_TRUE(stream->Close().ok());
    // (Had the claim come back before the close was read, its assignment
    // went out and is the worker's: then that task may run.)
    for (const auto& a : stream->assignments()) {
      if (a.task().id() != lease.task_id()) sent.insert(a.task().id());
    }
    for (const std::string& id : tasks) {
      if (sent.count(id) > 0) continue;
      EXPECT_NE(Get(id).status(), v1::RUNNING) << "round " << round << ", task " << id;
    }
  }
}

TEST_P(WorkStreamTest, ShutdownSendsAGoAwayThenUnavailable) {
  auto stream = Open();
  ASSERT_TRUE(stream->Send(Attach("w", 1)));
  ASSERT_TRUE(stream->Await([](const auto& r) { return !r.empty(); }));
  std::thread stop([this] { server_->Shutdown(absl::Seconds(5)); });
  const grpc::Status status = stream->End();
  stop.join();
  EXPECT_EQ(status.error_code(), StatusCode::UNAVAILABLE) << Describe(status);
  bool go_away = false;
  for (const auto& r : stream->responses()) go_away = go_away || r.go_away();
  EXPECT_TRUE(go_away);
}

INSTANTIATE_TEST_SUITE_P(Backends, WorkStreamTest, testing::AllBackends(),
                         testing::BackendName);

}  // namespace
}  // namespace kanban::service
