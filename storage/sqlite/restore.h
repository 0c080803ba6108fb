// Restoring a database from a backup, with the server stopped: the backup is
// checked before anything is replaced, and the files it replaces are kept.
#ifndef KANBAN_STORAGE_SQLITE_RESTORE_H_
#define KANBAN_STORAGE_SQLITE_RESTORE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kanban::storage {

// Checks `backup` (integrity_check, and that it is a kanban database), takes
// the database's lock (FAILED_PRECONDITION while a kanband serves it), moves
// the database and its -wal/-shm, if any, into "<db>.before-restore-<UTC
// time>", and puts a copy of `backup` in place (written beside it, synced,
// renamed). Returns the folder the old files went to ("" when there were
// none). Nothing is changed unless the backup passed its checks.
absl::StatusOr<std::string> RestoreFromBackup(const std::string& backup,
                                              const std::string& db_path, absl::Time now);

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_SQLITE_RESTORE_H_
