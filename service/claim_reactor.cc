#include "service/claim_reactor.h"

#include <algorithm>
#include <utility>

#include "service/convert.h"
#include "service/grpc_status.h"

namespace kanban::service {

ClaimReactor::ClaimReactor(storage::Store* store, ClaimWaiters* waiters,
                           storage::ClaimRequest request, absl::Time deadline,
                           v1::ClaimTaskResponse* response)
    : store_(store),
      waiters_(waiters),
      request_(std::move(request)),
      deadline_(deadline),
      response_(response) {}

void ClaimReactor::Attempt() {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kFinished) return;
    state_ = State::kClaiming;
  }
  store_->ClaimTask(request_, [this](absl::StatusOr<storage::ClaimResult> result) {
    OnResult(std::move(result));
  });
}

void ClaimReactor::OnResult(absl::StatusOr<storage::ClaimResult> result) {
  std::optional<grpc::Status> finish = Decide(result);
  if (finish.has_value()) {
    // Outside mu_: OnDone (which deletes this) may follow Finish at once.
    Finish(*finish);
  }
}

std::optional<grpc::Status> ClaimReactor::Decide(absl::StatusOr<storage::ClaimResult>& result) {
  absl::MutexLock lock(&mu_);
  if (state_ == State::kFinished) return std::nullopt;
  auto finish = [&](grpc::Status status) -> std::optional<grpc::Status> {
    state_ = State::kFinished;
    return status;
  };
  if (!result.ok()) return finish(ToGrpcStatus(result.status()));
  if (result->claim.has_value()) {
    if (cancelled_) {
      // The caller is gone and will never learn the token: give the task
      // back at once instead of letting the lease run out.
      const storage::Lease& lease = result->claim->lease;
      store_->ReleaseTask({lease.task_id, lease.token}, [](absl::StatusOr<storage::Task>) {});
      return finish(grpc::Status::CANCELLED);
    }
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
      waiters_->Add(request_, result->observed_seq, wake_at, [this] { Attempt(); });
  if (!id.has_value()) {
    // Something became claimable since this claim looked: look again. The
    // Store answers on its own thread, so this does not recurse.
    store_->ClaimTask(request_, [this](absl::StatusOr<storage::ClaimResult> r) {
      OnResult(std::move(r));
    });
    return std::nullopt;
  }
  state_ = State::kWaiting;
  waiter_id_ = *id;
  return std::nullopt;
}

void ClaimReactor::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    // While claiming, Decide sees cancelled_; while waiting, only a waiter
    // still parked can be finished here (else its wake-up is running).
    if (state_ != State::kWaiting || !waiters_->Remove(waiter_id_)) return;
    state_ = State::kFinished;
  }
  Finish(grpc::Status::CANCELLED);
}

}  // namespace kanban::service
