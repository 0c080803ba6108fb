#include "storage/mutations.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "storage/ids.h"
#include "storage/lease_mutations.h"
#include "storage/mutation_util.h"
#include "storage/rules.h"
#include "storage/status_macros.h"
#include "storage/task_sql.h"

namespace kanban::storage::mutations {
namespace {

void HashBytes(uint64_t& h, absl::string_view bytes) {
  // Length first, so field boundaries cannot be confused.
  uint64_t n = bytes.size();
  for (int i = 0; i < 8; ++i) {
    h = (h ^ ((n >> (8 * i)) & 0xff)) * 1099511628211ULL;
  }
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
}

}  // namespace

std::string ContentHash(const NewTask& r) {
  uint64_t h = 14695981039346656037ULL;  // FNV-1a 64.
  HashBytes(h, r.board.empty() ? kDefaultBoard : absl::string_view(r.board));
  HashBytes(h, r.title);
  HashBytes(h, r.body);
  HashBytes(h, absl::StrCat(r.priority));
  HashBytes(h, absl::StrJoin(r.labels, "\x1f"));
  HashBytes(h, r.assignee);
  std::vector<std::string> parents = r.parent_ids;
  std::sort(parents.begin(), parents.end());
  HashBytes(h, absl::StrJoin(parents, "\x1f"));
  HashBytes(h, absl::StrCat(r.max_attempts == 0 ? kDefaultMaxAttempts : r.max_attempts));
  HashBytes(h, r.not_before ? absl::StrCat(absl::ToUnixMicros(*r.not_before)) : "-");
  HashBytes(h, absl::StrCat(static_cast<int>(r.initial_status)));
  return absl::StrFormat("fnv1a64:%016x", h);
}

absl::StatusOr<Board> CreateBoard(WriteContext& ctx, const Board& request) {
  KANBAN_RETURN_IF_ERROR(CheckBoardAccess(ctx.actor(), request.name, "name"));
  KANBAN_ASSIGN_OR_RETURN(bool exists, sql::BoardExists(ctx.db(), request.name));
  if (exists) {
    return absl::AlreadyExistsError(
        absl::StrCat("name: board \"", request.name, "\" already exists"));
  }
  Board board = request;
  board.created_at = ctx.now();
  KANBAN_RETURN_IF_ERROR(sql::InsertBoard(ctx.db(), board));
  Event event;
  event.board = board.name;
  event.kind = "board_created";
  event.time = ctx.now();
  event.principal = ctx.actor().principal;
  ctx.AddEvent(std::move(event));
  return board;
}

absl::StatusOr<Task> CreateTask(WriteContext& ctx, const NewTask& request) {
  Connection& db = ctx.db();
  const std::string board =
      request.board.empty() ? std::string(kDefaultBoard) : request.board;
  KANBAN_RETURN_IF_ERROR(CheckBoardAccess(ctx.actor(), board, "board"));
  KANBAN_RETURN_IF_ERROR(sql::RequireBoard(db, board));
  // Only a keyed create is ever compared with another.
  const std::string hash =
      request.idempotency_key.empty() ? std::string() : ContentHash(request);
  if (!request.idempotency_key.empty()) {
    KANBAN_ASSIGN_OR_RETURN(
        std::optional<sql::IdempotentMatch> match,
        sql::FindByIdempotencyKey(db, board, request.idempotency_key));
    if (match.has_value()) {
      if (match->content_hash != hash) {
        return absl::AlreadyExistsError(absl::StrCat(
            "idempotency_key: \"", request.idempotency_key, "\" was used for task ",
            match->task_id, " with different content"));
      }
      return sql::LoadTask(db, match->task_id);
    }
  }
  bool unfinished_parent = false;
  for (size_t i = 0; i < request.parent_ids.size(); ++i) {
    const std::string field = absl::StrCat("parent_ids[", i, "]");
    KANBAN_ASSIGN_OR_RETURN(Task parent, LoadTaskFor(ctx, request.parent_ids[i], field));
    if (parent.board != board) {
      return absl::FailedPreconditionError(absl::StrCat(field, ": task ", parent.id,
                                                        " is on board \"", parent.board,
                                                        "\", not \"", board, "\""));
    }
    unfinished_parent |= !IsFinished(parent.status);
  }

  Task task;
  task.id = NewTaskId(ctx.now(), ctx.gen());
  task.board = board;
  task.title = request.title;
  task.body = request.body;
  task.status = request.initial_status == TaskStatus::kTriage ? TaskStatus::kTriage
                : unfinished_parent                           ? TaskStatus::kTodo
                                                              : TaskStatus::kReady;
  task.priority = request.priority;
  task.labels = request.labels;
  task.assignee = request.assignee;
  task.created_at = task.updated_at = ctx.now();
  task.version = 1;
  task.max_attempts =
      request.max_attempts == 0 ? kDefaultMaxAttempts : request.max_attempts;
  task.not_before = request.not_before;
  task.idempotency_key = request.idempotency_key;
  KANBAN_RETURN_IF_ERROR(sql::InsertTask(db, task, hash));
  for (const std::string& parent : request.parent_ids) {
    KANBAN_RETURN_IF_ERROR(sql::InsertLink(db, parent, task.id));
  }
  task.parent_ids = request.parent_ids;
  std::sort(task.parent_ids.begin(), task.parent_ids.end());
  KANBAN_RETURN_IF_ERROR(AppendEvent(ctx, task, "created"));
  return task;
}

absl::StatusOr<Task> UpdateTask(WriteContext& ctx, const TaskUpdate& update) {
  KANBAN_ASSIGN_OR_RETURN(Task task, LoadTaskFor(ctx, update.task_id));
  KANBAN_RETURN_IF_ERROR(CheckVersion(task, update.expected_version));
  if (task.status == TaskStatus::kArchived) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", task.id, " is ARCHIVED and cannot be changed"));
  }
  Task changed = task;
  if (update.title) changed.title = *update.title;
  if (update.body) changed.body = *update.body;
  if (update.priority) changed.priority = *update.priority;
  if (update.assignee) changed.assignee = *update.assignee;
  if (update.labels) changed.labels = *update.labels;
  if (changed.title == task.title && changed.body == task.body &&
      changed.priority == task.priority && changed.assignee == task.assignee &&
      changed.labels == task.labels) {
    return task;  // Nothing to change: no new version, no event.
  }
  changed.version = task.version + 1;
  changed.updated_at = ctx.now();
  KANBAN_RETURN_IF_ERROR(sql::SaveTask(ctx.db(), changed));
  KANBAN_RETURN_IF_ERROR(AppendEvent(ctx, changed, "updated"));
  return changed;
}

absl::StatusOr<Task> MoveTask(WriteContext& ctx, const TaskMove& move) {
  Connection& db = ctx.db();
  KANBAN_ASSIGN_OR_RETURN(Task task, LoadTaskFor(ctx, move.task_id));
  KANBAN_RETURN_IF_ERROR(CheckVersion(task, move.expected_version));
  KANBAN_RETURN_IF_ERROR(CheckManualMove(task.status, move.to_status));
  const TaskStatus from = task.status;
  TaskStatus to = move.to_status;
  if (to == TaskStatus::kReady) {
    KANBAN_ASSIGN_OR_RETURN(std::vector<std::string> waiting,
                            sql::UnfinishedParents(db, task.id));
    if (!waiting.empty()) {
      if (from == TaskStatus::kTodo) {
        return absl::FailedPreconditionError(
            absl::StrCat("task ", task.id, " stays TODO: unfinished parents ",
                         absl::StrJoin(waiting, ", ")));
      }
      to = TaskStatus::kTodo;  // Not runnable yet: wait in TODO.
    }
  }
  std::optional<std::string> cancelled_worker;
  if (from == TaskStatus::kRunning) {
    // An operator stopped running work: the holder's lease ends now, and its
    // next heartbeat or completion is told "cancelled".
    KANBAN_ASSIGN_OR_RETURN(cancelled_worker, CancelLease(ctx, task));
  }
  KANBAN_RETURN_IF_ERROR(ChangeStatus(ctx, task, to, "moved", move.reason));
  if (cancelled_worker.has_value()) {
    KANBAN_RETURN_IF_ERROR(AppendEvent(ctx, task, "lease_cancelled",
                                       absl::StrCat("worker ", *cancelled_worker)));
  }
  KANBAN_RETURN_IF_ERROR(CascadeStatusChange(ctx, task.id, from, to));
  return task;
}

absl::StatusOr<Task> LinkTasks(WriteContext& ctx, const std::string& parent_id,
                               const std::string& child_id) {
  Connection& db = ctx.db();
  if (parent_id == child_id) {
    return absl::InvalidArgumentError("child_id: a task cannot depend on itself");
  }
  KANBAN_RETURN_IF_ERROR(sql::LockLinkGraph(db));
  KANBAN_ASSIGN_OR_RETURN(Task parent, LoadTaskFor(ctx, parent_id, "parent_id"));
  KANBAN_ASSIGN_OR_RETURN(Task child, LoadTaskFor(ctx, child_id, "child_id"));
  if (parent.board != child.board) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot link across boards: parent ", parent.id, " is on \"",
                     parent.board, "\", child ", child.id, " on \"", child.board, "\""));
  }
  KANBAN_ASSIGN_OR_RETURN(bool linked, sql::LinkExists(db, parent_id, child_id));
  if (linked) return child;  // Already so: a retried call changes nothing.
  if (child.status == TaskStatus::kArchived) {
    return absl::FailedPreconditionError(
        absl::StrCat("child_id: task ", child.id, " is ARCHIVED and cannot be changed"));
  }
  KANBAN_ASSIGN_OR_RETURN(bool cycle, sql::IsAncestor(db, child_id, parent_id));
  if (cycle) {
    return absl::FailedPreconditionError(absl::StrCat(
        "linking parent ", parent_id, " to child ", child_id,
        " would create a cycle: ", parent_id, " already depends on ", child_id));
  }
  KANBAN_RETURN_IF_ERROR(sql::InsertLink(db, parent_id, child_id));
  child.parent_ids.push_back(parent_id);
  std::sort(child.parent_ids.begin(), child.parent_ids.end());
  const std::string reason = absl::StrCat("parent ", parent_id);
  KANBAN_RETURN_IF_ERROR(ChangeStatus(ctx, child, child.status, "linked", reason));
  if (child.status == TaskStatus::kReady && !IsFinished(parent.status)) {
    KANBAN_RETURN_IF_ERROR(
        ChangeStatus(ctx, child, TaskStatus::kTodo, "demoted", reason));
  }
  return child;
}

absl::StatusOr<Task> UnlinkTasks(WriteContext& ctx, const std::string& parent_id,
                                 const std::string& child_id) {
  Connection& db = ctx.db();
  KANBAN_ASSIGN_OR_RETURN(Task parent, LoadTaskFor(ctx, parent_id, "parent_id"));
  KANBAN_ASSIGN_OR_RETURN(Task child, LoadTaskFor(ctx, child_id, "child_id"));
  KANBAN_ASSIGN_OR_RETURN(bool deleted, sql::DeleteLink(db, parent_id, child_id));
  if (!deleted) {
    return absl::NotFoundError(
        absl::StrCat("task ", child_id, " does not depend on ", parent_id));
  }
  child.parent_ids.erase(
      std::remove(child.parent_ids.begin(), child.parent_ids.end(), parent_id),
      child.parent_ids.end());
  const std::string reason = absl::StrCat("parent ", parent_id);
  KANBAN_RETURN_IF_ERROR(ChangeStatus(ctx, child, child.status, "unlinked", reason));
  if (child.status == TaskStatus::kTodo) {
    KANBAN_ASSIGN_OR_RETURN(std::vector<std::string> waiting,
                            sql::UnfinishedParents(db, child_id));
    if (waiting.empty() && !IsFinished(parent.status)) {
      KANBAN_RETURN_IF_ERROR(
          ChangeStatus(ctx, child, TaskStatus::kReady, "promoted", reason));
    }
  }
  return child;
}

absl::StatusOr<Comment> AddComment(WriteContext& ctx, const NewComment& comment) {
  KANBAN_ASSIGN_OR_RETURN(Task task, LoadTaskFor(ctx, comment.task_id));
  KANBAN_ASSIGN_OR_RETURN(Comment stored,
                          sql::InsertComment(ctx.db(), comment, ctx.now()));
  KANBAN_RETURN_IF_ERROR(AppendEvent(ctx, task, "commented"));
  return stored;
}

}  // namespace kanban::storage::mutations
