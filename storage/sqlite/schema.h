// The database schema, versioned with PRAGMA user_version and upgraded by
// forward-only migrations, each in its own transaction.
#ifndef KANBAN_STORAGE_SQLITE_SCHEMA_H_
#define KANBAN_STORAGE_SQLITE_SCHEMA_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/sqlite/connection.h"

namespace kanban::storage {

// The version this build writes.
int CurrentSchemaVersion();

// Brings `db` (a read-write connection) up to CurrentSchemaVersion() and
// returns the version found before. FAILED_PRECONDITION if the file was
// written by a newer kanban. `now` stamps rows a migration creates.
absl::StatusOr<int> Migrate(Connection& db, absl::Time now);

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_SQLITE_SCHEMA_H_
