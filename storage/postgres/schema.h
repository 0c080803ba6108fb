// The PostgreSQL schema and its migrations: the same tables as SQLite's
// (storage/sqlite/schema.cc, in PostgreSQL's types), plus the event_counter
// row that hands each batch its block of seqs. The version lives in
// kanban_schema; Migrate runs under a transaction-scoped advisory lock, so
// that kanband processes starting at once migrate once.
#ifndef KANBAN_STORAGE_POSTGRES_SCHEMA_H_
#define KANBAN_STORAGE_POSTGRES_SCHEMA_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/db.h"

namespace kanban::storage::postgres {

int CurrentSchemaVersion();

// Brings the database to CurrentSchemaVersion() in one transaction.
// Returns the version found before. FAILED_PRECONDITION when the database
// is newer than this kanband.
absl::StatusOr<int> Migrate(Connection& db, absl::Time now);

}  // namespace kanban::storage::postgres

#endif  // KANBAN_STORAGE_POSTGRES_SCHEMA_H_
