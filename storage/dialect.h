// The places where SQLite's and PostgreSQL's SQL differ, each a named
// fragment, so that every statement of the board is written once (in
// task_sql.cc and lease_sql.cc) and only these pieces are per backend.
// Both dialects take parameters as `?` or `?N`: the PostgreSQL connection
// renumbers them as `$N` when it prepares a statement.
#ifndef KANBAN_STORAGE_DIALECT_H_
#define KANBAN_STORAGE_DIALECT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "storage/db.h"

namespace kanban::storage::dialect {

// `sqlite` or `postgres`, by the connection's dialect.
inline const char* Pick(const Connection& db, const char* sqlite, const char* postgres) {
  return db.dialect() == Dialect::kSqlite ? sqlite : postgres;
}
inline int Index(const Connection& db) {
  return db.dialect() == Dialect::kSqlite ? 0 : 1;
}

// A statement's text built once for each dialect, for statements that
// differ by a fragment. Construct as a function-local static (its text's
// address keys Connection::Cached). Thread-safe after construction.
class PerDialect {
 public:
  template <typename Build>
  explicit PerDialect(Build build)
      : text_{build(Dialect::kSqlite), build(Dialect::kPostgres)} {}
  const char* For(const Connection& db) const { return text_[Index(db)].c_str(); }

 private:
  const std::string text_[2];
};

// A JSON array (as text) of `expr` over the rows of `from_where`, "[]" for
// none: `(SELECT <agg> FROM ...)`.
std::string JsonArrayOf(Dialect d, absl::string_view expr, absl::string_view from_where);

// The events table with its snapshot column (JSON text) ready for
// SnapshotField: on PostgreSQL the text is parsed once per row (as jsonb, in
// a lateral join), not once per field.
std::string EventsWithSnapshot(Dialect d);
// The value of top-level `key` of the snapshot of `EventsWithSnapshot`'s
// row: a scalar as SQL text or number, an array as JSON text, JSON null as
// NULL.
std::string SnapshotField(Dialect d, absl::string_view key);

// A boolean: the JSON string array (text) `array` has an element equal to
// the text `value`.
std::string JsonArrayHas(Dialect d, absl::string_view array, absl::string_view value);

// A boolean: every element of the JSON string array `wanted` is in `have`.
std::string JsonArrayContainsAll(Dialect d, absl::string_view have,
                                 absl::string_view wanted);

}  // namespace kanban::storage::dialect

#endif  // KANBAN_STORAGE_DIALECT_H_
