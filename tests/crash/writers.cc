#include "tests/crash/writers.h"

#include <chrono>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "kanban/v1/kanban.grpc.pb.h"

namespace kanban::crash {
namespace {

namespace v1 = kanban::v1;

// Long enough never to fire while kanband is alive on a loaded machine; a
// call cut by the kill fails at once with UNAVAILABLE anyway.
constexpr auto kCallTimeout = std::chrono::seconds(30);
// Short leases, so that claims whose answer was lost in a kill are
// reclaimed by the sweeper in a later cycle (more writes the crash can hit),
// yet long enough for the next cycle to finish leases acked in this one.
constexpr int kLeaseSeconds = 3;
// A writer stops by itself after this many calls in one cycle even if the
// kill never comes.
constexpr int kMaxCallsPerCycle = 200000;

enum class Outcome { kOk, kRejected, kDead };

// The manual moves README.md allows, by the status moved from.
std::vector<v1::Status> AllowedMoves(v1::Status from) {
  switch (from) {
    case v1::TRIAGE:
      return {v1::TODO, v1::READY, v1::ARCHIVED};
    case v1::TODO:
      return {v1::READY, v1::BLOCKED, v1::ARCHIVED};
    case v1::READY:
      return {v1::TODO, v1::BLOCKED, v1::DONE, v1::ARCHIVED};
    case v1::RUNNING:
      return {v1::BLOCKED, v1::ARCHIVED};
    case v1::BLOCKED:
      return {v1::READY, v1::TODO, v1::DONE, v1::ARCHIVED};
    case v1::REVIEW:
      return {v1::DONE, v1::READY, v1::TODO, v1::ARCHIVED};
    case v1::DONE:
      return {v1::READY, v1::ARCHIVED};
    default:
      return {};
  }
}

class Writer {
 public:
  Writer(std::shared_ptr<grpc::Channel> channel, Ledger& ledger,
         const std::atomic<bool>& killed, int index, uint64_t seed, int cycle)
      : stub_(v1::KanbanService::NewStub(channel)),
        ledger_(ledger),
        killed_(killed),
        rng_(seed * 1000003 + static_cast<uint64_t>(cycle) * 1009 + index),
        worker_id_(absl::StrCat("w", index)),
        prefix_(absl::StrCat("s", seed, "-c", cycle, "-w", index)) {}

  void Run() {
    for (int i = 0; i < kMaxCallsPerCycle && !killed_.load(); ++i) {
      const int dice = static_cast<int>(rng_() % 100);
      Outcome outcome;
      if (dice < 25) {
        outcome = Create();
      } else if (dice < 40) {
        outcome = Update();
      } else if (dice < 50) {
        outcome = Move();
      } else if (dice < 63) {
        outcome = Comment();
      } else if (dice < 68) {
        outcome = Link();
      } else if (dice < 84) {
        outcome = Claim();
      } else {
        outcome = Finish();
      }
      if (outcome == Outcome::kDead) return;
    }
  }

 private:
  std::unique_ptr<grpc::ClientContext> Context() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    return ctx;
  }

  // Sorts an answer into acknowledged, refused as the API allows, or lost
  // to the kill; anything else is a violation.
  Outcome Classify(const grpc::Status& status, const std::string& what) {
    switch (status.error_code()) {
      case grpc::StatusCode::OK:
        return Outcome::kOk;
      case grpc::StatusCode::ABORTED:
      case grpc::StatusCode::FAILED_PRECONDITION:
        ledger_.Rejected();
        return Outcome::kRejected;
      case grpc::StatusCode::UNAVAILABLE:
      case grpc::StatusCode::DEADLINE_EXCEEDED:
      case grpc::StatusCode::CANCELLED:
      case grpc::StatusCode::UNKNOWN:
      case grpc::StatusCode::INTERNAL:
        if (killed_.load()) {
          ledger_.Unacked();
          return Outcome::kDead;
        }
        ledger_.Violation(absl::StrCat(what, " failed while kanband was alive: code ",
                                       status.error_code(), ": ",
                                       status.error_message()));
        return Outcome::kDead;
      default:
        ledger_.Violation(absl::StrCat(what, " answered code ", status.error_code(), ": ",
                                       status.error_message()));
        return Outcome::kRejected;
    }
  }

  std::string Text(size_t max_len) {
    static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,-";
    std::string s(rng_() % (max_len + 1), ' ');
    for (char& c : s) c = kChars[rng_() % (sizeof(kChars) - 1)];
    return s;
  }

  void RandomLabels(google::protobuf::RepeatedPtrField<std::string>* out) {
    static const char* kLabels[] = {"gpu", "cpu", "docs", "x1", "urgent"};
    // A random subset, in a random rotation (labels must be distinct).
    const int first = static_cast<int>(rng_() % 5);
    for (int i = 0; i < 5; ++i) {
      if (rng_() % 3 == 0) *out->Add() = kLabels[(first + i) % 5];
    }
  }

  Outcome Create() {
    v1::CreateTaskRequest req;
    req.set_title(absl::StrCat(prefix_, "-", ++created_, " ", Text(40)));
    req.set_body(Text(300));
    req.set_priority(static_cast<int>(rng_() % 11) - 5);
    RandomLabels(req.mutable_labels());
    if (rng_() % 10 == 0) req.set_assignee("alice");
    if (rng_() % 10 == 0) req.set_initial_status(v1::TRIAGE);
    req.set_max_attempts(static_cast<int>(rng_() % 4));
    // Every create carries a unique key, so one whose answer was lost can be
    // retried after the restart and must then succeed.
    req.set_idempotency_key(absl::StrCat(prefix_, "-", created_));
    if (rng_() % 3 == 0) {
      const int parents = 1 + static_cast<int>(rng_() % 2);
      for (int i = 0; i < parents; ++i) {
        std::optional<v1::Task> parent = ledger_.PickTask(rng_);
        if (!parent.has_value()) break;
        bool dup = false;
        for (const auto& p : req.parent_ids()) dup |= p == parent->id();
        if (!dup) req.add_parent_ids(parent->id());
      }
    }
    v1::Task task;
    auto ctx = Context();
    Outcome o = Classify(stub_->CreateTask(ctx.get(), req, &task), "CreateTask");
    if (o == Outcome::kOk) ledger_.AckTask(task);
    if (o == Outcome::kDead) ledger_.UnackedCreate(req);
    return o;
  }

  Outcome Update() {
    std::optional<v1::Task> task = ledger_.PickTask(rng_);
    if (!task.has_value()) return Create();
    v1::UpdateTaskRequest req;
    req.set_task_id(task->id());
    if (rng_() % 4 != 0) req.set_expected_version(task->version());
    if (rng_() % 2 == 0) req.set_title(absl::StrCat(task->id(), " ", Text(40)));
    if (rng_() % 2 == 0) req.set_body(Text(300));
    if (rng_() % 2 == 0) req.set_priority(static_cast<int>(rng_() % 11) - 5);
    if (rng_() % 5 == 0) req.set_assignee(rng_() % 2 ? "" : "bob");
    if (rng_() % 3 == 0) RandomLabels(req.mutable_labels()->mutable_values());
    v1::Task out;
    auto ctx = Context();
    Outcome o = Classify(stub_->UpdateTask(ctx.get(), req, &out), "UpdateTask");
    if (o == Outcome::kOk) ledger_.AckTask(out);
    return o;
  }

  Outcome Move() {
    std::optional<v1::Task> task = ledger_.PickTask(rng_);
    if (!task.has_value()) return Create();
    std::vector<v1::Status> to = AllowedMoves(task->status());
    // Archiving is final; keep most tasks alive. Now and then a move the
    // table forbids, which must change nothing.
    if (to.size() > 1 && rng_() % 5 != 0) to.pop_back();
    v1::MoveTaskRequest req;
    req.set_task_id(task->id());
    req.set_to_status(to.empty() || rng_() % 10 == 0
                          ? static_cast<v1::Status>(1 + rng_() % 8)
                          : to[rng_() % to.size()]);
    if (rng_() % 4 != 0) req.set_expected_version(task->version());
    req.set_reason(Text(20));
    v1::Task out;
    auto ctx = Context();
    Outcome o = Classify(stub_->MoveTask(ctx.get(), req, &out), "MoveTask");
    if (o == Outcome::kOk) ledger_.AckTask(out);
    return o;
  }

  Outcome Comment() {
    std::optional<v1::Task> task = ledger_.PickTask(rng_);
    if (!task.has_value()) return Create();
    v1::AddCommentRequest req;
    req.set_task_id(task->id());
    req.set_author(worker_id_);
    req.set_body(absl::StrCat(prefix_, " ", Text(200)));
    v1::Comment out;
    auto ctx = Context();
    Outcome o = Classify(stub_->AddComment(ctx.get(), req, &out), "AddComment");
    if (o == Outcome::kOk) ledger_.AckComment(out);
    return o;
  }

  Outcome Link() {
    std::optional<v1::Task> parent = ledger_.PickTask(rng_);
    std::optional<v1::Task> child = ledger_.PickTask(rng_);
    if (!parent.has_value() || parent->id() == child->id()) return Create();
    v1::LinkTasksRequest req;
    req.set_parent_id(parent->id());
    req.set_child_id(child->id());
    v1::Task out;
    auto ctx = Context();
    Outcome o = Classify(stub_->LinkTasks(ctx.get(), req, &out), "LinkTasks");
    if (o == Outcome::kOk) ledger_.AckTask(out);
    return o;
  }

  Outcome Claim() {
    v1::ClaimTaskRequest req;
    req.set_worker_id(worker_id_);
    req.mutable_lease_duration()->set_seconds(kLeaseSeconds);
    v1::ClaimTaskResponse out;
    auto ctx = Context();
    Outcome o = Classify(stub_->ClaimTask(ctx.get(), req, &out), "ClaimTask");
    if (o == Outcome::kOk && out.has_task()) ledger_.AckClaim(out);
    return o;
  }

  // Completes, fails or releases a lease some writer holds (maybe one
  // acknowledged before the last restart).
  Outcome Finish() {
    std::optional<HeldLease> lease = ledger_.TakeLease(rng_);
    if (!lease.has_value()) return Claim();
    v1::Task out;
    auto ctx = Context();
    grpc::Status status;
    const int dice = static_cast<int>(rng_() % 100);
    if (dice < 60) {
      v1::CompleteTaskRequest req;
      req.set_task_id(lease->task_id);
      req.set_lease_token(lease->token);
      req.set_result(Text(100));
      status = stub_->CompleteTask(ctx.get(), req, &out);
    } else if (dice < 85) {
      v1::FailTaskRequest req;
      req.set_task_id(lease->task_id);
      req.set_lease_token(lease->token);
      req.set_error(Text(100));
      req.set_retry(rng_() % 2 == 0);
      status = stub_->FailTask(ctx.get(), req, &out);
    } else {
      v1::ReleaseTaskRequest req;
      req.set_task_id(lease->task_id);
      req.set_lease_token(lease->token);
      status = stub_->ReleaseTask(ctx.get(), req, &out);
    }
    Outcome o = Classify(status, "Complete/Fail/ReleaseTask");
    if (o == Outcome::kOk) ledger_.AckTask(out);
    return o;
  }

  std::unique_ptr<v1::KanbanService::Stub> stub_;
  Ledger& ledger_;
  const std::atomic<bool>& killed_;
  std::mt19937_64 rng_;
  const std::string worker_id_;
  const std::string prefix_;  // Makes titles and idempotency keys unique.
  int created_ = 0;
};

}  // namespace

Writers::Writers(std::shared_ptr<grpc::Channel> channel, Ledger& ledger,
                 const std::atomic<bool>& killed, int count, uint64_t seed, int cycle) {
  for (int i = 0; i < count; ++i) {
    threads_.emplace_back([channel, &ledger, &killed, i, seed, cycle] {
      Writer(channel, ledger, killed, i, seed, cycle).Run();
    });
  }
}

Writers::~Writers() { Join(); }

void Writers::Join() {
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

}  // namespace kanban::crash
