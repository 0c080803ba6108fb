// The PostgreSQL backend's connection: RAII over libpq, read like
// storage/sqlite/connection.h. A PgConnection owns its PGconn*, its
// statements clear their results, statements kept in the connection's cache
// are prepared once per session (and again after a reconnect). SQLSTATE
// classes map to absl::Status in one table (PgStatusCode). No message
// carries the password or a bound value: only libpq's primary message, the
// SQLSTATE and the statement's text.
//
// Thread-safety: not thread-safe; each connection is used by one thread at
// a time (the writer thread, or one reader thread).
#ifndef KANBAN_STORAGE_POSTGRES_CONNECTION_H_
#define KANBAN_STORAGE_POSTGRES_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/db.h"

struct pg_conn;
struct pg_result;

namespace kanban::storage {

// True when `target` (a --db value) names a PostgreSQL database: a
// postgresql:// or postgres:// URI, or a libpq key=value string with host=
// or dbname=. Anything else is a SQLite path.
bool IsPostgresTarget(absl::string_view target);

// `target` without its password, for logs and GetServerInfo:
// postgresql://USER@HOST:PORT/DB as far as the string names them.
std::string RedactPostgresTarget(absl::string_view target);

// The status code for a SQLSTATE (five characters), chosen the way a client
// would branch: unique violations ALREADY_EXISTS, other integrity violations
// FAILED_PRECONDITION, serialization failures and deadlocks ABORTED (the
// writer retries those itself), lost connections and shutdowns UNAVAILABLE,
// disk full RESOURCE_EXHAUSTED, data corruption DATA_LOSS, bad data
// INVALID_ARGUMENT, anything else INTERNAL.
absl::StatusCode PgStatusCode(absl::string_view sqlstate);

// The SQLSTATE behind a status made by the PostgreSQL connection, or "".
std::string PgSqlState(const absl::Status& status);

class PgConnection final : public Connection {
 public:
  struct Options {
    std::string target;  // URI or key=value string. Required.
    // Statements run at the start of every session (after a reconnect too),
    // e.g. "SET synchronous_commit = on". Default: none.
    std::vector<std::string> session_sql;
    // Seconds libpq waits for a connection, unless `target` says otherwise.
    // Default: 10.
    int connect_timeout_s = 10;
  };

  // Connects. UNAVAILABLE naming host, port and database (never the
  // password) when the server cannot be reached or refuses.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Open(Options options);
  ~PgConnection() override;

  Dialect dialect() const override { return Dialect::kPostgres; }
  absl::Status Exec(absl::string_view sql) override;
  absl::StatusOr<Statement> Prepare(absl::string_view sql) override;
  absl::StatusOr<Statement> Cached(const char* sql) override;
  int Changes() const override { return changes_; }
  int64_t TotalChanges() const override { return total_changes_; }
  bool InTransaction() const override;
  bool TransactionFailed() const override;
  const char* BeginSql() const override { return "BEGIN"; }
  // Reconnects a connection that broke, at most every so often (backoff
  // from 100 ms doubling to 2 s); UNAVAILABLE while it cannot.
  absl::Status EnsureConnected() override;
  const std::string& path() const override { return description_; }

  // The server's version, e.g. "15.18".
  std::string ServerVersion() const;

  // ---- LISTEN/NOTIFY (storage/postgres/event_tailer.h). ----
  // The connection's socket, for poll(2) (readable: the server sent
  // something, such as a notification); -1 when there is none.
  int socket() const;
  // Reads what the server sent, without blocking, and returns how many
  // notifications from other sessions arrived since the last call (this
  // session's own are dropped). UNAVAILABLE when the connection broke.
  absl::StatusOr<int> TakeNotifications();

  // ---- For PgStatement. ----
  pg_conn* handle() const { return conn_; }
  // Bumped at every reconnect: statements prepared before must be again.
  int64_t session() const { return session_; }
  // Counts the rows an INSERT, UPDATE or DELETE changed (Changes).
  void NoteResult(const pg_result* result);
  // The status for a failed call on this connection (libpq's message).
  absl::Status Error(const pg_result* result, absl::string_view sql) const;

 private:
  PgConnection(pg_conn* conn, Options options);
  absl::Status StartSession();

  pg_conn* conn_;
  const Options options_;
  const std::string description_;
  int64_t session_ = 0;
  int next_statement_ = 0;
  absl::flat_hash_map<const char*, std::unique_ptr<StatementImpl>> cache_;
  int changes_ = 0;
  int64_t total_changes_ = 0;
  absl::Time next_reconnect_ = absl::InfinitePast();
  absl::Duration reconnect_backoff_ = absl::Milliseconds(100);
};

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_POSTGRES_CONNECTION_H_
