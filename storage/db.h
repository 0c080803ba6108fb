// The storage contract's view of a SQL database: a connection, a prepared
// statement, a transaction and a savepoint, implemented once per backend
// (storage/sqlite/ and storage/postgres/). The board's rules (mutations.cc,
// lease_mutations.cc) and the row-level SQL (task_sql.cc, lease_sql.cc) are
// written once against these types; where the two SQL dialects differ, the
// difference is a named fragment in storage/dialect.h.
//
// Thread-safety: none of these classes is thread-safe; each connection is
// used by one thread at a time (the writer thread, or one reader thread).
#ifndef KANBAN_STORAGE_DB_H_
#define KANBAN_STORAGE_DB_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kanban::storage {

enum class Dialect { kSqlite, kPostgres };

// A failed fsync: after it nothing the page cache or the file says can be
// trusted (the kernel may have dropped the dirty pages it could not write,
// and a retried fsync would then "succeed"), so the writer stops for good.
// A backend marks such a status; the writer asks.
absl::Status MarkSyncFailure(absl::Status status);
bool IsSyncFailure(const absl::Status& status);

// A write that lost a race with another writer of the same database (on
// PostgreSQL: a serialization failure, a deadlock, or a unique key another
// transaction inserted first, as a check-then-insert does): the whole
// transaction is void, and running it again decides it against the other's
// committed result. A backend marks such a status; the writer retries.
absl::Status MarkWriteConflict(absl::Status status);
bool IsWriteConflict(const absl::Status& status);
// The status without the mark: a conflict that proved to be the caller's own.
absl::Status ClearWriteConflict(absl::Status status);

// A backend's prepared statement. Parameters are 1-based, columns 0-based.
class StatementImpl {
 public:
  virtual ~StatementImpl() = default;
  // `copy` false: `value` stays alive and unchanged until the last Step.
  virtual void BindInt(int index, int64_t value) = 0;
  virtual void BindText(int index, absl::string_view value, bool copy) = 0;
  virtual void BindNull(int index) = 0;
  virtual absl::StatusOr<bool> Step() = 0;
  virtual int64_t ColumnInt(int column) const = 0;
  virtual std::string ColumnText(int column) const = 0;
  virtual bool ColumnIsNull(int column) const = 0;
  // Readies a cached statement for its next use: bindings cleared, the
  // result dropped.
  virtual void Reset() = 0;
  // The first bind error, if any (Step reports it again).
  const absl::Status& bind_status() const { return bind_status_; }

 protected:
  absl::Status bind_status_;
};

// A prepared statement, owned (finalized on destruction) or borrowed from
// its connection's cache (reset on destruction). Movable, not copyable.
class Statement {
 public:
  Statement() = default;
  Statement(std::unique_ptr<StatementImpl> owned);
  // Borrowed from a cache that outlives the statement.
  explicit Statement(StatementImpl* borrowed) : impl_(borrowed), owned_(false) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& BindInt(int index, int64_t value) {
    impl_->BindInt(index, value);
    return *this;
  }
  // Binds `value` without copying it: it must stay alive and unchanged
  // until the statement's last Step (true of anything the caller holds
  // across binding and stepping, the only way statements are used here).
  Statement& BindText(int index, absl::string_view value) {
    impl_->BindText(index, value, /*copy=*/false);
    return *this;
  }
  Statement& BindText(int index, const char* value) {
    return BindText(index, absl::string_view(value));
  }
  // A temporary is copied, as it dies before the statement runs.
  Statement& BindText(int index, std::string&& value) {
    impl_->BindText(index, value, /*copy=*/true);
    return *this;
  }
  Statement& BindNull(int index) {
    impl_->BindNull(index);
    return *this;
  }
  // Binds NULL when `value` is empty.
  Statement& BindOptionalInt(int index, std::optional<int64_t> value) {
    return value.has_value() ? BindInt(index, *value) : BindNull(index);
  }

  // Advances one row. Returns true when a row is ready, false when done.
  absl::StatusOr<bool> Step() { return impl_->Step(); }
  // Steps to completion, discarding rows. For INSERT/UPDATE/DELETE.
  absl::Status Run();

  int64_t ColumnInt(int column) const { return impl_->ColumnInt(column); }
  std::string ColumnText(int column) const { return impl_->ColumnText(column); }
  bool ColumnIsNull(int column) const { return impl_->ColumnIsNull(column); }

  const absl::Status& bind_status() const { return impl_->bind_status(); }

 private:
  void Release();
  StatementImpl* impl_ = nullptr;
  bool owned_ = false;
};

// One connection to the database. Not thread-safe.
class Connection {
 public:
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  virtual Dialect dialect() const = 0;

  // Runs one or more statements without parameters.
  virtual absl::Status Exec(absl::string_view sql) = 0;
  // Prepares a one-off statement, owned by the caller. Parameters are
  // written `?` or `?N` in either dialect.
  virtual absl::StatusOr<Statement> Prepare(absl::string_view sql) = 0;
  // Returns a statement prepared once per connection and reused (for hot
  // statements). `sql` must outlive the connection (a string literal, or a
  // static string): its address is the key. The returned Statement is reset
  // when it is destroyed.
  virtual absl::StatusOr<Statement> Cached(const char* sql) = 0;

  // Runs a cached statement (see Cached) to completion.
  absl::Status RunCached(const char* sql);
  // Runs `sql` and returns the first column of the first row (NOT_FOUND
  // when there is no row).
  absl::StatusOr<int64_t> QueryInt(absl::string_view sql);
  absl::StatusOr<std::string> QueryText(absl::string_view sql);

  // Rows changed by the last INSERT/UPDATE/DELETE that completed.
  virtual int Changes() const = 0;
  // Rows inserted, updated or deleted by statements that completed since
  // the connection opened.
  virtual int64_t TotalChanges() const = 0;
  // True while a transaction is open (even one that failed and awaits its
  // rollback).
  virtual bool InTransaction() const = 0;
  // True when a statement failed inside the open transaction in a way that
  // only a rollback (of the transaction or to a savepoint) can clear:
  // PostgreSQL aborts the whole transaction on any error. Always false on
  // SQLite, where a failed statement undoes only itself.
  virtual bool TransactionFailed() const { return false; }

  // The statement that opens a write transaction: SQLite takes the write
  // lock at once (BEGIN IMMEDIATE), so a batch never fails half-way on it.
  virtual const char* BeginSql() const = 0;

  // Writer hooks, no-ops where the backend has nothing to do. Runs the
  // checkpoint the last commit asked for (SQLite's WAL).
  virtual absl::Status RunDueCheckpoint() { return absl::OkStatus(); }
  // Keep the files as they are when this connection closes: for a database
  // no longer trusted.
  virtual void DisableCheckpointOnClose() {}
  // Called by the writer before each batch: a backend whose connection can
  // drop (a server) reconnects here, returning UNAVAILABLE while it cannot.
  virtual absl::Status EnsureConnected() { return absl::OkStatus(); }

  // What the connection is to, for messages: a file path, or a server's
  // host, port and database (never a password).
  virtual const std::string& path() const = 0;

 protected:
  Connection() = default;
};

// BEGIN ... COMMIT, rolled back on destruction unless committed.
class Transaction {
 public:
  // Errors from BEGIN are returned by Begin.
  static absl::StatusOr<Transaction> Begin(Connection& db);
  Transaction(Transaction&& other) noexcept;
  // Rolls this one back first, if still open.
  Transaction& operator=(Transaction&& other) noexcept;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  absl::Status Commit();
  absl::Status Rollback();

 private:
  explicit Transaction(Connection* db) : db_(db) {}
  Connection* db_;  // nullptr once committed or rolled back.
};

// SAVEPOINT inside a transaction, rolled back to (and released) on
// destruction unless released.
class Savepoint {
 public:
  static absl::StatusOr<Savepoint> Begin(Connection& db);
  Savepoint(Savepoint&& other) noexcept;
  Savepoint(const Savepoint&) = delete;
  Savepoint& operator=(const Savepoint&) = delete;
  ~Savepoint();

  // Keeps the changes made since Begin.
  absl::Status Release();
  // Undoes the changes made since Begin.
  absl::Status Rollback();

 private:
  explicit Savepoint(Connection* db) : db_(db) {}
  Connection* db_;
};

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_DB_H_
