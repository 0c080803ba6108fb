// Domain types of the task board. storage/ speaks only these; the service
// layer converts them to and from protobuf.
#ifndef KANBAN_STORAGE_TYPES_H_
#define KANBAN_STORAGE_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace kanban::storage {

// Numeric values match kanban.v1.Status and are stored in the database.
enum class TaskStatus : int {
  kUnspecified = 0,
  kTriage = 1,
  kTodo = 2,
  kReady = 3,
  kRunning = 4,
  kBlocked = 5,
  kReview = 6,
  kDone = 7,
  kArchived = 8,
};
inline constexpr int kMaxTaskStatus = 8;

struct Task {
  std::string id;
  std::string board;
  std::string title;
  std::string body;
  TaskStatus status = TaskStatus::kUnspecified;
  int32_t priority = 0;
  std::vector<std::string> labels;
  std::string assignee;
  std::vector<std::string> parent_ids;  // Sorted.
  absl::Time created_at = absl::UnixEpoch();
  absl::Time updated_at = absl::UnixEpoch();
  int64_t version = 0;
  int32_t attempt = 0;
  int32_t max_attempts = 0;
  std::optional<absl::Time> not_before;
  std::string result;
  std::string last_error;
  std::string idempotency_key;
  // The active lease's holder and expiry, while RUNNING.
  std::string worker_id;
  std::optional<absl::Time> lease_expires_at;
};

struct Lease {
  std::string token;
  std::string task_id;
  std::string worker_id;
  int32_t attempt = 0;
  absl::Duration duration = absl::ZeroDuration();
  absl::Time expires_at = absl::UnixEpoch();
};

struct Board {
  std::string name;
  std::string description;
  absl::Time created_at = absl::UnixEpoch();
};

struct Comment {
  int64_t id = 0;
  std::string task_id;
  std::string author;
  std::string body;
  absl::Time created_at = absl::UnixEpoch();
};

struct Event {
  int64_t seq = 0;
  // The seq of the first event written by the same change: events with the
  // same txn were committed together and are delivered together.
  int64_t txn = 0;
  std::string board;
  std::string task_id;  // Empty for board-level events.
  std::string kind;
  absl::Time time = absl::UnixEpoch();
  std::optional<Task> task;  // Snapshot after the change.
  std::string reason;
  std::string principal;  // Who caused it: see Actor::principal.
};

// ---- Who asks --------------------------------------------------------------

// The principal the server's own changes (reclaiming expired leases) record.
inline constexpr char kServerPrincipal[] = "kanband";

// Who asks for a write or a read, and what they may touch; the service layer
// makes one from the call's token. The default may do anything and records
// no principal (auth off, tools, tests).
struct Actor {
  std::string principal;            // Recorded in the events it causes.
  std::vector<std::string> boards;  // The only boards it may use; empty: all.
  // Non-empty: it may only act on leases this worker holds.
  std::string worker_id;

  bool MayUse(const std::string& board) const;
};

// ---- Tokens ----------------------------------------------------------------

// Numeric values match kanban.v1.Role and are stored in the database.
enum class Role : int {
  kUnspecified = 0,
  kAdmin = 1,
  kProducer = 2,
  kWorker = 3,
  kViewer = 4,
};

// A bearer token as stored: only the SHA-256 of its secret is kept.
struct TokenRecord {
  std::string name;
  Role role = Role::kUnspecified;
  std::vector<std::string> boards;  // Empty: every board.
  std::string worker_id;            // kWorker only.
  std::string secret_hash;          // Lowercase hex SHA-256 of the secret.
  absl::Time created_at = absl::UnixEpoch();
  std::string created_by;
  std::optional<absl::Time> revoked_at;
};

// ---- Requests --------------------------------------------------------------

struct NewTask {
  std::string board;  // Empty means "default".
  std::string title;
  std::string body;
  int32_t priority = 0;
  std::vector<std::string> labels;
  std::string assignee;
  std::vector<std::string> parent_ids;
  int32_t max_attempts = 0;  // 0: kDefaultMaxAttempts.
  std::optional<absl::Time> not_before;
  std::string idempotency_key;
  // kUnspecified or kTriage.
  TaskStatus initial_status = TaskStatus::kUnspecified;
};

struct TaskUpdate {
  std::string task_id;
  std::optional<std::string> title;
  std::optional<std::string> body;
  std::optional<int32_t> priority;
  std::optional<std::string> assignee;
  std::optional<std::vector<std::string>> labels;
  int64_t expected_version = 0;  // 0: don't check.
};

struct TaskMove {
  std::string task_id;
  TaskStatus to_status = TaskStatus::kUnspecified;
  int64_t expected_version = 0;  // 0: don't check.
  std::string reason;
};

struct TaskFilter {
  std::string board;  // Empty: all boards.
  std::vector<TaskStatus> statuses;
  std::string assignee;
  std::string label;
  int32_t page_size = 0;  // 0: kDefaultPageSize.
  std::string page_token;
};

struct TaskPage {
  std::vector<Task> tasks;
  std::string next_page_token;
};

struct NewComment {
  std::string task_id;
  std::string author;
  std::string body;
};

struct ClaimRequest {
  std::string board;  // Empty means "default".
  std::string worker_id;
  absl::Duration lease_duration = absl::ZeroDuration();  // Zero: the default.
  std::vector<std::string> labels;  // The task must carry all of them.
  std::string assignee;
};

struct Claim {
  Task task;
  Lease lease;
};

struct ClaimResult {
  std::optional<Claim> claim;  // Empty: nothing claimable now.
  // The newest event seq the claim saw: a task that became claimable later
  // has a larger seq, so a waiter registered with it cannot miss the wake-up.
  int64_t observed_seq = 0;
  // When nothing was claimable: the earliest not_before of a READY task on
  // the board still in the future, if any.
  std::optional<absl::Time> next_ready_at;
};

// A lease as a worker holds it.
struct HeldLease {
  std::string task_id;
  std::string token;
};

struct LeaseStatus {
  std::string task_id;
  std::string token;
  bool extended = false;
  absl::Time expires_at = absl::UnixEpoch();  // When extended.
  // When lost: completed, failed, released, reclaimed, cancelled, expired,
  // not_held or unknown.
  std::string reason;
};

struct Worker {
  std::string worker_id;
  absl::Time first_seen = absl::UnixEpoch();
  absl::Time last_seen = absl::UnixEpoch();
  std::vector<std::string> task_ids;
};

// What one sweep did.
// Tasks of one board in one status (metrics).
struct TaskCount {
  std::string board;
  TaskStatus status = TaskStatus::kUnspecified;
  int64_t count = 0;
};

struct SweepResult {
  int reclaimed = 0;             // Back to READY (or TODO) after a backoff.
  int gave_up = 0;               // Out of attempts: BLOCKED.
  int events_deleted = 0;        // By event retention.
  int64_t oldest_event_seq = 0;  // The oldest event kept afterwards.
};

// Effective durability settings, read back from the writer's connection.
struct DurabilityInfo {
  std::string backend = "sqlite";  // "sqlite" or "postgresql".
  std::string server_version;      // The engine's version, e.g. "3.40.1", "15.18".
  // SQLite: PRAGMA synchronous ("FULL", "NORMAL", ...); PostgreSQL: SHOW
  // synchronous_commit ("on", "off", ...).
  std::string synchronous;
  int wal_autocheckpoint = 0;
  std::string journal_mode;
  int schema_version = 0;
};

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_TYPES_H_
