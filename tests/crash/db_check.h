// Checks a kanban database file directly, while no kanband has it open:
// SQLite's own integrity, the event log's invariants (gap-free seqs, whole
// changes, one event per version with the task as it was), the board's
// rules, and that every write the Ledger holds as acknowledged is there.
#ifndef KANBAN_TESTS_CRASH_DB_CHECK_H_
#define KANBAN_TESTS_CRASH_DB_CHECK_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/crash/ledger.h"
#include "tests/crash/task_state.h"

namespace kanban::crash {

struct DbReport {
  std::vector<std::string> violations;  // Empty when every check passed.
  int64_t tasks = 0;
  int64_t events = 0;
  int64_t comments = 0;
  // Creates whose answer was lost that are nevertheless in the database.
  int64_t unacked_creates_applied = 0;
  // Every task row, by id, for comparing with what kanband serves later.
  std::map<std::string, TaskState> rows;
};

// Checks one database across cycles. Events are append-only, so each check
// reads in full only the events written since the last one; the older ones
// must still be there unchanged (same count and bytes as when they were
// checked), and everything else (rows, comments, acknowledged writes, the
// board's rules, PRAGMA integrity_check) is checked in full every time.
// Not thread-safe.
class DbChecker {
 public:
  // Opens `db_path` read-write (WAL recovery needs it) without checkpointing
  // on close, so the next kanband finds the files exactly as the crash left
  // them. Must not run while a kanband has the file open.
  DbReport Check(const std::string& db_path, const Ledger& ledger);

 private:
  friend class Checker;
  struct TaskHistory {
    int64_t version = 0;  // Of the newest version-bumping event.
    TaskState newest;     // Snapshot of the newest event of any kind.
    int64_t commented = 0;
  };

  int64_t checked_seq_ = 0;     // Events up to here were read and checked.
  int64_t checked_count_ = 0;   // Their count and a digest of their bytes,
  int64_t checked_digest_ = 0;  // as of the check that read them.
  std::map<std::string, TaskHistory> history_;
  // (task, version) -> seq of the event that made that version.
  std::map<std::pair<std::string, int64_t>, int64_t> version_seq_;
  // Acknowledged (task, version) pairs already found matching their event.
  std::set<std::pair<std::string, int64_t>> matched_;
};

}  // namespace kanban::crash

#endif  // KANBAN_TESTS_CRASH_DB_CHECK_H_
