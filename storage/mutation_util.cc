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
  KANBAN_ASSIGN_OR_RETURN(
      std::vector<std::string> children,
      sql::ChildrenInStatus(ctx.db(), parent, from,
                            /*only_unblocked=*/to == TaskStatus::kReady));
  for (const std::string& child : children) {
    KANBAN_RETURN_IF_ERROR(sql::SetStatus(ctx.db(), child, to, ctx.now()));
    KANBAN_RETURN_IF_ERROR(AppendEvent(ctx, child, kind, absl::StrCat("parent ", parent)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckVersion(const Task& task, int64_t expected) {
  if (expected != 0 && expected != task.version) {
    return absl::AbortedError(absl::StrFormat(
        "expected_version %d does not match task %s's current version %d", expected,
        task.id, task.version));
  }
  return absl::OkStatus();
}

absl::Status AppendEvent(WriteContext& ctx, const std::string& task_id,
                         absl::string_view kind, absl::string_view reason) {
  KANBAN_ASSIGN_OR_RETURN(int64_t seq,
                          sql::InsertTaskEvent(ctx.db(), task_id, kind, ctx.now(), reason));
  ctx.AddEvent(seq);
  return absl::OkStatus();
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
