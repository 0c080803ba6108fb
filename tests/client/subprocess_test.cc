// Tests of client/cpp/subprocess.h, the one process runner that `kanbanctl
// work` and the tests' own support (tests/support/process.h) are built on:
// real programs (/bin/sh), real pipes, real signals.
#include "client/cpp/subprocess.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <atomic>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kanban::client {
namespace {

// The process runs with SIGPIPE ignored, as the header asks.
class SubprocessTest : public ::testing::Test {
 protected:
  void SetUp() override { signal(SIGPIPE, SIG_IGN); }
};

TEST_F(SubprocessTest, FeedsStdinAndCapturesStdoutAndStderr) {
  SubprocessOptions options;
  options.argv = {"sh", "-c", "tr a-z A-Z; echo oops >&2; exit 3"};
  options.stdin_data = "hello";
  absl::StatusOr<SubprocessResult> r = RunSubprocess(options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->signal, 0);
  EXPECT_FALSE(r->killed);
  EXPECT_EQ(r->out, "HELLO");
  EXPECT_EQ(r->err_tail, "oops\n");
}

TEST_F(SubprocessTest, EnvironmentEntriesSetOverrideAndRemove) {
  setenv("KANBAN_SUBPROCESS_KEPT", "kept", 1);
  setenv("KANBAN_SUBPROCESS_GONE", "present", 1);
  setenv("KANBAN_SUBPROCESS_CHANGED", "old", 1);
  SubprocessOptions options;
  options.argv = {"sh", "-c",
                  "echo \"$KANBAN_SUBPROCESS_KEPT ${KANBAN_SUBPROCESS_GONE-unset} "
                  "$KANBAN_SUBPROCESS_CHANGED $KANBAN_SUBPROCESS_NEW\""};
  options.env = {"KANBAN_SUBPROCESS_GONE", "KANBAN_SUBPROCESS_CHANGED=new",
                 "KANBAN_SUBPROCESS_NEW=added"};
  absl::StatusOr<SubprocessResult> r = RunSubprocess(options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "kept unset new added\n");
}

TEST_F(SubprocessTest, BoundsStdoutHeadAndStderrTail) {
  SubprocessOptions options;
  options.argv = {"sh", "-c", "printf 0123456789; printf abcdefghij >&2"};
  options.max_stdout = 4;
  options.max_stderr_tail = 3;
  absl::StatusOr<SubprocessResult> r = RunSubprocess(options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "0123");
  EXPECT_TRUE(r->out_truncated);
  EXPECT_EQ(r->err_tail, "hij");
}

TEST_F(SubprocessTest, ShouldKillSendsSigtermThenSigkillAfterTheGrace) {
  SubprocessOptions options;
  // Ignores SIGTERM: only the SIGKILL after the grace period ends it.
  options.argv = {"sh", "-c", "trap '' TERM; echo started; while :; do sleep 0.05; done"};
  const absl::Time kill_at = absl::Now() + absl::Milliseconds(200);
  options.should_kill = [kill_at] { return absl::Now() >= kill_at; };
  options.kill_grace = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  absl::StatusOr<SubprocessResult> r = RunSubprocess(options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->killed);
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
  EXPECT_EQ(r->out, "started\n");
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(500));
}

TEST_F(SubprocessTest, MissingProgramIsNotFound) {
  SubprocessOptions options;
  options.argv = {"kanban-no-such-program-here"};
  EXPECT_EQ(RunSubprocess(options).status().code(), absl::StatusCode::kNotFound);
  options.argv = {};
  EXPECT_EQ(RunSubprocess(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SubprocessTest, SpawnProcessLeavesReapingToTheCaller) {
  absl::StatusOr<pid_t> pid = SpawnProcess("/bin/sh", {"sh", "-c", "exit 7"}, {}, {},
                                           /*own_process_group=*/false);
  ASSERT_TRUE(pid.ok()) << pid.status();
  int status = 0;
  ASSERT_EQ(waitpid(*pid, &status, 0), *pid);
  EXPECT_EQ(DecodeWaitStatus(status), 7);
  EXPECT_EQ(
      SpawnProcess("/nonexistent/program", {"program"}, {}, {}, false).status().code(),
      absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace kanban::client
