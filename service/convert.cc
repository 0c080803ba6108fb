#include "service/convert.h"

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace kanban::service {
namespace {

// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range protobuf allows.
constexpr int64_t kMinSeconds = -62135596800;
constexpr int64_t kMaxSeconds = 253402300799;

std::vector<std::string> Strings(
    const google::protobuf::RepeatedPtrField<std::string>& r) {
  return std::vector<std::string>(r.begin(), r.end());
}

}  // namespace

absl::StatusOr<storage::TaskStatus> StatusFromProto(int value, absl::string_view field) {
  if (value < 0 || value > storage::kMaxTaskStatus) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": unknown status value ", value));
  }
  return static_cast<storage::TaskStatus>(value);
}

absl::StatusOr<absl::Time> TimeFromProto(const google::protobuf::Timestamp& ts,
                                         absl::string_view field) {
  if (ts.seconds() < kMinSeconds || ts.seconds() > kMaxSeconds || ts.nanos() < 0 ||
      ts.nanos() >= 1000000000) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": timestamp out of range"));
  }
  // Stored precision is microseconds.
  return absl::FromUnixMicros(ts.seconds() * 1000000 + ts.nanos() / 1000);
}

void TimeToProto(absl::Time t, google::protobuf::Timestamp* out) {
  int64_t micros = absl::ToUnixMicros(t);
  int64_t seconds = micros / 1000000;
  int64_t rest = micros % 1000000;
  if (rest < 0) {
    rest += 1000000;
    seconds -= 1;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest * 1000));
}

absl::StatusOr<absl::Duration> DurationFromProto(const google::protobuf::Duration& d,
                                                 absl::string_view field) {
  // Protobuf's own bounds: about 10,000 years, nanos with the seconds' sign.
  constexpr int64_t kMaxDurationSeconds = 315576000000;
  if (d.seconds() < 0 || d.nanos() < 0 || d.seconds() > kMaxDurationSeconds ||
      d.nanos() >= 1000000000) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be a non-negative duration"));
  }
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void DurationToProto(absl::Duration d, google::protobuf::Duration* out) {
  int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

absl::StatusOr<storage::NewTask> FromProto(const v1::CreateTaskRequest& r) {
  storage::NewTask task;
  task.board = r.board();
  task.title = r.title();
  task.body = r.body();
  task.priority = r.priority();
  task.labels = Strings(r.labels());
  task.assignee = r.assignee();
  task.parent_ids = Strings(r.parent_ids());
  task.max_attempts = r.max_attempts();
  if (r.has_not_before()) {
    KANBAN_ASSIGN_OR_RETURN(task.not_before, TimeFromProto(r.not_before(), "not_before"));
  }
  task.idempotency_key = r.idempotency_key();
  KANBAN_ASSIGN_OR_RETURN(task.initial_status,
                          StatusFromProto(r.initial_status(), "initial_status"));
  return task;
}

absl::StatusOr<storage::TaskUpdate> FromProto(const v1::UpdateTaskRequest& r) {
  storage::TaskUpdate update;
  update.task_id = r.task_id();
  if (r.has_title()) update.title = r.title();
  if (r.has_body()) update.body = r.body();
  if (r.has_priority()) update.priority = r.priority();
  if (r.has_assignee()) update.assignee = r.assignee();
  if (r.has_labels()) update.labels = Strings(r.labels().values());
  update.expected_version = r.expected_version();
  return update;
}

absl::StatusOr<storage::TaskMove> FromProto(const v1::MoveTaskRequest& r) {
  storage::TaskMove move;
  move.task_id = r.task_id();
  KANBAN_ASSIGN_OR_RETURN(move.to_status, StatusFromProto(r.to_status(), "to_status"));
  move.expected_version = r.expected_version();
  move.reason = r.reason();
  return move;
}

absl::StatusOr<storage::TaskFilter> FromProto(const v1::ListTasksRequest& r) {
  storage::TaskFilter filter;
  filter.board = r.board();
  for (int i = 0; i < r.statuses_size(); ++i) {
    KANBAN_ASSIGN_OR_RETURN(
        storage::TaskStatus status,
        StatusFromProto(r.statuses(i), absl::StrCat("statuses[", i, "]")));
    filter.statuses.push_back(status);
  }
  filter.assignee = r.assignee();
  filter.label = r.label();
  filter.page_size = r.page_size();
  filter.page_token = r.page_token();
  return filter;
}

storage::Board FromProto(const v1::CreateBoardRequest& r) {
  storage::Board board;
  board.name = r.name();
  board.description = r.description();
  return board;
}

storage::NewComment FromProto(const v1::AddCommentRequest& r) {
  return storage::NewComment{r.task_id(), r.author(), r.body()};
}

absl::StatusOr<storage::ClaimRequest> FromProto(const v1::ClaimTaskRequest& r) {
  storage::ClaimRequest claim;
  claim.board = r.board();
  claim.worker_id = r.worker_id();
  KANBAN_ASSIGN_OR_RETURN(claim.lease_duration,
                          DurationFromProto(r.lease_duration(), "lease_duration"));
  claim.labels = Strings(r.labels());
  claim.assignee = r.assignee();
  return claim;
}

std::vector<storage::HeldLease> FromProto(
    const google::protobuf::RepeatedPtrField<v1::HeldLease>& leases) {
  std::vector<storage::HeldLease> out;
  out.reserve(leases.size());
  for (const v1::HeldLease& l : leases) out.push_back({l.task_id(), l.lease_token()});
  return out;
}

void ToProto(const storage::Task& t, v1::Task* out) {
  out->set_id(t.id);
  out->set_board(t.board);
  out->set_title(t.title);
  out->set_body(t.body);
  out->set_status(static_cast<v1::Status>(t.status));
  out->set_priority(t.priority);
  out->mutable_labels()->Assign(t.labels.begin(), t.labels.end());
  out->set_assignee(t.assignee);
  out->mutable_parent_ids()->Assign(t.parent_ids.begin(), t.parent_ids.end());
  TimeToProto(t.created_at, out->mutable_created_at());
  TimeToProto(t.updated_at, out->mutable_updated_at());
  out->set_version(t.version);
  out->set_attempt(t.attempt);
  out->set_max_attempts(t.max_attempts);
  if (t.not_before.has_value()) TimeToProto(*t.not_before, out->mutable_not_before());
  out->set_result(t.result);
  out->set_last_error(t.last_error);
  out->set_idempotency_key(t.idempotency_key);
  out->set_worker_id(t.worker_id);
  if (t.lease_expires_at.has_value()) {
    TimeToProto(*t.lease_expires_at, out->mutable_lease_expires_at());
  }
}

void ToProto(const storage::Lease& l, v1::Lease* out) {
  out->set_token(l.token);
  out->set_task_id(l.task_id);
  out->set_worker_id(l.worker_id);
  out->set_attempt(l.attempt);
  TimeToProto(l.expires_at, out->mutable_expires_at());
  DurationToProto(l.duration, out->mutable_duration());
}

void ToProto(const storage::ClaimResult& result, v1::ClaimTaskResponse* out) {
  if (!result.claim.has_value()) return;
  ToProto(result.claim->task, out->mutable_task());
  ToProto(result.claim->lease, out->mutable_lease());
}

void ToProto(const std::vector<storage::LeaseStatus>& statuses,
             v1::HeartbeatResponse* out) {
  for (const storage::LeaseStatus& s : statuses) {
    v1::LeaseStatus* status = out->add_leases();
    status->set_task_id(s.task_id);
    status->set_lease_token(s.token);
    status->set_state(s.extended ? v1::LeaseStatus::EXTENDED : v1::LeaseStatus::LOST);
    if (s.extended) TimeToProto(s.expires_at, status->mutable_expires_at());
    status->set_reason(s.reason);
  }
}

void ToProto(const std::vector<storage::Worker>& workers, v1::ListWorkersResponse* out) {
  for (const storage::Worker& w : workers) {
    v1::Worker* worker = out->add_workers();
    worker->set_worker_id(w.worker_id);
    TimeToProto(w.first_seen, worker->mutable_first_seen());
    TimeToProto(w.last_seen, worker->mutable_last_seen());
    worker->mutable_task_ids()->Assign(w.task_ids.begin(), w.task_ids.end());
  }
}

void ToProto(const storage::Board& b, v1::Board* out) {
  out->set_name(b.name);
  out->set_description(b.description);
  TimeToProto(b.created_at, out->mutable_created_at());
}

void ToProto(const storage::Comment& c, v1::Comment* out) {
  out->set_id(c.id);
  out->set_task_id(c.task_id);
  out->set_author(c.author);
  out->set_body(c.body);
  TimeToProto(c.created_at, out->mutable_created_at());
}

void ToProto(const storage::Event& e, v1::Event* out) {
  out->set_seq(e.seq);
  out->set_board(e.board);
  out->set_task_id(e.task_id);
  out->set_kind(e.kind);
  TimeToProto(e.time, out->mutable_time());
  if (e.task.has_value()) ToProto(*e.task, out->mutable_task());
  out->set_reason(e.reason);
  out->set_principal(e.principal);
}

storage::TokenRecord FromProto(const v1::CreateTokenRequest& r) {
  storage::TokenRecord token;
  token.name = r.name();
  token.role = static_cast<storage::Role>(r.role());  // Checked by the Store.
  token.boards.assign(r.boards().begin(), r.boards().end());
  token.worker_id = r.worker_id();
  return token;
}

void ToProto(const storage::TokenRecord& t, v1::Token* out) {
  out->set_name(t.name);
  out->set_role(static_cast<v1::Role>(t.role));
  for (const std::string& board : t.boards) out->add_boards(board);
  out->set_worker_id(t.worker_id);
  TimeToProto(t.created_at, out->mutable_created_at());
  out->set_created_by(t.created_by);
  if (t.revoked_at.has_value()) TimeToProto(*t.revoked_at, out->mutable_revoked_at());
}

void ToProto(const std::vector<storage::TokenRecord>& tokens,
             v1::ListTokensResponse* out) {
  for (const storage::TokenRecord& t : tokens) ToProto(t, out->add_tokens());
}

void ToProto(const std::vector<storage::Board>& boards, v1::ListBoardsResponse* out) {
  for (const storage::Board& b : boards) ToProto(b, out->add_boards());
}

void ToProto(const storage::TaskPage& page, v1::ListTasksResponse* out) {
  for (const storage::Task& t : page.tasks) ToProto(t, out->add_tasks());
  out->set_next_page_token(page.next_page_token);
}

void ToProto(const std::vector<storage::Comment>& comments,
             v1::ListCommentsResponse* out) {
  for (const storage::Comment& c : comments) ToProto(c, out->add_comments());
}

}  // namespace kanban::service
