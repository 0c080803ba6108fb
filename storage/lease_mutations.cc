#include "storage/lease_mutations.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "storage/lease_sql.h"
#include "storage/mutation_util.h"
#include "storage/rules.h"
#include "storage/status_macros.h"
#include "storage/task_sql.h"

namespace kanban::storage::mutations {
namespace {

// 48 bits of time, then 96 random bits: unguessable, and new tokens sort
// after old ones, so inserts into the leases primary key append instead of
// dirtying pages all over the index.
std::string NewToken(absl::Time now, absl::BitGen& gen) {
  return absl::StrFormat(
      "%012x%08x%016x",
      static_cast<uint64_t>(absl::ToUnixMicros(now)) & 0xffffffffffffULL,
      absl::Uniform<uint32_t>(gen), absl::Uniform<uint64_t>(gen));
}

// PERMISSION_DENIED when `actor` is bound to a worker (a worker token) and
// `worker_id` is another; an empty `worker_id` (no such lease) passes, to be
// reported as a lost lease.
absl::Status CheckActsAs(const Actor& actor, const std::string& worker_id) {
  if (actor.worker_id.empty() || worker_id.empty() || worker_id == actor.worker_id) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat("worker_id: token \"", actor.principal,
                                                  "\" acts as worker \"", actor.worker_id,
                                                  "\", not \"", worker_id, "\""));
}

constexpr absl::string_view kLeaseLostPayload = "kanban.dev/lease-lost";

absl::Status LeaseLost(absl::string_view task_id, absl::string_view reason) {
  absl::Status status = absl::FailedPreconditionError(
      absl::StrCat("lease lost: ", reason, " (task ", task_id, ")"));
  status.SetPayload(kLeaseLostPayload, absl::Cord(reason));
  return status;
}

// The active, unexpired lease `held` names, or FAILED_PRECONDITION saying
// why it is not.
absl::StatusOr<sql::LeaseRow> CheckLease(WriteContext& ctx, const HeldLease& held) {
  // The task's row first: the lease is then read as the last writer of the
  // database to hold the task left it (sql::LockTask).
  if (!ctx.actor().boards.empty()) {
    KANBAN_RETURN_IF_ERROR(LoadTaskFor(ctx, held.task_id).status());
  } else {
    KANBAN_RETURN_IF_ERROR(sql::LockTask(ctx.db(), held.task_id));
  }
  KANBAN_ASSIGN_OR_RETURN(std::optional<sql::LeaseRow> row,
                          sql::FindLeaseByToken(ctx.db(), held.token));
  KANBAN_RETURN_IF_ERROR(
      CheckActsAs(ctx.actor(), row.has_value() ? row->lease.worker_id : std::string()));
  if (!row.has_value() || row->lease.task_id != held.task_id) {
    // Distinguish a task that does not exist from a token that is wrong.
    KANBAN_RETURN_IF_ERROR(sql::CheckTaskExists(ctx.db(), held.task_id));
    return LeaseLost(held.task_id, "not the task's lease");
  }
  if (row->ended_at.has_value()) return LeaseLost(held.task_id, row->end_reason);
  if (row->lease.expires_at <= ctx.now()) return LeaseLost(held.task_id, "expired");
  return *std::move(row);
}

// Takes a RUNNING task off its lease: status `to`, counters as given.
absl::StatusOr<Task> EndRun(WriteContext& ctx, const sql::LeaseRow& lease,
                            absl::string_view end_reason, absl::string_view event,
                            absl::string_view event_reason,
                            const std::function<void(Task&)>& change) {
  KANBAN_ASSIGN_OR_RETURN(Task task, sql::LoadTask(ctx.db(), lease.lease.task_id));
  KANBAN_RETURN_IF_ERROR(
      sql::EndLease(ctx.db(), lease.lease.token, ctx.now(), end_reason));
  task.worker_id.clear();
  task.lease_expires_at.reset();
  const TaskStatus from = task.status;
  change(task);
  task.version += 1;
  task.updated_at = ctx.now();
  KANBAN_RETURN_IF_ERROR(sql::SaveTaskState(ctx.db(), task));
  KANBAN_RETURN_IF_ERROR(AppendEvent(ctx, task, event, event_reason));
  KANBAN_RETURN_IF_ERROR(CascadeStatusChange(ctx, task.id, from, task.status));
  return task;
}

// Back to the queue after a failure or an expired lease: READY (or TODO when
// a parent was reopened meanwhile) after a backoff while attempts are left,
// else BLOCKED. Returns the event kind.
absl::StatusOr<std::string> Requeue(WriteContext& ctx, Task& task, bool retry,
                                    absl::string_view retry_event,
                                    const RetryPolicy& policy) {
  if (retry && task.attempt < task.max_attempts) {
    KANBAN_ASSIGN_OR_RETURN(task.status, RunnableStatus(ctx, task.id));
    task.not_before = ctx.now() + Backoff(task.attempt, policy, ctx.gen());
    return std::string(retry_event);
  }
  task.status = TaskStatus::kBlocked;
  return std::string(retry ? "gave_up" : "failed");
}

}  // namespace

std::optional<std::string> LeaseLostReason(const absl::Status& status) {
  absl::optional<absl::Cord> reason = status.GetPayload(kLeaseLostPayload);
  if (!reason.has_value()) return std::nullopt;
  return std::string(*reason);
}

absl::Duration Backoff(int attempt, const RetryPolicy& policy, absl::BitGen& gen) {
  absl::Duration delay = policy.backoff_base;
  for (int i = 1; i < attempt && delay < policy.backoff_cap; ++i) delay *= 2;
  delay = std::min(delay, policy.backoff_cap);
  const absl::Duration half = delay / 2;
  return half + absl::Microseconds(absl::Uniform<int64_t>(
                    absl::IntervalClosed, gen, 0, absl::ToInt64Microseconds(half)));
}

absl::StatusOr<ClaimResult> ClaimTask(WriteContext& ctx, const ClaimRequest& request,
                                      const RetryPolicy& policy) {
  Connection& db = ctx.db();
  const std::string board =
      request.board.empty() ? std::string(kDefaultBoard) : request.board;
  KANBAN_RETURN_IF_ERROR(CheckActsAs(ctx.actor(), request.worker_id));
  KANBAN_RETURN_IF_ERROR(CheckBoardAccess(ctx.actor(), board, "board"));
  KANBAN_RETURN_IF_ERROR(sql::RequireBoard(db, board));
  ClaimResult result;
  KANBAN_ASSIGN_OR_RETURN(
      std::optional<std::string> id,
      sql::FindClaimable(db, board, request.assignee, request.labels, ctx.now()));
  if (!id.has_value()) {
    KANBAN_ASSIGN_OR_RETURN(result.observed_seq, sql::LastEventSeq(db));
    KANBAN_ASSIGN_OR_RETURN(result.next_ready_at, sql::NextReadyAt(db, board, ctx.now()));
    return result;
  }
  KANBAN_ASSIGN_OR_RETURN(Task task, sql::LoadTask(db, *id));
  task.status = TaskStatus::kRunning;
  task.attempt += 1;
  task.version += 1;
  task.updated_at = ctx.now();
  KANBAN_RETURN_IF_ERROR(sql::SaveTaskState(db, task));

  Lease lease;
  lease.token = NewToken(ctx.now(), ctx.gen());
  lease.task_id = task.id;
  lease.worker_id = request.worker_id;
  lease.attempt = task.attempt;
  lease.duration = request.lease_duration > absl::ZeroDuration() ? request.lease_duration
                                                                 : policy.default_lease;
  lease.expires_at = ctx.now() + lease.duration;
  KANBAN_RETURN_IF_ERROR(sql::InsertLease(db, lease, ctx.now()));
  KANBAN_RETURN_IF_ERROR(sql::TouchWorker(db, request.worker_id, ctx.now(), board));
  task.worker_id = lease.worker_id;
  task.lease_expires_at = lease.expires_at;
  KANBAN_RETURN_IF_ERROR(
      AppendEvent(ctx, task, "claimed", absl::StrCat("worker ", request.worker_id)));
  // (observed_seq matters only to a claim that found nothing.)
  result.claim = Claim{std::move(task), std::move(lease)};
  return result;
}

absl::StatusOr<Task> CompleteTask(WriteContext& ctx, const HeldLease& held,
                                  const std::string& result) {
  KANBAN_ASSIGN_OR_RETURN(sql::LeaseRow lease, CheckLease(ctx, held));
  return EndRun(ctx, lease, "completed", "completed", "", [&](Task& task) {
    task.status = TaskStatus::kDone;
    task.result = result;
  });
}

absl::StatusOr<Task> FailTask(WriteContext& ctx, const HeldLease& held,
                              const std::string& error, bool retry,
                              const RetryPolicy& policy) {
  KANBAN_ASSIGN_OR_RETURN(sql::LeaseRow lease, CheckLease(ctx, held));
  KANBAN_ASSIGN_OR_RETURN(Task task, sql::LoadTask(ctx.db(), held.task_id));
  task.last_error = error;
  KANBAN_ASSIGN_OR_RETURN(std::string event, Requeue(ctx, task, retry, "failed", policy));
  return EndRun(ctx, lease, "failed", event, "", [&](Task& t) {
    t.status = task.status;
    t.not_before = task.not_before;
    t.last_error = task.last_error;
  });
}

absl::StatusOr<Task> ReleaseTask(WriteContext& ctx, const HeldLease& held) {
  KANBAN_ASSIGN_OR_RETURN(sql::LeaseRow lease, CheckLease(ctx, held));
  KANBAN_ASSIGN_OR_RETURN(TaskStatus back, RunnableStatus(ctx, held.task_id));
  return EndRun(ctx, lease, "released", "released", "", [&](Task& task) {
    task.status = back;
    task.attempt = std::max(0, task.attempt - 1);  // A release is not a failure.
  });
}

absl::StatusOr<std::vector<LeaseStatus>> Heartbeat(WriteContext& ctx,
                                                   const std::string& worker_id,
                                                   const std::vector<HeldLease>& leases) {
  KANBAN_RETURN_IF_ERROR(CheckActsAs(ctx.actor(), worker_id));
  KANBAN_RETURN_IF_ERROR(sql::TouchWorker(ctx.db(), worker_id, ctx.now(), ""));
  // Every lease still held is extended by one statement; only the others
  // are read one by one, to say why they are lost.
  std::vector<std::string> tokens;
  tokens.reserve(leases.size());
  for (const HeldLease& held : leases) tokens.push_back(held.token);
  std::map<std::string, sql::Extended> extended;
  if (!tokens.empty()) {
    KANBAN_ASSIGN_OR_RETURN(extended,
                            sql::ExtendLeases(ctx.db(), worker_id, tokens, ctx.now()));
  }
  std::vector<LeaseStatus> statuses;
  statuses.reserve(leases.size());
  for (const HeldLease& held : leases) {
    LeaseStatus status;
    status.task_id = held.task_id;
    status.token = held.token;
    if (auto it = extended.find(held.token);
        it != extended.end() && it->second.task_id == held.task_id) {
      status.extended = true;
      status.expires_at = it->second.expires_at;
      statuses.push_back(std::move(status));
      continue;
    }
    // (A token listed with another task's id was extended all the same: it
    // is this worker's own lease. It is reported unknown, as before.)
    KANBAN_ASSIGN_OR_RETURN(std::optional<sql::LeaseRow> row,
                            sql::FindLeaseByToken(ctx.db(), held.token));
    if (!row.has_value() || row->lease.task_id != held.task_id) {
      status.reason = "unknown";
    } else if (row->lease.worker_id != worker_id) {
      status.reason = "not_held";
    } else if (row->ended_at.has_value()) {
      status.reason = row->end_reason;
    } else {
      status.reason = "expired";
    }
    statuses.push_back(std::move(status));
  }
  return statuses;
}

absl::StatusOr<SweepResult> Sweep(WriteContext& ctx, const RetryPolicy& policy) {
  SweepResult result;
  KANBAN_ASSIGN_OR_RETURN(std::vector<sql::LeaseRow> expired,
                          sql::ExpiredLeases(ctx.db(), ctx.now(), policy.sweep_limit));
  for (const sql::LeaseRow& candidate : expired) {
    // Locked, then read again: another kanband of the database may have
    // settled, extended or reclaimed it meanwhile (then it is not swept
    // twice: a reclaim counts the attempt once).
    KANBAN_ASSIGN_OR_RETURN(Task task,
                            sql::LoadTaskForUpdate(ctx.db(), candidate.lease.task_id));
    KANBAN_ASSIGN_OR_RETURN(std::optional<sql::LeaseRow> again,
                            sql::FindLeaseByToken(ctx.db(), candidate.lease.token));
    if (!again.has_value() || again->ended_at.has_value() ||
        again->lease.expires_at > ctx.now()) {
      continue;
    }
    const sql::LeaseRow& lease = *again;
    KANBAN_ASSIGN_OR_RETURN(std::string event,
                            Requeue(ctx, task, /*retry=*/true, "reclaimed", policy));
    if (event == "gave_up") {
      task.last_error =
          absl::StrFormat("lease of worker %s expired on attempt %d of %d",
                          lease.lease.worker_id, task.attempt, task.max_attempts);
      ++result.gave_up;
    } else {
      ++result.reclaimed;
    }
    KANBAN_RETURN_IF_ERROR(EndRun(ctx, lease, "reclaimed", event,
                                  absl::StrCat("worker ", lease.lease.worker_id),
                                  [&](Task& t) {
                                    t.status = task.status;
                                    t.not_before = task.not_before;
                                    t.last_error = task.last_error;
                                  })
                               .status());
  }
  KANBAN_RETURN_IF_ERROR(
      sql::DeleteEndedLeases(ctx.db(), ctx.now() - policy.lease_history).status());
  return result;
}

absl::StatusOr<std::optional<std::string>> CancelLease(WriteContext& ctx, Task& task) {
  KANBAN_ASSIGN_OR_RETURN(std::optional<sql::LeaseRow> lease,
                          sql::FindActiveLease(ctx.db(), task.id));
  if (!lease.has_value()) return std::optional<std::string>();
  KANBAN_RETURN_IF_ERROR(
      sql::EndLease(ctx.db(), lease->lease.token, ctx.now(), "cancelled"));
  task.worker_id.clear();
  task.lease_expires_at.reset();
  return lease->lease.worker_id;
}

}  // namespace kanban::storage::mutations
