// End-to-end tests of kanbanctl: every test starts a real kanband on a fresh
// database and drives it through the kanbanctl binary, checking exit codes,
// status code names and what is printed.
#include <signal.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/cli.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::Describe;
using ::kanban::testing::Field;
using ::kanban::testing::IsRpcError;
using ::kanban::testing::IsUsageError;
using ::kanban::testing::JsonValue;
using ::kanban::testing::Kanband;
using ::kanban::testing::RunResult;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;
// kanban::testing::Run is always written out in full: inside a test,
// ::testing::Test::Run would hide it.

// Removes the variable, so the server's defaults do not depend on the
// environment the tests run in.
constexpr char kNoSyncModeEnv[] = "KANBAN_SYNCHRONOUS_MODE";

// The first column (the task id) of each row of a table, header skipped.
std::vector<std::string> FirstColumn(const std::string& table) {
  std::vector<std::string> values;
  std::vector<std::string> lines = absl::StrSplit(table, '\n', absl::SkipEmpty());
  for (size_t i = 1; i < lines.size(); ++i) {
    values.push_back(lines[i].substr(0, lines[i].find(' ')));
  }
  return values;
}

class KanbanctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kanband_ = StartKanband(KANBAND_PATH, dir_.File("kanban.db"), {}, {kNoSyncModeEnv});
    ASSERT_TRUE(kanband_.ok());
  }

  // Runs kanbanctl against this test's server, as user "tester".
  RunResult Ctl(std::vector<std::string> args, const std::string& stdin_data = "") {
    args.insert(args.begin(), {KANBANCTL_PATH, "--server", kanband_.address});
    return kanban::testing::Run(args, {"KANBAN_SERVER", "USER=tester"}, stdin_data);
  }

  // Runs a command that must succeed and returns its stdout.
  std::string CtlOk(std::vector<std::string> args, const std::string& stdin_data = "") {
    RunResult r = Ctl(args, stdin_data);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << "\n" << Describe(r);
    return r.out;
  }

  // Creates a task through `--json create` and returns its id.
  std::string NewTask(const std::string& title, std::vector<std::string> flags = {}) {
    flags.insert(flags.begin(), {"--json", "create", "--title", title});
    std::string id = JsonValue(CtlOk(flags), "id");
    EXPECT_EQ(id.size(), 26u) << "no task id for " << title;
    return id;
  }

  TempDir dir_;  // Outlives the server that uses it.
  Kanband kanband_;
};

TEST_F(KanbanctlTest, CreatePrintsTheNewTaskAndGetShowsIt) {
  std::string out = CtlOk({"create", "--title", "Write the docs", "--priority", "2",
                           "--label", "docs", "--label", "urgent", "--assignee", "ann"});
  std::string id = Field(out, "id");
  ASSERT_EQ(id.size(), 26u) << out;
  EXPECT_EQ(Field(out, "status"), "READY");

  std::string shown = CtlOk({"get", id});
  EXPECT_EQ(Field(shown, "id"), id);
  EXPECT_EQ(Field(shown, "title"), "Write the docs");
  EXPECT_EQ(Field(shown, "board"), "default");
  EXPECT_EQ(Field(shown, "priority"), "2");
  EXPECT_EQ(Field(shown, "labels"), "docs, urgent");
  EXPECT_EQ(Field(shown, "assignee"), "ann");
  EXPECT_EQ(Field(shown, "parents"), "-");
  EXPECT_EQ(Field(shown, "version"), "1");
}

TEST_F(KanbanctlTest, JsonOutputIsOneLineWithProtoFieldNames) {
  std::string out = CtlOk({"--json", "create", "--title", "json task", "--max-attempts",
                           "5", "--idempotency-key", "key-1"});
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  std::string id = JsonValue(out, "id");
  ASSERT_EQ(id.size(), 26u) << out;
  EXPECT_EQ(JsonValue(out, "max_attempts"), "5") << out;
  EXPECT_EQ(JsonValue(out, "idempotency_key"), "key-1") << out;
  EXPECT_EQ(JsonValue(out, "status"), "READY") << out;
  // Defaults are left out.
  EXPECT_FALSE(absl::StrContains(out, "\"priority\"")) << out;

  // Global flags also work after the command, in --flag=value form.
  std::string got = CtlOk({"get", id, "--json", "--timeout=5"});
  EXPECT_EQ(JsonValue(got, "id"), id);
  EXPECT_EQ(JsonValue(got, "title"), "json task");
}

TEST_F(KanbanctlTest, BodyFileDashReadsStdin) {
  std::string out = CtlOk({"create", "--title", "from stdin", "--body-file", "-"},
                          "line one\nline two\n");
  std::string shown = CtlOk({"get", Field(out, "id")});
  EXPECT_TRUE(absl::StrContains(shown, "body:\n  line one\n  line two\n")) << shown;
}

TEST_F(KanbanctlTest, GetUnknownTaskIsNotFound) {
  EXPECT_TRUE(IsRpcError(Ctl({"get", "nosuchtask"}), "NOT_FOUND"));
}

TEST_F(KanbanctlTest, ListOrdersByPriorityThenAge) {
  std::string low = NewTask("low", {"--priority", "1"});
  std::string high = NewTask("high", {"--priority", "5"});
  std::string older = NewTask("mid older", {"--priority", "3"});
  std::string newer = NewTask("mid newer", {"--priority", "3"});

  std::string table = CtlOk({"list"});
  EXPECT_TRUE(absl::StartsWith(table, "ID ")) << table;
  EXPECT_EQ(FirstColumn(table), (std::vector<std::string>{high, older, newer, low}))
      << table;
}

TEST_F(KanbanctlTest, ListFiltersByStatus) {
  std::string ready = NewTask("ready one");
  std::string triage = NewTask("needs triage", {"--triage"});

  EXPECT_EQ(FirstColumn(CtlOk({"list", "--status", "triage"})),
            std::vector<std::string>{triage});
  EXPECT_EQ(FirstColumn(CtlOk({"list", "--status", "READY", "--status", "Todo"})),
            std::vector<std::string>{ready});
  EXPECT_EQ(FirstColumn(CtlOk({"list", "--status=ready,triage"})),
            (std::vector<std::string>{ready, triage}));
  EXPECT_TRUE(IsUsageError(Ctl({"list", "--status", "finished"}), "unknown status"));
}

TEST_F(KanbanctlTest, ListPagesAndAllFollowsTokens) {
  std::vector<std::string> ids;
  for (int priority = 5; priority >= 1; --priority) {
    ids.push_back(
        NewTask(absl::StrCat("task ", priority), {"--priority", absl::StrCat(priority)}));
  }

  RunResult first = Ctl({"list", "--page-size", "2"});
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(FirstColumn(first.out), (std::vector<std::string>{ids[0], ids[1]}));
  absl::string_view hint = first.err;
  ASSERT_TRUE(absl::ConsumePrefix(&hint, "next page: --page-token ")) << first.err;
  const std::string token(absl::StripTrailingAsciiWhitespace(hint));

  RunResult second = Ctl({"list", "--page-size", "2", "--page-token", token});
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(FirstColumn(second.out), (std::vector<std::string>{ids[2], ids[3]}));

  RunResult all = Ctl({"list", "--page-size", "2", "--all"});
  ASSERT_EQ(all.exit_code, 0) << Describe(all);
  EXPECT_EQ(FirstColumn(all.out), ids);
  EXPECT_EQ(all.err, "");

  std::string json = CtlOk({"--json", "list", "--page-size", "2", "--all"});
  size_t count = 0;
  for (size_t at = json.find("\"id\":"); at != std::string::npos;
       at = json.find("\"id\":", at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 5u) << json;
  EXPECT_FALSE(absl::StrContains(json, "next_page_token")) << json;
}

TEST_F(KanbanctlTest, UpdateWithStaleVersionIsAborted) {
  std::string id = NewTask("draft");
  std::string out = CtlOk(
      {"update", id, "--title", "final", "--label", "x", "--expected-version", "1"});
  EXPECT_EQ(Field(out, "title"), "final");
  EXPECT_EQ(Field(out, "labels"), "x");
  EXPECT_EQ(Field(out, "version"), "2");

  EXPECT_TRUE(IsRpcError(
      Ctl({"update", id, "--priority", "9", "--expected-version", "1"}), "ABORTED"));
  std::string shown = CtlOk({"get", id});
  EXPECT_EQ(Field(shown, "priority"), "0");
  EXPECT_EQ(Field(shown, "version"), "2");

  EXPECT_EQ(Field(CtlOk({"update", id, "--clear-labels"}), "labels"), "-");
  EXPECT_TRUE(IsUsageError(Ctl({"update", id, "--expected-version", "two"}),
                           "--expected-version"));
}

TEST_F(KanbanctlTest, MoveFollowsTheStatusTable) {
  std::string id = NewTask("to move");
  EXPECT_TRUE(IsRpcError(Ctl({"move", id, "running"}), "FAILED_PRECONDITION"));
  EXPECT_TRUE(IsUsageError(Ctl({"move", id, "sideways"}), "unknown status"));
  EXPECT_TRUE(
      IsRpcError(Ctl({"move", id, "Done", "--expected-version", "7"}), "ABORTED"));

  std::string out = CtlOk({"move", id, "Done", "--reason", "shipped"});
  EXPECT_EQ(Field(out, "status"), "DONE");
  EXPECT_EQ(Field(CtlOk({"move", id, "ARCHIVED"}), "status"), "ARCHIVED");
  EXPECT_TRUE(IsRpcError(Ctl({"move", id, "ready"}), "FAILED_PRECONDITION"));
}

TEST_F(KanbanctlTest, LinkMakesTheChildWaitUntilTheParentIsDone) {
  std::string parent = NewTask("parent");
  std::string child = NewTask("child");

  std::string linked = CtlOk({"link", parent, child});
  EXPECT_EQ(Field(linked, "id"), child);
  EXPECT_EQ(Field(linked, "status"), "TODO");
  EXPECT_EQ(Field(linked, "parents"), parent);

  CtlOk({"move", parent, "done"});
  EXPECT_EQ(Field(CtlOk({"get", child}), "status"), "READY");

  std::string unlinked = CtlOk({"unlink", parent, child});
  EXPECT_EQ(Field(unlinked, "parents"), "-");
  EXPECT_TRUE(IsRpcError(Ctl({"unlink", parent, child}), "NOT_FOUND"));
  EXPECT_TRUE(IsRpcError(Ctl({"link", child, child}), "INVALID_ARGUMENT"));
}

TEST_F(KanbanctlTest, UnlinkingTheLastUnfinishedParentMakesTheChildReady) {
  std::string parent = NewTask("parent");
  std::string child = NewTask("child");
  EXPECT_EQ(Field(CtlOk({"link", parent, child}), "status"), "TODO");
  EXPECT_TRUE(IsRpcError(Ctl({"link", child, parent}), "FAILED_PRECONDITION"));
  EXPECT_EQ(Field(CtlOk({"unlink", parent, child}), "status"), "READY");
}

TEST_F(KanbanctlTest, CommentsAreListedOldestFirst) {
  std::string id = NewTask("discussed");
  std::string added = CtlOk({"comment", id, "first note", "--author", "alice"});
  EXPECT_TRUE(absl::StrContains(added, absl::StrCat("to task ", id))) << added;
  CtlOk({"comment", id, "second note"});

  std::string listed = CtlOk({"comments", id});
  size_t first = listed.find("alice");
  size_t second = listed.find("tester");  // $USER is the default author.
  ASSERT_NE(first, std::string::npos) << listed;
  ASSERT_NE(second, std::string::npos) << listed;
  EXPECT_LT(first, listed.find("first note"));
  EXPECT_LT(listed.find("first note"), second);
  EXPECT_LT(second, listed.find("second note"));

  std::string json = CtlOk({"--json", "comments", id});
  EXPECT_TRUE(absl::StrContains(json, "\"author\":\"tester\"")) << json;
  EXPECT_TRUE(absl::StrContains(json, absl::StrCat("\"task_id\":\"", id, "\""))) << json;
  EXPECT_TRUE(IsRpcError(Ctl({"comment", "nosuchtask", "hello"}), "NOT_FOUND"));
}

TEST_F(KanbanctlTest, BoardsAreCreatedOnceAndNamesAreChecked) {
  EXPECT_EQ(FirstColumn(CtlOk({"boards"})), std::vector<std::string>{"default"});

  CtlOk({"board-create", "ops", "--description", "Operations team"});
  std::string boards = CtlOk({"boards"});
  EXPECT_EQ(FirstColumn(boards), (std::vector<std::string>{"default", "ops"}));
  EXPECT_TRUE(absl::StrContains(boards, "Operations team")) << boards;

  EXPECT_TRUE(IsRpcError(Ctl({"board-create", "ops"}), "ALREADY_EXISTS"));
  EXPECT_TRUE(IsRpcError(Ctl({"board-create", "Bad Name"}), "INVALID_ARGUMENT"));
  EXPECT_TRUE(
      IsRpcError(Ctl({"create", "--title", "t", "--board", "Bad!"}), "INVALID_ARGUMENT"));
  EXPECT_TRUE(
      IsRpcError(Ctl({"create", "--title", "t", "--board", "nosuch"}), "NOT_FOUND"));

  std::string ops_task = NewTask("on ops", {"--board", "ops"});
  NewTask("on default");
  EXPECT_EQ(FirstColumn(CtlOk({"list", "--board", "ops"})),
            std::vector<std::string>{ops_task});
}

TEST_F(KanbanctlTest, InfoShowsTheDatabaseSettings) {
  std::string out = CtlOk({"info"});
  EXPECT_FALSE(Field(out, "version").empty()) << out;
  EXPECT_TRUE(absl::StrContains(Field(out, "database"), "kanban.db")) << out;
  EXPECT_EQ(Field(out, "synchronous"), "NORMAL") << out;
  EXPECT_EQ(Field(out, "wal_autocheckpoint"), "1000") << out;
  EXPECT_EQ(Field(out, "journal_mode"), "wal") << out;
  EXPECT_NE(Field(out, "schema_version"), "0") << out;
  EXPECT_FALSE(absl::StartsWith(Field(out, "uptime"), "<no ")) << out;

  std::string json = CtlOk({"--json", "info"});
  EXPECT_EQ(JsonValue(json, "synchronous"), "NORMAL") << json;
  EXPECT_EQ(JsonValue(json, "wal_autocheckpoint"), "1000") << json;
}

TEST_F(KanbanctlTest, BadCommandLinesAreUsageErrors) {
  EXPECT_TRUE(IsUsageError(Ctl({"frobnicate"}), "unknown command"));
  EXPECT_TRUE(IsUsageError(Ctl({}), "no command"));
  EXPECT_TRUE(IsUsageError(Ctl({"get"}), "missing argument"));
  EXPECT_TRUE(IsUsageError(Ctl({"get", "a", "b"}), "unexpected argument"));
  EXPECT_TRUE(IsUsageError(Ctl({"get", "x", "--bogus"}), "unknown flag --bogus"));
  EXPECT_TRUE(
      IsUsageError(Ctl({"create", "--title", "t", "--priority", "high"}), "--priority"));
  EXPECT_TRUE(IsUsageError(Ctl({"create", "--priority", "1"}), "--title"));
  EXPECT_TRUE(IsUsageError(Ctl({"create", "--title"}), "needs a value"));
  EXPECT_TRUE(IsUsageError(Ctl({"create", "--title", "t", "--not-before", "tomorrow"}),
                           "--not-before"));
  EXPECT_TRUE(IsUsageError(Ctl({"--timeout", "soon", "info"}), "--timeout"));
  EXPECT_TRUE(IsUsageError(Ctl({"info", "--json=yes"}), "--json"));
}

TEST_F(KanbanctlTest, HelpAndVersion) {
  std::string help = CtlOk({"help"});
  for (const char* command : {"boards", "board-create", "create", "get", "list", "update",
                              "move", "link", "unlink", "comment", "comments", "info"}) {
    EXPECT_TRUE(absl::StrContains(help, absl::StrCat("\n  ", command, " ")) ||
                absl::StrContains(help, absl::StrCat("\n  ", command, "\n")))
        << command << " missing from:\n"
        << help;
  }
  EXPECT_EQ(CtlOk({"--help"}), help);
  EXPECT_EQ(CtlOk({"-h"}), help);
  EXPECT_TRUE(absl::StartsWith(CtlOk({"move", "--help"}), "usage: kanbanctl move "));
  EXPECT_TRUE(absl::StartsWith(CtlOk({"--version"}), "kanbanctl "));
}

TEST_F(KanbanctlTest, ServerAddressComesFromTheEnvironment) {
  RunResult r = kanban::testing::Run({KANBANCTL_PATH, "info"},
                                     {absl::StrCat("KANBAN_SERVER=", kanband_.address)});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Field(r.out, "journal_mode"), "wal") << r.out;
}

TEST_F(KanbanctlTest, UnreachableServerIsUnavailable) {
  ASSERT_EQ(kanband_.process.Signal(SIGTERM), 0);
  ASSERT_EQ(kanband_.process.Wait(absl::Seconds(20)), 0) << kanband_.Log();
  RunResult r = Ctl({"--timeout", "5", "info"});
  EXPECT_TRUE(IsRpcError(r, "UNAVAILABLE"));
}

}  // namespace
}  // namespace kanban
