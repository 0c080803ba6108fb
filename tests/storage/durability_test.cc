// KANBAN_SYNCHRONOUS_MODE and --synchronous: parsing, and the pragmas read
// back from a real database opened through the Store. The pragmas are
// SQLite's; PostgreSQL's synchronous_commit, read back, is checked on both
// backends by KanbanService*Test.ServerInfoReportsTheChoiceReadBack.
#include "storage/durability.h"

#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
namespace {

using ::testing::HasSubstr;

struct Case {
  const char* name;
  std::optional<const char*> env;  // nullopt: unset.
  const char* flag;
  SyncMode mode;
  int checkpoint;
};

// Names the case in test listings instead of dumping its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class DurabilityModeTest : public ::testing::TestWithParam<Case> {};

TEST_P(DurabilityModeTest, ResolvesAndIsInForceOnTheWriterConnection) {
  const Case& c = GetParam();
  // Through the real environment, as kanband reads it.
  if (c.env.has_value()) {
    setenv(kSynchronousModeEnv, *c.env, 1);
  } else {
    unsetenv(kSynchronousModeEnv);
  }
  absl::StatusOr<DurabilitySettings> settings = DurabilityFromEnvironment(c.flag);
  unsetenv(kSynchronousModeEnv);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->mode, c.mode);
  EXPECT_EQ(settings->wal_autocheckpoint, c.checkpoint);

  testing::TempDir dir;
  Store::Options options;
  options.path = dir.File("kanban.db");
  options.durability = *settings;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  const DurabilityInfo& info = (*store)->durability();
  EXPECT_EQ(info.synchronous, c.mode == SyncMode::kFull ? "FULL" : "NORMAL");
  EXPECT_EQ(info.wal_autocheckpoint, c.checkpoint);
  EXPECT_EQ(info.journal_mode, "wal");
  (*store)->Close();

  // journal_mode is a property of the file: a fresh connection sees WAL.
  absl::StatusOr<std::unique_ptr<SqliteConnection>> db =
      SqliteConnection::Open(options.path, SqliteConnection::Options());
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*(*db)->QueryText("PRAGMA journal_mode"), "wal");
  // And a fresh connection does NOT inherit synchronous/autocheckpoint: they
  // are per-connection, which is why the writer's own values are reported.
  EXPECT_EQ(*(*db)->QueryInt("PRAGMA wal_autocheckpoint"), kDefaultWalAutocheckpoint);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, DurabilityModeTest,
    ::testing::Values(
        Case{"unset", std::nullopt, "", SyncMode::kNormal, 1000},
        Case{"full", "full", "", SyncMode::kFull, 100},
        Case{"padded_upper", " FULL ", "", SyncMode::kFull, 100},
        Case{"tabs_mixed_case", "\tFuLl\n", "", SyncMode::kFull, 100},
        Case{"normal", "normal", "", SyncMode::kNormal, 1000},
        Case{"garbage", "garbage", "", SyncMode::kNormal, 1000},
        Case{"empty", "", "", SyncMode::kNormal, 1000},
        Case{"flag_normal_over_env_full", "full", "normal", SyncMode::kNormal, 1000},
        Case{"flag_full_over_env_unset", std::nullopt, "full", SyncMode::kFull, 100},
        Case{"flag_full_over_env_normal", "normal", "FULL", SyncMode::kFull, 100}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(DurabilityTest, GarbageInTheEnvironmentWarns) {
  absl::StatusOr<DurabilitySettings> s = ResolveDurability("fsync-please", "");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->mode, SyncMode::kNormal);
  EXPECT_THAT(s->warning, HasSubstr("fsync-please"));
  EXPECT_EQ(s->source, kSynchronousModeEnv);
  EXPECT_TRUE(ResolveDurability("normal", "")->warning.empty());
  EXPECT_TRUE(ResolveDurability(std::nullopt, "")->warning.empty());
  EXPECT_EQ(ResolveDurability(std::nullopt, "")->source, "default");
  EXPECT_EQ(ResolveDurability("full", "normal")->source, "--synchronous");
}

TEST(DurabilityTest, BadFlagIsRefusedByName) {
  absl::StatusOr<DurabilitySettings> s = ResolveDurability("full", "sometimes");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("--synchronous"));
}

// The health-probe mistake this project was born from: re-issuing
// journal_mode=WAL on a live WAL file. It is asked for only when the file is
// not WAL yet.
TEST(DurabilityTest, WalIsSetOnlyWhenTheFileIsNotWalYet) {
  testing::TempDir dir;
  auto statements_of_apply = [&]() {
    std::vector<std::string> statements;
    absl::StatusOr<std::unique_ptr<SqliteConnection>> db =
        SqliteConnection::Open(dir.File("k.db"), SqliteConnection::Options());
    EXPECT_TRUE(db.ok());
    (*db)->SetTrace([&](absl::string_view sql) { statements.emplace_back(sql); });
    EXPECT_TRUE(ApplyDurability(**db, DurabilitySettings()).ok());
    return statements;
  };
  EXPECT_THAT(statements_of_apply(), ::testing::Contains("PRAGMA journal_mode=WAL"))
      << "a new file is switched to WAL";
  std::vector<std::string> again = statements_of_apply();
  EXPECT_THAT(again, ::testing::Contains("PRAGMA journal_mode")) << "it is checked";
  EXPECT_THAT(again, ::testing::Not(::testing::Contains("PRAGMA journal_mode=WAL")))
      << "an existing WAL file is left alone";
}

TEST(DurabilityTest, ReopeningAWalFileKeepsItWal) {
  testing::TempDir dir;
  Store::Options options;
  options.path = dir.File("kanban.db");
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << "open #" << i << ": " << store.status();
    EXPECT_EQ((*store)->durability().journal_mode, "wal");
  }
}

TEST(DurabilityTest, ConvertsARollbackJournalFileToWal) {
  testing::TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<SqliteConnection>> db =
        SqliteConnection::Open(dir.File("old.db"), SqliteConnection::Options());
    ASSERT_TRUE(db.ok());
    ASSERT_EQ(*(*db)->QueryText("PRAGMA journal_mode"), "delete");
  }
  Store::Options options;
  options.path = dir.File("old.db");
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->durability().journal_mode, "wal");
}

}  // namespace
}  // namespace kanban::storage
