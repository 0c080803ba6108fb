// Tokens across replicas (--auth=token): a token created through one
// replica works on every other within a second, and one revoked through one
// replica is refused by every other within a second, its WatchEvents
// streams there ended with UNAUTHENTICATED.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/cluster/replicas.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"

namespace kanban {
namespace {

using ::kanban::testing::FeedReader;
using ::kanban::testing::Prepare;
using ::kanban::testing::Replicas;
using ::kanban::testing::WaitFor;

constexpr absl::Duration kCallTimeout = absl::Seconds(10);
// How soon a change of tokens made through one replica holds on the others.
constexpr absl::Duration kTokenLag = absl::Seconds(1);

class ClusterTokensTest : public testing::ClusterTest {};

// ListBoards on `stub` with `token`: its status code.
grpc::StatusCode ListBoardsAs(v1::KanbanService::Stub& stub, const std::string& token) {
  v1::ListBoardsResponse boards;
  grpc::ClientContext ctx;
  Prepare(ctx, kCallTimeout, token);
  return stub.ListBoards(&ctx, v1::ListBoardsRequest(), &boards).error_code();
}

TEST_F(ClusterTokensTest, ACreatedOrRevokedTokenHoldsOnEveryReplicaWithinASecond) {
  testing::RunResult admin =
      testing::Run({KANBAND_PATH, "token", "create", "--db=" + database_, "--role=admin",
                    "--name=ops"});
  ASSERT_EQ(admin.exit_code, 0) << testing::Describe(admin);
  const std::string ops(absl::StripAsciiWhitespace(admin.out));
  ASSERT_FALSE(ops.empty());

  Replicas replicas(KANBAND_PATH, database_, 3,
                    {"--auth=token", "--sweep_interval=200ms"});
  ASSERT_TRUE(replicas.ok()) << replicas.Logs();
  std::vector<std::unique_ptr<v1::KanbanService::Stub>> stubs;
  for (int i = 0; i < 3; ++i) {
    stubs.push_back(replicas.Stub(i));
    EXPECT_EQ(ListBoardsAs(*stubs[i], ops), grpc::StatusCode::OK) << Replicas::Id(i);
  }
  std::unique_ptr<v1::AdminService::Stub> admin_a =
      v1::AdminService::NewStub(replicas.Channel(0));

  // Created through A: works on B and C within a second.
  v1::CreateTokenRequest create;
  create.set_name("ci");
  create.set_role(v1::ROLE_PRODUCER);
  v1::CreateTokenResponse made;
  {
    grpc::ClientContext ctx;
    Prepare(ctx, kCallTimeout, ops);
    grpc::Status s = admin_a->CreateToken(&ctx, create, &made);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  const std::string ci = made.secret();
  const absl::Time created_at = absl::Now();
  for (int i : {1, 2}) {
    grpc::StatusCode last = grpc::StatusCode::UNKNOWN;
    EXPECT_TRUE(WaitFor(kTokenLag,
                        [&] {
                          last = ListBoardsAs(*stubs[i], ci);
                          return last == grpc::StatusCode::OK;
                        }))
        << Replicas::Id(i) << " still answers " << last << " " << absl::Now() - created_at
        << " after the token was created on r0";
  }
  std::cout << "a new token worked everywhere " << absl::Now() - created_at
            << " after it was made\n";
  {
    v1::CreateTaskRequest task_request;
    task_request.set_title("made with ci on r1");
    v1::Task task;
    grpc::ClientContext ctx;
    Prepare(ctx, kCallTimeout, ci);
    grpc::Status s = stubs[1]->CreateTask(&ctx, task_request, &task);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  // Streams of the token on every replica, each past its first response.
  std::vector<std::unique_ptr<FeedReader>> streams;
  for (int i = 0; i < 3; ++i) {
    v1::WatchEventsRequest watch;
    watch.set_from_now(true);
    watch.mutable_bookmark_interval()->set_nanos(200 * 1000 * 1000);
    streams.push_back(std::make_unique<FeedReader>(replicas.Channel(i), watch, ci));
  }
  bool opened[3];
  for (int i = 0; i < 3; ++i) {
    opened[i] = streams[i]->WaitForPosition(0, absl::Seconds(10));
    EXPECT_TRUE(opened[i]) << "a stream of the token on " << Replicas::Id(i) << ": "
                           << streams[i]->status().error_message();
  }

  // Revoked through A: refused on B and C, and their streams end.
  const absl::Time revoke_sent = absl::Now();
  {
    v1::RevokeTokenRequest revoke;
    revoke.set_name("ci");
    v1::Token token;
    grpc::ClientContext ctx;
    Prepare(ctx, kCallTimeout, ops);
    grpc::Status s = admin_a->RevokeToken(&ctx, revoke, &token);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  const absl::Time revoked_at = absl::Now();
  for (int i : {0, 1, 2}) {
    grpc::StatusCode last = grpc::StatusCode::OK;
    EXPECT_TRUE(WaitFor(kTokenLag,
                        [&] {
                          last = ListBoardsAs(*stubs[i], ci);
                          return last == grpc::StatusCode::UNAUTHENTICATED;
                        }))
        << Replicas::Id(i) << " still answers " << last << " " << absl::Now() - revoked_at
        << " after the token was revoked on r0";
  }
  for (int i : {0, 1, 2}) {
    if (!opened[i]) continue;  // Failed above.
    FeedReader& stream = *streams[i];
    const absl::Duration left =
        std::max(absl::ZeroDuration(), revoked_at + kTokenLag - absl::Now());
    EXPECT_TRUE(stream.WaitForDone(left + absl::Milliseconds(100)))
        << "the stream on " << Replicas::Id(i) << " outlived the revocation by "
        << absl::Now() - revoked_at;
    if (stream.Done()) {
      EXPECT_EQ(stream.status().error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << Replicas::Id(i) << ": " << stream.status().error_message();
      std::cout << "the stream on " << Replicas::Id(i) << " ended "
                << stream.ended_at() - revoke_sent << " after the revocation was sent\n";
    }
  }
  // The admin token is untouched everywhere.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ListBoardsAs(*stubs[i], ops), grpc::StatusCode::OK) << Replicas::Id(i);
  }
}

}  // namespace
}  // namespace kanban
