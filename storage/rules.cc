#include "storage/rules.h"

#include <algorithm>
#include <iterator>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace kanban::storage {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// Text fields: at most `max_chars` code points and no NUL, which SQLite's
// text functions (and so the JSON event snapshots) would cut at.
absl::Status CheckLength(absl::string_view field, absl::string_view value,
                         int max_chars) {
  if (value.find('\0') != absl::string_view::npos) {
    return Invalid(field, "must not contain NUL characters");
  }
  int length = Utf8Length(value);
  if (length > max_chars) {
    return Invalid(field, absl::StrFormat("is %d characters, at most %d allowed", length,
                                          max_chars));
  }
  return absl::OkStatus();
}

bool HasControlCharacter(absl::string_view value) {
  return std::any_of(value.begin(), value.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

absl::Status ValidateLabels(absl::string_view field,
                            const std::vector<std::string>& labels) {
  if (static_cast<int>(labels.size()) > kMaxLabels) {
    return Invalid(field, absl::StrFormat("has %d labels, at most %d allowed",
                                          labels.size(), kMaxLabels));
  }
  std::set<absl::string_view> seen;
  for (size_t i = 0; i < labels.size(); ++i) {
    std::string name = absl::StrCat(field, "[", i, "]");
    const std::string& label = labels[i];
    if (label.empty()) return Invalid(name, "must not be empty");
    if (HasControlCharacter(label)) {
      return Invalid(name, "must not contain control characters");
    }
    if (auto s = CheckLength(name, label, kMaxLabelChars); !s.ok()) return s;
    if (!seen.insert(label).second) {
      return Invalid(name, absl::StrCat("duplicate label \"", label, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTitle(absl::string_view title) {
  if (absl::StripAsciiWhitespace(title).empty()) {
    return Invalid("title", "must not be empty");
  }
  return CheckLength("title", title, kMaxTitleChars);
}

absl::Status ValidateBody(absl::string_view field, absl::string_view body) {
  if (body.find('\0') != absl::string_view::npos) {
    return Invalid(field, "must not contain NUL characters");
  }
  if (body.size() > static_cast<size_t>(kMaxBodyBytes)) {
    return Invalid(field, absl::StrFormat("is %d bytes, at most %d allowed", body.size(),
                                          kMaxBodyBytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view StatusName(TaskStatus status) {
  switch (status) {
    case TaskStatus::kTriage:
      return "TRIAGE";
    case TaskStatus::kTodo:
      return "TODO";
    case TaskStatus::kReady:
      return "READY";
    case TaskStatus::kRunning:
      return "RUNNING";
    case TaskStatus::kBlocked:
      return "BLOCKED";
    case TaskStatus::kReview:
      return "REVIEW";
    case TaskStatus::kDone:
      return "DONE";
    case TaskStatus::kArchived:
      return "ARCHIVED";
    case TaskStatus::kUnspecified:
      break;
  }
  return "STATUS_UNSPECIFIED";
}

bool IsEventKind(absl::string_view kind) {
  return std::find(std::begin(kEventKinds), std::end(kEventKinds), kind) !=
         std::end(kEventKinds);
}

std::string LeaseEndReason(const Event& event) {
  if (event.kind == "completed" || event.kind == "failed" || event.kind == "released" ||
      event.kind == "reclaimed") {
    return event.kind;
  }
  if (event.kind == "gave_up") {
    return event.principal == kServerPrincipal ? "reclaimed" : "failed";
  }
  return "cancelled";
}

bool IsFinished(TaskStatus status) {
  return status == TaskStatus::kDone || status == TaskStatus::kArchived;
}

int Utf8Length(absl::string_view text) {
  return static_cast<int>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

absl::Status ValidateBoardName(absl::string_view name, absl::string_view field) {
  if (name.empty() || name.size() > 64 ||
      !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
      })) {
    return Invalid(field, absl::StrCat("\"", name.substr(0, 80),
                                       "\" does not match [a-z0-9_-]{1,64}"));
  }
  return absl::OkStatus();
}

bool Actor::MayUse(const std::string& board) const {
  return boards.empty() || std::find(boards.begin(), boards.end(), board) != boards.end();
}

absl::Status CheckBoardAccess(const Actor& actor, const std::string& board,
                              absl::string_view field) {
  if (actor.MayUse(board)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(field, ": token \"", actor.principal, "\" may not use board \"", board,
                   "\" (it is limited to ", absl::StrJoin(actor.boards, ", "), ")"));
}

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kProducer:
      return "producer";
    case Role::kWorker:
      return "worker";
    case Role::kViewer:
      return "viewer";
    case Role::kUnspecified:
      break;
  }
  return "unspecified";
}

absl::Status ValidateTokenName(absl::string_view name, absl::string_view field) {
  if (name.empty() || name.size() > 64 ||
      !std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
               c == '_' || c == '-';
      })) {
    return Invalid(field, absl::StrCat("\"", name.substr(0, 80),
                                       "\" does not match [A-Za-z0-9._-]{1,64}"));
  }
  if (name == kServerPrincipal) {
    return Invalid(field, "\"kanband\" is reserved for the server's own changes");
  }
  return absl::OkStatus();
}

absl::Status ValidateNewToken(const TokenRecord& token) {
  if (auto s = ValidateTokenName(token.name, "name"); !s.ok()) return s;
  if (token.role != Role::kAdmin && token.role != Role::kProducer &&
      token.role != Role::kWorker && token.role != Role::kViewer) {
    return Invalid("role", "must be admin, producer, worker or viewer");
  }
  if (token.role == Role::kWorker) {
    if (auto s = ValidateWorkerId(token.worker_id, "worker_id"); !s.ok()) return s;
  } else if (!token.worker_id.empty()) {
    return Invalid("worker_id", "only worker tokens act as a worker");
  }
  if (static_cast<int>(token.boards.size()) > kMaxTokenBoards) {
    return Invalid("boards", absl::StrCat("at most ", kMaxTokenBoards));
  }
  for (size_t i = 0; i < token.boards.size(); ++i) {
    if (auto s = ValidateBoardName(token.boards[i], absl::StrCat("boards[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  if (token.secret_hash.size() != 64 ||
      !std::all_of(token.secret_hash.begin(), token.secret_hash.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      })) {
    return Invalid("secret_hash", "is not a lowercase hex SHA-256");
  }
  return absl::OkStatus();
}

absl::Status ValidateNewBoard(const Board& board) {
  if (auto s = ValidateBoardName(board.name, "name"); !s.ok()) return s;
  return CheckLength("description", board.description, kMaxDescriptionChars);
}

absl::Status ValidateTaskId(absl::string_view id, absl::string_view field) {
  if (id.empty()) return Invalid(field, "must not be empty");
  if (id.size() > 64 || HasControlCharacter(id)) {
    return Invalid(field, "is not a task id");
  }
  return absl::OkStatus();
}

absl::Status ValidateNewTask(const NewTask& task) {
  if (!task.board.empty()) {
    if (auto s = ValidateBoardName(task.board, "board"); !s.ok()) return s;
  }
  if (auto s = ValidateTitle(task.title); !s.ok()) return s;
  if (auto s = ValidateBody("body", task.body); !s.ok()) return s;
  if (auto s = ValidateLabels("labels", task.labels); !s.ok()) return s;
  if (auto s = CheckLength("assignee", task.assignee, kMaxAssigneeChars); !s.ok()) {
    return s;
  }
  if (static_cast<int>(task.parent_ids.size()) > kMaxParents) {
    return Invalid("parent_ids", absl::StrFormat("has %d ids, at most %d allowed",
                                                 task.parent_ids.size(), kMaxParents));
  }
  std::set<absl::string_view> parents;
  for (size_t i = 0; i < task.parent_ids.size(); ++i) {
    std::string field = absl::StrCat("parent_ids[", i, "]");
    if (auto s = ValidateTaskId(task.parent_ids[i], field); !s.ok()) return s;
    if (!parents.insert(task.parent_ids[i]).second) {
      return Invalid(field, "duplicate parent id");
    }
  }
  if (task.max_attempts < 0 || task.max_attempts > kMaxMaxAttempts) {
    return Invalid("max_attempts", absl::StrFormat("must be 0 (default %d) to %d, got %d",
                                                   kDefaultMaxAttempts, kMaxMaxAttempts,
                                                   task.max_attempts));
  }
  if (auto s =
          CheckLength("idempotency_key", task.idempotency_key, kMaxIdempotencyKeyChars);
      !s.ok()) {
    return s;
  }
  if (task.initial_status != TaskStatus::kUnspecified &&
      task.initial_status != TaskStatus::kTriage) {
    return Invalid("initial_status", absl::StrCat("only TRIAGE may be asked for, got ",
                                                  StatusName(task.initial_status)));
  }
  return absl::OkStatus();
}

absl::Status ValidateTaskUpdate(const TaskUpdate& update) {
  if (auto s = ValidateTaskId(update.task_id, "task_id"); !s.ok()) return s;
  if (update.title.has_value()) {
    if (auto s = ValidateTitle(*update.title); !s.ok()) return s;
  }
  if (update.body.has_value()) {
    if (auto s = ValidateBody("body", *update.body); !s.ok()) return s;
  }
  if (update.assignee.has_value()) {
    if (auto s = CheckLength("assignee", *update.assignee, kMaxAssigneeChars); !s.ok()) {
      return s;
    }
  }
  if (update.labels.has_value()) {
    if (auto s = ValidateLabels("labels", *update.labels); !s.ok()) return s;
  }
  if (update.expected_version < 0) {
    return Invalid("expected_version", "must not be negative");
  }
  return absl::OkStatus();
}

absl::Status ValidateTaskMove(const TaskMove& move) {
  if (auto s = ValidateTaskId(move.task_id, "task_id"); !s.ok()) return s;
  if (move.to_status == TaskStatus::kUnspecified) {
    return Invalid("to_status", "must be set");
  }
  if (move.expected_version < 0) {
    return Invalid("expected_version", "must not be negative");
  }
  return CheckLength("reason", move.reason, kMaxReasonChars);
}

absl::Status ValidateNewComment(const NewComment& comment) {
  if (auto s = ValidateTaskId(comment.task_id, "task_id"); !s.ok()) return s;
  if (auto s = CheckLength("author", comment.author, kMaxAuthorChars); !s.ok()) {
    return s;
  }
  if (absl::StripAsciiWhitespace(comment.body).empty()) {
    return Invalid("body", "must not be empty");
  }
  return ValidateBody("body", comment.body);
}

absl::Status ValidateTaskFilter(const TaskFilter& filter, int32_t max_page_size) {
  if (!filter.board.empty()) {
    if (auto s = ValidateBoardName(filter.board, "board"); !s.ok()) return s;
  }
  if (filter.page_size < 0) {
    return Invalid("page_size", absl::StrFormat("must be 0 (default %d) or more, got %d",
                                                kDefaultPageSize, filter.page_size));
  }
  if (filter.page_size > max_page_size) {
    // Names the kanband flag: the operator, not the schema, sets this one.
    return Invalid("page_size", absl::StrFormat("at most %d (--max_page_size), got %d",
                                                max_page_size, filter.page_size));
  }
  for (size_t i = 0; i < filter.statuses.size(); ++i) {
    if (filter.statuses[i] == TaskStatus::kUnspecified) {
      return Invalid(absl::StrCat("statuses[", i, "]"), "must be set");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateWorkerId(absl::string_view id, absl::string_view field) {
  if (id.empty()) return Invalid(field, "must not be empty");
  if (HasControlCharacter(id))
    return Invalid(field, "must not contain control characters");
  return CheckLength(field, id, kMaxWorkerIdChars);
}

absl::Status ValidateClaimRequest(const ClaimRequest& request) {
  if (!request.board.empty()) {
    if (auto s = ValidateBoardName(request.board, "board"); !s.ok()) return s;
  }
  if (auto s = ValidateWorkerId(request.worker_id, "worker_id"); !s.ok()) return s;
  if (request.lease_duration != absl::ZeroDuration() &&
      (request.lease_duration < kMinLease || request.lease_duration > kMaxLease)) {
    return Invalid("lease_duration",
                   absl::StrCat("must be 0 (default 60s) or 1s to 1h, got ",
                                absl::FormatDuration(request.lease_duration)));
  }
  if (auto s = ValidateLabels("labels", request.labels); !s.ok()) return s;
  return CheckLength("assignee", request.assignee, kMaxAssigneeChars);
}

absl::Status ValidateHeldLease(const HeldLease& lease, absl::string_view field) {
  const std::string prefix = field.empty() ? "" : absl::StrCat(field, ".");
  if (auto s = ValidateTaskId(lease.task_id, prefix + "task_id"); !s.ok()) return s;
  if (lease.token.empty() || lease.token.size() > 128) {
    return Invalid(prefix + "lease_token", "must be the token ClaimTask returned");
  }
  return absl::OkStatus();
}

absl::Status ValidateOutcomeText(absl::string_view text, absl::string_view field) {
  return ValidateBody(field, text);
}

absl::Status CheckManualMove(TaskStatus from, TaskStatus to) {
  using S = TaskStatus;
  bool allowed = false;
  switch (from) {
    case S::kTriage:
      allowed = to == S::kTodo || to == S::kReady || to == S::kArchived;
      break;
    case S::kTodo:
      allowed = to == S::kReady || to == S::kBlocked || to == S::kArchived;
      break;
    case S::kReady:
      allowed =
          to == S::kTodo || to == S::kBlocked || to == S::kDone || to == S::kArchived;
      break;
    case S::kRunning:  // An operator may stop running work.
      allowed = to == S::kBlocked || to == S::kArchived;
      break;
    case S::kBlocked:
      allowed = to == S::kReady || to == S::kTodo || to == S::kDone || to == S::kArchived;
      break;
    case S::kReview:
      allowed = to == S::kDone || to == S::kReady || to == S::kTodo || to == S::kArchived;
      break;
    case S::kDone:
      allowed = to == S::kReady || to == S::kArchived;
      break;
    case S::kArchived:
    case S::kUnspecified:
      break;
  }
  if (allowed) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("cannot move a task from ", StatusName(from), " to ", StatusName(to),
                   from == S::kArchived ? " (ARCHIVED is final)" : "",
                   to == S::kRunning ? " (RUNNING is entered by claiming)" : ""));
}

}  // namespace kanban::storage
