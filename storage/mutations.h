// The board's write operations, each run by the Writer in a batch's
// transaction (one that fails is undone alone; see writer.h): they check
// the rules against the current rows, change them, and append an event for
// every change. Inputs are
// validated (storage/rules.h) before they get here.
#ifndef KANBAN_STORAGE_MUTATIONS_H_
#define KANBAN_STORAGE_MUTATIONS_H_

#include <string>

#include "absl/status/statusor.h"
#include "storage/types.h"
#include "storage/writer.h"

namespace kanban::storage::mutations {

// ALREADY_EXISTS if the board exists.
absl::StatusOr<Board> CreateBoard(WriteContext& ctx, const Board& board);

// NOT_FOUND for an unknown board or parent, FAILED_PRECONDITION for a parent
// on another board, ALREADY_EXISTS for a reused idempotency key with other
// content. A retry with the same key and content returns the original task
// and writes nothing.
absl::StatusOr<Task> CreateTask(WriteContext& ctx, const NewTask& request);

// NOT_FOUND, ABORTED (version), FAILED_PRECONDITION (archived).
absl::StatusOr<Task> UpdateTask(WriteContext& ctx, const TaskUpdate& update);

// NOT_FOUND, ABORTED (version), FAILED_PRECONDITION (move not allowed).
// Finishing a task promotes its unblocked TODO children to READY; reopening
// a DONE task demotes its READY children to TODO.
absl::StatusOr<Task> MoveTask(WriteContext& ctx, const TaskMove& move);

// Returns the child. INVALID_ARGUMENT (self link), NOT_FOUND,
// FAILED_PRECONDITION (cycle, cross-board, archived child).
absl::StatusOr<Task> LinkTasks(WriteContext& ctx, const std::string& parent_id,
                               const std::string& child_id);
// Returns the child. NOT_FOUND when either task or the link is missing.
absl::StatusOr<Task> UnlinkTasks(WriteContext& ctx, const std::string& parent_id,
                                 const std::string& child_id);

// NOT_FOUND for an unknown task.
absl::StatusOr<Comment> AddComment(WriteContext& ctx, const NewComment& comment);

// Canonical fingerprint of a create request, for idempotency checks.
std::string ContentHash(const NewTask& request);

}  // namespace kanban::storage::mutations

#endif  // KANBAN_STORAGE_MUTATIONS_H_
