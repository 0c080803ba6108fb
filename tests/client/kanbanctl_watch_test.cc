// End-to-end tests of `kanbanctl watch`: every test starts a real kanband on
// a fresh database, runs the watch in the background with its output going
// to a file, writes through kanbanctl and polls the file for the lines it
// expects.
#include <signal.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::ChildProcess;
using ::kanban::testing::Describe;
using ::kanban::testing::JsonValue;
using ::kanban::testing::Kanband;
using ::kanban::testing::ReadFileOrEmpty;
using ::kanban::testing::RunResult;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;
// kanban::testing::Run is always written out in full: inside a test,
// ::testing::Test::Run would hide it.

// Long enough never to be hit by a passing test; a bound for a failing one.
constexpr absl::Duration kPatience = absl::Seconds(20);
// How long a stopped watch may take to exit.
constexpr absl::Duration kPromptly = absl::Seconds(3);

// The complete lines of `text` (a line still being written is left out).
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  lines.pop_back();  // After the last newline: empty, or a partial line.
  return lines;
}

int64_t Seq(const std::string& json_line) {
  int64_t seq = -1;
  if (!absl::SimpleAtoi(JsonValue(json_line, "seq"), &seq)) return -1;
  return seq;
}

// "kind task_id" of each line, for comparing whole feeds at once.
std::vector<std::string> KindsAndTasks(const std::vector<std::string>& json_lines) {
  std::vector<std::string> out;
  for (const std::string& line : json_lines) {
    out.push_back(absl::StrCat(JsonValue(line, "kind"), " ", JsonValue(line, "task_id")));
  }
  return out;
}

// "" if the lines are one JSON object each with seq first..first+n-1 in
// order; else what is wrong.
std::string CheckContiguous(const std::vector<std::string>& json_lines, int64_t first) {
  int64_t want = first;
  for (const std::string& line : json_lines) {
    if (!absl::StartsWith(line, "{") || !absl::EndsWith(line, "}")) {
      return absl::StrCat("not one JSON object: ", line);
    }
    if (Seq(line) != want) return absl::StrCat("expected seq ", want, " in ", line);
    ++want;
  }
  return "";
}

// A `kanbanctl watch` running in the background; stdout and stderr go to
// one file.
class Watch {
 public:
  Watch(const std::vector<std::string>& argv, std::string output_path)
      : output_path_(std::move(output_path)) {
    absl::Status status = process_.Start(argv, {"KANBAN_SERVER"}, output_path_);
    EXPECT_TRUE(status.ok()) << status;
  }

  std::string Output() const { return ReadFileOrEmpty(output_path_); }

  // The complete JSON lines (events) written so far.
  std::vector<std::string> Events() const {
    std::vector<std::string> events;
    for (std::string& line : Lines(Output())) {
      if (absl::StartsWith(line, "{")) events.push_back(std::move(line));
    }
    return events;
  }

  // Polls the output until a complete line contains `text`; false (and the
  // output in a test failure) if none does within kPatience or the watch
  // exits first.
  bool AwaitLineWith(const std::string& text) {
    const absl::Time deadline = absl::Now() + kPatience;
    while (absl::Now() < deadline) {
      for (const std::string& line : Lines(Output())) {
        if (absl::StrContains(line, text)) return true;
      }
      if (int code = process_.Wait(absl::Milliseconds(20)); code != -1) {
        ADD_FAILURE() << "watch exited with " << code << " before printing " << text
                      << "; output:\n"
                      << Output();
        return false;
      }
    }
    ADD_FAILURE() << "no line with " << text << " within " << kPatience << "; output:\n"
                  << Output();
    return false;
  }

  // Polls until `count` events have been printed.
  bool AwaitEvents(size_t count) {
    const absl::Time deadline = absl::Now() + kPatience;
    while (Events().size() < count) {
      if (absl::Now() > deadline || process_.Wait(absl::Milliseconds(20)) != -1) {
        ADD_FAILURE() << "expected " << count << " events; output:\n" << Output();
        return false;
      }
    }
    return true;
  }

  ChildProcess& process() { return process_; }

 private:
  std::string output_path_;
  ChildProcess process_;
};

class KanbanctlWatchTest : public ::kanban::testing::BackendTest {
 protected:
  void SetUp() override {
    if (Database(dir_.File("kanban.db")).empty()) return;  // Skipped: no PostgreSQL.
    ASSERT_TRUE(StartServer());
  }

  bool StartServer(std::vector<std::string> args = {}) {
    kanband_ = StartKanband(KANBAND_PATH, Database(dir_.File("kanban.db")),
                            std::move(args), {"KANBAN_SYNCHRONOUS_MODE"});
    return kanband_.ok();
  }

  std::vector<std::string> CtlArgv(std::vector<std::string> args) {
    args.insert(args.begin(), {KANBANCTL_PATH, "--server", kanband_.address});
    return args;
  }

  RunResult Ctl(std::vector<std::string> args,
                absl::Duration timeout = absl::Seconds(30)) {
    return kanban::testing::Run(CtlArgv(std::move(args)), {"KANBAN_SERVER"}, "", timeout);
  }

  // Runs a command that must succeed and returns its stdout.
  std::string CtlOk(std::vector<std::string> args) {
    RunResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << "\n" << Describe(r);
    return r.out;
  }

  // Creates a task and returns its id.
  std::string NewTask(const std::string& title, std::vector<std::string> flags = {}) {
    flags.insert(flags.begin(), {"--json", "create", "--title", title});
    std::string id = JsonValue(CtlOk(flags), "id");
    EXPECT_EQ(id.size(), 26u) << "no task id for " << title;
    return id;
  }

  // Starts `kanbanctl watch ARGS...` against this test's server.
  std::unique_ptr<Watch> StartWatch(std::vector<std::string> args) {
    args.insert(args.begin(), "watch");
    return std::make_unique<Watch>(CtlArgv(std::move(args)),
                                   dir_.File(absl::StrCat("watch", ++watches_, ".out")));
  }

  TempDir dir_;
  Kanband kanband_;
  int watches_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Backends, KanbanctlWatchTest, ::kanban::testing::AllBackends(),
                         ::kanban::testing::BackendName);

TEST_P(KanbanctlWatchTest, JsonPrintsHistoryThenLiveEventsInSeqOrder) {
  const std::string a = NewTask("first");
  const std::string b = NewTask("second");
  std::unique_ptr<Watch> watch = StartWatch({"--json", "--after", "0"});
  ASSERT_TRUE(watch->AwaitEvents(2));
  // Written while the watch runs: arrives live.
  const std::string c = NewTask("third");
  CtlOk({"move", a, "done", "--reason", "shipped"});
  ASSERT_TRUE(watch->AwaitEvents(4));

  std::vector<std::string> events = watch->Events();
  EXPECT_EQ(CheckContiguous(events, 1), "");
  EXPECT_EQ(KindsAndTasks(events),
            (std::vector<std::string>{"created " + a, "created " + b, "created " + c,
                                      "moved " + a}));
  EXPECT_EQ(JsonValue(events[3], "board"), "default");
  EXPECT_EQ(JsonValue(events[3], "reason"), "shipped");
  EXPECT_EQ(JsonValue(events[3], "status"), "DONE");  // The task snapshot.
  EXPECT_EQ(JsonValue(events[2], "title"), "third");
  // Nothing but events: no bookmarks, no other text.
  EXPECT_EQ(Lines(watch->Output()).size(), events.size()) << watch->Output();
}

TEST_P(KanbanctlWatchTest, HumanLinesShowSeqTimeBoardKindTaskStatusTitleReason) {
  const std::string a = NewTask("say \"hi\"");
  CtlOk({"move", a, "blocked", "--reason", "waiting\non review"});
  std::unique_ptr<Watch> watch = StartWatch({"--after", "0"});
  ASSERT_TRUE(watch->AwaitLineWith("seq=2 "));

  std::vector<std::string> lines = Lines(watch->Output());
  ASSERT_EQ(lines.size(), 2u) << watch->Output();
  std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
  ASSERT_GE(first.size(), 6u) << lines[0];
  EXPECT_EQ(first[0], "seq=1");
  absl::Time time;
  std::string error;
  EXPECT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%SZ", first[1], &time, &error))
      << lines[0] << ": " << error;
  EXPECT_LT(absl::AbsDuration(absl::Now() - time), absl::Minutes(5)) << lines[0];
  const std::string rest = absl::StrJoin(first.begin() + 2, first.end(), " ");
  EXPECT_EQ(rest, absl::StrCat("default created ", a, " READY \"say \\\"hi\\\"\""));
  // The reason's newline prints as a space, so one event stays one line.
  EXPECT_TRUE(absl::EndsWith(
      lines[1], absl::StrCat(" default moved ", a,
                             " BLOCKED \"say \\\"hi\\\"\" (waiting on review)")))
      << lines[1];
}

TEST_P(KanbanctlWatchTest, StartsFromNowByDefaultAndWithFromNow) {
  const std::string old_task = NewTask("before the watch");
  // --verbose prints the first bookmark: the stream is established and
  // "now" is fixed.
  std::unique_ptr<Watch> by_default = StartWatch({"--json", "--verbose"});
  std::unique_ptr<Watch> from_now = StartWatch({"--json", "--from-now", "--verbose"});
  ASSERT_TRUE(by_default->AwaitLineWith("bookmark seq=1"));
  ASSERT_TRUE(from_now->AwaitLineWith("bookmark seq=1"));
  const std::string new_task = NewTask("after the watch");

  for (Watch* watch : {by_default.get(), from_now.get()}) {
    ASSERT_TRUE(watch->AwaitEvents(1));
    std::vector<std::string> events = watch->Events();
    EXPECT_EQ(CheckContiguous(events, 2), "");
    EXPECT_EQ(KindsAndTasks(events), std::vector<std::string>{"created " + new_task});
  }
}

TEST_P(KanbanctlWatchTest, FiltersByKindTaskAndBoard) {
  CtlOk({"board-create", "other"});
  const std::string a = NewTask("on default");
  const std::string b = NewTask("on other", {"--board", "other"});
  CtlOk({"move", a, "todo"});
  CtlOk({"move", b, "todo"});
  CtlOk({"comment", a, "looks good"});

  std::unique_ptr<Watch> moves =
      StartWatch({"--json", "--after", "0", "--kind", "moved"});
  std::unique_ptr<Watch> two_kinds =
      StartWatch({"--json", "--after", "0", "--kind", "created", "--kind", "commented"});
  std::unique_ptr<Watch> task_a = StartWatch({"--json", "--after", "0", "--task", a});
  std::unique_ptr<Watch> both_tasks =
      StartWatch({"--json", "--after", "0", "--task", a, "--task", b});
  std::unique_ptr<Watch> other =
      StartWatch({"--json", "--after", "0", "--board", "other"});

  // Once the last matching event is out, every earlier one is too (seq
  // order), and so would be any that should have been filtered out.
  ASSERT_TRUE(moves->AwaitEvents(2));
  EXPECT_EQ(KindsAndTasks(moves->Events()),
            (std::vector<std::string>{"moved " + a, "moved " + b}));
  ASSERT_TRUE(two_kinds->AwaitEvents(3));
  EXPECT_EQ(KindsAndTasks(two_kinds->Events()),
            (std::vector<std::string>{"created " + a, "created " + b, "commented " + a}));
  ASSERT_TRUE(task_a->AwaitEvents(3));
  EXPECT_EQ(KindsAndTasks(task_a->Events()),
            (std::vector<std::string>{"created " + a, "moved " + a, "commented " + a}));
  ASSERT_TRUE(both_tasks->AwaitEvents(5));
  EXPECT_EQ(KindsAndTasks(both_tasks->Events()),
            (std::vector<std::string>{"created " + a, "created " + b, "moved " + a,
                                      "moved " + b, "commented " + a}));
  ASSERT_TRUE(other->AwaitEvents(3));
  EXPECT_EQ(KindsAndTasks(other->Events()),
            (std::vector<std::string>{"board_created ", "created " + b, "moved " + b}));

  // Filters apply to live events too: one more move shows up in `moves`
  // only after everything before it, and not in `two_kinds`.
  CtlOk({"move", a, "ready"});
  ASSERT_TRUE(moves->AwaitEvents(3));
  EXPECT_EQ(KindsAndTasks(moves->Events()).back(), "moved " + a);
  ASSERT_TRUE(task_a->AwaitEvents(4));
  EXPECT_EQ(two_kinds->Events().size(), 3u) << two_kinds->Output();
  EXPECT_EQ(other->Events().size(), 3u) << other->Output();
}

TEST_P(KanbanctlWatchTest, SigtermAndSigintExitZeroPromptly) {
  std::unique_ptr<Watch> terminated = StartWatch({"--json", "--verbose"});
  std::unique_ptr<Watch> interrupted = StartWatch({"--after", "0"});
  ASSERT_TRUE(terminated->AwaitLineWith("bookmark seq="));
  const std::string id = NewTask("seen");
  ASSERT_TRUE(interrupted->AwaitLineWith(id));

  ASSERT_EQ(terminated->process().Signal(SIGTERM), 0);
  ASSERT_EQ(interrupted->process().Signal(SIGINT), 0);
  EXPECT_EQ(terminated->process().Wait(kPromptly), 0) << terminated->Output();
  EXPECT_EQ(interrupted->process().Wait(kPromptly), 0) << interrupted->Output();
}

TEST_P(KanbanctlWatchTest, SigtermExitsZeroWhileWaitingToReconnect) {
  std::unique_ptr<Watch> watch = StartWatch({"--json", "--verbose"});
  ASSERT_TRUE(watch->AwaitLineWith("bookmark seq="));
  kanband_.process.Signal(SIGTERM);
  ASSERT_EQ(kanband_.process.Wait(kPatience), 0) << kanband_.Log();
  // The watch is now retrying a server that is gone.
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(watch->process().running());
  ASSERT_EQ(watch->process().Signal(SIGTERM), 0);
  EXPECT_EQ(watch->process().Wait(kPromptly), 0) << watch->Output();
}

TEST_P(KanbanctlWatchTest, ResumesAfterAServerRestartWithoutGapsOrDuplicates) {
  std::unique_ptr<Watch> watch = StartWatch({"--json", "--after", "0"});
  std::vector<std::string> tasks;
  for (int i = 0; i < 3; ++i) tasks.push_back(NewTask(absl::StrCat("before ", i)));
  ASSERT_TRUE(watch->AwaitEvents(3));

  const std::string port = kanband_.address.substr(kanband_.address.rfind(':') + 1);
  kanband_.process.Signal(SIGTERM);
  ASSERT_EQ(kanband_.process.Wait(kPatience), 0) << kanband_.Log();
  ASSERT_TRUE(StartServer({"--listen=127.0.0.1:" + port}));
  for (int i = 0; i < 3; ++i) tasks.push_back(NewTask(absl::StrCat("after ", i)));
  ASSERT_TRUE(watch->AwaitEvents(6));

  std::vector<std::string> events = watch->Events();
  EXPECT_EQ(CheckContiguous(events, 1), "");
  std::vector<std::string> expected;
  for (const std::string& id : tasks) expected.push_back("created " + id);
  EXPECT_EQ(KindsAndTasks(events), expected);
  EXPECT_TRUE(watch->process().running()) << watch->Output();
}

TEST_P(KanbanctlWatchTest, ResumePointOlderThanRetainedHistoryIsOutOfRange) {
  kanband_.process.Signal(SIGTERM);
  ASSERT_EQ(kanband_.process.Wait(kPatience), 0) << kanband_.Log();
  ASSERT_TRUE(StartServer({"--event_retention_count=5", "--sweep_interval=100ms"}));
  for (int i = 0; i < 25; ++i) {
    const std::string id = NewTask(absl::StrCat("task ", i));
    CtlOk({"move", id, "todo"});
  }

  // The sweep runs every 100 ms; until it has, the watch is valid and runs
  // on (the short timeout ends it).
  const absl::Time deadline = absl::Now() + kPatience;
  RunResult r;
  do {
    r = Ctl({"watch", "--json", "--after", "0"}, absl::Seconds(2));
  } while (r.exit_code == -1 && absl::Now() < deadline);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.err, "error: OUT_OF_RANGE: ")) << Describe(r);
  EXPECT_EQ(r.out, "");

  // A start inside the retained history still works.
  std::unique_ptr<Watch> watch = StartWatch({"--json", "--after", "48"});
  ASSERT_TRUE(watch->AwaitEvents(2));
  EXPECT_EQ(CheckContiguous(watch->Events(), 49), "");
}

// The server knows the event kinds: a misspelt one is refused, naming the
// known ones, instead of silently matching nothing.
TEST_P(KanbanctlWatchTest, UnknownKindIsRefusedByTheServer) {
  RunResult r = Ctl({"watch", "--kind", "move"}, absl::Seconds(10));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(
      absl::StartsWith(r.err, "error: INVALID_ARGUMENT: kinds[0]: unknown event kind"))
      << Describe(r);
  EXPECT_TRUE(absl::StrContains(r.err, "moved")) << Describe(r);
}

TEST_P(KanbanctlWatchTest, RejectsBadCommandLines) {
  const std::vector<std::vector<std::string>> bad = {
      {"watch", "--after", "3", "--from-now"},
      {"watch", "--after", "-1"},
      {"watch", "--bookmark-interval", "soon"},
      {"watch", "extra"},
  };
  for (const std::vector<std::string>& args : bad) {
    RunResult r = Ctl(args, absl::Seconds(10));
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << "\n" << Describe(r);
    EXPECT_TRUE(absl::StartsWith(r.err, "usage error: ")) << Describe(r);
    EXPECT_EQ(r.out, "");
  }
}

}  // namespace
}  // namespace kanban
