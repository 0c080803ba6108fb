// End-to-end tests of kanbanctl's worker commands (claim, heartbeat, complete,
// fail, release, workers, work): every test starts a real kanband on a fresh
// database and drives it through the kanbanctl binary.
#include <signal.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/backends.h"
#include "tests/support/cli.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::ChildProcess;
using ::kanban::testing::Describe;
using ::kanban::testing::Field;
using ::kanban::testing::IsRpcError;
using ::kanban::testing::IsUsageError;
using ::kanban::testing::JsonValue;
using ::kanban::testing::Kanband;
using ::kanban::testing::ReadFileOrEmpty;
using ::kanban::testing::Row;
using ::kanban::testing::RunResult;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;
// kanban::testing::Run is always written out in full: inside a test,
// ::testing::Test::Run would hide it.

// Long enough never to be hit by a passing test; a bound for a failing one.
constexpr absl::Duration kPatience = absl::Seconds(20);

// `text` as it appears inside a JSON string.
std::string JsonEscaped(const std::string& text) {
  return absl::StrReplaceAll(text, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

class KanbanctlWorkTest : public ::kanban::testing::BackendTest {
 protected:
  void SetUp() override {
    const std::string& db = Database(dir_.File("kanban.db"));
    if (db.empty()) return;  // Skipped: no PostgreSQL.
    kanband_ = StartKanband(KANBAND_PATH, db, {}, {"KANBAN_SYNCHRONOUS_MODE"});
    ASSERT_TRUE(kanband_.ok());
  }

  // Replaces the server with one on the same database started with `args`.
  void RestartServer(const std::vector<std::string>& args) {
    ASSERT_EQ(kanband_.process.Signal(SIGTERM), 0);
    ASSERT_EQ(kanband_.process.Wait(kPatience), 0) << kanband_.Log();
    kanband_ =
        StartKanband(KANBAND_PATH, Database(""), args, {"KANBAN_SYNCHRONOUS_MODE"});
    ASSERT_TRUE(kanband_.ok());
  }

  // How many of the server's access lines (--log_rpcs) are for `method`
  // ("KanbanService/ClaimTask", ...); a call's line is written before its
  // status is sent.
  int RpcLines(const std::string& method) {
    const std::string needle = absl::StrCat(" method=/kanban.v1.", method, " ");
    int lines = 0;
    for (absl::string_view line : absl::StrSplit(kanband_.Log(), '\n')) {
      if (absl::StrContains(line, needle)) ++lines;
    }
    return lines;
  }

  std::vector<std::string> CtlArgv(std::vector<std::string> args) {
    args.insert(args.begin(), {KANBANCTL_PATH, "--server", kanband_.address});
    return args;
  }

  // Runs kanbanctl against this test's server.
  RunResult Ctl(std::vector<std::string> args, const std::string& stdin_data = "") {
    return kanban::testing::Run(CtlArgv(std::move(args)), {"KANBAN_SERVER"}, stdin_data);
  }

  // Runs a command that must succeed and returns its stdout.
  std::string CtlOk(std::vector<std::string> args, const std::string& stdin_data = "") {
    RunResult r = Ctl(args, stdin_data);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << "\n" << Describe(r);
    return r.out;
  }

  // Creates a task through `--json create` and returns its id.
  std::string NewTask(const std::string& title, std::vector<std::string> flags = {},
                      const std::string& stdin_data = "") {
    flags.insert(flags.begin(), {"--json", "create", "--title", title});
    std::string id = JsonValue(CtlOk(flags, stdin_data), "id");
    EXPECT_EQ(id.size(), 26u) << "no task id for " << title;
    return id;
  }

  std::string StatusOf(const std::string& id) {
    return JsonValue(CtlOk({"--json", "get", id}), "status");
  }

  // Polls until the task has `status`; false if it does not within kPatience.
  bool AwaitStatus(const std::string& id, const std::string& status) {
    const absl::Time deadline = absl::Now() + kPatience;
    while (absl::Now() < deadline) {
      if (StatusOf(id) == status) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  // Polls until the file contains `text`; false if it does not within kPatience.
  static bool AwaitFileContains(const std::string& path, const std::string& text) {
    const absl::Time deadline = absl::Now() + kPatience;
    while (absl::Now() < deadline) {
      if (absl::StrContains(ReadFileOrEmpty(path), text)) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  // Starts `kanbanctl work ARGS...` in the background, its output in `log`.
  void StartWork(ChildProcess& work, const std::vector<std::string>& args,
                 const std::string& log, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = CtlArgv({"work"});
    argv.insert(argv.end(), args.begin(), args.end());
    ASSERT_TRUE(work.Start(argv, env, log).ok());
  }

  TempDir dir_;  // Outlives the server that uses it.
  Kanband kanband_;
};

INSTANTIATE_TEST_SUITE_P(Backends, KanbanctlWorkTest, ::kanban::testing::AllBackends(),
                         ::kanban::testing::BackendName);

TEST_P(KanbanctlWorkTest, WorkOnceCompletesTheTaskWithTheCommandsStdout) {
  std::string id =
      NewTask("hello world",
              {"--priority", "4", "--label", "a", "--label", "b", "--body-file", "-"},
              "line one\nline two\n");
  RunResult r = Ctl({"work", "--once", "--worker", "w1", "--", "sh", "-c",
                     "echo \"$KANBAN_TASK_TITLE\"; cat; "
                     "echo \"$KANBAN_TASK_ID $KANBAN_TASK_ATTEMPT $KANBAN_TASK_PRIORITY "
                     "$KANBAN_TASK_LABELS $KANBAN_TASK_BOARD $KANBAN_SERVER\"; "
                     "test -n \"$KANBAN_LEASE_TOKEN\" && echo has-token"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(
      absl::StrContains(r.err, absl::StrCat("claimed ", id, " attempt 1: hello world")))
      << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, absl::StrCat("completed ", id))) << r.err;

  std::string task = CtlOk({"--json", "get", id});
  EXPECT_EQ(JsonValue(task, "status"), "DONE") << task;
  EXPECT_EQ(
      JsonValue(task, "result"),
      JsonEscaped(absl::StrCat("hello world\nline one\nline two\n", id,
                               " 1 4 a,b default ", kanband_.address, "\nhas-token\n")))
      << task;
}

TEST_P(KanbanctlWorkTest, WorkOnceFailsTheTaskWithTheEndOfStderr) {
  const std::vector<std::string> failing = {
      "--", "sh", "-c", "echo partial; echo first >&2; echo 'it broke' >&2; exit 3"};
  std::string flaky = NewTask("flaky");
  std::vector<std::string> args = {"work", "--once", "--worker", "w1"};
  args.insert(args.end(), failing.begin(), failing.end());
  RunResult r = Ctl(args);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(absl::StrContains(
      r.err, absl::StrCat("failed ", flaky, ": command failed with exit status 3")))
      << r.err;

  std::string task = CtlOk({"--json", "get", flaky});
  EXPECT_EQ(JsonValue(task, "status"), "READY") << task;
  EXPECT_EQ(JsonValue(task, "attempt"), "1") << task;
  EXPECT_EQ(JsonValue(task, "last_error"),
            JsonEscaped("command failed with exit status 3: first\nit broke"))
      << task;

  // With no attempts left the task needs a person. Its priority puts it ahead
  // of the flaky task, whatever that one's backoff.
  std::string fragile = NewTask("fragile", {"--max-attempts", "1", "--priority", "5"});
  r = Ctl(args);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  task = CtlOk({"--json", "get", fragile});
  EXPECT_EQ(JsonValue(task, "status"), "BLOCKED") << task;
  EXPECT_TRUE(absl::StrContains(JsonValue(task, "last_error"), "it broke")) << task;
}

TEST_P(KanbanctlWorkTest, LostLeaseKillsTheCommand) {
  std::string id = NewTask("long job");
  const std::string log = dir_.File("work.log");
  ChildProcess work;
  // A 3 s lease is renewed every second, so the loss is noticed quickly.
  StartWork(work,
            {"--once", "--lease", "3s", "--worker", "w-lost", "--", "sh", "-c",
             "echo started; sleep 30"},
            log);
  ASSERT_TRUE(AwaitStatus(id, "RUNNING")) << ReadFileOrEmpty(log);

  const absl::Time moved_at = absl::Now();
  CtlOk({"move", id, "blocked", "--reason", "operator stop"});
  EXPECT_EQ(work.Wait(kPatience), 0) << ReadFileOrEmpty(log);
  EXPECT_LT(absl::Now() - moved_at, absl::Seconds(10));

  std::string output = ReadFileOrEmpty(log);
  EXPECT_TRUE(absl::StrContains(output, absl::StrCat("lost ", id, ": cancelled")))
      << output;
  EXPECT_FALSE(absl::StrContains(output, "completed")) << output;
  std::string task = CtlOk({"--json", "get", id});
  EXPECT_EQ(JsonValue(task, "status"), "BLOCKED") << task;
  EXPECT_EQ(JsonValue(task, "result"), "") << task;
}

TEST_P(KanbanctlWorkTest, LostLeaseKillsACommandThatIgnoresSigterm) {
  std::string id = NewTask("stubborn job");
  const std::string log = dir_.File("work.log");
  ChildProcess work;
  // The shell and its sleep both ignore SIGTERM; SIGKILL follows the grace.
  StartWork(work,
            {"--once", "--lease", "3s", "--grace", "200ms", "--", "sh", "-c",
             "trap '' TERM; sleep 30"},
            log);
  ASSERT_TRUE(AwaitStatus(id, "RUNNING")) << ReadFileOrEmpty(log);

  const absl::Time moved_at = absl::Now();
  CtlOk({"move", id, "archived"});
  EXPECT_EQ(work.Wait(kPatience), 0) << ReadFileOrEmpty(log);
  EXPECT_LT(absl::Now() - moved_at, absl::Seconds(10));
  EXPECT_TRUE(
      absl::StrContains(ReadFileOrEmpty(log), absl::StrCat("lost ", id, ": cancelled")))
      << ReadFileOrEmpty(log);
}

TEST_P(KanbanctlWorkTest, LostLeaseKillsTheCommandAtOnceOnAStream) {
  std::string id = NewTask("long job");
  const std::string log = dir_.File("work.log");
  ChildProcess work;
  // A heartbeat every 20 s: only the server's push can be this quick.
  StartWork(work, {"--once", "--lease", "60s", "--", "sh", "-c", "sleep 30"}, log);
  ASSERT_TRUE(AwaitStatus(id, "RUNNING")) << ReadFileOrEmpty(log);

  const absl::Time moved_at = absl::Now();
  CtlOk({"move", id, "blocked"});
  EXPECT_EQ(work.Wait(kPatience), 0) << ReadFileOrEmpty(log);
  EXPECT_LT(absl::Now() - moved_at, absl::Seconds(3));
  EXPECT_TRUE(
      absl::StrContains(ReadFileOrEmpty(log), absl::StrCat("lost ", id, ": cancelled")))
      << ReadFileOrEmpty(log);
}

TEST_P(KanbanctlWorkTest, WorkUsesAWorkerStreamUnlessToldUnary) {
  RestartServer({"--log_rpcs"});
  std::string streamed = NewTask("streamed");
  RunResult r = Ctl({"work", "--once", "--", "echo", "streamed"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(absl::StrContains(r.err, absl::StrCat("completed ", streamed))) << r.err;
  EXPECT_EQ(RpcLines("WorkerService/Work"), 1) << kanband_.Log();
  EXPECT_EQ(RpcLines("KanbanService/ClaimTask"), 0) << kanband_.Log();
  EXPECT_EQ(RpcLines("KanbanService/CompleteTask"), 0) << kanband_.Log();

  std::string unary = NewTask("unary");
  r = Ctl({"work", "--once", "--unary", "--", "echo", "unary"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(absl::StrContains(r.err, absl::StrCat("completed ", unary))) << r.err;
  EXPECT_EQ(RpcLines("WorkerService/Work"), 1) << kanband_.Log();
  EXPECT_EQ(RpcLines("KanbanService/ClaimTask"), 1) << kanband_.Log();
  EXPECT_EQ(RpcLines("KanbanService/CompleteTask"), 1) << kanband_.Log();
  EXPECT_EQ(JsonValue(CtlOk({"--json", "get", unary}), "result"), "unary\\n");
}

TEST_P(KanbanctlWorkTest, WorkUsesUnaryCallsWhenTheServerHasNoWorkerStreams) {
  RestartServer({"--worker_streams=false"});
  std::string id = NewTask("old server");
  RunResult r = Ctl({"work", "--once", "--", "echo", "fine"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err,
            absl::StrCat("claimed ", id, " attempt 1: old server\ncompleted ", id, "\n"));
  std::string task = CtlOk({"--json", "get", id});
  EXPECT_EQ(JsonValue(task, "status"), "DONE") << task;
  EXPECT_EQ(JsonValue(task, "result"), "fine\\n") << task;
}

TEST_P(KanbanctlWorkTest, ResultIsValidUtf8AndAtMost64KiB) {
  std::string id = NewTask("big output");
  RunResult r = Ctl({"work", "--once", "--", "sh", "-c",
                     "printf 'a\\377b'; head -c 70000 /dev/zero | tr '\\000' x"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::string result = JsonValue(CtlOk({"--json", "get", id}), "result");
  ASSERT_EQ(result.size(), 64u * 1024);
  EXPECT_EQ(result.substr(0, 6),
            "a\xEF\xBF\xBD"
            "bx");
  EXPECT_EQ(result.find_first_not_of('x', 5), std::string::npos);
}

TEST_P(KanbanctlWorkTest, SigtermLetsTheCurrentCommandFinishThenExits) {
  std::string current = NewTask("current", {"--priority", "5"});
  std::string next = NewTask("next", {"--priority", "1"});
  const std::string log = dir_.File("work.log");
  const std::string go = dir_.File("go");
  ChildProcess work;
  StartWork(work,
            {"--lease", "3s", "--worker", "w-drain", "--", "sh", "-c",
             "while [ ! -e \"$GO_FILE\" ]; do sleep 0.02; done; echo drained"},
            log, {absl::StrCat("GO_FILE=", go)});
  ASSERT_TRUE(AwaitStatus(current, "RUNNING")) << ReadFileOrEmpty(log);

  ASSERT_EQ(work.Signal(SIGTERM), 0);
  ASSERT_TRUE(AwaitFileContains(log, "stopping:")) << ReadFileOrEmpty(log);
  std::ofstream(go) << "go\n";
  EXPECT_EQ(work.Wait(kPatience), 0) << ReadFileOrEmpty(log);

  std::string task = CtlOk({"--json", "get", current});
  EXPECT_EQ(JsonValue(task, "status"), "DONE") << task;
  EXPECT_EQ(JsonValue(task, "result"), "drained\\n") << task;
  // A replacement the server claimed behind the last report goes back as
  // the stream ends.
  EXPECT_TRUE(AwaitStatus(next, "READY"));
  EXPECT_FALSE(absl::StrContains(ReadFileOrEmpty(log), absl::StrCat("claimed ", next)))
      << ReadFileOrEmpty(log);
}

TEST_P(KanbanctlWorkTest, WorkStopsAfterMaxTasksOrWhenNothingIsLeft) {
  std::vector<std::string> ids = {NewTask("one", {"--priority", "3"}),
                                  NewTask("two", {"--priority", "2"}),
                                  NewTask("three", {"--priority", "1"})};
  RunResult r = Ctl({"work", "--max-tasks", "2", "--wait", "0s", "--", "true"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(StatusOf(ids[0]), "DONE");
  EXPECT_EQ(StatusOf(ids[1]), "DONE");
  EXPECT_TRUE(AwaitStatus(ids[2], "READY"));  // See SigtermLets... above.

  CtlOk({"move", ids[2], "blocked"});
  r = Ctl({"work", "--once", "--wait", "0s", "--", "true"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "nothing to claim\n");
}

TEST_P(KanbanctlWorkTest, WorkChecksItsCommandLine) {
  EXPECT_TRUE(IsUsageError(Ctl({"work", "--once"}), "missing argument"));
  EXPECT_TRUE(IsUsageError(Ctl({"work", "--once", "--", "no-such-program-here"}),
                           "no-such-program-here"));
  EXPECT_TRUE(IsUsageError(Ctl({"work", "--lease", "soon", "--", "true"}), "--lease"));
  EXPECT_TRUE(
      IsUsageError(Ctl({"work", "--max-tasks", "-1", "--", "true"}), "--max-tasks"));
  EXPECT_TRUE(IsRpcError(Ctl({"work", "--once", "--board", "nosuch", "--", "true"}),
                         "NOT_FOUND"));
}

TEST_P(KanbanctlWorkTest, ClaimHeartbeatAndCompleteByHand) {
  std::string id = NewTask("manual");
  std::string claimed = CtlOk({"claim", "--worker", "w1", "--lease", "30s"});
  EXPECT_EQ(Row(claimed, 0),
            (std::vector<std::string>{"TASK", "TITLE", "ATTEMPT", "TOKEN", "EXPIRES"}))
      << claimed;
  std::vector<std::string> row = Row(claimed, 1);
  ASSERT_EQ(row.size(), 5u) << claimed;
  EXPECT_EQ(row[0], id);
  EXPECT_EQ(row[1], "manual");
  EXPECT_EQ(row[2], "1/3");
  const std::string token = row[3];
  EXPECT_FALSE(token.empty());
  EXPECT_EQ(StatusOf(id), "RUNNING");

  std::string beat = CtlOk({"heartbeat", "--worker", "w1", absl::StrCat(id, ":", token)});
  EXPECT_EQ(Row(beat, 1).size() >= 2 ? Row(beat, 1)[1] : "", "EXTENDED") << beat;
  std::string wrong =
      CtlOk({"heartbeat", "--worker", "w1", absl::StrCat(id, ":nottoken")});
  EXPECT_EQ(Row(wrong, 1).size() >= 2 ? Row(wrong, 1)[1] : "", "LOST") << wrong;

  std::string done = CtlOk({"complete", id, token, "--result", "42"});
  EXPECT_EQ(Field(done, "status"), "DONE") << done;
  EXPECT_EQ(Field(done, "result"), "42") << done;

  // The token is stale now.
  RunResult stale = Ctl({"complete", id, token, "--result", "43"});
  EXPECT_TRUE(IsRpcError(stale, "FAILED_PRECONDITION"));
  EXPECT_TRUE(absl::StartsWith(stale.err, "error: FAILED_PRECONDITION: lease lost"))
      << stale.err;
  std::string after =
      CtlOk({"--json", "heartbeat", "--worker", "w1", absl::StrCat(id, ":", token)});
  EXPECT_EQ(JsonValue(after, "state"), "LOST") << after;
  EXPECT_EQ(JsonValue(after, "reason"), "completed") << after;
  EXPECT_EQ(Field(CtlOk({"get", id}), "result"), "42");
}

TEST_P(KanbanctlWorkTest, FailAndReleaseByHand) {
  std::string first = NewTask("first", {"--priority", "2"});
  std::string second = NewTask("second", {"--label", "second"});

  std::string json = CtlOk({"--json", "claim", "--worker", "w2"});
  EXPECT_EQ(JsonValue(json, "id"), first) << json;
  EXPECT_EQ(JsonValue(json, "worker_id"), "w2") << json;
  const std::string token = JsonValue(json, "token");
  ASSERT_FALSE(token.empty()) << json;

  EXPECT_TRUE(IsUsageError(Ctl({"fail", first, token}), "--error"));
  std::string failed = CtlOk({"fail", first, token, "--error", "bad input", "--retry"});
  EXPECT_EQ(Field(failed, "status"), "READY") << failed;
  EXPECT_EQ(Field(failed, "attempts"), "1 of 3") << failed;
  EXPECT_EQ(Field(failed, "last_error"), "bad input") << failed;
  RunResult stale = Ctl({"fail", first, token, "--error", "again"});
  EXPECT_TRUE(IsRpcError(stale, "FAILED_PRECONDITION"));
  EXPECT_TRUE(absl::StartsWith(stale.err, "error: FAILED_PRECONDITION: lease lost"))
      << stale.err;

  // The label picks the second task, whatever the first one's backoff.
  json = CtlOk({"--json", "claim", "--worker", "w2", "--label", "second"});
  EXPECT_EQ(JsonValue(json, "id"), second) << json;
  const std::string second_token = JsonValue(json, "token");
  std::string released = CtlOk({"release", second, second_token});
  EXPECT_EQ(Field(released, "status"), "READY") << released;
  EXPECT_TRUE(IsRpcError(Ctl({"release", second, second_token}), "FAILED_PRECONDITION"));
}

TEST_P(KanbanctlWorkTest, ClaimWithNothingClaimable) {
  EXPECT_EQ(CtlOk({"claim", "--worker", "w"}), "nothing to claim\n");
  EXPECT_EQ(CtlOk({"--json", "claim", "--worker", "w", "--wait", "100ms"}), "{}\n");
  EXPECT_TRUE(IsUsageError(Ctl({"claim"}), "--worker"));
  EXPECT_TRUE(IsUsageError(Ctl({"claim", "--worker", "w", "--wait", "-1s"}), "--wait"));
  EXPECT_TRUE(
      IsUsageError(Ctl({"heartbeat", "--worker", "w", "no-colon"}), "TASK_ID:TOKEN"));
  EXPECT_TRUE(
      IsRpcError(Ctl({"claim", "--worker", "w", "--lease", "2h"}), "INVALID_ARGUMENT"));
}

TEST_P(KanbanctlWorkTest, WorkersShowsWhoHoldsWhat) {
  std::string id = NewTask("held");
  CtlOk({"claim", "--worker", "w-list"});

  std::string table = CtlOk({"workers"});
  EXPECT_EQ(Row(table, 0), (std::vector<std::string>{"WORKER", "LAST", "SEEN", "FIRST",
                                                     "SEEN", "TASKS"}))
      << table;
  std::vector<std::string> row = Row(table, 1);
  ASSERT_FALSE(row.empty()) << table;
  EXPECT_EQ(row.front(), "w-list") << table;
  EXPECT_EQ(row.back(), id) << table;

  std::string json = CtlOk({"--json", "workers", "--board", "default"});
  EXPECT_EQ(JsonValue(json, "worker_id"), "w-list") << json;
  EXPECT_TRUE(absl::StrContains(json, id)) << json;
}

TEST_P(KanbanctlWorkTest, HelpListsTheWorkerCommands) {
  std::string help = CtlOk({"help"});
  for (const char* command :
       {"claim", "heartbeat", "complete", "fail", "release", "workers", "work"}) {
    EXPECT_TRUE(absl::StrContains(help, absl::StrCat("\n  ", command, " ")))
        << command << " missing from:\n"
        << help;
  }
  EXPECT_TRUE(absl::StrContains(help, "[--unary]")) << help;
}

}  // namespace
}  // namespace kanban
