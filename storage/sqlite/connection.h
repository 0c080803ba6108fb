// The SQLite backend's connection: RAII over the SQLite C API. No other
// file calls sqlite3_* directly (but for the backup API in
// storage/sqlite/backup.cc, which needs the handle). A SqliteConnection owns
// its sqlite3*, its statements finalize (or, when borrowed from the
// connection's cache, reset) themselves. SQLite result codes map to
// absl::Status in one table.
//
// Thread-safety: not thread-safe; each connection is used by one thread at
// a time (the writer thread, or one reader thread).
#ifndef KANBAN_STORAGE_SQLITE_CONNECTION_H_
#define KANBAN_STORAGE_SQLITE_CONNECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/db.h"

struct sqlite3;
struct sqlite3_stmt;

namespace kanban::storage {

// Maps a SQLite result code to the most specific absl::StatusCode and builds
// a message from the library's error text and `sql` (never user data). A
// failed fsync is marked for IsSyncFailure (storage/db.h).
absl::Status SqliteError(int rc, sqlite3* db, absl::string_view sql);

class SqliteConnection final : public Connection {
 public:
  struct Options {
    bool read_only = false;      // Default: false (read-write, create if missing).
    int busy_timeout_ms = 5000;  // Default: 5 s.
    // SQLite VFS name; empty for the default VFS. Tests inject faults here.
    std::string vfs;
  };

  // Opens `path`. Errors: the mapped SQLite error (FAILED_PRECONDITION when
  // the file cannot be opened).
  static absl::StatusOr<std::unique_ptr<SqliteConnection>> Open(const std::string& path,
                                                                const Options& options);
  ~SqliteConnection() override;

  Dialect dialect() const override { return Dialect::kSqlite; }
  absl::Status Exec(absl::string_view sql) override;
  absl::StatusOr<Statement> Prepare(absl::string_view sql) override;
  absl::StatusOr<Statement> Cached(const char* sql) override;
  int Changes() const override;
  int64_t TotalChanges() const override;
  bool InTransaction() const override;
  const char* BeginSql() const override { return "BEGIN IMMEDIATE"; }
  const std::string& path() const override { return path_; }

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
  absl::Status RunDueCheckpoint() override;
  // Keep the WAL as it is when this connection closes (SQLite otherwise
  // checkpoints into the database file): for a database no longer trusted.
  void DisableCheckpointOnClose() override;

  sqlite3* handle() const { return db_; }

 private:
  SqliteConnection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  const std::string path_;
  absl::flat_hash_map<const char*, std::unique_ptr<StatementImpl>> cache_;
  std::function<void(absl::string_view)> trace_;
  int checkpoint_pages_ = 0;
  bool checkpoint_due_ = false;
};

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_SQLITE_CONNECTION_H_
