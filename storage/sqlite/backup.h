// Online backup through SQLite's backup API. The copy is taken from the
// writer's own connection, a step at a time between commits: SQLite then
// carries every page the writer changes into the copy, where a copy from
// any other connection would restart from scratch after each commit (and,
// under steady writes, never finish).
#ifndef KANBAN_STORAGE_SQLITE_BACKUP_H_
#define KANBAN_STORAGE_SQLITE_BACKUP_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/sqlite/connection.h"

struct sqlite3_backup;

namespace kanban::storage {

struct BackupProgress {
  int64_t pages_copied = 0;
  int64_t pages_total = 0;
};

struct BackupResult {
  std::string path;
  int64_t pages = 0;
  int64_t bytes = 0;
};

// INVALID_ARGUMENT unless `path` is absolute, in an existing folder and not
// the database itself (or one of its files); ALREADY_EXISTS when it exists
// and `overwrite` is false. Each message names the field "path".
absl::Status ValidateBackupPath(const std::string& path, bool overwrite,
                                const std::string& db_path);

// One backup in progress: Start, Step until it says done, then Finish.
// Start, Step and destroying an unfinished copy (which removes its
// temporary file) must run on the source connection's thread; Finish may
// run anywhere, as it no longer touches the source.
class BackupCopy {
 public:
  // Opens "<path>.partial" (replacing any left by an earlier attempt).
  static absl::StatusOr<std::unique_ptr<BackupCopy>> Start(SqliteConnection& source,
                                                           const std::string& path);
  ~BackupCopy();
  BackupCopy(const BackupCopy&) = delete;
  BackupCopy& operator=(const BackupCopy&) = delete;

  // Copies up to `pages` more pages. True once the copy is complete.
  absl::StatusOr<bool> Step(int pages);
  BackupProgress progress() const { return progress_; }

  // Completes a copy whose Step said done: makes it a single-file database
  // (journal_mode=DELETE), runs quick_check on it, syncs it and renames it
  // to `path`.
  absl::StatusOr<BackupResult> Finish();

 private:
  BackupCopy(std::string path, std::unique_ptr<SqliteConnection> dest,
             sqlite3_backup* backup)
      : path_(std::move(path)), dest_(std::move(dest)), backup_(backup) {}

  const std::string path_;
  std::unique_ptr<SqliteConnection> dest_;
  sqlite3_backup* backup_;
  BackupProgress progress_;
  bool finished_ = false;
};

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_SQLITE_BACKUP_H_
