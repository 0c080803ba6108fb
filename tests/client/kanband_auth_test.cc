// kanband's authentication as an operator meets it: the offline
// `kanband token create` for the first admin token, and the refusal to serve
// a non-loopback address without auth. Each test starts its own kanband.
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::Describe;
using ::kanban::testing::Kanband;
using ::kanban::testing::ReadFileOrEmpty;
using ::kanban::testing::RunResult;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;

// `kanband token create` with `args`; the environment without any
// KANBAN_SYNCHRONOUS_MODE of the caller's.
RunResult TokenCreate(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {KANBAND_PATH, "token", "create"};
  argv.insert(argv.end(), args.begin(), args.end());
  return kanban::testing::Run(argv, {"KANBAN_SYNCHRONOUS_MODE"}, "", absl::Seconds(30));
}

grpc::Status ListBoards(const Kanband& server, const std::string& secret) {
  auto stub = v1::KanbanService::NewStub(
      grpc::CreateChannel(server.address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!secret.empty()) ctx.AddMetadata("authorization", "Bearer " + secret);
  v1::ListBoardsResponse out;
  return stub->ListBoards(&ctx, v1::ListBoardsRequest(), &out);
}

TEST(KanbandAuthTest, FirstAdminTokenIsMadeOfflineAndWorks) {
  TempDir dir;
  const std::string db = dir.File("kanban.db");
  RunResult made = TokenCreate({"--db=" + db, "--role=admin", "--name=ops"});
  ASSERT_EQ(made.exit_code, 0) << Describe(made);
  const std::string secret(absl::StripAsciiWhitespace(made.out));
  EXPECT_TRUE(absl::StartsWith(secret, "kb_")) << made.out;
  EXPECT_EQ(made.out.find('\n'), made.out.size() - 1) << "one line only: " << made.out;
  EXPECT_TRUE(absl::StrContains(made.err, "shown only now")) << made.err;

  Kanband server =
      StartKanband(KANBAND_PATH, db, {"--auth=token", "--log_rpcs", "--log_format=json"});
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE(absl::StrContains(server.Log(), "bearer tokens required (1 active)"))
      << server.Log();
  grpc::Status with = ListBoards(server, secret);
  EXPECT_TRUE(with.ok()) << with.error_message();
  grpc::Status without = ListBoards(server, "");
  EXPECT_EQ(without.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // While kanband holds the database, the offline command refuses and says
  // what to do instead.
  RunResult busy = TokenCreate({"--db=" + db, "--role=viewer", "--name=late"});
  EXPECT_EQ(busy.exit_code, 1) << Describe(busy);
  EXPECT_TRUE(absl::StrContains(busy.err, "kanbanctl token create")) << busy.err;
  EXPECT_EQ(busy.out, "");
  // The access log names the token, never its secret.
  EXPECT_TRUE(absl::StrContains(server.Log(), "\"principal\":\"ops\"")) << server.Log();
  EXPECT_FALSE(absl::StrContains(server.Log(), secret));
}

TEST(KanbandAuthTest, TokenCreateRefusesBadArguments) {
  TempDir dir;
  const std::string db = dir.File("kanban.db");
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{"--role=admin"}, "--db is required"},
           {{"--db=" + db, "--role=boss"}, "--role must be"},
           {{"--db=" + db, "--role=worker", "--name=w"}, "worker_id"},
           {{"--db=" + db, "--role=admin", "--name=bad name"}, "name"},
           {{"--db=" + db, "--role=admin", "--colour=red"}, "unknown flag --colour"},
       }) {
    RunResult r = TokenCreate(c.args);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_TRUE(absl::StrContains(r.err, c.says)) << c.says << "\n" << r.err;
    EXPECT_EQ(r.out, "");
  }
  RunResult first = TokenCreate({"--db=" + db, "--role=admin"});
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  RunResult again = TokenCreate({"--db=" + db, "--role=admin"});  // Name "admin" again.
  EXPECT_EQ(again.exit_code, 2) << Describe(again);
  EXPECT_TRUE(absl::StrContains(again.err, "already exists")) << again.err;
}

TEST(KanbandAuthTest, AuthWithoutTokensWarnsHowToMakeOne) {
  TempDir dir;
  Kanband server = StartKanband(KANBAND_PATH, dir.File("kanban.db"), {"--auth=token"});
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE(absl::StrContains(server.Log(), "kanband token create --db="))
      << server.Log();
  EXPECT_EQ(ListBoards(server, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// Without auth, kanband serves loopback only unless told --insecure_no_auth.
TEST(KanbandAuthTest, NoAuthOnANonLoopbackAddressNeedsInsecureNoAuth) {
  TempDir dir;
  RunResult refused = kanban::testing::Run(
      {KANBAND_PATH, "--listen=0.0.0.0:0", "--db=" + dir.File("kanban.db")},
      {"KANBAN_SYNCHRONOUS_MODE"}, "", absl::Seconds(20));
  EXPECT_EQ(refused.exit_code, 2) << Describe(refused);
  EXPECT_TRUE(absl::StrContains(refused.err, "--auth=token")) << refused.err;
  EXPECT_TRUE(absl::StrContains(refused.err, "--insecure_no_auth")) << refused.err;
  // Nothing was created: the check comes before the database is opened.
  EXPECT_EQ(ReadFileOrEmpty(dir.File("kanban.db")), "");

  Kanband allowed = StartKanband(KANBAND_PATH, dir.File("kanban.db"),
                                 {"--listen=0.0.0.0:0", "--insecure-no-auth"});
  ASSERT_TRUE(allowed.ok());
  EXPECT_TRUE(absl::StrContains(allowed.Log(), "INSECURE")) << allowed.Log();
  // StartKanband dials 127.0.0.1, which 0.0.0.0 also serves.
  EXPECT_TRUE(ListBoards(allowed, "").ok());

  TempDir other;
  Kanband with_auth = StartKanband(KANBAND_PATH, other.File("kanban.db"),
                                   {"--listen=0.0.0.0:0", "--auth=token"});
  EXPECT_TRUE(with_auth.ok());
}

}  // namespace
}  // namespace kanban
