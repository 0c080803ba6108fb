#include "tests/crash/task_state.h"

#include <algorithm>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kanban::crash {
namespace {

int64_t Micros(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000000 + ts.nanos() / 1000;
}

auto Tie(const TaskState& s) {
  return std::tie(s.id, s.status, s.title, s.body, s.priority, s.labels, s.assignee,
                  s.parent_ids, s.version, s.attempt, s.max_attempts, s.result,
                  s.last_error, s.idempotency_key, s.worker_id, s.created_at,
                  s.updated_at, s.not_before, s.lease_expires_at);
}

template <typename T>
void DiffField(std::string& out, const char* name, const T& a, const T& b) {
  if (a == b) return;
  absl::StrAppend(&out, out.empty() ? "" : "; ", name, ": ", a, " != ", b);
}

// The JSON-array-to-list and lease look-ups are the same for both sources;
// only where a field comes from differs.
std::string Columns(bool snapshot) {
  auto field = [&](const char* key, const std::string& column) {
    return snapshot ? absl::StrCat("json_extract(e.task, '$.", key, "')") : column;
  };
  auto list = [&](const char* key, const std::string& row_sql) {
    return snapshot ? absl::StrCat(
                          "COALESCE((SELECT group_concat(value, ',') FROM "
                          "json_each(e.task, '$.",
                          key, "')), '')")
                    : row_sql;
  };
  const std::string active_lease =
      "FROM leases l WHERE l.task_id = t.id AND l.ended_at IS NULL";
  std::vector<std::string> cols = {
      field("id", "t.id"),
      field("status", "t.status"),
      field("title", "t.title"),
      field("body", "t.body"),
      field("priority", "t.priority"),
      list("labels",
           "COALESCE((SELECT group_concat(value, ',') FROM json_each(t.labels)), '')"),
      field("assignee", "t.assignee"),
      list("parent_ids",
           "COALESCE((SELECT group_concat(parent_id, ',') FROM (SELECT parent_id FROM "
           "task_links WHERE child_id = t.id ORDER BY parent_id)), '')"),
      field("version", "t.version"),
      field("attempt", "t.attempt"),
      field("max_attempts", "t.max_attempts"),
      field("result", "t.result"),
      field("last_error", "t.last_error"),
      field("idempotency_key", "COALESCE(t.idempotency_key, '')"),
      field("worker_id",
            absl::StrCat("COALESCE((SELECT l.worker_id ", active_lease, "), '')")),
      field("created_at", "t.created_at"),
      field("updated_at", "t.updated_at"),
      absl::StrCat("COALESCE(", field("not_before", "t.not_before"), ", -1)"),
      absl::StrCat("COALESCE(",
                   field("lease_expires_at",
                         absl::StrCat("(SELECT l.expires_at ", active_lease, ")")),
                   ", -1)"),
  };
  return absl::StrJoin(cols, ", ");
}

}  // namespace

bool TaskState::operator==(const TaskState& other) const {
  return Tie(*this) == Tie(other);
}

TaskState FromProto(const kanban::v1::Task& t) {
  TaskState s;
  s.id = t.id();
  s.status = t.status();
  s.title = t.title();
  s.body = t.body();
  s.priority = t.priority();
  s.labels = absl::StrJoin(t.labels(), ",");
  s.assignee = t.assignee();
  std::vector<std::string> parents(t.parent_ids().begin(), t.parent_ids().end());
  std::sort(parents.begin(), parents.end());
  s.parent_ids = absl::StrJoin(parents, ",");
  s.version = t.version();
  s.attempt = t.attempt();
  s.max_attempts = t.max_attempts();
  s.result = t.result();
  s.last_error = t.last_error();
  s.idempotency_key = t.idempotency_key();
  s.worker_id = t.worker_id();
  s.created_at = Micros(t.created_at());
  s.updated_at = Micros(t.updated_at());
  if (t.has_not_before()) s.not_before = Micros(t.not_before());
  if (t.has_lease_expires_at()) s.lease_expires_at = Micros(t.lease_expires_at());
  return s;
}

std::string Diff(const TaskState& a, const TaskState& b) {
  std::string out;
  DiffField(out, "id", a.id, b.id);
  DiffField(out, "status", a.status, b.status);
  DiffField(out, "title", a.title, b.title);
  DiffField(out, "body", a.body, b.body);
  DiffField(out, "priority", a.priority, b.priority);
  DiffField(out, "labels", a.labels, b.labels);
  DiffField(out, "assignee", a.assignee, b.assignee);
  DiffField(out, "parent_ids", a.parent_ids, b.parent_ids);
  DiffField(out, "version", a.version, b.version);
  DiffField(out, "attempt", a.attempt, b.attempt);
  DiffField(out, "max_attempts", a.max_attempts, b.max_attempts);
  DiffField(out, "result", a.result, b.result);
  DiffField(out, "last_error", a.last_error, b.last_error);
  DiffField(out, "idempotency_key", a.idempotency_key, b.idempotency_key);
  DiffField(out, "worker_id", a.worker_id, b.worker_id);
  DiffField(out, "created_at", a.created_at, b.created_at);
  DiffField(out, "updated_at", a.updated_at, b.updated_at);
  DiffField(out, "not_before", a.not_before, b.not_before);
  DiffField(out, "lease_expires_at", a.lease_expires_at, b.lease_expires_at);
  return out;
}

const std::string& RowColumns() {
  static const auto* s = new std::string(Columns(/*snapshot=*/false));
  return *s;
}

const std::string& SnapshotColumns() {
  static const auto* s = new std::string(Columns(/*snapshot=*/true));
  return *s;
}

TaskState ReadTaskState(const storage::Statement& row, int first) {
  TaskState s;
  int c = first;
  s.id = row.ColumnText(c++);
  s.status = row.ColumnInt(c++);
  s.title = row.ColumnText(c++);
  s.body = row.ColumnText(c++);
  s.priority = row.ColumnInt(c++);
  s.labels = row.ColumnText(c++);
  s.assignee = row.ColumnText(c++);
  s.parent_ids = row.ColumnText(c++);
  s.version = row.ColumnInt(c++);
  s.attempt = row.ColumnInt(c++);
  s.max_attempts = row.ColumnInt(c++);
  s.result = row.ColumnText(c++);
  s.last_error = row.ColumnText(c++);
  s.idempotency_key = row.ColumnText(c++);
  s.worker_id = row.ColumnText(c++);
  s.created_at = row.ColumnInt(c++);
  s.updated_at = row.ColumnInt(c++);
  s.not_before = row.ColumnInt(c++);
  s.lease_expires_at = row.ColumnInt(c++);
  return s;
}

}  // namespace kanban::crash
