// fsync for the few places that write files outside SQLite (quarantine
// copies, backups, restores): a copy or rename is durable only once the file
// and then its folder are synced.
#ifndef KANBAN_STORAGE_SQLITE_FSYNC_H_
#define KANBAN_STORAGE_SQLITE_FSYNC_H_

#include <string>

#include "absl/status/status.h"

namespace kanban::storage {

// fsyncs the file or folder at `path` ("" means the current folder).
// UNAVAILABLE naming the path when it cannot be opened or synced.
absl::Status SyncPath(const std::string& path);

// fsyncs the folder holding `path`, so that a file created or renamed there
// survives a power cut.
absl::Status SyncParent(const std::string& path);

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_SQLITE_FSYNC_H_
