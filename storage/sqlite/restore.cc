#include "storage/sqlite/restore.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/sqlite/connection.h"
#include "storage/sqlite/file_lock.h"
#include "storage/sqlite/fsync.h"
#include "storage/sqlite/integrity.h"
#include "storage/status_macros.h"

namespace kanban::storage {
namespace fs = std::filesystem;
namespace {

absl::Status CheckBackup(const std::string& backup) {
  std::error_code error;
  if (!fs::is_regular_file(backup, error)) {
    return absl::NotFoundError(absl::StrCat("restore_from: ", backup, " is not a file"));
  }
  SqliteConnection::Options options;
  options.read_only = true;
  KANBAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> db,
                          SqliteConnection::Open(backup, options));
  absl::StatusOr<std::vector<std::string>> problems =
      FindProblems(*db, /*full=*/true, 20);
  if (!problems.ok()) {
    return absl::DataLossError(absl::StrCat(
        "restore_from: ", backup, " cannot be checked: ", problems.status().message()));
  }
  if (!problems->empty()) {
    return absl::DataLossError(
        absl::StrCat("restore_from: ", backup,
                     " failed integrity_check: ", absl::StrJoin(*problems, "; ")));
  }
  absl::StatusOr<int64_t> tables = db->QueryInt(
      "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
      "('tasks', 'events', 'boards')");
  if (!tables.ok() || *tables != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("restore_from: ", backup, " is not a kanban database"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> RestoreFromBackup(const std::string& backup,
                                              const std::string& db_path,
                                              absl::Time now) {
  KANBAN_RETURN_IF_ERROR(CheckBackup(backup));
  KANBAN_ASSIGN_OR_RETURN(std::unique_ptr<FileLock> lock,
                          FileLock::Acquire(db_path + ".lock"));

  // Copy first, beside the database: the old files move only once a whole,
  // synced copy is ready to take their place.
  std::string incoming = db_path + ".restoring";
  std::error_code error;
  fs::copy_file(backup, incoming, fs::copy_options::overwrite_existing, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("restore: cannot copy ", backup, ": ", error.message()));
  }
  KANBAN_RETURN_IF_ERROR(SyncPath(incoming));

  std::string aside;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::string file = db_path + suffix;
    if (!fs::exists(file, error)) continue;
    if (aside.empty()) {
      aside = absl::StrCat(db_path, ".before-restore-",
                           absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone()));
      fs::create_directories(aside, error);
      if (error) {
        return absl::UnavailableError(
            absl::StrCat("restore: cannot create ", aside, ": ", error.message()));
      }
    }
    fs::rename(file, fs::path(aside) / fs::path(file).filename(), error);
    if (error) {
      return absl::UnavailableError(
          absl::StrCat("restore: cannot move ", file, " aside: ", error.message()));
    }
  }
  fs::rename(incoming, db_path, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("restore: cannot rename ", incoming, ": ", error.message()));
  }
  KANBAN_RETURN_IF_ERROR(SyncParent(db_path));
  return aside;
}

}  // namespace kanban::storage
