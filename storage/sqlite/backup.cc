#include "storage/sqlite/backup.h"

#include <sqlite3.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/sqlite/fsync.h"
#include "storage/sqlite/integrity.h"
#include "storage/status_macros.h"

namespace kanban::storage {
namespace fs = std::filesystem;
namespace {

std::string Partial(const std::string& path) { return path + ".partial"; }

}  // namespace

absl::Status ValidateBackupPath(const std::string& path, bool overwrite,
                                const std::string& db_path) {
  if (path.empty()) return absl::InvalidArgumentError("path: must be set");
  fs::path p(path);
  if (!p.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "path: must be absolute (it is a path on the server), got \"", path, "\""));
  }
  std::error_code error;
  if (!fs::is_directory(p.parent_path(), error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("path: folder ", p.parent_path().string(), " does not exist"));
  }
  fs::path db = fs::absolute(db_path, error);
  if (p == db || absl::StartsWith(path, db.string() + "-") ||
      absl::StartsWith(path, db.string() + ".lock")) {
    return absl::InvalidArgumentError(
        absl::StrCat("path: ", path, " is the database itself or one of its files"));
  }
  if (fs::is_directory(p, error)) {
    return absl::InvalidArgumentError(absl::StrCat("path: ", path, " is a folder"));
  }
  if (!overwrite && fs::exists(p, error)) {
    return absl::AlreadyExistsError(
        absl::StrCat("path: ", path, " exists (set overwrite to replace it)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BackupCopy>> BackupCopy::Start(SqliteConnection& source,
                                                              const std::string& path) {
  std::error_code error;
  fs::remove(Partial(path), error);
  fs::remove(Partial(path) + "-journal", error);
  KANBAN_ASSIGN_OR_RETURN(
      std::unique_ptr<SqliteConnection> dest,
      SqliteConnection::Open(Partial(path), SqliteConnection::Options()));
  sqlite3_backup* backup =
      sqlite3_backup_init(dest->handle(), "main", source.handle(), "main");
  if (backup == nullptr) {
    return SqliteError(sqlite3_extended_errcode(dest->handle()), dest->handle(),
                       "backup_init");
  }
  return std::unique_ptr<BackupCopy>(new BackupCopy(path, std::move(dest), backup));
}

BackupCopy::~BackupCopy() {
  if (backup_ != nullptr) sqlite3_backup_finish(backup_);
  dest_.reset();
  if (!finished_) {
    std::error_code error;
    fs::remove(Partial(path_), error);
    fs::remove(Partial(path_) + "-journal", error);
  }
}

absl::StatusOr<bool> BackupCopy::Step(int pages) {
  int rc = sqlite3_backup_step(backup_, pages);
  progress_.pages_total = sqlite3_backup_pagecount(backup_);
  progress_.pages_copied = progress_.pages_total - sqlite3_backup_remaining(backup_);
  if (rc == SQLITE_DONE) {
    // Detaching from the source touches the source connection: here, on
    // its thread, not in Finish.
    rc = sqlite3_backup_finish(backup_);
    backup_ = nullptr;
    if (rc != SQLITE_OK) return SqliteError(rc, dest_->handle(), "backup_finish");
    return true;
  }
  // BUSY/LOCKED: the destination or source was locked for a moment; the
  // next step retries.
  if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
    return false;
  }
  return SqliteError(rc, dest_->handle(), "backup_step");
}

absl::StatusOr<BackupResult> BackupCopy::Finish() {
  if (backup_ != nullptr) return absl::FailedPreconditionError("backup: not complete");
  dest_.reset();
  // The copied header says WAL, like the source; a backup should be one
  // self-contained file, so switch it to a rollback journal.
  {
    KANBAN_ASSIGN_OR_RETURN(
        std::unique_ptr<Connection> copy,
        SqliteConnection::Open(Partial(path_), SqliteConnection::Options()));
    KANBAN_RETURN_IF_ERROR(copy->Exec("PRAGMA journal_mode=DELETE"));
    absl::Status check = QuickCheck(*copy);
    if (!check.ok()) {
      return absl::DataLossError(
          absl::StrCat("backup: the copy failed its check: ", check.message()));
    }
  }
  KANBAN_RETURN_IF_ERROR(SyncPath(Partial(path_)));
  std::error_code error;
  fs::rename(Partial(path_), path_, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("backup: cannot rename to ", path_, ": ", error.message()));
  }
  KANBAN_RETURN_IF_ERROR(SyncParent(path_));
  finished_ = true;
  BackupResult result;
  result.path = path_;
  result.pages = progress_.pages_total;
  result.bytes = static_cast<int64_t>(fs::file_size(path_, error));
  return result;
}

}  // namespace kanban::storage
