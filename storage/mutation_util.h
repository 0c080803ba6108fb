// Helpers shared by the write operations in mutations.cc and
// lease_mutations.cc. Each runs inside the caller's mutation.
#ifndef KANBAN_STORAGE_MUTATION_UTIL_H_
#define KANBAN_STORAGE_MUTATION_UTIL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/types.h"
#include "storage/writer.h"

namespace kanban::storage::mutations {

// ABORTED carrying the current version when `expected` is set and differs.
absl::Status CheckVersion(const Task& task, int64_t expected);

// Task `id`, its row locked until the batch commits (sql::LoadTaskForUpdate)
// (NOT_FOUND naming `field`), or PERMISSION_DENIED when the mutation's actor
// may not use its board.
absl::StatusOr<Task> LoadTaskFor(WriteContext& ctx, absl::string_view id,
                                 absl::string_view field = "task_id");

// Appends an event whose snapshot is `task`, which must be the task's row as
// just written, and records it for publication after commit.
absl::Status AppendEvent(WriteContext& ctx, const Task& task, absl::string_view kind,
                         absl::string_view reason = "");

// Sets `task`'s status, bumps its version and updated_at, writes the row and
// appends event `kind`.
absl::Status ChangeStatus(WriteContext& ctx, Task& task, TaskStatus to,
                          absl::string_view kind, absl::string_view reason = "");

// READY when every parent of `task_id` is finished, else TODO.
absl::StatusOr<TaskStatus> RunnableStatus(WriteContext& ctx, const std::string& task_id);

// After `task_id` went from `from` to `to`: finishing it promotes its
// unblocked TODO children to READY; reopening it demotes its READY children.
absl::Status CascadeStatusChange(WriteContext& ctx, const std::string& task_id,
                                 TaskStatus from, TaskStatus to);

}  // namespace kanban::storage::mutations

#endif  // KANBAN_STORAGE_MUTATION_UTIL_H_
