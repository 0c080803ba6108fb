// RAII wrapper over the SQLite C API. No other file calls sqlite3_* directly.
// A Connection owns its sqlite3*, a Statement finalizes (or, when borrowed
// from the connection's cache, resets) itself, a Transaction rolls back
// unless committed. SQLite result codes map to absl::Status in one table.
//
// Thread-safety: none of these classes is thread-safe; each connection is
// used by one thread at a time (the writer thread, or one reader thread).
#ifndef KANBAN_STORAGE_SQLITE_H_
#define KANBAN_STORAGE_SQLITE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace kanban::storage {

// Maps a SQLite result code to the most specific absl::StatusCode and builds
// a message from the library's error text and `sql` (never user data).
// The status carries the (extended) result code as a payload, see SqliteCode.
absl::Status SqliteError(int rc, sqlite3* db, absl::string_view sql);

// The SQLite extended result code behind a status made by SqliteError, or 0
// for any other status (OK included).
int SqliteCode(const absl::Status& status);

// True for the errors after which nothing the page cache or the file says
// can be trusted: a failed fsync (the kernel may have dropped the dirty
// pages it could not write, and a retried fsync would then "succeed").
bool IsSyncFailure(const absl::Status& status);

// A prepared statement. Movable, not copyable. Columns and parameters are
// 1-based for Bind* (as in SQLite) and 0-based for Column* (as in SQLite).
class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& BindInt(int index, int64_t value);
  // Binds `value` without copying it: it must stay alive and unchanged
  // until the statement's last Step (true of anything the caller holds
  // across binding and stepping, the only way statements are used here).
  Statement& BindText(int index, absl::string_view value);
  Statement& BindText(int index, const char* value) {
    return BindText(index, absl::string_view(value));
  }
  // A temporary is copied, as it dies before the statement runs.
  Statement& BindText(int index, std::string&& value);
  Statement& BindNull(int index);
  // Binds NULL when `value` is empty.
  Statement& BindOptionalInt(int index, std::optional<int64_t> value);

  // Advances one row. Returns true when a row is ready, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion, discarding rows. For INSERT/UPDATE/DELETE.
  absl::Status Run();

  int64_t ColumnInt(int column) const;
  std::string ColumnText(int column) const;
  bool ColumnIsNull(int column) const;

  // The first bind error, if any (reported again by Step/Run).
  const absl::Status& bind_status() const { return bind_status_; }

 private:
  friend class Connection;
  Statement(sqlite3* db, sqlite3_stmt* stmt, bool owned, const char* sql);
  void Release();
  void NoteBind(int rc);

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  bool owned_ = true;  // false: borrowed from a connection cache; reset only.
  const char* sql_ = "";
  absl::Status bind_status_;
};

// One SQLite connection. Not thread-safe.
class Connection {
 public:
  struct Options {
    bool read_only = false;      // Default: false (read-write, create if missing).
    int busy_timeout_ms = 5000;  // Default: 5 s.
    // SQLite VFS name; empty for the default VFS. Tests inject faults here.
    std::string vfs;
  };

  // Opens `path`. Errors: the mapped SQLite error (FAILED_PRECONDITION when
  // the file cannot be opened).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path,
                                                          const Options& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one or more statements without parameters.
  absl::Status Exec(absl::string_view sql);
  // Prepares a one-off statement, owned by the caller.
  absl::StatusOr<Statement> Prepare(absl::string_view sql);
  // Returns a statement prepared once per connection and reused (for hot
  // statements). `sql` must be a string literal: its address is the key.
  // The returned Statement is reset (bindings cleared) when it is destroyed.
  absl::StatusOr<Statement> Cached(const char* sql);

  // Runs a cached statement (see Cached) to completion.
  absl::Status RunCached(const char* sql);

  // Runs `sql` and returns the first column of the first row.
  absl::StatusOr<int64_t> QueryInt(absl::string_view sql);
  absl::StatusOr<std::string> QueryText(absl::string_view sql);

  // Calls `trace` with the text of every statement as it starts (for tests
  // that check which SQL ran). Empty function: tracing off.
  void SetTrace(std::function<void(absl::string_view sql)> trace);

  // Replaces SQLite's automatic checkpoint with the same rule (a PASSIVE
  // checkpoint once the WAL holds `pages` frames after a commit), run by
  // the caller instead of inside COMMIT: the writer answers the batch whose
  // commit crossed the line first, then checkpoints (RunDueCheckpoint).
  // A checkpoint is not part of any commit's durability (in FULL each
  // commit synced the WAL itself; in NORMAL nothing waits for the WAL's
  // sync), so making it wait only delays the answers. The result is kept,
  // too: SQLite's own hook drops a failed checkpoint's error, and with it
  // the only sign of a failed fsync in synchronous=NORMAL.
  void SetCheckpointHook(int pages);
  // Runs the PASSIVE checkpoint a commit asked for, if any, outside any
  // transaction. BUSY is not an error (the checkpoint simply runs later);
  // any other failure is returned, and means the fsync or write of pages
  // may not have happened.
  absl::Status RunDueCheckpoint();
  // Keep the WAL as it is when this connection closes (SQLite otherwise
  // checkpoints into the database file): for a database no longer trusted.
  void DisableCheckpointOnClose();

  int64_t LastInsertRowId() const;
  int Changes() const;
  // Rows inserted, updated or deleted by statements that completed since the
  // connection opened.
  int64_t TotalChanges() const;
  // False once SQLite has rolled back (or committed) the open transaction.
  bool InTransaction() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  const std::string path_;
  absl::flat_hash_map<const char*, sqlite3_stmt*> cache_;
  std::function<void(absl::string_view)> trace_;
  int checkpoint_pages_ = 0;
  bool checkpoint_due_ = false;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back on destruction unless committed.
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

#endif  // KANBAN_STORAGE_SQLITE_H_
