// SQLite's own consistency checks, as statuses and lists of problems.
#ifndef KANBAN_STORAGE_SQLITE_INTEGRITY_H_
#define KANBAN_STORAGE_SQLITE_INTEGRITY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/sqlite/connection.h"

namespace kanban::storage {

// Runs `PRAGMA integrity_check(max_problems)` (`full`) or `quick_check`
// (no index-content cross-check: about as fast as reading the file once) and
// returns what SQLite found; empty means "ok". An error that stops the check
// itself (for example a file that is not a database) is returned as status.
absl::StatusOr<std::vector<std::string>> FindProblems(Connection& db, bool full,
                                                      int max_problems);

// quick_check as a status: OK, or DATA_LOSS listing what was found.
absl::Status QuickCheck(Connection& db);

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_SQLITE_INTEGRITY_H_
