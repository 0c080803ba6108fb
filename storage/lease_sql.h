// Row-level SQL for leases, workers and claiming. Like task_sql.h: runs on
// the connection it is given and knows nothing of the rules.
#ifndef KANBAN_STORAGE_LEASE_SQL_H_
#define KANBAN_STORAGE_LEASE_SQL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/db.h"
#include "storage/types.h"

namespace kanban::storage::sql {

// A lease row, active (ended_at unset) or ended.
struct LeaseRow {
  Lease lease;
  std::optional<absl::Time> ended_at;
  std::string end_reason;
};

absl::Status InsertLease(Connection& db, const Lease& lease, absl::Time acquired_at);
absl::StatusOr<std::optional<LeaseRow>> FindLeaseByToken(Connection& db,
                                                         absl::string_view token);
absl::StatusOr<std::optional<LeaseRow>> FindActiveLease(Connection& db,
                                                        absl::string_view task_id);
absl::Status EndLease(Connection& db, absl::string_view token, absl::Time now,
                      absl::string_view reason);
// Extends each lease of `worker_id` among `tokens` that is active and
// unexpired at `now` by its own duration: on PostgreSQL in one statement,
// on SQLite with an update and a read per lease. Returns what was extended: token ->
// (task id, new expiry).
struct Extended {
  std::string task_id;
  absl::Time expires_at;
};
absl::StatusOr<std::map<std::string, Extended>> ExtendLeases(
    Connection& db, absl::string_view worker_id, const std::vector<std::string>& tokens,
    absl::Time now);

// Active leases with expires_at <= now, oldest expiry first, at most `limit`.
absl::StatusOr<std::vector<LeaseRow>> ExpiredLeases(Connection& db, absl::Time now,
                                                    int limit);
// Deletes ended leases that ended before `before`; returns how many.
absl::StatusOr<int> DeleteEndedLeases(Connection& db, absl::Time before);

// The id of the task a claim would take: READY, not_before passed, carrying
// every label in `labels`, unassigned or assigned to `assignee`; highest
// priority, then oldest. Empty when there is none.
absl::StatusOr<std::optional<std::string>> FindClaimable(
    Connection& db, absl::string_view board, absl::string_view assignee,
    const std::vector<std::string>& labels, absl::Time now);
// The earliest future not_before among READY tasks on `board`.
absl::StatusOr<std::optional<absl::Time>> NextReadyAt(Connection& db,
                                                      absl::string_view board,
                                                      absl::Time now);

// Records that `worker_id` was seen at `now` (claiming on `board`, if set).
absl::Status TouchWorker(Connection& db, absl::string_view worker_id, absl::Time now,
                         absl::string_view board);
absl::StatusOr<std::vector<Worker>> ListWorkers(Connection& db, absl::string_view board);

}  // namespace kanban::storage::sql

#endif  // KANBAN_STORAGE_LEASE_SQL_H_
