// The board's rules as pure functions: input limits, which manual moves are
// allowed, and what counts as finished. No I/O; thread-safe.
#ifndef KANBAN_STORAGE_RULES_H_
#define KANBAN_STORAGE_RULES_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/types.h"

namespace kanban::storage {

inline constexpr absl::string_view kDefaultBoard = "default";
inline constexpr int kMaxTitleChars = 500;
inline constexpr int kMaxBodyBytes = 64 * 1024;
inline constexpr int kMaxLabels = 32;
inline constexpr int kMaxLabelChars = 64;
inline constexpr int kMaxAssigneeChars = 128;
inline constexpr int kMaxIdempotencyKeyChars = 128;
inline constexpr int kMaxReasonChars = 1024;
inline constexpr int kMaxAuthorChars = 128;
inline constexpr int kMaxDescriptionChars = 1024;
inline constexpr int kMaxParents = 100;
inline constexpr int32_t kDefaultMaxAttempts = 3;
inline constexpr int32_t kMaxMaxAttempts = 1000;
inline constexpr int32_t kDefaultPageSize = 100;
inline constexpr int32_t kMaxPageSize = 1000;  // Default of --max_page_size.
inline constexpr int kMaxWorkerIdChars = 128;
inline constexpr int kMaxHeartbeatLeases = 1000;
inline constexpr absl::Duration kMinLease = absl::Seconds(1);
inline constexpr absl::Duration kMaxLease = absl::Hours(1);

// Every kind of event the store writes.
inline constexpr absl::string_view kEventKinds[] = {
    "board_created", "created",   "updated",   "moved",          "linked",    "unlinked",
    "promoted",      "demoted",   "commented", "claimed",        "completed", "failed",
    "released",      "reclaimed", "gave_up",   "lease_cancelled"};
bool IsEventKind(absl::string_view kind);

// "TRIAGE", "READY", ... as in the proto enum.
absl::string_view StatusName(TaskStatus status);

// What a heartbeat reports for a lease that `event` ended: "completed",
// "failed", "released", "reclaimed" (the sweep, also when it gave up), or
// "cancelled" for an operator's move.
std::string LeaseEndReason(const Event& event);

// DONE and ARCHIVED: a child whose parents are all finished may run.
bool IsFinished(TaskStatus status);

// Number of UTF-8 code points in `text`.
int Utf8Length(absl::string_view text);

// Each returns INVALID_ARGUMENT naming the offending field, or OK.
absl::Status ValidateBoardName(absl::string_view name, absl::string_view field);
absl::Status ValidateNewBoard(const Board& board);
absl::Status ValidateNewTask(const NewTask& task);
absl::Status ValidateTaskUpdate(const TaskUpdate& update);
absl::Status ValidateTaskMove(const TaskMove& move);
absl::Status ValidateNewComment(const NewComment& comment);
// `max_page_size` is kanband's --max_page_size (default kMaxPageSize).
absl::Status ValidateTaskFilter(const TaskFilter& filter,
                                int32_t max_page_size = kMaxPageSize);
absl::Status ValidateTaskId(absl::string_view id, absl::string_view field);
absl::Status ValidateClaimRequest(const ClaimRequest& request);
// `field` prefixes the names, e.g. "leases[3]".
absl::Status ValidateHeldLease(const HeldLease& lease, absl::string_view field);
absl::Status ValidateWorkerId(absl::string_view id, absl::string_view field);
// A task's result or error text: at most 64 KiB, no NUL.
absl::Status ValidateOutcomeText(absl::string_view text, absl::string_view field);

// Tokens: names match [A-Za-z0-9._-]{1,64} and kanband is reserved (the
// server's own principal); a role is required; worker_id is required for
// kWorker and refused for the others; boards are board names; secret_hash
// is 64 lowercase hex digits.
inline constexpr int kMaxTokenBoards = 100;
absl::Status ValidateTokenName(absl::string_view name, absl::string_view field);
absl::Status ValidateNewToken(const TokenRecord& token);
absl::string_view RoleName(Role role);  // "admin", "producer", ...

// PERMISSION_DENIED naming `field` and the boards `actor` is limited to,
// unless it may use `board`.
absl::Status CheckBoardAccess(const Actor& actor, const std::string& board,
                              absl::string_view field);

// FAILED_PRECONDITION naming both statuses unless `from` -> `to` is an
// allowed manual move.
absl::Status CheckManualMove(TaskStatus from, TaskStatus to);

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_RULES_H_
