#include "storage/dialect.h"

#include "absl/strings/str_cat.h"

namespace kanban::storage::dialect {

std::string JsonArrayOf(Dialect d, absl::string_view expr, absl::string_view from_where) {
  if (d == Dialect::kSqlite) {
    return absl::StrCat("(SELECT json_group_array(", expr, ") ", from_where, ")");
  }
  // json_agg is NULL over no rows, where json_group_array is "[]".
  return absl::StrCat("(SELECT COALESCE(json_agg(", expr, ")::text, '[]') ", from_where,
                      ")");
}

std::string EventsWithSnapshot(Dialect d) {
  if (d == Dialect::kSqlite) return "events e";
  return "events e LEFT JOIN LATERAL (SELECT CAST(e.task AS jsonb) AS j) snapshot ON "
         "true";
}

std::string SnapshotField(Dialect d, absl::string_view key) {
  if (d == Dialect::kSqlite) return absl::StrCat("json_extract(e.task, '$.", key, "')");
  return absl::StrCat("(snapshot.j ->> '", key, "')");
}

std::string JsonArrayHas(Dialect d, absl::string_view array, absl::string_view value) {
  if (d == Dialect::kSqlite) {
    return absl::StrCat("EXISTS (SELECT 1 FROM json_each(", array,
                        ") WHERE value = ", value, ")");
  }
  return absl::StrCat("EXISTS (SELECT 1 FROM json_array_elements_text(CAST(", array,
                      " AS json)) AS e(value) WHERE e.value = ", value, ")");
}

std::string JsonArrayContainsAll(Dialect d, absl::string_view have,
                                 absl::string_view wanted) {
  if (d == Dialect::kSqlite) {
    return absl::StrCat(
        "NOT EXISTS (SELECT 1 FROM json_each(", wanted,
        ") want WHERE want.value NOT IN (SELECT have.value FROM json_each(", have,
        ") have))");
  }
  return absl::StrCat(
      "NOT EXISTS (SELECT 1 FROM json_array_elements_text(CAST(", wanted,
      " AS json)) AS want(value) WHERE want.value NOT IN (SELECT have.value FROM "
      "json_array_elements_text(CAST(",
      have, " AS json)) AS have(value)))");
}

}  // namespace kanban::storage::dialect
