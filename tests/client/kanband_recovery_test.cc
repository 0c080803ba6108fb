// The operator's recovery path with the real binaries: `kanbanctl db
// backup` and `db check` against a serving kanband, `kanband
// --restore-from` (refusing a bad backup without touching anything), and a
// corrupt database refused at start with exit code 3 and one quarantine
// copy however often it is restarted.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

namespace fs = std::filesystem;
using ::kanban::testing::Describe;
using ::kanban::testing::JsonValue;
using ::kanban::testing::Kanband;
using ::kanban::testing::RunResult;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;

RunResult Ctl(const Kanband& server, std::vector<std::string> args) {
  args.insert(args.begin(), {KANBANCTL_PATH, "--server", server.address});
  return kanban::testing::Run(args, {"KANBAN_SERVER"});
}

RunResult Kanbandctl(std::vector<std::string> args) {
  args.insert(args.begin(), KANBAND_PATH);
  return kanban::testing::Run(args, {"KANBAN_SYNCHRONOUS_MODE"}, "", absl::Seconds(30));
}

// Creates `n` tasks; returns their ids.
std::vector<std::string> CreateTasks(const Kanband& server, int n,
                                     const std::string& prefix) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    RunResult r = Ctl(server, {"--json", "create", "--title", absl::StrCat(prefix, i),
                               "--body", std::string(3000, 'x')});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    ids.push_back(JsonValue(r.out, "id"));
  }
  return ids;
}

TEST(KanbandRecoveryTest, BackupCheckAndRestoreFromTheCommandLine) {
  TempDir dir;
  const std::string db = dir.File("kanban.db");
  const std::string backup = dir.File("backup.db");
  std::vector<std::string> kept, lost;
  {
    Kanband server = StartKanband(KANBAND_PATH, db);
    ASSERT_TRUE(server.ok());
    kept = CreateTasks(server, 20, "kept ");

    RunResult r = Ctl(server, {"db", "backup", backup});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_TRUE(absl::StrContains(r.out, "backup complete: " + backup)) << r.out;
    EXPECT_TRUE(absl::StrContains(r.out, "copied ")) << "plain progress lines: " << r.out;

    r = Ctl(server, {"db", "backup", backup});
    EXPECT_EQ(r.exit_code, 1) << Describe(r);
    EXPECT_TRUE(absl::StrContains(r.err, "ALREADY_EXISTS")) << r.err;

    r = Ctl(server, {"db", "check"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_TRUE(absl::StrContains(r.out, "integrity_check: ok")) << r.out;

    lost = CreateTasks(server, 3, "after the backup ");

    // Restoring under a running server is refused, and changes nothing.
    RunResult busy = Kanbandctl({"--db=" + db, "--restore-from=" + backup});
    EXPECT_EQ(busy.exit_code, 1) << Describe(busy);
    EXPECT_TRUE(absl::StrContains(busy.err, "nothing was changed")) << busy.err;
  }

  // A file that is not a database is refused before anything is touched.
  std::ofstream(dir.File("garbage.db")) << std::string(8192, 'g');
  auto size = fs::file_size(db);
  RunResult bad = Kanbandctl({"--db=" + db, "--restore-from=" + dir.File("garbage.db")});
  EXPECT_EQ(bad.exit_code, 2) << Describe(bad);
  EXPECT_TRUE(absl::StrContains(bad.err, "nothing was changed")) << bad.err;
  EXPECT_EQ(fs::file_size(db), size);

  RunResult restored = Kanbandctl({"--db=" + db, "--restore-from=" + backup});
  ASSERT_EQ(restored.exit_code, 0) << Describe(restored);
  EXPECT_TRUE(absl::StrContains(restored.err, ".before-restore-")) << restored.err;

  Kanband server = StartKanband(KANBAND_PATH, db);
  ASSERT_TRUE(server.ok()) << server.Log();
  for (const std::string& id : kept) {
    EXPECT_EQ(Ctl(server, {"get", id}).exit_code, 0) << id;
  }
  for (const std::string& id : lost) {
    RunResult r = Ctl(server, {"get", id});
    EXPECT_EQ(r.exit_code, 1) << "written after the backup: " << id;
    EXPECT_TRUE(absl::StrContains(r.err, "NOT_FOUND")) << r.err;
  }
  // The replaced database was kept whole, beside it.
  int sets = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    if (absl::StrContains(entry.path().filename().string(), ".before-restore-")) {
      ++sets;
      EXPECT_TRUE(fs::exists(entry.path() / "kanban.db"));
    }
  }
  EXPECT_EQ(sets, 1);
}

TEST(KanbandRecoveryTest, CorruptDatabaseExitsThreeAndIsQuarantinedOnce) {
  TempDir dir;
  const std::string db = dir.File("kanban.db");
  {
    Kanband server = StartKanband(KANBAND_PATH, db);
    ASSERT_TRUE(server.ok());
    CreateTasks(server, 30, "task ");
    server.process.Signal(SIGTERM);
    ASSERT_EQ(server.process.Wait(absl::Seconds(30)), 0);
  }
  ASSERT_FALSE(fs::exists(db + "-wal")) << "a clean stop checkpoints the WAL away";
  // Damage every page after the first two (the schema stays readable).
  {
    std::fstream file(db, std::ios::in | std::ios::out | std::ios::binary);
    for (auto offset = 2 * 4096; offset + 4096 <= static_cast<int>(fs::file_size(db));
         offset += 4096) {
      file.seekp(offset);
      file.write(std::string(32, '\xEE').data(), 32);
    }
  }
  for (int restart = 0; restart < 3; ++restart) {
    RunResult r = Kanbandctl({"--listen=127.0.0.1:0", "--db=" + db});
    EXPECT_EQ(r.exit_code, 3) << Describe(r);
    EXPECT_TRUE(absl::StrContains(r.err, "is corrupt")) << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, "--restore-from")) << r.err;
  }
  int sets = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    if (absl::StrContains(entry.path().filename().string(), ".corrupt-")) ++sets;
  }
  EXPECT_EQ(sets, 1) << "restarts must not multiply the copies";
}

}  // namespace
}  // namespace kanban
