#include "storage/task_sql.h"

#include <algorithm>
#include <iterator>
#include <utility>
#include <variant>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "storage/dialect.h"
#include "storage/json_text.h"
#include "storage/rules.h"
#include "storage/status_macros.h"

namespace kanban::storage::sql {
namespace {

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

// A task's fields in one fixed order, as columns of `tasks t` and as keys of
// the JSON snapshot kept in events.task (EncodeTaskJson writes the same
// keys). ReadTask reads them in this order.
struct Field {
  const char* key;
  const char* column;  // SQL over `tasks t`.
};
constexpr Field kTaskFields[] = {
    {"id", "t.id"},
    {"board", "t.board"},
    {"title", "t.title"},
    {"body", "t.body"},
    {"status", "t.status"},
    {"priority", "t.priority"},
    {"labels", "t.labels"},
    {"assignee", "t.assignee"},
    {"parent_ids", nullptr},  // A JSON array: dialect::JsonArrayOf.
    {"created_at", "t.created_at"},
    {"updated_at", "t.updated_at"},
    {"version", "t.version"},
    {"attempt", "t.attempt"},
    {"max_attempts", "t.max_attempts"},
    {"not_before", "t.not_before"},
    {"result", "t.result"},
    {"last_error", "t.last_error"},
    {"idempotency_key", "COALESCE(t.idempotency_key, '')"},
    {"worker_id",
     "COALESCE((SELECT l.worker_id FROM leases l"
     " WHERE l.task_id = t.id AND l.ended_at IS NULL), '')"},
    {"lease_expires_at",
     "(SELECT l.expires_at FROM leases l WHERE l.task_id = t.id AND l.ended_at IS NULL)"},
};

std::string TaskColumns(Dialect d) {
  std::vector<std::string> parts;
  for (const Field& f : kTaskFields) {
    parts.push_back(f.column != nullptr
                        ? std::string(f.column)
                        : dialect::JsonArrayOf(d, "parent_id",
                                               "FROM task_links WHERE child_id = t.id"));
  }
  return absl::StrJoin(parts, ", ");
}

// The event snapshot: the task as a JSON object with kTaskFields' keys, in
// the units the columns use (times in Unix microseconds, status as number).
std::string EncodeTaskJson(const Task& t) {
  // One buffer, appended to in place: this runs for every event written.
  std::string out;
  out.reserve(256 + t.title.size() + t.body.size() + t.result.size() +
              t.last_error.size());
  auto text = [&out](absl::string_view key, absl::string_view value) {
    absl::StrAppend(&out, key);
    AppendJsonString(value, &out);
  };
  auto time = [&out](absl::string_view key, const std::optional<absl::Time>& v) {
    if (v.has_value()) {
      absl::StrAppend(&out, key, Micros(*v));
    } else {
      absl::StrAppend(&out, key, "null");
    }
  };
  text("{\"id\":", t.id);
  text(",\"board\":", t.board);
  text(",\"title\":", t.title);
  text(",\"body\":", t.body);
  absl::StrAppend(&out, ",\"status\":", static_cast<int>(t.status),
                  ",\"priority\":", t.priority, ",\"labels\":");
  AppendJsonStringArray(t.labels, &out);
  text(",\"assignee\":", t.assignee);
  out.append(",\"parent_ids\":");
  AppendJsonStringArray(t.parent_ids, &out);
  absl::StrAppend(&out, ",\"created_at\":", Micros(t.created_at),
                  ",\"updated_at\":", Micros(t.updated_at), ",\"version\":", t.version,
                  ",\"attempt\":", t.attempt, ",\"max_attempts\":", t.max_attempts);
  time(",\"not_before\":", t.not_before);
  text(",\"result\":", t.result);
  text(",\"last_error\":", t.last_error);
  text(",\"idempotency_key\":", t.idempotency_key);
  text(",\"worker_id\":", t.worker_id);
  time(",\"lease_expires_at\":", t.lease_expires_at);
  out.push_back('}');
  return out;
}

// The snapshot's fields read back as columns, in kTaskFields order.
std::string SnapshotColumns(Dialect d) {
  std::vector<std::string> parts;
  for (const Field& f : kTaskFields) {
    parts.push_back(dialect::SnapshotField(d, f.key));
  }
  return absl::StrJoin(parts, ", ");
}

absl::StatusOr<Task> ReadTask(const Statement& row, int first) {
  Task t;
  int c = first;
  t.id = row.ColumnText(c++);
  t.board = row.ColumnText(c++);
  t.title = row.ColumnText(c++);
  t.body = row.ColumnText(c++);
  int64_t status = row.ColumnInt(c++);
  if (status < 1 || status > kMaxTaskStatus) {
    return absl::DataLossError(
        absl::StrCat("task ", t.id, " has unknown status ", status));
  }
  t.status = static_cast<TaskStatus>(status);
  t.priority = static_cast<int32_t>(row.ColumnInt(c++));
  KANBAN_ASSIGN_OR_RETURN(t.labels, DecodeStringArray(row.ColumnText(c++)));
  t.assignee = row.ColumnText(c++);
  KANBAN_ASSIGN_OR_RETURN(t.parent_ids, DecodeStringArray(row.ColumnText(c++)));
  std::sort(t.parent_ids.begin(), t.parent_ids.end());
  t.created_at = FromMicros(row.ColumnInt(c++));
  t.updated_at = FromMicros(row.ColumnInt(c++));
  t.version = row.ColumnInt(c++);
  t.attempt = static_cast<int32_t>(row.ColumnInt(c++));
  t.max_attempts = static_cast<int32_t>(row.ColumnInt(c++));
  if (!row.ColumnIsNull(c)) t.not_before = FromMicros(row.ColumnInt(c));
  ++c;
  t.result = row.ColumnText(c++);
  t.last_error = row.ColumnText(c++);
  t.idempotency_key = row.ColumnText(c++);
  t.worker_id = row.ColumnText(c++);
  if (!row.ColumnIsNull(c)) t.lease_expires_at = FromMicros(row.ColumnInt(c));
  ++c;
  return t;
}

absl::StatusOr<std::vector<std::string>> Strings(Statement& stmt) {
  std::vector<std::string> out;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return out;
    out.push_back(stmt.ColumnText(0));
  }
}

absl::StatusOr<bool> Exists(Statement& stmt) { return stmt.Step(); }

// Page tokens are opaque to clients: base64url of "1:priority:created:pk",
// the keyset position after the last task returned.
std::string EncodePageToken(int32_t priority, int64_t created, int64_t pk) {
  return absl::WebSafeBase64Escape(absl::StrCat("1:", priority, ":", created, ":", pk));
}

struct PagePosition {
  int64_t priority, created, pk;
};

absl::StatusOr<PagePosition> DecodePageToken(absl::string_view token) {
  std::string raw;
  std::vector<std::string> parts;
  PagePosition pos;
  // An int32, as tasks' priorities are: a wider one would overflow when negated.
  int32_t priority = 0;
  if (absl::WebSafeBase64Unescape(token, &raw)) parts = absl::StrSplit(raw, ':');
  if (parts.size() != 4 || parts[0] != "1" || !absl::SimpleAtoi(parts[1], &priority) ||
      !absl::SimpleAtoi(parts[2], &pos.created) || !absl::SimpleAtoi(parts[3], &pos.pk)) {
    return absl::InvalidArgumentError("page_token: not a token returned by ListTasks");
  }
  pos.priority = priority;
  return pos;
}

}  // namespace

// ---- Boards ----------------------------------------------------------------

absl::StatusOr<bool> BoardExists(Connection& db, absl::string_view name) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt,
                          db.Cached("SELECT 1 FROM boards WHERE name = ?"));
  stmt.BindText(1, name);
  return stmt.Step();
}

absl::Status RequireBoard(Connection& db, absl::string_view name) {
  KANBAN_ASSIGN_OR_RETURN(bool exists, BoardExists(db, name));
  if (!exists)
    return absl::NotFoundError(absl::StrCat("board: \"", name, "\" not found"));
  return absl::OkStatus();
}

absl::Status InsertBoard(Connection& db, const Board& board) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("INSERT INTO boards(name, description, created_at) VALUES (?, ?, ?)"));
  stmt.BindText(1, board.name)
      .BindText(2, board.description)
      .BindInt(3, Micros(board.created_at));
  return stmt.Run();
}

absl::StatusOr<std::vector<Board>> ListBoards(Connection& db) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("SELECT name, description, created_at FROM boards ORDER BY name"));
  std::vector<Board> boards;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return boards;
    boards.push_back(
        Board{stmt.ColumnText(0), stmt.ColumnText(1), FromMicros(stmt.ColumnInt(2))});
  }
}

absl::StatusOr<std::vector<TaskCount>> CountTasks(Connection& db) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("SELECT board, status, COUNT(*) FROM tasks GROUP BY board, status"));
  std::vector<TaskCount> counts;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return counts;
    counts.push_back(TaskCount{stmt.ColumnText(0),
                               static_cast<TaskStatus>(stmt.ColumnInt(1)),
                               stmt.ColumnInt(2)});
  }
}

// ---- Tasks -----------------------------------------------------------------

namespace {

// Task `id` by `sql` (one of the statements below), NOT_FOUND naming `field`.
absl::StatusOr<Task> LoadTaskBy(Connection& db, const char* sql, absl::string_view id,
                                absl::string_view field) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, db.Cached(sql));
  stmt.BindText(1, id);
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat(field, ": task \"", id, "\" not found"));
  }
  return ReadTask(stmt, 0);
}

}  // namespace

absl::StatusOr<Task> LoadTask(Connection& db, absl::string_view id,
                              absl::string_view field) {
  static const dialect::PerDialect sql([](Dialect d) {
    return absl::StrCat("SELECT ", TaskColumns(d), " FROM tasks t WHERE t.id = ?");
  });
  return LoadTaskBy(db, sql.For(db), id, field);
}

absl::StatusOr<Task> LoadTaskForUpdate(Connection& db, absl::string_view id,
                                       absl::string_view field) {
  static const dialect::PerDialect sql([](Dialect d) {
    return absl::StrCat("SELECT ", TaskColumns(d), " FROM tasks t WHERE t.id = ?",
                        d == Dialect::kPostgres ? " FOR UPDATE OF t" : "");
  });
  return LoadTaskBy(db, sql.For(db), id, field);
}

absl::Status LockTask(Connection& db, absl::string_view id) {
  if (db.dialect() == Dialect::kSqlite) return absl::OkStatus();
  KANBAN_ASSIGN_OR_RETURN(Statement stmt,
                          db.Cached("SELECT 1 FROM tasks WHERE id = ? FOR UPDATE"));
  stmt.BindText(1, id);
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return absl::OkStatus();
  }
}

absl::Status LockChildren(Connection& db, absl::string_view parent) {
  if (db.dialect() == Dialect::kSqlite) return absl::OkStatus();
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("SELECT c.id FROM task_links l JOIN tasks c ON c.id = l.child_id"
                " WHERE l.parent_id = ? ORDER BY c.id FOR UPDATE OF c"));
  stmt.BindText(1, parent);
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return absl::OkStatus();
  }
}

absl::Status LockLinkGraph(Connection& db) {
  if (db.dialect() == Dialect::kSqlite) return absl::OkStatus();
  // A key of kanban's own ("klnk") and the schema's: advisory locks belong
  // to the whole database, which may hold several kanban schemas.
  return db.Exec("SELECT pg_advisory_xact_lock(1802268267, hashtext(current_schema()))");
}

absl::Status CheckTaskExists(Connection& db, absl::string_view id,
                             absl::string_view field) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, db.Cached("SELECT 1 FROM tasks WHERE id = ?"));
  stmt.BindText(1, id);
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat(field, ": task \"", id, "\" not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<IdempotentMatch>> FindByIdempotencyKey(
    Connection& db, absl::string_view board, absl::string_view key) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt,
                          db.Cached("SELECT id, idempotency_hash FROM tasks "
                                    "WHERE board = ? AND idempotency_key = ?"));
  stmt.BindText(1, board).BindText(2, key);
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::optional<IdempotentMatch>();
  return IdempotentMatch{stmt.ColumnText(0), stmt.ColumnText(1)};
}

absl::Status InsertTask(Connection& db, const Task& t, absl::string_view content_hash) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("INSERT INTO tasks(id, board, title, body, status, priority, labels,"
                " assignee, created_at, updated_at, version, attempt, max_attempts,"
                " not_before, result, last_error, idempotency_key, idempotency_hash)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  stmt.BindText(1, t.id)
      .BindText(2, t.board)
      .BindText(3, t.title)
      .BindText(4, t.body)
      .BindInt(5, static_cast<int>(t.status))
      .BindInt(6, t.priority)
      .BindText(7, EncodeStringArray(t.labels))
      .BindText(8, t.assignee)
      .BindInt(9, Micros(t.created_at))
      .BindInt(10, Micros(t.updated_at))
      .BindInt(11, t.version)
      .BindInt(12, t.attempt)
      .BindInt(13, t.max_attempts);
  if (t.not_before.has_value()) {
    stmt.BindInt(14, Micros(*t.not_before));
  } else {
    stmt.BindNull(14);
  }
  stmt.BindText(15, t.result).BindText(16, t.last_error);
  if (t.idempotency_key.empty()) {
    stmt.BindNull(17).BindNull(18);
  } else {
    stmt.BindText(17, t.idempotency_key).BindText(18, content_hash);
  }
  return stmt.Run();
}

absl::Status SaveTask(Connection& db, const Task& t) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("UPDATE tasks SET title = ?, body = ?, status = ?, priority = ?,"
                " labels = ?, assignee = ?, updated_at = ?, version = ?,"
                " attempt = ?, max_attempts = ?, not_before = ?, result = ?,"
                " last_error = ? WHERE id = ?"));
  stmt.BindText(1, t.title)
      .BindText(2, t.body)
      .BindInt(3, static_cast<int>(t.status))
      .BindInt(4, t.priority)
      .BindText(5, EncodeStringArray(t.labels))
      .BindText(6, t.assignee)
      .BindInt(7, Micros(t.updated_at))
      .BindInt(8, t.version)
      .BindInt(9, t.attempt)
      .BindInt(10, t.max_attempts);
  if (t.not_before.has_value()) {
    stmt.BindInt(11, Micros(*t.not_before));
  } else {
    stmt.BindNull(11);
  }
  stmt.BindText(12, t.result).BindText(13, t.last_error).BindText(14, t.id);
  KANBAN_RETURN_IF_ERROR(stmt.Run());
  if (db.Changes() != 1) {
    return absl::NotFoundError(absl::StrCat("task \"", t.id, "\" not found"));
  }
  return absl::OkStatus();
}

absl::Status SaveTaskState(Connection& db, const Task& t) {
  // Only the columns a status change touches: SQLite then leaves alone the
  // indexes that do not include them (tasks_board_order), one index write
  // fewer on every claim and completion.
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("UPDATE tasks SET status = ?, updated_at = ?, version = ?, attempt = ?,"
                " not_before = ?, result = ?, last_error = ? WHERE id = ?"));
  stmt.BindInt(1, static_cast<int>(t.status))
      .BindInt(2, Micros(t.updated_at))
      .BindInt(3, t.version)
      .BindInt(4, t.attempt)
      .BindOptionalInt(5, t.not_before.has_value()
                              ? std::optional<int64_t>(Micros(*t.not_before))
                              : std::nullopt)
      .BindText(6, t.result)
      .BindText(7, t.last_error)
      .BindText(8, t.id);
  KANBAN_RETURN_IF_ERROR(stmt.Run());
  if (db.Changes() != 1) {
    return absl::NotFoundError(absl::StrCat("task \"", t.id, "\" not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TaskPage> ListTasks(Connection& db, const TaskFilter& filter) {
  std::string sql = absl::StrCat("SELECT t.pk, ", TaskColumns(db.dialect()),
                                 " FROM tasks t WHERE 1 = 1");
  // Parameters in the order their '?' appear.
  std::vector<std::variant<int64_t, std::string>> params;
  if (!filter.board.empty()) {
    absl::StrAppend(&sql, " AND t.board = ?");
    params.emplace_back(filter.board);
  }
  if (!filter.statuses.empty()) {
    std::vector<std::string> marks(filter.statuses.size(), "?");
    absl::StrAppend(&sql, " AND t.status IN (", absl::StrJoin(marks, ","), ")");
    for (TaskStatus status : filter.statuses) {
      params.emplace_back(static_cast<int64_t>(status));
    }
  }
  if (!filter.assignee.empty()) {
    absl::StrAppend(&sql, " AND t.assignee = ?");
    params.emplace_back(filter.assignee);
  }
  if (!filter.label.empty()) {
    absl::StrAppend(&sql, " AND ", dialect::JsonArrayHas(db.dialect(), "t.labels", "?"));
    params.emplace_back(filter.label);
  }
  if (!filter.page_token.empty()) {
    KANBAN_ASSIGN_OR_RETURN(PagePosition pos, DecodePageToken(filter.page_token));
    // The order is priority DESC, created_at, pk: compare as (-priority, ...).
    absl::StrAppend(&sql, " AND (-t.priority, t.created_at, t.pk) > (?, ?, ?)");
    params.emplace_back(-pos.priority);
    params.emplace_back(pos.created);
    params.emplace_back(pos.pk);
  }
  int page_size = filter.page_size > 0 ? filter.page_size : kDefaultPageSize;
  absl::StrAppend(&sql, " ORDER BY t.priority DESC, t.created_at, t.pk LIMIT ",
                  page_size + 1);

  KANBAN_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(sql));
  for (size_t i = 0; i < params.size(); ++i) {
    int index = static_cast<int>(i) + 1;
    if (const auto* n = std::get_if<int64_t>(&params[i])) {
      stmt.BindInt(index, *n);
    } else {
      stmt.BindText(index, std::get<std::string>(params[i]));
    }
  }
  TaskPage page;
  int64_t last_pk = 0;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    if (static_cast<int>(page.tasks.size()) == page_size) {
      const Task& last = page.tasks.back();
      page.next_page_token =
          EncodePageToken(last.priority, Micros(last.created_at), last_pk);
      break;
    }
    last_pk = stmt.ColumnInt(0);
    KANBAN_ASSIGN_OR_RETURN(Task task, ReadTask(stmt, 1));
    page.tasks.push_back(std::move(task));
  }
  return page;
}

// ---- Dependencies ----------------------------------------------------------

absl::Status InsertLink(Connection& db, absl::string_view parent,
                        absl::string_view child) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("INSERT INTO task_links(parent_id, child_id) VALUES (?, ?)"));
  stmt.BindText(1, parent).BindText(2, child);
  return stmt.Run();
}

absl::StatusOr<bool> DeleteLink(Connection& db, absl::string_view parent,
                                absl::string_view child) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("DELETE FROM task_links WHERE parent_id = ? AND child_id = ?"));
  stmt.BindText(1, parent).BindText(2, child);
  KANBAN_RETURN_IF_ERROR(stmt.Run());
  return db.Changes() > 0;
}

absl::StatusOr<bool> LinkExists(Connection& db, absl::string_view parent,
                                absl::string_view child) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("SELECT 1 FROM task_links WHERE parent_id = ? AND child_id = ?"));
  stmt.BindText(1, parent).BindText(2, child);
  return Exists(stmt);
}

absl::StatusOr<bool> IsAncestor(Connection& db, absl::string_view ancestor,
                                absl::string_view task) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached(
          "WITH RECURSIVE up(id) AS ("
          "  SELECT parent_id FROM task_links WHERE child_id = ?1"
          "  UNION SELECT l.parent_id FROM task_links l JOIN up ON l.child_id = up.id)"
          " SELECT 1 FROM up WHERE id = ?2 LIMIT 1"));
  stmt.BindText(1, task).BindText(2, ancestor);
  return Exists(stmt);
}

absl::StatusOr<std::vector<std::string>> UnfinishedParents(Connection& db,
                                                           absl::string_view child) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("SELECT p.id FROM task_links l JOIN tasks p ON p.id = l.parent_id"
                " WHERE l.child_id = ? AND p.status NOT IN (7, 8) ORDER BY p.id"));
  stmt.BindText(1, child);
  return Strings(stmt);
}

absl::StatusOr<std::vector<std::string>> ChildrenInStatus(Connection& db,
                                                          absl::string_view parent,
                                                          TaskStatus status,
                                                          bool only_unblocked) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("SELECT c.id FROM task_links l JOIN tasks c ON c.id = l.child_id"
                " WHERE l.parent_id = ?1 AND c.status = ?2 AND (?3 = 0 OR NOT EXISTS ("
                "   SELECT 1 FROM task_links l2 JOIN tasks p ON p.id = l2.parent_id"
                "   WHERE l2.child_id = c.id AND p.status NOT IN (7, 8)))"
                " ORDER BY c.pk"));
  stmt.BindText(1, parent)
      .BindInt(2, static_cast<int>(status))
      .BindInt(3, only_unblocked ? 1 : 0);
  return Strings(stmt);
}

// ---- Comments --------------------------------------------------------------

absl::StatusOr<Comment> InsertComment(Connection& db, const NewComment& c,
                                      absl::Time now) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt, db.Cached("INSERT INTO comments(task_id, author, body, created_at)"
                                " VALUES (?, ?, ?, ?) RETURNING id"));
  stmt.BindText(1, c.task_id)
      .BindText(2, c.author)
      .BindText(3, c.body)
      .BindInt(4, Micros(now));
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::InternalError("INSERT INTO comments returned no id");
  const int64_t id = stmt.ColumnInt(0);
  KANBAN_RETURN_IF_ERROR(stmt.Run());
  return Comment{id, c.task_id, c.author, c.body, now};
}

absl::StatusOr<std::vector<Comment>> ListComments(Connection& db,
                                                  absl::string_view task_id) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("SELECT id, task_id, author, body, created_at FROM comments"
                " WHERE task_id = ? ORDER BY id"));
  stmt.BindText(1, task_id);
  std::vector<Comment> comments;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return comments;
    comments.push_back(Comment{stmt.ColumnInt(0), stmt.ColumnText(1), stmt.ColumnText(2),
                               stmt.ColumnText(3), FromMicros(stmt.ColumnInt(4))});
  }
}

// ---- Events ----------------------------------------------------------------

namespace {

constexpr int kEventColumns = 9;
// Rows per multi-row event INSERT on PostgreSQL (9 parameters each).
constexpr int kEventRowsPerInsert = 64;

// "INSERT INTO events(...) VALUES (?, ...)" for `rows` rows; the texts for
// 1..kEventRowsPerInsert rows are built once (their addresses key the
// statement cache).
const char* InsertEventsSql(int rows) {
  static const auto* texts = new std::vector<std::string>([] {
    std::vector<std::string> out;
    const std::string row = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";
    for (int n = 1; n <= kEventRowsPerInsert; ++n) {
      std::vector<std::string> rows_text(n, row);
      out.push_back(absl::StrCat(
          "INSERT INTO events(seq, board, task_id, kind, time, task, reason, txn,"
          " principal) VALUES ",
          absl::StrJoin(rows_text, ", ")));
    }
    return out;
  }());
  return (*texts)[rows - 1].c_str();
}

// Binds `event` as row `row` (0-based) of an events INSERT. `snapshot` is
// the task's JSON text, or nullptr for none; it must outlive the run.
void BindEvent(Statement& stmt, int row, const Event& event,
               const std::string* snapshot) {
  const int p = row * kEventColumns;
  stmt.BindInt(p + 1, event.seq)
      .BindText(p + 2, event.board)
      .BindText(p + 3, event.task_id)
      .BindText(p + 4, event.kind)
      .BindInt(p + 5, Micros(event.time))
      .BindText(p + 7, event.reason)
      .BindText(p + 9, event.principal);
  // NULL: the event starts its own change (txn = its seq).
  stmt.BindOptionalInt(
      p + 8, event.txn != event.seq ? std::optional<int64_t>(event.txn) : std::nullopt);
  if (snapshot != nullptr) {
    stmt.BindText(p + 6, *snapshot);
  } else {
    stmt.BindNull(p + 6);
  }
}

}  // namespace

absl::Status InsertEvents(Connection& db, const std::vector<Event>& events) {
  // SQLite runs each statement in-process: one cached single-row INSERT per
  // event is cheapest. A PostgreSQL statement is a round trip to the
  // server: up to kEventRowsPerInsert events go in one.
  const int per_insert = db.dialect() == Dialect::kSqlite ? 1 : kEventRowsPerInsert;
  std::vector<std::string> snapshots(events.size());
  for (size_t i = 0; i < events.size(); i += per_insert) {
    const int rows = static_cast<int>(std::min<size_t>(per_insert, events.size() - i));
    KANBAN_ASSIGN_OR_RETURN(Statement stmt, db.Cached(InsertEventsSql(rows)));
    for (int r = 0; r < rows; ++r) {
      const Event& event = events[i + r];
      if (event.task.has_value()) snapshots[i + r] = EncodeTaskJson(*event.task);
      BindEvent(stmt, r, event, event.task.has_value() ? &snapshots[i + r] : nullptr);
    }
    KANBAN_RETURN_IF_ERROR(stmt.Run());
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ReserveEventSeqs(Connection& db, int count) {
  if (db.dialect() == Dialect::kSqlite) {
    // The one writer holds the database's write lock: the head cannot move
    // under it, and AUTOINCREMENT's sqlite_sequence follows the explicit
    // seqs inserted.
    KANBAN_ASSIGN_OR_RETURN(int64_t head, LastEventSeq(db));
    return head + 1;
  }
  // The counter row's lock is held from here to COMMIT: the batch's last
  // statement, so that seqs become visible in order (see storage/writer.h).
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("UPDATE event_counter SET seq = seq + ?1 RETURNING seq - ?1 + 1"));
  stmt.BindInt(1, count);
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::DataLossError("event_counter: the counter row is missing");
  const int64_t first = stmt.ColumnInt(0);
  KANBAN_RETURN_IF_ERROR(stmt.Run());
  return first;
}

absl::StatusOr<int64_t> LastEventSeq(Connection& db) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached(dialect::Pick(db, "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                              "SELECT seq FROM event_counter")));
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.ColumnInt(0) : 0;
}

namespace {

std::string EventColumns(Dialect d) {
  return absl::StrCat(
      "e.seq, e.board, e.task_id, e.kind, e.time, e.reason, COALESCE(e.txn, e.seq),"
      " CASE WHEN e.task IS NULL THEN 0 ELSE 1 END, e.principal, ",
      SnapshotColumns(d));
}

absl::StatusOr<std::vector<Event>> ReadEvents(Statement& stmt) {
  std::vector<Event> events;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return events;
    Event e;
    e.seq = stmt.ColumnInt(0);
    e.board = stmt.ColumnText(1);
    e.task_id = stmt.ColumnText(2);
    e.kind = stmt.ColumnText(3);
    e.time = FromMicros(stmt.ColumnInt(4));
    e.reason = stmt.ColumnText(5);
    e.txn = stmt.ColumnInt(6);
    e.principal = stmt.ColumnText(8);
    if (stmt.ColumnInt(7) != 0) {
      KANBAN_ASSIGN_OR_RETURN(Task task, ReadTask(stmt, 9));
      e.task = std::move(task);
    }
    events.push_back(std::move(e));
  }
}

}  // namespace

absl::StatusOr<std::vector<Event>> ReadEventsAfter(Connection& db, int64_t after_seq,
                                                   int limit) {
  static const dialect::PerDialect sql([](Dialect d) {
    return absl::StrCat("SELECT ", EventColumns(d), " FROM ",
                        dialect::EventsWithSnapshot(d),
                        " WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2");
  });
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, db.Cached(sql.For(db)));
  stmt.BindInt(1, after_seq).BindInt(2, limit);
  KANBAN_ASSIGN_OR_RETURN(std::vector<Event> events, ReadEvents(stmt));
  if (static_cast<int>(events.size()) < limit || events.empty()) return events;
  // The limit may have cut a change in two: read the rest of its events.
  static const dialect::PerDialect rest([](Dialect d) {
    return absl::StrCat(
        "SELECT ", EventColumns(d), " FROM ", dialect::EventsWithSnapshot(d),
        " WHERE COALESCE(e.txn, e.seq) = ?1 AND e.seq > ?2 ORDER BY e.seq");
  });
  KANBAN_ASSIGN_OR_RETURN(Statement more, db.Cached(rest.For(db)));
  more.BindInt(1, events.back().txn).BindInt(2, events.back().seq);
  KANBAN_ASSIGN_OR_RETURN(std::vector<Event> tail, ReadEvents(more));
  std::move(tail.begin(), tail.end(), std::back_inserter(events));
  return events;
}

absl::StatusOr<int64_t> OldestEventSeq(Connection& db) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached(dialect::Pick(
          db,
          "SELECT COALESCE((SELECT min(seq) FROM events),"
          " (SELECT seq + 1 FROM sqlite_sequence WHERE name = 'events'), 1)",
          "SELECT COALESCE((SELECT min(seq) FROM events),"
          " (SELECT seq + 1 FROM event_counter), 1)")));
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.ColumnInt(0) : 1;
}

absl::StatusOr<int> DeleteOldEvents(Connection& db, absl::Time before, int64_t keep,
                                    int batch) {
  // The first seq to keep: the newest `keep` events, and nothing newer than
  // `before`; moved back to the start of its change, so no change is ever
  // half deleted; and at most `batch` rows per call, to keep the writer's
  // transaction short. Three index lookups, combined here rather than in
  // SQL, whose scalar min/max the two dialects spell differently.
  KANBAN_ASSIGN_OR_RETURN(Statement bounds,
                          db.Cached("SELECT min(seq), max(seq) FROM events"));
  KANBAN_ASSIGN_OR_RETURN(bool row, bounds.Step());
  if (!row || bounds.ColumnIsNull(0)) return 0;
  const int64_t lo = bounds.ColumnInt(0), hi = bounds.ColumnInt(1);
  KANBAN_RETURN_IF_ERROR(bounds.Run());
  KANBAN_ASSIGN_OR_RETURN(Statement recent,
                          db.Cached("SELECT min(seq) FROM events WHERE time >= ?"));
  recent.BindInt(1, Micros(before));
  KANBAN_ASSIGN_OR_RETURN(row, recent.Step());
  const int64_t first_recent =
      !row || recent.ColumnIsNull(0) ? hi + 1 : recent.ColumnInt(0);
  KANBAN_RETURN_IF_ERROR(recent.Run());
  const int64_t want = std::min(std::max(first_recent, hi - keep + 1), lo + batch);
  KANBAN_ASSIGN_OR_RETURN(
      Statement start,
      db.Cached(
          "SELECT COALESCE(txn, seq) FROM events WHERE seq >= ? ORDER BY seq LIMIT 1"));
  start.BindInt(1, want);
  KANBAN_ASSIGN_OR_RETURN(row, start.Step());
  const int64_t first_kept = row ? start.ColumnInt(0) : want;
  KANBAN_RETURN_IF_ERROR(start.Run());
  if (first_kept <= lo) return 0;
  KANBAN_ASSIGN_OR_RETURN(Statement del, db.Cached("DELETE FROM events WHERE seq < ?"));
  del.BindInt(1, first_kept);
  KANBAN_RETURN_IF_ERROR(del.Run());
  return db.Changes();
}

}  // namespace kanban::storage::sql
