// Moving a board from SQLite to PostgreSQL: `kanband migrate --from=FILE
// --to=URI` copies every row of a SQLite database (brought to the current
// schema first) into an empty PostgreSQL database in one transaction, with
// every key unchanged: task pks, comment ids, and event seqs and txns, so
// that watchers resume across the move with the same after_seq.
#ifndef KANBAN_STORAGE_MIGRATE_H_
#define KANBAN_STORAGE_MIGRATE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kanban::storage {

struct CopyReport {
  // Rows copied, per table, in copy order.
  std::vector<std::pair<std::string, int64_t>> rows;
  int64_t last_event_seq = 0;  // The event counter the target starts from.
};

// Copies `sqlite_path` into the PostgreSQL database `postgres_target`.
// Errors: FAILED_PRECONDITION when the SQLite file is held by a kanband (its
// lock), does not exist, or the target already holds a board (anything but
// the empty default board); the mapped backend errors otherwise. On error
// the target is left as it was (one transaction).
absl::StatusOr<CopyReport> CopySqliteToPostgres(const std::string& sqlite_path,
                                                const std::string& postgres_target,
                                                absl::Time now);

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_MIGRATE_H_
