// The worker protocol's write operations: claiming under a lease, finishing
// with the lease's token (fencing: a token that is not the task's current,
// unexpired lease changes nothing), heartbeats, and the sweep that reclaims
// expired leases. Each runs on the writer, undone alone if it fails.
#ifndef KANBAN_STORAGE_LEASE_MUTATIONS_H_
#define KANBAN_STORAGE_LEASE_MUTATIONS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/types.h"
#include "storage/writer.h"

namespace kanban::storage::mutations {

struct RetryPolicy {
  absl::Duration default_lease = absl::Seconds(60);  // Default: 60 s.
  absl::Duration backoff_base = absl::Seconds(1);    // Default: 1 s.
  absl::Duration backoff_cap = absl::Minutes(5);     // Default: 5 min.
  // How long ended leases are kept to explain "lease lost". Default: 1 day.
  absl::Duration lease_history = absl::Hours(24);
  int sweep_limit = 1000;  // Most leases reclaimed per sweep. Default: 1000.
};

// The delay before retry number `attempt` (1-based): exponential from
// base, capped, with "equal jitter" (half fixed, half random) so that
// workers that failed together do not retry together.
absl::Duration Backoff(int attempt, const RetryPolicy& policy, absl::BitGen& gen);

// NOT_FOUND for an unknown board. An empty claim is not an error.
absl::StatusOr<ClaimResult> ClaimTask(WriteContext& ctx, const ClaimRequest& request,
                                      const RetryPolicy& policy);

// RUNNING -> DONE. FAILED_PRECONDITION "lease lost: ..." for a stale token.
absl::StatusOr<Task> CompleteTask(WriteContext& ctx, const HeldLease& held,
                                  const std::string& result);
// The reason in a "lease lost" error of CompleteTask, FailTask or
// ReleaseTask ("expired", "reclaimed", ...); nothing for any other status.
std::optional<std::string> LeaseLostReason(const absl::Status& status);

// RUNNING -> READY/TODO after a backoff (retry and attempts left), else BLOCKED.
absl::StatusOr<Task> FailTask(WriteContext& ctx, const HeldLease& held,
                              const std::string& error, bool retry,
                              const RetryPolicy& policy);
// RUNNING -> READY/TODO at once; the attempt is not counted.
absl::StatusOr<Task> ReleaseTask(WriteContext& ctx, const HeldLease& held);

// Extends each lease still held by `worker_id`; reports the lost ones.
absl::StatusOr<std::vector<LeaseStatus>> Heartbeat(WriteContext& ctx,
                                                   const std::string& worker_id,
                                                   const std::vector<HeldLease>& leases);

// Reclaims leases past their expiry and forgets old ended ones.
absl::StatusOr<SweepResult> Sweep(WriteContext& ctx, const RetryPolicy& policy);

// Ends `task`'s active lease, if any, as cancelled, and clears the lease
// fields of `task` (the caller writes the row and the events). Returns the
// holder's worker id, or nothing when there was no lease. For operator moves
// out of RUNNING.
absl::StatusOr<std::optional<std::string>> CancelLease(WriteContext& ctx, Task& task);

}  // namespace kanban::storage::mutations

#endif  // KANBAN_STORAGE_LEASE_MUTATIONS_H_
