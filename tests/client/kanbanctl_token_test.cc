// End-to-end tests of bearer tokens on the client side against a kanband run
// with --auth=token: every test makes an admin token offline (`kanband token
// create`), starts a real kanband on that database and drives it through the
// kanbanctl binary, checking exit codes, status code names, what is printed,
// and that no secret is ever printed where it should not be. The last tests
// call client/channel.h directly, and check that a token is harmless to a
// kanband without auth.
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
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cpp/channel.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/support/cli.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::ChildProcess;
using ::kanban::testing::Describe;
using ::kanban::testing::Field;
using ::kanban::testing::IsRpcError;
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

// A secret as the server makes them: "kb_" and 43 base64url characters.
bool LooksLikeSecret(const std::string& text) {
  if (!absl::StartsWith(text, "kb_") || text.size() != 3 + 43) return false;
  for (char c : text.substr(3)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

// The row of `table` whose first cell is `name`, split on spaces; empty if
// there is none.
std::vector<std::string> RowNamed(const std::string& table, const std::string& name) {
  for (size_t i = 1;; ++i) {
    std::vector<std::string> row = Row(table, i);
    if (row.empty()) return {};
    if (row[0] == name) return row;
  }
}

class KanbanctlTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    admin_ = MakeTokenOffline({"--name=root", "--role=admin"});
    ASSERT_TRUE(LooksLikeSecret(admin_)) << admin_;
    kanband_ =
        StartKanband(KANBAND_PATH, db_, {"--auth=token"}, {"KANBAN_SYNCHRONOUS_MODE"});
    ASSERT_TRUE(kanband_.ok());
  }

  // `kanband token create --db=DB FLAGS...`: its one line of stdout.
  std::string MakeTokenOffline(const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {KANBAND_PATH, "token", "create",
                                     absl::StrCat("--db=", db_)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    RunResult r = kanban::testing::Run(argv);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << Describe(r);
    return std::string(absl::StripTrailingAsciiWhitespace(r.out));
  }

  std::vector<std::string> CtlArgv(std::vector<std::string> args) {
    args.insert(args.begin(), {KANBANCTL_PATH, "--server", kanband_.address});
    return args;
  }

  // Runs kanbanctl with `env` ("NAME=value"), and neither KANBAN_SERVER nor
  // KANBAN_TOKEN unless `env` sets them.
  RunResult Ctl(std::vector<std::string> args, std::vector<std::string> env = {}) {
    env.insert(env.begin(), {"KANBAN_SERVER", "KANBAN_TOKEN"});
    return kanban::testing::Run(CtlArgv(std::move(args)), env);
  }

  // Runs kanbanctl --token TOKEN ARGS...
  RunResult CtlAs(const std::string& token, std::vector<std::string> args) {
    args.insert(args.begin(), {"--token", token});
    return Ctl(std::move(args));
  }

  // Runs a command that must succeed with `token`; returns its stdout.
  std::string CtlOkAs(const std::string& token, std::vector<std::string> args) {
    RunResult r = CtlAs(token, args);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << "\n" << Describe(r);
    return r.out;
  }

  // `kanbanctl token create` with the admin token: the new secret.
  std::string CreateToken(const std::vector<std::string>& flags) {
    std::vector<std::string> args = {"token", "create"};
    args.insert(args.end(), flags.begin(), flags.end());
    RunResult r = CtlAs(admin_, args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    const std::string secret(absl::StripTrailingAsciiWhitespace(r.out));
    EXPECT_TRUE(LooksLikeSecret(secret)) << Describe(r);
    return secret;
  }

  // Creates a task on `board` with the admin token; returns its id.
  std::string NewTask(const std::string& title, const std::string& board = "default") {
    std::string id = JsonValue(
        CtlOkAs(admin_, {"--json", "create", "--title", title, "--board", board}), "id");
    EXPECT_EQ(id.size(), 26u) << "no task id for " << title;
    return id;
  }

  // Polls the file until it contains `text`; false if it does not within
  // kPatience or `process` exits first.
  static bool AwaitOutput(ChildProcess& process, const std::string& path,
                          const std::string& text) {
    const absl::Time deadline = absl::Now() + kPatience;
    while (absl::Now() < deadline) {
      if (absl::StrContains(ReadFileOrEmpty(path), text)) return true;
      if (process.Wait(absl::Milliseconds(20)) != -1) {
        return absl::StrContains(ReadFileOrEmpty(path), text);
      }
    }
    return false;
  }

  TempDir dir_;  // Outlives the server that uses it.
  const std::string db_ = dir_.File("kanban.db");
  std::string admin_;  // The secret of the admin token "root".
  Kanband kanband_;
};

TEST_F(KanbanctlTokenTest, WithoutATokenCallsAreUnauthenticated) {
  RunResult r = Ctl({"boards"});
  EXPECT_TRUE(IsRpcError(r, "UNAUTHENTICATED"));
  EXPECT_TRUE(absl::StrContains(r.err, "\nhint: ") &&
              absl::StrContains(r.err, "--token") &&
              absl::StrContains(r.err, "KANBAN_TOKEN"))
      << r.err;
  EXPECT_TRUE(IsRpcError(Ctl({"create", "--title", "t"}), "UNAUTHENTICATED"));

  // A well-formed secret the server never made; it is not echoed back.
  const std::string unknown = absl::StrCat("kb_", std::string(43, 'A'));
  r = CtlAs(unknown, {"boards"});
  EXPECT_TRUE(IsRpcError(r, "UNAUTHENTICATED"));
  EXPECT_FALSE(absl::StrContains(r.err, unknown)) << r.err;
  EXPECT_FALSE(absl::StrContains(r.err, "hint:")) << r.err;

  // Health checks need no token.
  RunResult health = Ctl({"health"});
  EXPECT_EQ(health.exit_code, 0) << Describe(health);
  EXPECT_EQ(health.out, "SERVING\n");
}

TEST_F(KanbanctlTokenTest, TheTokenComesFromTheFlagOrTheEnvironment) {
  EXPECT_TRUE(absl::StrContains(CtlOkAs(admin_, {"boards"}), "default"));
  RunResult env = Ctl({"boards"}, {absl::StrCat("KANBAN_TOKEN=", admin_)});
  EXPECT_EQ(env.exit_code, 0) << Describe(env);
  // A trailing newline, as from `$(cat file)` in some shells or a file read
  // whole, is not part of the token.
  RunResult newline = Ctl({"boards"}, {absl::StrCat("KANBAN_TOKEN=", admin_, "\n")});
  EXPECT_EQ(newline.exit_code, 0) << Describe(newline);

  // The flag wins over the variable, either way round.
  const std::string unknown = absl::StrCat("kb_", std::string(43, 'B'));
  RunResult flag_wins =
      Ctl({"--token", unknown, "boards"}, {absl::StrCat("KANBAN_TOKEN=", admin_)});
  EXPECT_TRUE(IsRpcError(flag_wins, "UNAUTHENTICATED"));
  RunResult flag_wins_too =
      Ctl({"--token", admin_, "boards"}, {absl::StrCat("KANBAN_TOKEN=", unknown)});
  EXPECT_EQ(flag_wins_too.exit_code, 0) << Describe(flag_wins_too);

  // A token that metadata cannot carry is a usage error that does not echo it.
  RunResult bad = CtlAs("kb_with space", {"boards"});
  EXPECT_TRUE(::kanban::testing::IsUsageError(bad, "--token"));
  EXPECT_FALSE(absl::StrContains(bad.err, "with space")) << bad.err;
}

TEST_F(KanbanctlTokenTest, CreateListRevokeRoundTrip) {
  RunResult created = CtlAs(admin_, {"token", "create", "--name", "ci", "--role",
                                     "producer", "--board", "default"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  // The secret alone on stdout; the reminder on stderr.
  const std::string ci(absl::StripTrailingAsciiWhitespace(created.out));
  EXPECT_TRUE(LooksLikeSecret(ci)) << created.out;
  EXPECT_EQ(created.out, ci + "\n");
  EXPECT_TRUE(absl::StrContains(created.err, "cannot be shown again")) << created.err;
  EXPECT_FALSE(absl::StrContains(created.err, ci)) << created.err;

  // The new token works, within its role.
  std::string task =
      JsonValue(CtlOkAs(ci, {"--json", "create", "--title", "by ci"}), "id");
  EXPECT_EQ(task.size(), 26u);

  // --json shows the response, secret included, as one line.
  RunResult json = CtlAs(
      admin_, {"--json", "token", "create", "--name", "viewer-1", "--role", "viewer"});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  EXPECT_EQ(std::count(json.out.begin(), json.out.end(), '\n'), 1) << json.out;
  const std::string viewer = JsonValue(json.out, "secret");
  EXPECT_TRUE(LooksLikeSecret(viewer)) << json.out;
  EXPECT_EQ(JsonValue(json.out, "name"), "viewer-1") << json.out;
  EXPECT_EQ(JsonValue(json.out, "role"), "ROLE_VIEWER") << json.out;

  std::string table = CtlOkAs(admin_, {"token", "list"});
  EXPECT_EQ(Row(table, 0),
            (std::vector<std::string>{"NAME", "ROLE", "BOARDS", "WORKER", "CREATED",
                                      "CREATED", "BY", "REVOKED"}))
      << table;
  std::vector<std::string> root = RowNamed(table, "root");
  ASSERT_EQ(root.size(), 7u) << table;
  EXPECT_EQ(root[1], "admin");
  EXPECT_EQ(root[2], "*");
  EXPECT_EQ(root[3], "-");
  EXPECT_EQ(root[5], "kanband");  // Made offline.
  EXPECT_EQ(root[6], "-");
  std::vector<std::string> ci_row = RowNamed(table, "ci");
  ASSERT_EQ(ci_row.size(), 7u) << table;
  EXPECT_EQ(ci_row[1], "producer");
  EXPECT_EQ(ci_row[2], "default");
  EXPECT_EQ(ci_row[5], "root");
  EXPECT_EQ(ci_row[6], "-");
  EXPECT_EQ(RowNamed(table, "viewer-1").at(1), "viewer") << table;
  std::string json_list = CtlOkAs(admin_, {"--json", "token", "list", "--all"});
  for (const std::string& secret : {admin_, ci, viewer}) {
    EXPECT_FALSE(absl::StrContains(table, secret)) << table;
    EXPECT_FALSE(absl::StrContains(json_list, secret)) << json_list;
    EXPECT_FALSE(absl::StrContains(json_list, "secret")) << json_list;
  }

  std::string revoked = CtlOkAs(admin_, {"token", "revoke", "ci"});
  EXPECT_EQ(Field(revoked, "name"), "ci") << revoked;
  EXPECT_EQ(Field(revoked, "role"), "producer") << revoked;
  EXPECT_NE(Field(revoked, "revoked"), "-") << revoked;
  EXPECT_FALSE(absl::StrContains(revoked, ci)) << revoked;

  // Refused from its next call on, without the secret in the message.
  RunResult refused = CtlAs(ci, {"get", task});
  EXPECT_TRUE(IsRpcError(refused, "UNAUTHENTICATED"));
  EXPECT_FALSE(absl::StrContains(refused.err, ci)) << refused.err;

  // Listed again only with --all; the name stays taken.
  EXPECT_TRUE(RowNamed(CtlOkAs(admin_, {"token", "list"}), "ci").empty());
  std::vector<std::string> all =
      RowNamed(CtlOkAs(admin_, {"token", "list", "--all"}), "ci");
  ASSERT_EQ(all.size(), 7u);
  EXPECT_NE(all[6], "-");
  EXPECT_TRUE(
      IsRpcError(CtlAs(admin_, {"token", "create", "--name", "ci", "--role", "viewer"}),
                 "ALREADY_EXISTS"));
  EXPECT_TRUE(IsRpcError(CtlAs(admin_, {"token", "revoke", "nosuch"}), "NOT_FOUND"));
}

TEST_F(KanbanctlTokenTest, BadTokenCommandLinesAreUsageErrors) {
  using ::kanban::testing::IsUsageError;
  EXPECT_TRUE(IsUsageError(CtlAs(admin_, {"token"}), "missing argument"));
  EXPECT_TRUE(IsUsageError(CtlAs(admin_, {"token", "mint"}), "unknown action"));
  EXPECT_TRUE(
      IsUsageError(CtlAs(admin_, {"token", "create", "--role", "admin"}), "--name"));
  EXPECT_TRUE(IsUsageError(CtlAs(admin_, {"token", "create", "--name", "x"}), "--role"));
  EXPECT_TRUE(
      IsUsageError(CtlAs(admin_, {"token", "create", "--name", "x", "--role", "root"}),
                   "unknown role"));
  EXPECT_TRUE(
      IsUsageError(CtlAs(admin_, {"token", "create", "--name", "x", "--role", "worker"}),
                   "--worker-id"));
  EXPECT_TRUE(IsUsageError(CtlAs(admin_, {"token", "create", "--name", "x", "--role",
                                          "viewer", "--worker-id", "w"}),
                           "--worker-id"));
  EXPECT_TRUE(IsUsageError(CtlAs(admin_, {"token", "revoke"}), "NAME"));
}

TEST_F(KanbanctlTokenTest, AViewerReadsAndWatchesButCannotWrite) {
  const std::string viewer = CreateToken({"--name", "eyes", "--role", "viewer"});
  const std::string id = NewTask("look, don't touch");

  EXPECT_EQ(Field(CtlOkAs(viewer, {"get", id}), "title"), "look, don't touch");
  EXPECT_TRUE(absl::StrContains(CtlOkAs(viewer, {"list"}), id));
  EXPECT_TRUE(
      IsRpcError(CtlAs(viewer, {"create", "--title", "nope"}), "PERMISSION_DENIED"));
  EXPECT_TRUE(IsRpcError(CtlAs(viewer, {"move", id, "done"}), "PERMISSION_DENIED"));
  EXPECT_TRUE(IsRpcError(CtlAs(viewer, {"board-create", "mine"}), "PERMISSION_DENIED"));
  EXPECT_TRUE(IsRpcError(CtlAs(viewer, {"token", "list"}), "PERMISSION_DENIED"));
  EXPECT_TRUE(IsRpcError(CtlAs(viewer, {"claim", "--worker", "w"}), "PERMISSION_DENIED"));

  // `watch` opens a channel of its own; it carries the token too, and the
  // events name the token that caused them.
  const std::string log = dir_.File("watch.log");
  ChildProcess watch;
  ASSERT_TRUE(watch
                  .Start(CtlArgv({"--token", viewer, "watch", "--after", "0"}),
                         {"KANBAN_SERVER", "KANBAN_TOKEN"}, log)
                  .ok());
  EXPECT_TRUE(AwaitOutput(watch, log, absl::StrCat(" created ", id)))
      << ReadFileOrEmpty(log);
  EXPECT_TRUE(absl::StrContains(ReadFileOrEmpty(log), " by root"))
      << ReadFileOrEmpty(log);
  ASSERT_EQ(watch.Signal(SIGTERM), 0);
  EXPECT_EQ(watch.Wait(kPatience), 0) << ReadFileOrEmpty(log);
}

TEST_F(KanbanctlTokenTest, ARevokedTokensWatchEndsUnauthenticated) {
  const std::string viewer = CreateToken({"--name", "short-lived", "--role", "viewer"});
  const std::string log = dir_.File("watch.log");
  ChildProcess watch;
  ASSERT_TRUE(watch
                  .Start(CtlArgv({"watch", "--after", "0", "--verbose"}),
                         {"KANBAN_SERVER", absl::StrCat("KANBAN_TOKEN=", viewer)}, log)
                  .ok());
  // The first response always carries a bookmark: the stream is open.
  ASSERT_TRUE(AwaitOutput(watch, log, "bookmark seq=")) << ReadFileOrEmpty(log);

  CtlOkAs(admin_, {"token", "revoke", "short-lived"});
  EXPECT_EQ(watch.Wait(kPatience), 1) << ReadFileOrEmpty(log);
  const std::string output = ReadFileOrEmpty(log);
  EXPECT_TRUE(absl::StrContains(output, "error: UNAUTHENTICATED: ")) << output;
  EXPECT_FALSE(absl::StrContains(output, viewer)) << output;
}

TEST_F(KanbanctlTokenTest, AWorkerTokenClaimsOnlyAsItsOwnWorker) {
  const std::string worker =
      CreateToken({"--name", "w1-token", "--role", "worker", "--worker-id", "w1"});
  const std::string first = NewTask("first");
  const std::string second = NewTask("second");

  EXPECT_TRUE(
      IsRpcError(CtlAs(worker, {"claim", "--worker", "w2"}), "PERMISSION_DENIED"));
  EXPECT_TRUE(IsRpcError(CtlAs(worker, {"create", "--title", "t"}), "PERMISSION_DENIED"));

  // As itself: claim, heartbeat, complete.
  std::string claim = CtlOkAs(worker, {"claim", "--worker", "w1"});
  std::vector<std::string> row = Row(claim, 1);
  ASSERT_GE(row.size(), 4u) << claim;
  EXPECT_EQ(row[0], first) << claim;
  const std::string lease = row[row.size() - 2];  // TOKEN, then EXPIRES.
  EXPECT_TRUE(IsRpcError(
      CtlAs(worker, {"heartbeat", "--worker", "w2", absl::StrCat(first, ":", lease)}),
      "PERMISSION_DENIED"));
  std::string beat =
      CtlOkAs(worker, {"heartbeat", "--worker", "w1", absl::StrCat(first, ":", lease)});
  EXPECT_EQ(Row(beat, 1).at(1), "EXTENDED") << beat;
  EXPECT_EQ(
      Field(CtlOkAs(worker, {"complete", first, lease, "--result", "ok"}), "status"),
      "DONE");

  // `work` as another worker is refused for good, with the code.
  RunResult refused = CtlAs(worker, {"work", "--once", "--worker", "w2", "--", "true"});
  EXPECT_EQ(refused.exit_code, 1) << Describe(refused);
  EXPECT_TRUE(absl::StrContains(refused.err, "error: PERMISSION_DENIED: "))
      << refused.err;
  EXPECT_FALSE(absl::StrContains(refused.err, worker)) << refused.err;

  // As itself it works, and the command it runs gets the token (from
  // --token) to call kanbanctl back with.
  RunResult work = CtlAs(worker, {"work", "--once", "--worker", "w1", "--", "sh", "-c",
                                  "\"$0\" get \"$KANBAN_TASK_ID\" >/dev/null && "
                                  "echo called back",
                                  KANBANCTL_PATH});
  ASSERT_EQ(work.exit_code, 0) << Describe(work);
  EXPECT_TRUE(absl::StrContains(work.err, absl::StrCat("completed ", second)))
      << work.err;
  std::string done = CtlOkAs(admin_, {"--json", "get", second});
  EXPECT_EQ(JsonValue(done, "status"), "DONE") << done;
  EXPECT_EQ(JsonValue(done, "result"), "called back\\n") << done;
}

TEST_F(KanbanctlTokenTest, ATokenLimitedToBoardsStaysOnThem) {
  CtlOkAs(admin_, {"board-create", "ops"});
  const std::string ops =
      CreateToken({"--name", "ops-bot", "--role", "producer", "--board", "ops"});
  EXPECT_EQ(Field(CtlOkAs(ops, {"create", "--title", "t", "--board", "ops"}), "board"),
            "ops");
  EXPECT_TRUE(IsRpcError(CtlAs(ops, {"create", "--title", "t", "--board", "default"}),
                         "PERMISSION_DENIED"));
  const std::string elsewhere = NewTask("on default");
  EXPECT_TRUE(IsRpcError(CtlAs(ops, {"get", elsewhere}), "PERMISSION_DENIED"));
}

// ---- client/channel.h --------------------------------------------------------

// ListBoards over `channel`, with `authorization` as the call's own metadata
// when not empty.
grpc::Status ListBoards(const std::shared_ptr<grpc::Channel>& channel,
                        const std::string& authorization = "") {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  v1::ListBoardsResponse response;
  return v1::KanbanService::NewStub(channel)->ListBoards(&context, {}, &response);
}

TEST_F(KanbanctlTokenTest, OpenChannelSendsTheTokenWithEveryCall) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> with_token =
      client::OpenChannel(kanband_.address, {}, admin_);
  ASSERT_TRUE(with_token.ok()) << with_token.status();
  grpc::Status status = ListBoards(*with_token);
  EXPECT_TRUE(status.ok()) << status.error_message();

  absl::StatusOr<std::shared_ptr<grpc::Channel>> without =
      client::OpenChannel(kanband_.address, {}, "");
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ(ListBoards(*without).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // A call's own authorization entry wins over the channel's token.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> stranger = client::OpenChannel(
      kanband_.address, {}, absl::StrCat("kb_", std::string(43, 'C')));
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  EXPECT_EQ(ListBoards(*stranger).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  status = ListBoards(*stranger, absl::StrCat("Bearer ", admin_));
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST(BearerTokenTest, TokensMetadataCannotCarryAreRefusedWithoutEchoingThem) {
  EXPECT_TRUE(client::CheckBearerToken("kb_abc-_09").ok());
  for (const std::string token : {"", "kb_a b", "kb_a\n", "kb_\x01", "kb_\xc3\xa9"}) {
    absl::Status status = client::CheckBearerToken(token);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << token;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        client::OpenChannel("127.0.0.1:1", {}, token);
    if (token.empty()) {
      EXPECT_TRUE(channel.ok());  // No token at all.
      continue;
    }
    EXPECT_EQ(channel.status().code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_FALSE(absl::StrContains(channel.status().message(), token))
        << channel.status();
  }
}

TEST(BearerTokenTest, ATokenIsHarmlessToAServerWithoutAuth) {
  TempDir dir;
  Kanband kanband =
      StartKanband(KANBAND_PATH, dir.File("kanban.db"), {}, {"KANBAN_SYNCHRONOUS_MODE"});
  ASSERT_TRUE(kanband.ok());
  RunResult r =
      kanban::testing::Run({KANBANCTL_PATH, "--server", kanband.address, "--token",
                            "kb_anything", "--json", "create", "--title", "t"},
                           {"KANBAN_SERVER", "KANBAN_TOKEN"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // Without auth, events name no principal.
  RunResult watched =
      kanban::testing::Run({KANBANCTL_PATH, "--server", kanband.address, "--json",
                            "watch", "--after", "0", "--kind", "created"},
                           {"KANBAN_SERVER", "KANBAN_TOKEN"}, "", absl::Seconds(2));
  EXPECT_TRUE(absl::StrContains(watched.out, JsonValue(r.out, "id")))
      << Describe(watched);
  EXPECT_FALSE(absl::StrContains(watched.out, "principal")) << watched.out;
}

}  // namespace
}  // namespace kanban
