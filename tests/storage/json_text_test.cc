// JSON string arrays: our encoder, our decoder, and SQLite's own output.
#include "storage/json_text.h"

#include "gtest/gtest.h"
#include "storage/sqlite/connection.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
namespace {

TEST(JsonTextTest, RoundTripsAwkwardStrings) {
  std::vector<std::string> values = {"",
                                     "plain",
                                     "quo\"te",
                                     "back\\slash",
                                     "new\nline\ttab",
                                     std::string("nul\0byte", 8),
                                     "ünïcödé",
                                     "🚀",
                                     "\x01\x1f"};
  absl::StatusOr<std::vector<std::string>> decoded =
      DecodeStringArray(EncodeStringArray(values));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, values);
  EXPECT_EQ(EncodeStringArray({}), "[]");
  EXPECT_TRUE(DecodeStringArray("")->empty());
}

TEST(JsonTextTest, DecodesWhatSqliteProduces) {
  testing::TempDir dir;
  auto db = SqliteConnection::Open(dir.File("j.db"), SqliteConnection::Options());
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Exec("CREATE TABLE s(v TEXT)").ok());
  std::vector<std::string> values = {"a\"b", "c\\d", "e\nf", "g\x01h", "ü", "𝄞"};
  for (const std::string& v : values) {
    auto stmt = (*db)->Prepare("INSERT INTO s VALUES (?)");
    stmt->BindText(1, v);
    ASSERT_TRUE(stmt->Run().ok());
  }
  absl::StatusOr<std::string> json = (*db)->QueryText(
      "SELECT json_group_array(v) FROM (SELECT v FROM s ORDER BY rowid)");
  ASSERT_TRUE(json.ok());
  absl::StatusOr<std::vector<std::string>> decoded = DecodeStringArray(*json);
  ASSERT_TRUE(decoded.ok()) << decoded.status() << " for " << *json;
  EXPECT_EQ(*decoded, values);
  // Surrogate pairs written as escapes decode to one code point.
  EXPECT_EQ(DecodeStringArray(R"(["\ud834\udd1e"])")->at(0), "𝄞");
}

TEST(JsonTextTest, MalformedTextIsDataLoss) {
  for (const char* bad : {"[", "[\"a\"", "[a]", "{}", "[\"a\",]", "[\"\\x\"]",
                          "[\"\\ud834\"]", "[\"a\"] trailing"}) {
    EXPECT_EQ(DecodeStringArray(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
}

}  // namespace
}  // namespace kanban::storage
