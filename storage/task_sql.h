// Row-level SQL for boards, tasks, links, comments and events. Each function
// runs on the connection it is given (the writer's for writes, a reader's for
// queries) and knows nothing of the rules; storage/mutations.h applies them.
#ifndef KANBAN_STORAGE_TASK_SQL_H_
#define KANBAN_STORAGE_TASK_SQL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/db.h"
#include "storage/types.h"

namespace kanban::storage::sql {

// ---- Boards ----
// Whether board `name` exists (reads only the index).
absl::StatusOr<bool> BoardExists(Connection& db, absl::string_view name);
// NOT_FOUND naming the field "board" unless board `name` exists.
absl::Status RequireBoard(Connection& db, absl::string_view name);
absl::Status InsertBoard(Connection& db, const Board& board);
absl::StatusOr<std::vector<Board>> ListBoards(Connection& db);
// Tasks per (board, status), for metrics; one scan of the tasks table.
absl::StatusOr<std::vector<TaskCount>> CountTasks(Connection& db);

// ---- Tasks ----
// NOT_FOUND naming `field` when there is no task `id`.
absl::StatusOr<Task> LoadTask(Connection& db, absl::string_view id,
                              absl::string_view field = "task_id");

// ---- Row locks, for several writers on one database ----
// A mutation locks every task whose state it decides on before it reads
// that state, so that a concurrent writer of the same database (another
// kanband on the same PostgreSQL) either waits for it or is waited for, and
// each statement after the lock sees the other's committed result (READ
// COMMITTED takes a snapshot per statement). On SQLite, whose one writer
// holds the database, these take no lock and LoadTaskForUpdate is LoadTask.
//
// LoadTask, with the task's row locked until the transaction ends.
absl::StatusOr<Task> LoadTaskForUpdate(Connection& db, absl::string_view id,
                                       absl::string_view field = "task_id");
// Locks task `id`'s row if there is one (no error when there is none).
absl::Status LockTask(Connection& db, absl::string_view id);
// Locks the rows of every child of `parent`, in id order.
absl::Status LockChildren(Connection& db, absl::string_view parent);
// Serialises the writers that add dependencies: whether a new link closes a
// cycle depends on links no row lock covers.
absl::Status LockLinkGraph(Connection& db);

struct IdempotentMatch {
  std::string task_id;
  std::string content_hash;
};
// OK when task `id` exists, else NOT_FOUND naming `field` (as LoadTask), without
// reading the task.
absl::Status CheckTaskExists(Connection& db, absl::string_view id,
                             absl::string_view field = "task_id");

absl::StatusOr<std::optional<IdempotentMatch>> FindByIdempotencyKey(
    Connection& db, absl::string_view board, absl::string_view key);

// Inserts a new row; the task's parent links are inserted separately.
absl::Status InsertTask(Connection& db, const Task& task, absl::string_view content_hash);
// Writes status, updated_at, version, attempt, not_before, result and
// last_error of `task` to its row: for changes that touch nothing else.
absl::Status SaveTaskState(Connection& db, const Task& task);
// Writes every mutable column of `task` to its row (matched by id).
absl::Status SaveTask(Connection& db, const Task& task);
absl::StatusOr<TaskPage> ListTasks(Connection& db, const TaskFilter& filter);

// ---- Dependencies ----
absl::Status InsertLink(Connection& db, absl::string_view parent,
                        absl::string_view child);
// Returns false when there was no such link.
absl::StatusOr<bool> DeleteLink(Connection& db, absl::string_view parent,
                                absl::string_view child);
absl::StatusOr<bool> LinkExists(Connection& db, absl::string_view parent,
                                absl::string_view child);
// True when `ancestor` is reachable from `task` through parent links.
absl::StatusOr<bool> IsAncestor(Connection& db, absl::string_view ancestor,
                                absl::string_view task);
// Parents of `child` that are not DONE or ARCHIVED.
absl::StatusOr<std::vector<std::string>> UnfinishedParents(Connection& db,
                                                           absl::string_view child);
// Children of `parent` in `status` whose parents are all finished (when
// `only_unblocked`), or all of them.
absl::StatusOr<std::vector<std::string>> ChildrenInStatus(Connection& db,
                                                          absl::string_view parent,
                                                          TaskStatus status,
                                                          bool only_unblocked);

// ---- Comments ----
absl::StatusOr<Comment> InsertComment(Connection& db, const NewComment& comment,
                                      absl::Time now);
absl::StatusOr<std::vector<Comment>> ListComments(Connection& db,
                                                  absl::string_view task_id);

// ---- Events ----
// Appends `events`, each with its seq and txn (txn == seq: it starts its
// own change), its task, if any, stored as the snapshot; in as few
// statements as suit the backend. The writer inserts a batch's events
// last, with seqs from ReserveEventSeqs.
absl::Status InsertEvents(Connection& db, const std::vector<Event>& events);
// Reserves `count` consecutive seqs for the events of the open transaction
// and returns the first. On PostgreSQL this takes the counter row's lock
// until COMMIT, so commits become visible in seq order.
absl::StatusOr<int64_t> ReserveEventSeqs(Connection& db, int count);
// The seq of the newest event ever written (0 for none).
absl::StatusOr<int64_t> LastEventSeq(Connection& db);
// The seq of the oldest event still kept (one past the newest when every
// event was deleted; 1 for a new database).
absl::StatusOr<int64_t> OldestEventSeq(Connection& db);
// Retention: deletes events older than `before` and all but the newest
// `keep`, whole changes only, at most about `batch` rows. Returns how many.
absl::StatusOr<int> DeleteOldEvents(Connection& db, absl::Time before, int64_t keep,
                                    int batch);
// Up to about `limit` events with seq > after_seq, in seq order; a change
// cut by the limit is completed.
absl::StatusOr<std::vector<Event>> ReadEventsAfter(Connection& db, int64_t after_seq,
                                                   int limit);

}  // namespace kanban::storage::sql

#endif  // KANBAN_STORAGE_TASK_SQL_H_
