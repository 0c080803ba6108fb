// kanband on PostgreSQL as an operator runs it: `kanband migrate` moves a
// SQLite board into it, kanband serves the copy, and the password in --db
// shows up in no log line, no output and no GetServerInfo field. Runs on
// the suite's private PostgreSQL (the CTest fixture `postgres`).
#include <signal.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::Describe;
using ::kanban::testing::JsonValue;
using ::kanban::testing::Kanband;
using ::kanban::testing::RunResult;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;

constexpr char kPassword[] = "sekrit-pw-4f2a";

std::string CtlJson(const Kanband& server, std::vector<std::string> args) {
  args.insert(args.begin(), {KANBANCTL_PATH, "--json", "--server", server.address});
  RunResult r = kanban::testing::Run(args, {"KANBAN_SERVER"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  return r.out;
}

// A fresh schema's URI with a password in it (the suite's server trusts
// every local connection, so any password is accepted, and must be hidden).
std::string TargetWithPassword() {
  absl::StatusOr<std::string> target = kanban::testing::NewPostgresDatabase();
  EXPECT_TRUE(target.ok()) << target.status();
  if (!target.ok()) return "";
  return absl::StrReplaceAll(
      *target,
      {{"postgresql://kanban@", absl::StrCat("postgresql://kanban:", kPassword, "@")}});
}

TEST(KanbandPostgresTest, MigrateThenServeTheCopyWithoutShowingThePassword) {
  if (!kanban::testing::PostgresServer().has_value()) {
    GTEST_SKIP() << "no PostgreSQL for tests";
  }
  TempDir dir;
  const std::string db = dir.File("kanban.db");
  std::string id;
  {
    Kanband sqlite = StartKanband(KANBAND_PATH, db);
    ASSERT_TRUE(sqlite.ok());
    id =
        JsonValue(CtlJson(sqlite, {"create", "--title", "moves", "--label", "pg"}), "id");
    ASSERT_FALSE(id.empty());
    CtlJson(sqlite, {"create", "--title", "second"});
    // migrate refuses a file a kanband holds.
    const std::string target = TargetWithPassword();
    RunResult refused =
        kanban::testing::Run({KANBAND_PATH, "migrate", "--from=" + db, "--to=" + target});
    EXPECT_EQ(refused.exit_code, 1) << Describe(refused);
    EXPECT_TRUE(absl::StrContains(refused.err, "in use")) << Describe(refused);
    EXPECT_FALSE(absl::StrContains(refused.out + refused.err, kPassword));
    ASSERT_EQ(sqlite.process.Signal(SIGTERM), 0);
    ASSERT_EQ(sqlite.process.Wait(absl::Seconds(20)), 0) << sqlite.Log();
  }

  const std::string target = TargetWithPassword();
  RunResult moved =
      kanban::testing::Run({KANBAND_PATH, "migrate", "--from=" + db, "--to=" + target});
  ASSERT_EQ(moved.exit_code, 0) << Describe(moved);
  EXPECT_TRUE(absl::StrContains(moved.out, "tasks: 2")) << moved.out;
  EXPECT_TRUE(absl::StrContains(moved.out, "events: 2")) << moved.out;
  EXPECT_FALSE(absl::StrContains(moved.out + moved.err, kPassword)) << Describe(moved);

  Kanband pg = StartKanband(KANBAND_PATH, target, {"--synchronous=full"});
  ASSERT_TRUE(pg.ok());
  const std::string task = CtlJson(pg, {"get", id});
  EXPECT_EQ(JsonValue(task, "title"), "moves") << task;
  const std::string info = CtlJson(pg, {"info"});
  EXPECT_EQ(JsonValue(info, "backend"), "postgresql") << info;
  EXPECT_EQ(JsonValue(info, "synchronous"), "on") << info;
  EXPECT_TRUE(absl::StrContains(info, "postgresql://kanban@127.0.0.1:")) << info;
  // A new task continues the feed after the copied events.
  CtlJson(pg, {"create", "--title", "third"});
  EXPECT_FALSE(absl::StrContains(info, kPassword)) << info;
  const std::string log = pg.Log();
  EXPECT_TRUE(absl::StrContains(log, "PostgreSQL")) << log;
  EXPECT_FALSE(absl::StrContains(log, kPassword)) << log;
}

// Several kanband processes started at once on an empty database: the
// migration runs once under its advisory lock (a second run would fail on
// the tables the first made), and every one of them serves.
TEST(KanbandPostgresTest, ProcessesStartingAtOnceOnAnEmptyDatabaseMigrateItOnce) {
  if (!kanban::testing::PostgresServer().has_value()) {
    GTEST_SKIP() << "no PostgreSQL for tests";
  }
  absl::StatusOr<std::string> target = kanban::testing::NewPostgresDatabase();
  ASSERT_TRUE(target.ok()) << target.status();
  constexpr int kProcesses = 4;
  std::vector<std::unique_ptr<Kanband>> servers(kProcesses);
  std::vector<std::thread> starts;
  for (int i = 0; i < kProcesses; ++i) {
    starts.emplace_back([&, i] {
      servers[i] = std::make_unique<Kanband>(StartKanband(KANBAND_PATH, *target));
    });
  }
  for (std::thread& t : starts) t.join();
  for (int i = 0; i < kProcesses; ++i) {
    ASSERT_TRUE(servers[i]->ok()) << "kanband " << i;
    // Each serves the one schema: a task made through one is read by all.
    const std::string id = JsonValue(
        CtlJson(*servers[i], {"create", "--title", absl::StrCat("from ", i)}), "id");
    ASSERT_FALSE(id.empty());
    for (int j = 0; j < kProcesses; ++j) {
      EXPECT_EQ(JsonValue(CtlJson(*servers[j], {"get", id}), "title"),
                absl::StrCat("from ", i));
    }
  }
  // The migration's own row: one "default" board, made once.
  const std::string boards = CtlJson(*servers[0], {"boards"});
  size_t defaults = 0;
  for (size_t at = boards.find("\"default\""); at != std::string::npos;
       at = boards.find("\"default\"", at + 1)) {
    ++defaults;
  }
  EXPECT_EQ(defaults, 1u) << boards;
  for (auto& server : servers) {
    ASSERT_EQ(server->process.Signal(SIGTERM), 0);
    EXPECT_EQ(server->process.Wait(absl::Seconds(20)), 0) << server->Log();
  }
}

TEST(KanbandPostgresTest, UnreachableServerIsExitOneNamingItButNotThePassword) {
  TempDir dir;
  const absl::Time start = absl::Now();
  RunResult r = kanban::testing::Run(
      {KANBAND_PATH, "--listen=127.0.0.1:0",
       absl::StrCat("--db=postgresql://kanban:", kPassword, "@127.0.0.1:1/kanban")},
      {}, "", absl::Seconds(60));
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(absl::StrContains(r.out + r.err, "127.0.0.1:1/kanban")) << Describe(r);
  EXPECT_FALSE(absl::StrContains(r.out + r.err, kPassword)) << Describe(r);
}

}  // namespace
}  // namespace kanban
