#include "service/work_reactor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/convert.h"
#include "service/grpc_status.h"
#include "service/work_streams.h"
#include "storage/lease_mutations.h"
#include "storage/rules.h"
#include "storage/status_macros.h"

namespace kanban::service {
namespace {

// A stream that has not attached is ended after this long.
constexpr absl::Duration kAttachTimeout = absl::Seconds(10);

// True when `response` has anything to send.
bool HasContent(const v1::WorkResponse& response) {
  return response.has_attached() || response.assignments_size() > 0 ||
         response.results_size() > 0 || response.leases_size() > 0 || response.go_away();
}

absl::Status Prefixed(absl::string_view prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

absl::Status ValidateOutcome(const v1::WorkOutcome& outcome, absl::string_view field) {
  if (absl::Status s =
          storage::ValidateHeldLease({outcome.task_id(), outcome.lease_token()}, field);
      !s.ok()) {
    return s;
  }
  switch (outcome.outcome_case()) {
    case v1::WorkOutcome::kComplete:
      return storage::ValidateOutcomeText(outcome.complete(),
                                          absl::StrCat(field, ".complete"));
    case v1::WorkOutcome::kFail:
      return storage::ValidateOutcomeText(outcome.fail().error(),
                                          absl::StrCat(field, ".fail.error"));
    case v1::WorkOutcome::kRelease:
      if (outcome.release()) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrCat(field, ".release: must be true"));
    case v1::WorkOutcome::OUTCOME_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": one of complete, fail or release is required"));
}

}  // namespace

WorkReactor::WorkReactor(grpc::CallbackServerContext* ctx, storage::Store* store,
                         ClaimWaiters* waiters, WorkStreams* streams,
                         storage::Actor actor, std::string stream_id)
    : ctx_(ctx),
      store_(store),
      waiters_(waiters),
      streams_(streams),
      actor_(std::move(actor)),
      stream_id_(std::move(stream_id)) {
  absl::MutexLock lock(&mu_);
  interval_ = kAttachTimeout / 2;
  last_heard_ = absl::Now();
}

void WorkReactor::Start() {
  if (absl::Status added = streams_->Add(this); !added.ok()) {
    {
      absl::MutexLock lock(&mu_);
      finished_ = true;
    }
    Finish(ToGrpcStatus(added));
    return;
  }
  StartRead(&in_);
}

absl::Status WorkReactor::AttachLocked(v1::WorkRequest& request, std::vector<Op>* ops) {
  if (!request.has_attach()) {
    return absl::InvalidArgumentError(
        "attach: the first message of a Work stream must attach");
  }
  if (request.outcomes_size() > 0 || request.received_size() > 0) {
    return absl::InvalidArgumentError(
        "attach: the attaching message carries no outcomes or confirmations (send "
        "them after it)");
  }
  for (int i = 0; i < request.heartbeat_size(); ++i) {
    if (absl::Status s = storage::ValidateHeldLease(
            {request.heartbeat(i).task_id(), request.heartbeat(i).lease_token()},
            absl::StrCat("heartbeat[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  const v1::WorkAttach& attach = request.attach();
  absl::StatusOr<storage::ClaimRequest> claim = FromProto(attach.claim());
  if (!claim.ok()) return Prefixed("attach.claim.", claim.status());
  if (absl::Status s = storage::ValidateClaimRequest(*claim); !s.ok()) {
    return Prefixed("attach.claim.", s);
  }
  if (!actor_.worker_id.empty() && claim->worker_id != actor_.worker_id) {
    return absl::PermissionDeniedError(absl::StrCat(
        "attach.claim.worker_id: token \"", actor_.principal, "\" acts as worker \"",
        actor_.worker_id, "\", not \"", claim->worker_id, "\""));
  }
  if (attach.max_outstanding() < 1 || attach.max_outstanding() > kMaxOutstanding) {
    return absl::InvalidArgumentError(
        absl::StrCat("attach.max_outstanding: must be 1 to ", kMaxOutstanding, ", got ",
                     attach.max_outstanding()));
  }
  const absl::Duration lease = claim->lease_duration > absl::ZeroDuration()
                                   ? claim->lease_duration
                                   : store_->default_lease();
  claim_ = *std::move(claim);
  window_ = attach.max_outstanding();
  interval_ = lease / 3;
  attached_ = true;
  v1::WorkAttached* attached = outbox_.mutable_attached();
  attached->set_stream_id(stream_id_);
  DurationToProto(interval_, attached->mutable_heartbeat_interval());
  DurationToProto(interval_, attached->mutable_resume_grace());
  // Leases held from before count in the window, and are extended now.
  if (request.heartbeat_size() > 0) {
    Op op;
    op.is_heartbeat = true;
    op.heartbeat = FromProto(request.heartbeat());
    for (const storage::HeldLease& lease : op.heartbeat) {
      Held& held = held_[lease.task_id];
      held.lease.task_id = lease.task_id;
      held.lease.token = lease.token;
      held.tracked = false;
    }
    ops->push_back(std::move(op));
  }
  if (!attach.resume_stream_id().empty()) {
    std::optional<std::vector<v1::ClaimTaskResponse>> resumed =
        streams_->Resume(attach.resume_stream_id(), claim_.worker_id, actor_.principal);
    attached->set_resumed(resumed.has_value());
    for (v1::ClaimTaskResponse& assignment :
         resumed.value_or(std::vector<v1::ClaimTaskResponse>())) {
      const v1::Lease& lease = assignment.lease();
      Held& held = held_[lease.task_id()];
      held.lease.token = lease.token();
      held.lease.task_id = lease.task_id();
      held.lease.worker_id = lease.worker_id();
      held.lease.attempt = lease.attempt();
      // Only to skip heartbeats: a bad value just means a write.
      held.lease.expires_at =
          TimeFromProto(lease.expires_at(), "expires_at").value_or(absl::InfinitePast());
      held.lease.duration =
          DurationFromProto(lease.duration(), "duration").value_or(absl::ZeroDuration());
      held.tracked = true;
      held.unconfirmed = assignment;
      unconfirmed_[lease.token()] = lease.task_id();
      streams_->Track(lease.task_id(), this);
      outbox_leases_.push_back(held.lease);
      *outbox_.add_assignments() = std::move(assignment);
    }
  }
  return absl::OkStatus();
}

std::optional<std::vector<v1::ClaimTaskResponse>> WorkReactor::Detach(
    const std::string& worker_id, const std::string& principal) {
  Action action;
  std::vector<v1::ClaimTaskResponse> taken;
  {
    absl::MutexLock lock(&mu_);
    if (!attached_ || claim_.worker_id != worker_id || actor_.principal != principal) {
      return std::nullopt;
    }
    taken = TakeUnconfirmedLocked();
    // Unsent ones too: they go to the new stream instead of back.
    outbox_leases_.clear();
    outbox_.clear_assignments();
    FinishSoonLocked(grpc::Status(grpc::StatusCode::ABORTED, "resumed by another stream"),
                     /*drain=*/false);
    action.cancel = writing_;
    PlanLocked(&action);
  }
  Execute(std::move(action));
  return taken;
}

std::vector<v1::ClaimTaskResponse> WorkReactor::TakeUnconfirmedLocked() {
  std::vector<v1::ClaimTaskResponse> taken;
  for (auto it = held_.begin(); it != held_.end();) {
    if (!it->second.unconfirmed.has_value()) {
      ++it;
      continue;
    }
    taken.push_back(*std::move(it->second.unconfirmed));
    unconfirmed_.erase(it->second.lease.token);
    streams_->Untrack(it->first, this);
    it = held_.erase(it);
  }
  return taken;
}

void WorkReactor::ConfirmLocked(const std::string& token) {
  auto it = unconfirmed_.find(token);
  if (it == unconfirmed_.end()) return;
  if (auto held = held_.find(it->second); held != held_.end())
    held->second.unconfirmed.reset();
  unconfirmed_.erase(it);
}

absl::Status WorkReactor::ReadLocked(v1::WorkRequest& request, std::vector<Op>* ops) {
  for (int i = 0; i < request.outcomes_size(); ++i) {
    KANBAN_RETURN_IF_ERROR(
        ValidateOutcome(request.outcomes(i), absl::StrCat("outcomes[", i, "]")));
  }
  for (int i = 0; i < request.heartbeat_size(); ++i) {
    KANBAN_RETURN_IF_ERROR(storage::ValidateHeldLease(
        {request.heartbeat(i).task_id(), request.heartbeat(i).lease_token()},
        absl::StrCat("heartbeat[", i, "]")));
  }
  for (const std::string& token : request.received()) ConfirmLocked(token);
  for (v1::WorkOutcome& outcome : *request.mutable_outcomes()) {
    ConfirmLocked(outcome.lease_token());
    ++settling_[outcome.task_id()];
    if (!outcome.has_release()) ++replacing_[outcome.task_id()];
    Op op;
    op.outcome = std::move(outcome);
    ops->push_back(std::move(op));
  }
  if (request.heartbeat_size() > 0) {
    Op op;
    op.is_heartbeat = true;
    const absl::Time now = store_->clock()->Now();
    for (const v1::HeldLease& lease : request.heartbeat()) {
      ConfirmLocked(lease.lease_token());
      // A lease this stream was given that still has more than half its
      // duration to run is not written: the answer is the expiry it has,
      // and had it ended, the loss would have been pushed (OnTaskChanged).
      auto it = held_.find(lease.task_id());
      if (it != held_.end() && it->second.tracked &&
          it->second.lease.token == lease.lease_token() &&
          it->second.lease.expires_at - now > it->second.lease.duration / 2) {
        v1::LeaseStatus* status = outbox_.add_leases();
        status->set_task_id(lease.task_id());
        status->set_lease_token(lease.lease_token());
        status->set_state(v1::LeaseStatus::EXTENDED);
        TimeToProto(it->second.lease.expires_at, status->mutable_expires_at());
        continue;
      }
      op.heartbeat.push_back({lease.task_id(), lease.lease_token()});
    }
    if (!op.heartbeat.empty()) ops->push_back(std::move(op));
  }
  return absl::OkStatus();
}

void WorkReactor::OnReadDone(bool ok) {
  Action action;
  std::vector<Op> ops;
  {
    absl::MutexLock lock(&mu_);
    if (!ok) {
      // The worker closed its side (or the stream broke): answer what is in
      // flight, claim nothing more.
      FinishSoonLocked(grpc::Status::OK, /*drain=*/true);
    } else if (finish_.has_value() || finished_) {
      // Ending: read no further.
    } else if (!attached_) {
      last_heard_ = absl::Now();
      if (absl::Status s = AttachLocked(in_, &ops); !s.ok()) {
        FinishSoonLocked(ToGrpcStatus(s), /*drain=*/false);
      } else {
        ops_in_flight_ += static_cast<int>(ops.size());
        action.read = true;
      }
    } else if (in_.has_attach()) {
      FinishSoonLocked(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       "attach: only the first message of a stream attaches"),
          /*drain=*/false);
    } else {
      last_heard_ = absl::Now();
      if (absl::Status bad = ReadLocked(in_, &ops); !bad.ok()) {
        // Nothing of a bad message is carried out.
        FinishSoonLocked(ToGrpcStatus(bad), /*drain=*/true);
      } else {
        ops_in_flight_ += static_cast<int>(ops.size());
        action.read = true;
      }
    }
    PlanLocked(&action);
  }
  Execute(std::move(action), std::move(ops));
}

void WorkReactor::PlanLocked(Action* action) {
  if (finished_) {
    action->read = false;
    return;
  }
  if (attached_ && !finish_.has_value() && !waiter_.has_value()) {
    // A lease with an outcome in flight counts as settled: its replacement
    // is claimed now, queued right behind the outcome, so that both usually
    // commit in one writer transaction and go out in one message. Should
    // the outcome fail, OnClaim gives the replacement back.
    // A release is not replaced early: it may be the worker giving back
    // what it will not run, before closing, and the task would come back.
    int settling = 0;
    for (const auto& [task_id, ops] : replacing_) settling += held_.count(task_id);
    const int room =
        window_ - static_cast<int>(held_.size()) + settling - claims_in_flight_;
    const int n = std::min(room, kMaxClaimsInFlight - claims_in_flight_);
    if (n > 0) {
      claims_in_flight_ += n;
      action->claims += n;
    }
  }
  const bool abort = finish_.has_value() && !drain_;
  if (!writing_ && HasContent(outbox_) && !abort) {
    out_.Swap(&outbox_);
    outbox_.Clear();
    outbox_leases_.clear();
    writing_ = true;
    action->write = true;
  }
  // A draining stream ends once its claims are back and given back too, so
  // that a worker reading the board after the end sees them READY.
  if (finish_.has_value() && !writing_ &&
      (abort || (ops_in_flight_ == 0 && claims_in_flight_ == 0))) {
    finished_ = true;
    action->read = false;
    action->finish = *finish_;
    // Assignments that never went out: their tasks go back at once.
    for (storage::Lease& lease : outbox_leases_) {
      DropLocked(lease.task_id, lease.token);
      action->give_back.push_back(std::move(lease));
    }
    outbox_leases_.clear();
    outbox_.Clear();
    if (waiter_.has_value() && waiters_->Remove(*waiter_)) ++action->unrefs;
    waiter_.reset();
  }
}

void WorkReactor::FinishSoonLocked(grpc::Status status, bool drain) {
  if (finished_) return;
  if (!finish_.has_value()) finish_ = std::move(status);
  if (!drain) drain_ = false;
}

void WorkReactor::Execute(Action action, std::vector<Op> ops) {
  for (Op& op : ops) RunOp(std::move(op));
  for (int i = 0; i < action.claims; ++i) Claim(std::nullopt);
  for (const storage::Lease& lease : action.give_back) {
    store_->ReleaseTask(
        {lease.task_id, lease.token}, [](absl::StatusOr<storage::Task>) {}, actor_);
  }
  for (const storage::Lease& lease : action.give_back_awaited) {
    Ref();  // Until the release is answered.
    store_->ReleaseTask(
        {lease.task_id, lease.token},
        [this](absl::StatusOr<storage::Task>) {
          Action next;
          {
            absl::MutexLock lock(&mu_);
            --ops_in_flight_;
            PlanLocked(&next);
          }
          Execute(std::move(next));
          Unref();
        },
        actor_);
  }
  if (action.offer.has_value()) waiters_->Offer(*action.offer);
  if (action.cancel) ctx_->TryCancel();
  if (action.read) StartRead(&in_);
  // out_ is not touched until OnWriteDone: writing_ is set.
  if (action.write) StartWrite(&out_);
  if (action.finish.has_value()) Finish(*action.finish);
  for (int i = 0; i < action.unrefs; ++i) Unref();
}

void WorkReactor::Claim(std::optional<storage::Task> trigger) {
  storage::ClaimRequest request;
  {
    absl::MutexLock lock(&mu_);
    request = claim_;
  }
  Ref();  // Until the claim is answered.
  store_->ClaimTask(
      std::move(request),
      [this, trigger = std::move(trigger)](
          absl::StatusOr<storage::ClaimResult> result) mutable {
        OnClaim(std::move(result), std::move(trigger));
        Unref();
      },
      actor_);
}

void WorkReactor::OnClaim(absl::StatusOr<storage::ClaimResult> result,
                          std::optional<storage::Task> trigger) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    --claims_in_flight_;
    if (!result.ok()) {
      if (trigger.has_value()) action.offer = std::move(trigger);
      FinishSoonLocked(ToGrpcStatus(result.status()), /*drain=*/true);
    } else if (result->claim.has_value()) {
      // Woken for one task but took another: the first may suit another
      // waiter.
      if (trigger.has_value() && trigger->id != result->claim->task.id) {
        action.offer = std::move(trigger);
      }
      if (finished_ || finish_.has_value() || static_cast<int>(held_.size()) >= window_) {
        // Ending, or claimed for the room an outcome was to make and did
        // not (it failed): back at once, the attempt not counted.
        if (finished_) {
          action.give_back.push_back(result->claim->lease);
        } else {
          ++ops_in_flight_;  // A draining end waits for it.
          action.give_back_awaited.push_back(result->claim->lease);
        }
      } else {
        Held& held = held_[result->claim->task.id];
        held.lease = result->claim->lease;
        held.tracked = true;
        ToProto(*result, &held.unconfirmed.emplace());
        unconfirmed_[held.lease.token] = held.lease.task_id;
        streams_->Track(result->claim->task.id, this);
        *outbox_.add_assignments() = *held.unconfirmed;
        outbox_leases_.push_back(result->claim->lease);
      }
    } else if (!finished_ && !finish_.has_value() && claims_in_flight_ == 0 &&
               !waiter_.has_value() && static_cast<int>(held_.size()) < window_) {
      // Nothing claimable: wait, as a waiting ClaimTask does, for a commit
      // that makes a task claimable (or for a not_before to pass).
      const absl::Time now = absl::Now();
      absl::Time wake_at = now + absl::Minutes(1);
      if (result->next_ready_at.has_value()) {
        const absl::Duration until = *result->next_ready_at - store_->clock()->Now();
        wake_at = std::min(wake_at, now + std::max(until, absl::ZeroDuration()));
      }
      Ref();  // Held while parked.
      std::optional<uint64_t> id =
          waiters_->Add(claim_, result->observed_seq, wake_at,
                        [this](const storage::Task* task) { OnWake(task); });
      if (id.has_value()) {
        waiter_ = id;
      } else {
        ++action.unrefs;  // Something became claimable meanwhile: PlanLocked claims.
      }
    }
    PlanLocked(&action);
  }
  Execute(std::move(action));
}

void WorkReactor::OnWake(const storage::Task* trigger) {
  Action action;
  std::optional<storage::Task> claim_for;
  bool claim = false;
  {
    absl::MutexLock lock(&mu_);
    waiter_.reset();
    if (!finished_ && !finish_.has_value()) {
      if (trigger != nullptr) claim_for = *trigger;
      ++claims_in_flight_;
      claim = true;
    } else if (trigger != nullptr) {
      action.offer = *trigger;
    }
    ++action.unrefs;  // The parked reference.
  }
  // The wake-up runs on the writer or the waiters' timer: only enqueue.
  if (claim) Claim(std::move(claim_for));
  Execute(std::move(action));
}

void WorkReactor::RunOp(Op op) {
  std::string worker_id;
  {
    absl::MutexLock lock(&mu_);
    worker_id = claim_.worker_id;
  }
  Ref();  // Until the op is answered.
  if (op.is_heartbeat) {
    store_->Heartbeat(
        std::move(worker_id), std::move(op.heartbeat),
        [this](absl::StatusOr<std::vector<storage::LeaseStatus>> statuses) {
          OnHeartbeat(std::move(statuses));
          Unref();
        },
        actor_);
    return;
  }
  const v1::WorkOutcome& outcome = op.outcome;
  storage::HeldLease held{outcome.task_id(), outcome.lease_token()};
  // The lease end reason each outcome leaves (storage/lease_mutations.cc).
  absl::string_view settled_as = "released";  // Validated: one of the three.
  if (outcome.has_complete()) settled_as = "completed";
  if (outcome.has_fail()) settled_as = "failed";
  auto done = [this, op_id = outcome.op_id(), held,
               settled_as](absl::StatusOr<storage::Task> task) {
    OnOutcome(op_id, held, settled_as, std::move(task));
    Unref();
  };
  if (outcome.has_complete()) {
    store_->CompleteTask(held, outcome.complete(), std::move(done), actor_);
  } else if (outcome.has_fail()) {
    store_->FailTask(held, outcome.fail().error(), outcome.fail().retry(),
                     std::move(done), actor_);
  } else {
    store_->ReleaseTask(held, std::move(done), actor_);
  }
}

void WorkReactor::OnOutcome(uint64_t op_id, const storage::HeldLease& held,
                            absl::string_view settled_as,
                            absl::StatusOr<storage::Task> task) {
  std::optional<std::string> lost =
      task.ok() ? std::nullopt : storage::mutations::LeaseLostReason(task.status());
  if (lost.has_value() && *lost == settled_as) {
    // Sent again after a break: the first try committed.
    AnswerAgain(op_id, held, settled_as != "released");
    return;
  }
  Action action;
  {
    absl::MutexLock lock(&mu_);
    v1::WorkResult result;
    result.set_op_id(op_id);
    result.set_task_id(held.task_id);
    bool settled = true;
    if (task.ok()) {
      result.set_state(v1::WorkResult::DONE);
      ToProto(*task, result.mutable_task());
    } else if (lost.has_value()) {
      result.set_state(v1::WorkResult::LOST);
      result.set_reason(*std::move(lost));
    } else {
      // Not settled: the worker may send it again.
      settled = false;
      result.set_state(v1::WorkResult::ERROR);
      result.set_code(static_cast<int>(task.status().code()));
      result.set_message(std::string(task.status().message()));
    }
    AnswerLocked(std::move(result), held, settled, settled_as != "released");
    PlanLocked(&action);
  }
  Execute(std::move(action));
}

void WorkReactor::AnswerAgain(uint64_t op_id, const storage::HeldLease& held,
                              bool replacing) {
  Ref();  // Until the read is answered.
  store_->GetTask(
      held.task_id,
      [this, op_id, held, replacing](absl::StatusOr<storage::Task> task) {
        Action action;
        {
          absl::MutexLock lock(&mu_);
          v1::WorkResult result;
          result.set_op_id(op_id);
          result.set_task_id(held.task_id);
          result.set_state(v1::WorkResult::DONE);
          if (task.ok()) ToProto(*task, result.mutable_task());
          AnswerLocked(std::move(result), held, /*settled=*/true, replacing);
          PlanLocked(&action);
        }
        Execute(std::move(action));
        Unref();
      },
      actor_);
}

void WorkReactor::AnswerLocked(v1::WorkResult result, const storage::HeldLease& held,
                               bool settled, bool replacing) {
  --ops_in_flight_;
  *outbox_.add_results() = std::move(result);
  if (auto it = settling_.find(held.task_id);
      it != settling_.end() && --it->second == 0) {
    settling_.erase(it);
  }
  if (auto it = replacing_.find(held.task_id);
      replacing && it != replacing_.end() && --it->second == 0) {
    replacing_.erase(it);
  }
  if (settled) DropLocked(held.task_id, held.token);
}

void WorkReactor::OnHeartbeat(
    absl::StatusOr<std::vector<storage::LeaseStatus>> statuses) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    --ops_in_flight_;
    if (!statuses.ok()) {
      // The worker must not go on believing its leases were extended.
      FinishSoonLocked(ToGrpcStatus(statuses.status()), /*drain=*/true);
    } else {
      v1::HeartbeatResponse answer;
      ToProto(*statuses, &answer);
      for (v1::LeaseStatus& status : *answer.mutable_leases()) {
        *outbox_.add_leases() = std::move(status);
      }
      for (const storage::LeaseStatus& status : *statuses) {
        if (!status.extended) {
          DropLocked(status.task_id, status.token);
        } else if (auto it = held_.find(status.task_id);
                   it != held_.end() && it->second.lease.token == status.token) {
          it->second.lease.expires_at = status.expires_at;
        }
      }
    }
    PlanLocked(&action);
  }
  Execute(std::move(action));
}

void WorkReactor::DropLocked(const std::string& task_id, const std::string& token) {
  auto it = held_.find(task_id);
  if (it == held_.end() || it->second.lease.token != token) return;
  if (it->second.tracked) streams_->Untrack(task_id, this);
  unconfirmed_.erase(token);
  held_.erase(it);
}

void WorkReactor::OnTaskChanged(const storage::Event& event) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    auto it = held_.find(event.task_id);
    // This stream's own outcome answers for itself.
    if (it == held_.end() || !it->second.tracked || settling_.count(event.task_id) > 0) {
      return;
    }
    const storage::Lease& lease = it->second.lease;
    if (event.task.has_value() && event.task->status == storage::TaskStatus::kRunning &&
        event.task->attempt == lease.attempt) {
      return;  // Still this lease: its own claim, an edit, a comment.
    }
    v1::LeaseStatus* lost = outbox_.add_leases();
    lost->set_task_id(event.task_id);
    lost->set_lease_token(lease.token);
    lost->set_state(v1::LeaseStatus::LOST);
    lost->set_reason(storage::LeaseEndReason(event));
    DropLocked(event.task_id, lease.token);
    PlanLocked(&action);  // Room in the window: claim again.
  }
  Execute(std::move(action));
}

void WorkReactor::OnWriteDone(bool ok) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    out_.Clear();
    if (!ok) {
      FinishSoonLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"),
                       /*drain=*/false);
    }
    PlanLocked(&action);
  }
  Execute(std::move(action));
}

void WorkReactor::OnTick(absl::Time now) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || finish_.has_value()) return;
    if (now - last_heard_ <= 2 * interval_) return;
    // The transport's keepalive does not count: a proxy can hold a dead
    // stream open. The leases run on to their expiry.
    FinishSoonLocked(
        grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                     attached_ ? absl::StrCat("no heartbeat for ",
                                              absl::FormatDuration(now - last_heard_),
                                              " (two heartbeat intervals of ",
                                              absl::FormatDuration(interval_), ")")
                               : absl::StrCat("no attach within ",
                                              absl::FormatDuration(kAttachTimeout))),
        /*drain=*/false);
    // A write the worker does not take would hold the finish back.
    action.cancel = writing_;
    PlanLocked(&action);
  }
  Execute(std::move(action));
}

void WorkReactor::GoAway() {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || finish_.has_value()) return;
    outbox_.set_go_away(true);
    FinishSoonLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"),
                     /*drain=*/true);
    PlanLocked(&action);
  }
  Execute(std::move(action));
}

void WorkReactor::OnCancel() {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    FinishSoonLocked(grpc::Status::CANCELLED, /*drain=*/false);
    PlanLocked(&action);
  }
  Execute(std::move(action));
}

void WorkReactor::OnDone() {
  WorkStreams::Parked parked;
  {
    // The leases run on, but nothing is pushed to a stream that ended.
    absl::MutexLock lock(&mu_);
    parked.assignments = TakeUnconfirmedLocked();
    for (const auto& [task_id, held] : held_) {
      if (held.tracked) streams_->Untrack(task_id, this);
    }
    parked.worker_id = claim_.worker_id;
    parked.until = absl::Now() + interval_;
  }
  // What the worker may never have received waits for a resume, then goes
  // back.
  parked.store = store_;
  parked.actor = actor_;
  streams_->Park(stream_id_, std::move(parked));
  streams_->Remove(this);
  Unref();  // gRPC's reference.
}

}  // namespace kanban::service
