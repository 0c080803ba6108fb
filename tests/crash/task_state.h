// One task's fields in a form that three sources can be compared in: an
// acknowledged RPC response (kanban.v1.Task), a row of the `tasks` table and
// an event's JSON snapshot (events.task). Times are Unix microseconds, lists
// are comma-joined, absent times are -1.
#ifndef KANBAN_TESTS_CRASH_TASK_STATE_H_
#define KANBAN_TESTS_CRASH_TASK_STATE_H_

#include <cstdint>
#include <string>

#include "kanban/v1/kanban.pb.h"
#include "storage/sqlite/connection.h"

namespace kanban::crash {

struct TaskState {
  std::string id;
  int64_t status = 0;
  std::string title;
  std::string body;
  int64_t priority = 0;
  std::string labels;  // In stored order, comma-joined.
  std::string assignee;
  std::string parent_ids;  // Sorted, comma-joined.
  int64_t version = 0;
  int64_t attempt = 0;
  int64_t max_attempts = 0;
  std::string result;
  std::string last_error;
  std::string idempotency_key;
  std::string worker_id;
  int64_t created_at = -1;
  int64_t updated_at = -1;
  int64_t not_before = -1;
  int64_t lease_expires_at = -1;

  bool operator==(const TaskState& other) const;
  bool operator!=(const TaskState& other) const { return !(*this == other); }
};

// The fields of an acknowledged response.
TaskState FromProto(const kanban::v1::Task& task);

// "field: a != b; ..." for every field that differs; empty when equal.
std::string Diff(const TaskState& a, const TaskState& b);

// SELECT column lists, in the order ReadTaskState expects: over `tasks t`
// (with its links and active lease), and over the snapshot in `events e`.
const std::string& RowColumns();
const std::string& SnapshotColumns();

// Reads the columns starting at `first` (see RowColumns/SnapshotColumns).
TaskState ReadTaskState(const storage::Statement& row, int first);

}  // namespace kanban::crash

#endif  // KANBAN_TESTS_CRASH_TASK_STATE_H_
