// Tests of the kanband binary as an operator sees it: clean shutdown on
// SIGTERM/SIGINT, the durability settings from the flag and the environment,
// and where the database goes. Each test starts its own kanband.
#include <signal.h>

#include <filesystem>
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

using ::kanban::testing::Describe;
using ::kanban::testing::JsonValue;
using ::kanban::testing::Kanband;
using ::kanban::testing::RunResult;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;
// kanban::testing::Run is always written out in full: inside a test,
// ::testing::Test::Run would hide it.

constexpr char kSyncModeEnv[] = "KANBAN_SYNCHRONOUS_MODE";

// Runs kanbanctl against `server`; the output must be one line of JSON.
std::string CtlJson(const Kanband& server, std::vector<std::string> args) {
  args.insert(args.begin(), {KANBANCTL_PATH, "--json", "--server", server.address});
  RunResult r = kanban::testing::Run(args, {"KANBAN_SERVER"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  return r.out;
}

class StopSignalTest : public ::testing::TestWithParam<int> {
 protected:
  TempDir dir_;
};

TEST_P(StopSignalTest, ExitsZeroAndTheDatabaseReopensIntact) {
  const std::string db = dir_.File("kanban.db");
  std::string id;
  {
    Kanband server = StartKanband(KANBAND_PATH, db);
    ASSERT_TRUE(server.ok());
    id = JsonValue(
        CtlJson(server, {"create", "--title", "survives a restart", "--label", "kept"}),
        "id");
    ASSERT_FALSE(id.empty());
    ASSERT_EQ(server.process.Signal(GetParam()), 0);
    EXPECT_EQ(server.process.Wait(absl::Seconds(20)), 0) << server.Log();
  }
  ASSERT_TRUE(std::filesystem::exists(db));

  Kanband again = StartKanband(KANBAND_PATH, db);
  ASSERT_TRUE(again.ok());
  std::string task = CtlJson(again, {"get", id});
  EXPECT_EQ(JsonValue(task, "title"), "survives a restart") << task;
  EXPECT_TRUE(absl::StrContains(task, "\"labels\":[\"kept\"]")) << task;
  EXPECT_EQ(JsonValue(task, "version"), "1") << task;  // int64: a JSON string.
}

INSTANTIATE_TEST_SUITE_P(Signals, StopSignalTest, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == SIGTERM ? "Sigterm" : "Sigint";
                         });

TEST(KanbandTest, GarbageSynchronousFlagIsRejected) {
  TempDir dir;
  RunResult r =
      kanban::testing::Run({KANBAND_PATH, "--listen=127.0.0.1:0",
                            "--db=" + dir.File("kanban.db"), "--synchronous=garbage"},
                           {}, "", absl::Seconds(15));
  EXPECT_GT(r.exit_code, 0) << Describe(r);  // -1 would mean it kept running.
  EXPECT_TRUE(absl::StrContains(r.err, "--synchronous")) << Describe(r);
}

TEST(KanbandTest, NegativeWakeThreadCountIsRejected) {
  TempDir dir;
  RunResult r =
      kanban::testing::Run({KANBAND_PATH, "--listen=127.0.0.1:0",
                            "--db=" + dir.File("kanban.db"), "--watch_wake_threads=-1"},
                           {}, "", absl::Seconds(15));
  EXPECT_GT(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(absl::StrContains(r.err, "watch_wake_threads")) << Describe(r);
}

// One process owns a database: a second kanband on the same file (even on
// another port) must refuse to start rather than become a second writer.
TEST(KanbandTest, SecondKanbandOnTheSameDatabaseRefusesToStart) {
  TempDir dir;
  Kanband first = StartKanband(KANBAND_PATH, dir.File("kanban.db"));
  ASSERT_TRUE(first.ok());
  RunResult second = kanban::testing::Run(
      {KANBAND_PATH, "--listen=127.0.0.1:0", "--db=" + dir.File("kanban.db")},
      {"KANBAN_SYNCHRONOUS_MODE"}, "", absl::Seconds(20));
  EXPECT_EQ(second.exit_code, 1) << Describe(second);
  EXPECT_TRUE(absl::StrContains(second.err, "in use by another kanband")) << second.err;
  // The first one is undisturbed.
  EXPECT_EQ(JsonValue(CtlJson(first, {"create", "--title", "still served"}), "status"),
            "READY");
}

// gRPC would let two servers share a port (SO_REUSEPORT); kanband must not.
TEST(KanbandTest, PortInUseRefusesToStart) {
  TempDir dir;
  Kanband first = StartKanband(KANBAND_PATH, dir.File("a.db"));
  ASSERT_TRUE(first.ok());
  RunResult second = kanban::testing::Run(
      {KANBAND_PATH, "--listen=" + first.address, "--db=" + dir.File("b.db")},
      {"KANBAN_SYNCHRONOUS_MODE"}, "", absl::Seconds(20));
  EXPECT_EQ(second.exit_code, 1) << Describe(second);
  EXPECT_TRUE(absl::StrContains(second.err, "listen")) << second.err;
}

TEST(KanbandTest, DatabaseDirectoryIsCreated) {
  TempDir dir;
  const std::string db = dir.File("not/there/yet/kanban.db");
  ASSERT_FALSE(std::filesystem::exists(dir.File("not")));
  Kanband server = StartKanband(KANBAND_PATH, db);
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE(std::filesystem::exists(db));
  std::string task = CtlJson(server, {"create", "--title", "in a new directory"});
  EXPECT_EQ(JsonValue(task, "status"), "READY") << task;
}

struct DurabilityCase {
  const char* name;
  std::vector<std::string> env;   // For StartKanband's extra_env.
  std::vector<std::string> args;  // For StartKanband's extra_args.
  const char* synchronous;
  const char* wal_autocheckpoint;
};

// Names the case in test listings instead of dumping its bytes.
void PrintTo(const DurabilityCase& c, std::ostream* os) { *os << c.name; }

class DurabilityTest : public ::testing::TestWithParam<DurabilityCase> {
 protected:
  TempDir dir_;
};

TEST_P(DurabilityTest, InfoReportsWhatTheDatabaseUses) {
  const DurabilityCase& c = GetParam();
  Kanband server = StartKanband(KANBAND_PATH, dir_.File("kanban.db"), c.args, c.env);
  ASSERT_TRUE(server.ok());
  std::string info = CtlJson(server, {"info"});
  EXPECT_EQ(JsonValue(info, "synchronous"), c.synchronous) << info;
  EXPECT_EQ(JsonValue(info, "wal_autocheckpoint"), c.wal_autocheckpoint) << info;
  EXPECT_EQ(JsonValue(info, "journal_mode"), "wal") << info;
}

INSTANTIATE_TEST_SUITE_P(
    Modes, DurabilityTest,
    ::testing::Values(
        DurabilityCase{"EnvUnset", {kSyncModeEnv}, {}, "NORMAL", "1000"},
        DurabilityCase{
            "EnvFullPadded", {"KANBAN_SYNCHRONOUS_MODE= FULL "}, {}, "FULL", "100"},
        DurabilityCase{"EnvFullFlagNormal",
                       {"KANBAN_SYNCHRONOUS_MODE=full"},
                       {"--synchronous=normal"},
                       "NORMAL",
                       "1000"},
        DurabilityCase{"FlagFull", {kSyncModeEnv}, {"--synchronous=full"}, "FULL", "100"},
        DurabilityCase{
            "EnvOther", {"KANBAN_SYNCHRONOUS_MODE=fast"}, {}, "NORMAL", "1000"}),
    [](const ::testing::TestParamInfo<DurabilityCase>& info) {
      return std::string(info.param.name);
    });

}  // namespace
}  // namespace kanban
