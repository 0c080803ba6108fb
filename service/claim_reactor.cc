#include "service/claim_reactor.h"

#include <algorithm>
#include <utility>

#include "service/convert.h"
#include "service/grpc_status.h"

namespace kanban::service {

ClaimReactor::ClaimReactor(storage::Store* store, ClaimWaiters* waiters,
                           storage::ClaimRequest request, storage::Actor actor,
                           absl::Time deadline, v1::ClaimTaskResponse* response)
    : store_(store),
      waiters_(waiters),
      request_(std::move(request)),
      actor_(std::move(actor)),
      deadline_(deadline),
      response_(response) {}

void ClaimReactor::Attempt(const storage::Task* trigger) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kFinished) return;
    state_ = State::kClaiming;
    if (trigger != nullptr) {
      trigger_ = *trigger;
    } else {
      trigger_.reset();
    }
  }
  Claim();
}

void ClaimReactor::Claim() {
  store_->ClaimTask(
      request_,
      [this](absl::StatusOr<storage::ClaimResult> result) {
        OnResult(std::move(result));
      },
      actor_);
}

void ClaimReactor::OnResult(absl::StatusOr<storage::ClaimResult> result) {
  Next next = Decide(result);
  // Outside mu_: the Store may answer inline (when closed), another waiter's
  // wake-up runs inline, and OnDone (which deletes this) may follow Finish.
  if (next.give_back.has_value()) {
    store_->ReleaseTask(
        {next.give_back->task_id, next.give_back->token},
        [](absl::StatusOr<storage::Task>) {}, actor_);
  }
  if (next.offer.has_value()) waiters_->Offer(*next.offer);
  if (next.claim_again) Claim();
  if (next.finish.has_value()) Finish(*next.finish);
}

ClaimReactor::Next ClaimReactor::Decide(absl::StatusOr<storage::ClaimResult>& result) {
  absl::MutexLock lock(&mu_);
  Next next;
  if (state_ == State::kFinished) return next;
  auto finish = [&](grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    state_ = State::kFinished;
    next.finish = std::move(status);
    return next;
  };
  if (!result.ok()) return finish(ToGrpcStatus(result.status()));
  if (result->claim.has_value()) {
    // Woken for one task but took another (higher priority): the first may
    // still be claimable by someone else who is waiting.
    if (trigger_.has_value() && trigger_->id != result->claim->task.id) {
      next.offer = std::move(trigger_);
    }
    if (cancelled_) {
      // The caller is gone and will never learn the token: give the task
      // back at once instead of letting the lease run out.
      next.give_back = result->claim->lease;
      return finish(grpc::Status::CANCELLED);
    }
    answered_ = result->claim->lease;
    ToProto(*result, response_);
    return finish(grpc::Status::OK);
  }
  if (cancelled_) return finish(grpc::Status::CANCELLED);
  if (waiters_->shut_down()) {
    return finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
  const absl::Time now = absl::Now();
  if (now >= deadline_) return finish(grpc::Status::OK);  // Nothing, in time.

  absl::Time wake_at = deadline_;
  if (result->next_ready_at.has_value()) {
    // A READY task whose not_before is still ahead: be awake when it passes.
    absl::Duration until = *result->next_ready_at - store_->clock()->Now();
    wake_at = std::min(wake_at, now + std::max(until, absl::ZeroDuration()));
  }
  std::optional<uint64_t> id =
      waiters_->Add(request_, result->observed_seq, wake_at,
                    [this](const storage::Task* trigger) { Attempt(trigger); });
  if (!id.has_value()) {
    // Something became claimable since this claim looked: look again.
    next.claim_again = true;
    return next;
  }
  state_ = State::kWaiting;
  waiter_id_ = *id;
  return next;
}

void ClaimReactor::OnCancel() {
  std::optional<storage::Lease> give_back;
  bool finish = false;
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    give_back = std::exchange(answered_, std::nullopt);
    // While claiming, Decide sees cancelled_; while waiting, only a waiter
    // still parked can be finished here (else its wake-up is running).
    if (state_ == State::kWaiting && waiters_->Remove(waiter_id_)) {
      state_ = State::kFinished;
      finish = true;
    }
  }
  if (give_back.has_value()) {
    store_->ReleaseTask(
        {give_back->task_id, give_back->token}, [](absl::StatusOr<storage::Task>) {},
        actor_);
  }
  if (finish) Finish(grpc::Status::CANCELLED);
}

}  // namespace kanban::service
