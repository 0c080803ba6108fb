// One ClaimTask call: claims through the Store and, when nothing is
// claimable and the caller asked to wait, parks in ClaimWaiters until a
// commit (or time) may have made a task claimable, then claims again. Never
// blocks a gRPC thread, never calls the Store while holding its lock,
// finishes exactly once, and deletes itself in OnDone.
#ifndef KANBAN_SERVICE_CLAIM_REACTOR_H_
#define KANBAN_SERVICE_CLAIM_REACTOR_H_

#include <grpcpp/support/server_callback.h>

#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kanban/v1/kanban.pb.h"
#include "service/claim_waiters.h"
#include "storage/store.h"

namespace kanban::service {

class ClaimReactor final : public grpc::ServerUnaryReactor {
 public:
  // `store`, `waiters` and `response` must outlive the call. `actor` is the
  // caller (see storage::Actor). `deadline` is when an empty answer is due.
  ClaimReactor(storage::Store* store, ClaimWaiters* waiters,
               storage::ClaimRequest request, storage::Actor actor, absl::Time deadline,
               v1::ClaimTaskResponse* response);

  // Starts (or, after a wake-up for `trigger`, repeats) the claim.
  void Attempt(const storage::Task* trigger) ABSL_LOCKS_EXCLUDED(mu_);

  void OnCancel() override ABSL_LOCKS_EXCLUDED(mu_);
  void OnDone() override { delete this; }

 private:
  enum class State { kClaiming, kWaiting, kFinished };

  // What to do after a claim came back, decided under mu_, done outside it.
  struct Next {
    std::optional<grpc::Status> finish;       // Finish the call with this.
    bool claim_again = false;                 // Claim again at once.
    std::optional<storage::Task> offer;       // Hand this task to another waiter.
    std::optional<storage::Lease> give_back;  // Release this unwanted claim.
  };

  void Claim();
  void OnResult(absl::StatusOr<storage::ClaimResult> result) ABSL_LOCKS_EXCLUDED(mu_);
  Next Decide(absl::StatusOr<storage::ClaimResult>& result) ABSL_LOCKS_EXCLUDED(mu_);

  storage::Store* const store_;
  ClaimWaiters* const waiters_;
  const storage::ClaimRequest request_;
  const storage::Actor actor_;
  const absl::Time deadline_;
  v1::ClaimTaskResponse* const response_;

  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kClaiming;
  uint64_t waiter_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  // The lease this call answered with. A cancel that arrives after the
  // answer means the caller most likely never read it: the task is given
  // back rather than held by nobody until the lease runs out. (Had the
  // caller read it after all, its next call hears "lease lost": fencing
  // keeps that safe.)
  std::optional<storage::Lease> answered_ ABSL_GUARDED_BY(mu_);
  // The task whose commit woke this claim, if a commit did.
  std::optional<storage::Task> trigger_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_CLAIM_REACTOR_H_
