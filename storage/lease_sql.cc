#include "storage/lease_sql.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/dialect.h"
#include "storage/json_text.h"
#include "storage/status_macros.h"

namespace kanban::storage::sql {
namespace {

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

#define KANBAN_LEASE_COLUMNS                                                \
  "token, task_id, worker_id, attempt, duration_us, expires_at, ended_at, " \
  "end_reason"

LeaseRow ReadLease(const Statement& s) {
  LeaseRow row;
  row.lease.token = s.ColumnText(0);
  row.lease.task_id = s.ColumnText(1);
  row.lease.worker_id = s.ColumnText(2);
  row.lease.attempt = static_cast<int32_t>(s.ColumnInt(3));
  row.lease.duration = absl::Microseconds(s.ColumnInt(4));
  row.lease.expires_at = FromMicros(s.ColumnInt(5));
  if (!s.ColumnIsNull(6)) row.ended_at = FromMicros(s.ColumnInt(6));
  row.end_reason = s.ColumnText(7);
  return row;
}

absl::StatusOr<std::optional<LeaseRow>> OneLease(Statement& stmt) {
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::optional<LeaseRow>();
  return ReadLease(stmt);
}

}  // namespace

absl::Status InsertLease(Connection& db, const Lease& l, absl::Time acquired_at) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("INSERT INTO leases(token, task_id, worker_id, attempt, duration_us,"
                " acquired_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)"));
  stmt.BindText(1, l.token)
      .BindText(2, l.task_id)
      .BindText(3, l.worker_id)
      .BindInt(4, l.attempt)
      .BindInt(5, absl::ToInt64Microseconds(l.duration))
      .BindInt(6, Micros(acquired_at))
      .BindInt(7, Micros(l.expires_at));
  return stmt.Run();
}

absl::StatusOr<std::optional<LeaseRow>> FindLeaseByToken(Connection& db,
                                                         absl::string_view token) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, db.Cached("SELECT " KANBAN_LEASE_COLUMNS
                                                    " FROM leases WHERE token = ?"));
  stmt.BindText(1, token);
  return OneLease(stmt);
}

absl::StatusOr<std::optional<LeaseRow>> FindActiveLease(Connection& db,
                                                        absl::string_view task_id) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt, db.Cached("SELECT " KANBAN_LEASE_COLUMNS
                                " FROM leases WHERE task_id = ? AND ended_at IS NULL"));
  stmt.BindText(1, task_id);
  return OneLease(stmt);
}

absl::Status EndLease(Connection& db, absl::string_view token, absl::Time now,
                      absl::string_view reason) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt,
                          db.Cached("UPDATE leases SET ended_at = ?, end_reason = ?"
                                    " WHERE token = ? AND ended_at IS NULL"));
  stmt.BindInt(1, Micros(now)).BindText(2, reason).BindText(3, token);
  return stmt.Run();
}

absl::StatusOr<std::map<std::string, Extended>> ExtendLeases(
    Connection& db, absl::string_view worker_id, const std::vector<std::string>& tokens,
    absl::Time now) {
  std::map<std::string, Extended> extended;
  if (db.dialect() == Dialect::kPostgres) {
    // One round trip for the whole list.
    KANBAN_ASSIGN_OR_RETURN(
        Statement stmt,
        db.Cached("UPDATE leases SET expires_at = ?1 + duration_us WHERE token IN"
                  " (SELECT e.value FROM json_array_elements_text(CAST(?3 AS json)) AS "
                  "e(value))"
                  " AND worker_id = ?2 AND ended_at IS NULL AND expires_at > ?1"
                  " RETURNING token, task_id, expires_at"));
    stmt.BindInt(1, Micros(now))
        .BindText(2, worker_id)
        .BindText(3, EncodeStringArray(tokens));
    while (true) {
      KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) return extended;
      extended[stmt.ColumnText(0)] = {stmt.ColumnText(1), FromMicros(stmt.ColumnInt(2))};
    }
  }
  // SQLite: a statement costs no round trip, and every way to pass a list
  // cost more than one statement per lease (measured: `token IN (SELECT
  // value FROM json_each(?))` builds a temporary table per call, four times
  // the whole heartbeat; testing each of the worker's leases against the
  // JSON list parses it once per lease).
  for (const std::string& token : tokens) {
    if (extended.count(token) > 0) continue;
    {
      KANBAN_ASSIGN_OR_RETURN(
          Statement stmt,
          db.Cached("UPDATE leases SET expires_at = ?1 + duration_us WHERE token = ?3"
                    " AND worker_id = ?2 AND ended_at IS NULL AND expires_at > ?1"));
      stmt.BindInt(1, Micros(now)).BindText(2, worker_id).BindText(3, token);
      KANBAN_RETURN_IF_ERROR(stmt.Run());
      if (db.Changes() == 0) continue;
    }
    KANBAN_ASSIGN_OR_RETURN(
        Statement stmt,
        db.Cached("SELECT task_id, expires_at FROM leases WHERE token = ?"));
    stmt.BindText(1, token);
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (row) extended[token] = {stmt.ColumnText(0), FromMicros(stmt.ColumnInt(1))};
  }
  return extended;
}

absl::StatusOr<std::vector<LeaseRow>> ExpiredLeases(Connection& db, absl::Time now,
                                                    int limit) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached(
          "SELECT " KANBAN_LEASE_COLUMNS " FROM leases"
          " WHERE ended_at IS NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?"));
  stmt.BindInt(1, Micros(now)).BindInt(2, limit);
  std::vector<LeaseRow> rows;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return rows;
    rows.push_back(ReadLease(stmt));
  }
}

absl::StatusOr<int> DeleteEndedLeases(Connection& db, absl::Time before) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("DELETE FROM leases WHERE ended_at IS NOT NULL AND ended_at < ?"));
  stmt.BindInt(1, Micros(before));
  KANBAN_RETURN_IF_ERROR(stmt.Run());
  return db.Changes();
}

absl::StatusOr<std::optional<std::string>> FindClaimable(
    Connection& db, absl::string_view board, absl::string_view assignee,
    const std::vector<std::string>& labels, absl::Time now) {
  // One fixed statement for every filter: the required labels arrive as a
  // JSON array, so the statement is prepared once. It walks the
  // (board, status, priority DESC, created_at, pk) index in claim order.
  // On PostgreSQL a row another replica's writer is claiming is skipped,
  // not waited for.
  static const dialect::PerDialect sql([](Dialect d) {
    return absl::StrCat(
        "SELECT t.id FROM tasks t"
        " WHERE t.board = ?1 AND t.status = 3"
        " AND (t.not_before IS NULL OR t.not_before <= ?2)"
        " AND (t.assignee = '' OR t.assignee = ?3) AND ",
        dialect::JsonArrayContainsAll(d, "t.labels", "?4"),
        " ORDER BY t.priority DESC, t.created_at, t.pk LIMIT 1",
        d == Dialect::kPostgres ? " FOR UPDATE OF t SKIP LOCKED" : "");
  });
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, db.Cached(sql.For(db)));
  stmt.BindText(1, board)
      .BindInt(2, Micros(now))
      .BindText(3, assignee)
      .BindText(4, EncodeStringArray(labels));
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::optional<std::string>();
  return stmt.ColumnText(0);
}

absl::StatusOr<std::optional<absl::Time>> NextReadyAt(Connection& db,
                                                      absl::string_view board,
                                                      absl::Time now) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt, db.Cached("SELECT min(not_before) FROM tasks"
                                " WHERE board = ? AND status = 3 AND not_before > ?"));
  stmt.BindText(1, board).BindInt(2, Micros(now));
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row || stmt.ColumnIsNull(0)) return std::optional<absl::Time>();
  return FromMicros(stmt.ColumnInt(0));
}

absl::Status TouchWorker(Connection& db, absl::string_view worker_id, absl::Time now,
                         absl::string_view board) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached("INSERT INTO workers(worker_id, first_seen, last_seen, last_board)"
                " VALUES (?1, ?2, ?2, ?3) ON CONFLICT(worker_id) DO UPDATE SET"
                " last_seen = CASE WHEN workers.last_seen > ?2 THEN workers.last_seen"
                "   ELSE ?2 END,"
                " last_board = CASE WHEN ?3 = '' THEN workers.last_board ELSE ?3 END"));
  stmt.BindText(1, worker_id).BindInt(2, Micros(now)).BindText(3, board);
  return stmt.Run();
}

absl::StatusOr<std::vector<Worker>> ListWorkers(Connection& db, absl::string_view board) {
  static const dialect::PerDialect sql([](Dialect d) {
    return absl::StrCat(
        "SELECT w.worker_id, w.first_seen, w.last_seen, ",
        dialect::JsonArrayOf(d, "l.task_id",
                             "FROM leases l WHERE l.worker_id = w.worker_id"
                             " AND l.ended_at IS NULL"),
        " FROM workers w WHERE ?1 = '' OR w.last_board = ?1 OR EXISTS ("
        "   SELECT 1 FROM leases l JOIN tasks t ON t.id = l.task_id"
        "   WHERE l.worker_id = w.worker_id AND l.ended_at IS NULL"
        "   AND t.board = ?1)"
        " ORDER BY w.last_seen DESC, w.worker_id");
  });
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, db.Cached(sql.For(db)));
  stmt.BindText(1, board);
  std::vector<Worker> workers;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return workers;
    Worker w;
    w.worker_id = stmt.ColumnText(0);
    w.first_seen = FromMicros(stmt.ColumnInt(1));
    w.last_seen = FromMicros(stmt.ColumnInt(2));
    KANBAN_ASSIGN_OR_RETURN(w.task_ids, DecodeStringArray(stmt.ColumnText(3)));
    workers.push_back(std::move(w));
  }
}

}  // namespace kanban::storage::sql
