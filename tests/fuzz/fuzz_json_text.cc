// libFuzzer target for storage/json_text.h, the JSON string arrays in which
// labels and parent ids are stored, and the string literals of event
// snapshots. The input is used twice:
//  - as stored text: DecodeStringArray must not crash, fails only with
//    DATA_LOSS, and whatever it accepts re-encodes to an equal array;
//  - split at 0xC0 bytes (never part of UTF-8) into values: they survive
//    Encode -> Decode unchanged, and, when they are what kanband can store
//    (valid UTF-8 without NUL), also SQLite's own JSON functions, exactly as
//    storage/task_sql.cc reads them back (json(), json_group_array(),
//    json_extract()).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "storage/json_text.h"
#include "storage/sqlite/connection.h"

namespace kanban::fuzz {
namespace {

using storage::DecodeStringArray;
using storage::EncodeString;
using storage::EncodeStringArray;

[[noreturn]] void Fail(absl::string_view what, absl::string_view detail) {
  std::fprintf(stderr, "\n*** fuzz invariant violated: %.*s: %.*s\n",
               static_cast<int>(what.size()), what.data(),
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

std::string Show(const std::vector<std::string>& values) {
  return absl::StrCat("[", absl::StrJoin(values, "|"), "] as ",
                      EncodeStringArray(values));
}

// What kanband can store: protobuf string fields are valid UTF-8, and the
// rules reject NUL in every stored field.
bool Storable(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80           ? 1
               : (c >> 5) == 0x6  ? 2
               : (c >> 4) == 0xE  ? 3
               : (c >> 3) == 0x1E ? 4
                                  : 0;
    if (c == 0 || n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return false;
    i += n;
  }
  return true;
}

storage::Connection& Db() {
  static storage::Connection* db = [] {
    auto opened = storage::SqliteConnection::Open(":memory:", {});
    if (!opened.ok()) Fail("open :memory:", opened.status().ToString());
    return opened->release();
  }();
  return *db;
}

// The one text column `sql` (with ?1 = `arg`) answers.
std::string Query(const char* sql, absl::string_view arg) {
  absl::StatusOr<storage::Statement> stmt = Db().Cached(sql);
  if (!stmt.ok()) Fail(sql, stmt.status().ToString());
  stmt->BindText(1, arg);
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok() || !*row) Fail(sql, row.ok() ? "no row" : row.status().ToString());
  return stmt->ColumnText(0);
}

void CheckDecodesTo(absl::string_view text, const std::vector<std::string>& want,
                    absl::string_view what) {
  absl::StatusOr<std::vector<std::string>> got = DecodeStringArray(text);
  if (!got.ok()) Fail(what, absl::StrCat(got.status().ToString(), " for ", Show(want)));
  if (*got != want) Fail(what, absl::StrCat(Show(*got), " instead of ", Show(want)));
}

}  // namespace
}  // namespace kanban::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kanban::fuzz;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  // As stored text.
  absl::StatusOr<std::vector<std::string>> decoded = DecodeStringArray(input);
  if (decoded.ok()) {
    CheckDecodesTo(EncodeStringArray(*decoded), *decoded, "re-encoded decoded text");
  } else if (decoded.status().code() != absl::StatusCode::kDataLoss) {
    Fail("DecodeStringArray error is not DATA_LOSS", decoded.status().ToString());
  }

  // As values.
  std::vector<std::string> values = absl::StrSplit(input, '\xC0');
  if (values.size() == 1 && values[0].empty()) values.clear();
  const std::string encoded = EncodeStringArray(values);
  CheckDecodesTo(encoded, values, "Encode -> Decode");
  bool storable = true;
  for (const std::string& v : values) storable = storable && Storable(v);
  if (!storable) return 0;
  // Labels are read back through json(), parent ids built by
  // json_group_array(), snapshot fields taken out by json_extract().
  CheckDecodesTo(Query("SELECT json(?1)", encoded), values, "json()");
  CheckDecodesTo(Query("SELECT json_group_array(value) FROM json_each(?1)", encoded),
                 values, "json_group_array()");
  for (const std::string& v : values) {
    std::string extracted = Query("SELECT json_extract(?1, '$')", EncodeString(v));
    if (extracted != v)
      Fail("json_extract() of EncodeString", absl::StrCat(v, " -> ", extracted));
  }
  return 0;
}
