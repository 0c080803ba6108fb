// JSON arrays of strings, the form in which labels and parent ids are kept in
// SQLite (so SQLite's json functions can filter on them).
#ifndef KANBAN_STORAGE_JSON_TEXT_H_
#define KANBAN_STORAGE_JSON_TEXT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kanban::storage {

// ["a","b"]; control characters, quotes and backslashes are escaped.
std::string EncodeStringArray(const std::vector<std::string>& values);

// A JSON string literal for `value` (quoted and escaped like the arrays).
std::string EncodeString(absl::string_view value);
// The same two, appended to `out` (for building a larger JSON text).
void AppendJsonString(absl::string_view value, std::string* out);
void AppendJsonStringArray(const std::vector<std::string>& values, std::string* out);

// Parses what EncodeStringArray or SQLite's json_group_array produced. An
// empty or NULL text is an empty array. DATA_LOSS on malformed text.
absl::StatusOr<std::vector<std::string>> DecodeStringArray(absl::string_view text);

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_JSON_TEXT_H_
