// Quarantine: a copy of a database found corrupt, kept for the operator
// before anything else touches it. One set is the database file with its
// -wal and -shm, in a folder named "<db>.corrupt-<UTC timestamp>".
//
// Restart loops must not become backup storms (a known failure of setups
// like the one kanban replaces): when the newest set already holds exactly
// the current files, it is reused instead of copied again, and at most
// `keep` sets are kept (the oldest go first).
#ifndef KANBAN_STORAGE_SQLITE_QUARANTINE_H_
#define KANBAN_STORAGE_SQLITE_QUARANTINE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kanban::storage {

struct QuarantineSet {
  std::string dir;      // The set's folder.
  bool reused = false;  // True when an identical newest set was reused.
};

// Copies `db_path` and its -wal/-shm (those that exist) into a new set named
// for `now`, or reuses the newest set when it is identical; then deletes the
// oldest sets beyond `keep` (at least 1). The files themselves are not
// changed.
absl::StatusOr<QuarantineSet> Quarantine(const std::string& db_path, absl::Time now,
                                         int keep);

// The quarantine sets of `db_path`, oldest first.
std::vector<std::string> ListQuarantineSets(const std::string& db_path);

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_SQLITE_QUARANTINE_H_
