#include "storage/mutation_util.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "storage/rules.h"
#include "storage/status_macros.h"
#include "storage/task_sql.h"

namespace kanban::storage::mutations {
namespace {

// Moves every child of `parent` that is in `from` (and, for promotion, has
// all its parents finished) to `to`, one event `kind` each.
absl::Status CascadeToChildren(WriteContext& ctx, const std::string& parent,
                               TaskStatus from, TaskStatus to, absl::string_view kind) {
  // Whether a child may be promoted depends on its other parents, which
  // another kanband of the database may be finishing right now: locking the
  // children first makes the two wait for each other, and the second then
  // sees the first's parent finished (sql::LockChildren).
  KANBAN_RETURN_IF_ERROR(sql::LockChildren(ctx.db(), parent));
  KANBAN_ASSIGN_OR_RETURN(
      std::vector<std::string> children,
      sql::ChildrenInStatus(ctx.db(), parent, from,
                            /*only_unblocked=*/to == TaskStatus::kReady));
  for (const std::string& id : children) {
    KANBAN_ASSIGN_OR_RETURN(Task child, sql::LoadTask(ctx.db(), id));
    KANBAN_RETURN_IF_ERROR(
        ChangeStatus(ctx, child, to, kind, absl::StrCat("parent ", parent)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckVersion(const Task& task, int64_t expected) {
  if (expected != 0 && expected != task.version) {
    return absl::AbortedError(
        absl::StrFormat("expected_version %d does not match task %s's current version %d",
                        expected, task.id, task.version));
  }
  return absl::OkStatus();
}

absl::StatusOr<Task> LoadTaskFor(WriteContext& ctx, absl::string_view id,
                                 absl::string_view field) {
  KANBAN_ASSIGN_OR_RETURN(Task task, sql::LoadTaskForUpdate(ctx.db(), id, field));
  KANBAN_RETURN_IF_ERROR(CheckBoardAccess(ctx.actor(), task.board, field));
  return task;
}

absl::Status AppendEvent(WriteContext& ctx, const Task& task, absl::string_view kind,
                         absl::string_view reason) {
  Event event;
  event.board = task.board;
  event.task_id = task.id;
  event.kind = std::string(kind);
  event.time = ctx.now();
  event.task = task;
  event.reason = std::string(reason);
  event.principal = ctx.actor().principal;
  // The writer gives it its seq and inserts it when the batch ends.
  ctx.AddEvent(std::move(event));
  return absl::OkStatus();
}

absl::Status ChangeStatus(WriteContext& ctx, Task& task, TaskStatus to,
                          absl::string_view kind, absl::string_view reason) {
  task.status = to;
  task.version += 1;
  task.updated_at = ctx.now();
  KANBAN_RETURN_IF_ERROR(sql::SaveTaskState(ctx.db(), task));
  return AppendEvent(ctx, task, kind, reason);
}

absl::StatusOr<TaskStatus> RunnableStatus(WriteContext& ctx, const std::string& task_id) {
  KANBAN_ASSIGN_OR_RETURN(std::vector<std::string> waiting,
                          sql::UnfinishedParents(ctx.db(), task_id));
  return waiting.empty() ? TaskStatus::kReady : TaskStatus::kTodo;
}

absl::Status CascadeStatusChange(WriteContext& ctx, const std::string& task_id,
                                 TaskStatus from, TaskStatus to) {
  if (IsFinished(to) && !IsFinished(from)) {
    return CascadeToChildren(ctx, task_id, TaskStatus::kTodo, TaskStatus::kReady,
                             "promoted");
  }
  if (IsFinished(from) && !IsFinished(to)) {
    // Reopened: children that became READY because of this task wait again.
    // Deeper descendants need no change: an unfinished task's children are
    // never READY, so the invariant already holds one level down.
    return CascadeToChildren(ctx, task_id, TaskStatus::kReady, TaskStatus::kTodo,
                             "demoted");
  }
  return absl::OkStatus();
}

}  // namespace kanban::storage::mutations
