#include "storage/migrate.h"

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/schema.h"
#include "storage/sqlite/connection.h"
#include "storage/sqlite/file_lock.h"
#include "storage/sqlite/schema.h"
#include "storage/status_macros.h"
#include "storage/task_sql.h"

namespace kanban::storage {
namespace {

// Every table and column, in an order that satisfies the foreign keys. The
// same names on both sides: the schemas are one design in two dialects.
struct Table {
  const char* name;
  std::vector<const char*> columns;
  const char* order;
};

const std::vector<Table>& Tables() {
  static const auto* tables = new std::vector<Table>{
      {"boards", {"name", "description", "created_at"}, "name"},
      {"tasks",
       {"pk", "id", "board", "title", "body", "status", "priority", "labels", "assignee",
        "created_at", "updated_at", "version", "attempt", "max_attempts", "not_before",
        "result", "last_error", "idempotency_key", "idempotency_hash"},
       "pk"},
      {"task_links", {"parent_id", "child_id"}, "parent_id, child_id"},
      {"comments", {"id", "task_id", "author", "body", "created_at"}, "id"},
      {"events",
       {"seq", "board", "task_id", "kind", "time", "task", "reason", "txn", "principal"},
       "seq"},
      {"leases",
       {"token", "task_id", "worker_id", "attempt", "duration_us", "acquired_at",
        "expires_at", "ended_at", "end_reason"},
       "token"},
      {"workers", {"worker_id", "first_seen", "last_seen", "last_board"}, "worker_id"},
      {"tokens",
       {"name", "role", "boards", "worker_id", "secret_hash", "created_at", "created_by",
        "revoked_at"},
       "name"},
  };
  return *tables;
}

absl::StatusOr<int64_t> CopyTable(SqliteConnection& from, PgConnection& to,
                                  const Table& table) {
  const std::string columns = absl::StrJoin(table.columns, ", ");
  KANBAN_ASSIGN_OR_RETURN(
      Statement read, from.Prepare(absl::StrCat("SELECT ", columns, " FROM ", table.name,
                                                " ORDER BY ", table.order)));
  std::vector<std::string> marks(table.columns.size(), "?");
  KANBAN_ASSIGN_OR_RETURN(
      Statement write,
      to.Prepare(absl::StrCat("INSERT INTO ", table.name, "(", columns, ") VALUES (",
                              absl::StrJoin(marks, ", "), ")")));
  int64_t rows = 0;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, read.Step());
    if (!row) return rows;
    // As text: PostgreSQL converts each to its column's type.
    for (size_t c = 0; c < table.columns.size(); ++c) {
      const int column = static_cast<int>(c);
      if (read.ColumnIsNull(column)) {
        write.BindNull(column + 1);
      } else {
        write.BindText(column + 1, read.ColumnText(column));
      }
    }
    KANBAN_RETURN_IF_ERROR(write.Run());
    ++rows;
  }
}

}  // namespace

absl::StatusOr<CopyReport> CopySqliteToPostgres(const std::string& sqlite_path,
                                                const std::string& postgres_target,
                                                absl::Time now) {
  if (!std::filesystem::exists(sqlite_path)) {
    return absl::FailedPreconditionError(
        absl::StrCat("from: no SQLite database at ", sqlite_path));
  }
  // A kanband serving the file holds this lock: copying under it could miss
  // its latest writes.
  KANBAN_ASSIGN_OR_RETURN(std::unique_ptr<FileLock> lock,
                          FileLock::Acquire(sqlite_path + ".lock"));
  KANBAN_ASSIGN_OR_RETURN(
      std::unique_ptr<SqliteConnection> from,
      SqliteConnection::Open(sqlite_path, SqliteConnection::Options()));
  KANBAN_RETURN_IF_ERROR(Migrate(*from, now).status());

  PgConnection::Options options;
  options.target = postgres_target;
  KANBAN_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> to, PgConnection::Open(options));
  KANBAN_RETURN_IF_ERROR(postgres::Migrate(*to, now).status());

  KANBAN_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*to));
  // Nothing to lose: only a fresh database's own default board, no events.
  KANBAN_ASSIGN_OR_RETURN(
      int64_t used,
      to->QueryInt("SELECT (SELECT count(*) FROM boards WHERE name <> 'default')"
                   " + (SELECT count(*) FROM tasks) + (SELECT count(*) FROM tokens)"
                   " + (SELECT count(*) FROM events) + (SELECT seq FROM event_counter)"));
  if (used != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("to: ", to->path(),
                     " already holds a board (tasks, tokens or events); "
                     "migrate copies into an empty database only"));
  }
  KANBAN_RETURN_IF_ERROR(to->Exec("DELETE FROM boards"));
  CopyReport report;
  for (const Table& table : Tables()) {
    KANBAN_ASSIGN_OR_RETURN(int64_t rows, CopyTable(*from, *to, table));
    report.rows.emplace_back(table.name, rows);
  }
  // The counter continues from the newest seq ever handed out (retention
  // may have deleted the newest rows' predecessors, never the counter), and
  // the identity columns from the largest key copied.
  KANBAN_ASSIGN_OR_RETURN(report.last_event_seq, sql::LastEventSeq(*from));
  KANBAN_RETURN_IF_ERROR(
      to->Exec(absl::StrCat("UPDATE event_counter SET seq = ", report.last_event_seq)));
  KANBAN_RETURN_IF_ERROR(
      to->Exec("SELECT setval(pg_get_serial_sequence('tasks', 'pk'),"
               " COALESCE((SELECT max(pk) FROM tasks), 0) + 1, false)"));
  KANBAN_RETURN_IF_ERROR(
      to->Exec("SELECT setval(pg_get_serial_sequence('comments', 'id'),"
               " COALESCE((SELECT max(id) FROM comments), 0) + 1, false)"));
  KANBAN_RETURN_IF_ERROR(txn.Commit());
  return report;
}

}  // namespace kanban::storage
