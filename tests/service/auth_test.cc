// Bearer tokens and roles end to end: a real server with --auth=token on
// 127.0.0.1:0 over a real SQLite file, called through the generated stubs
// with "authorization: Bearer <secret>" metadata.
//
// The role table below is written out by hand from the definition of
// the roles, not derived from service/auth.cc, so that a change to either
// shows up here.
#include "service/auth.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/server.h"
#include "storage/store.h"
#include "tests/service/seed_token.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

using ::grpc::StatusCode;
using ::kanban::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kCallTimeout = std::chrono::seconds(60);
constexpr char kAdminSecret[] = "kb_test-admin-secret-that-is-long-enough-000000";

std::string Describe(const grpc::Status& s) {
  return absl::StrCat("code ", static_cast<int>(s.error_code()), ": ", s.error_message());
}

class AuthTest : public testing::BackendTest {
 protected:
  // The first admin token goes straight into the database, as
  // `kanband token create` does; then the server starts with auth on.
  void Start(std::function<void(Server::Options&)> configure = nullptr) {
    const std::string path = Database(dir_.File("kanban.db"));
    if (path.empty()) return;
    ASSERT_TRUE(SeedAdminToken(path, kAdminSecret).ok());
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.store.path = path;
    options.auth = true;
    if (configure) configure(options);
    auto server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    kanban_ = v1::KanbanService::NewStub(channel_);
    heartbeat_ = v1::HeartbeatService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
    secrets_["admin"] = kAdminSecret;
  }

  void TearDown() override {
    kanban_.reset();
    heartbeat_.reset();
    admin_.reset();
    channel_.reset();
    if (server_) server_->Shutdown(absl::ZeroDuration());
  }

  // A context carrying `secret` ("" for none).
  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& secret) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    if (!secret.empty()) ctx->AddMetadata("authorization", "Bearer " + secret);
    return ctx;
  }

  // Creates a token through AdminService as the admin and returns its secret.
  std::string MakeToken(const std::string& name, v1::Role role,
                        const std::vector<std::string>& boards = {},
                        const std::string& worker_id = "") {
    v1::CreateTokenRequest request;
    request.set_name(name);
    request.set_role(role);
    for (const std::string& b : boards) request.add_boards(b);
    request.set_worker_id(worker_id);
    v1::CreateTokenResponse response;
    grpc::Status s = admin_->CreateToken(Ctx(kAdminSecret).get(), request, &response);
    EXPECT_TRUE(s.ok()) << Describe(s);
    EXPECT_EQ(response.token().name(), name);
    EXPECT_EQ(response.token().created_by(), "root");
    return response.secret();
  }

  v1::Task CreateTask(const std::string& secret, const std::string& title,
                      const std::string& board = "") {
    v1::CreateTaskRequest request;
    request.set_title(title);
    request.set_board(board);
    v1::Task task;
    grpc::Status s = kanban_->CreateTask(Ctx(secret).get(), request, &task);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return task;
  }

  grpc::Status CreateBoard(const std::string& name) {
    v1::CreateBoardRequest request;
    request.set_name(name);
    v1::Board board;
    return kanban_->CreateBoard(Ctx(kAdminSecret).get(), request, &board);
  }

  v1::ClaimTaskResponse Claim(const std::string& secret, const std::string& worker,
                              const std::string& board = "") {
    v1::ClaimTaskRequest request;
    request.set_worker_id(worker);
    request.set_board(board);
    v1::ClaimTaskResponse response;
    grpc::Status s = kanban_->ClaimTask(Ctx(secret).get(), request, &response);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return response;
  }

  TempDir dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KanbanService::Stub> kanban_;
  std::unique_ptr<v1::HeartbeatService::Stub> heartbeat_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::map<std::string, std::string> secrets_;  // By role name.
};

// Every RPC, called with each role's token, with no token, and with an
// unknown one: allowed calls get anything but UNAUTHENTICATED and
// PERMISSION_DENIED; forbidden ones get PERMISSION_DENIED.
TEST_P(AuthTest, EveryRoleAgainstEveryRpc) {
  // SQLite only: it calls Backup, a SQLite tool (FAILED_PRECONDITION on PostgreSQL,
  // tested in admin_service_test)
  if (OnPostgres())
    GTEST_SKIP() << "it calls Backup, a SQLite tool (FAILED_PRECONDITION on PostgreSQL, "
                    "tested in admin_service_test)";
  Start();
  secrets_["producer"] = MakeToken("prod", v1::ROLE_PRODUCER);
  secrets_["worker"] = MakeToken("work", v1::ROLE_WORKER, {}, "w1");
  secrets_["viewer"] = MakeToken("view", v1::ROLE_VIEWER);
  const v1::Task task = CreateTask(kAdminSecret, "subject");
  int unique = 0;

  using Call = std::function<grpc::Status(grpc::ClientContext*)>;
  struct Rpc {
    std::string name;
    std::set<std::string> allowed;  // Roles.
    Call call;
  };
  const std::set<std::string> all = {"admin", "producer", "worker", "viewer"};
  const std::set<std::string> produce = {"admin", "producer"};
  const std::set<std::string> work = {"admin", "worker"};
  const std::set<std::string> admin = {"admin"};
  std::vector<Rpc> rpcs = {
      {"CreateBoard", produce,
       [&](grpc::ClientContext* c) {
         v1::CreateBoardRequest r;
         r.set_name(absl::StrCat("b", ++unique));
         v1::Board out;
         return kanban_->CreateBoard(c, r, &out);
       }},
      {"ListBoards", all,
       [&](grpc::ClientContext* c) {
         v1::ListBoardsResponse out;
         return kanban_->ListBoards(c, v1::ListBoardsRequest(), &out);
       }},
      {"CreateTask", produce,
       [&](grpc::ClientContext* c) {
         v1::CreateTaskRequest r;
         r.set_title("t");
         v1::Task out;
         return kanban_->CreateTask(c, r, &out);
       }},
      {"GetTask", all,
       [&](grpc::ClientContext* c) {
         v1::GetTaskRequest r;
         r.set_task_id(task.id());
         v1::Task out;
         return kanban_->GetTask(c, r, &out);
       }},
      {"ListTasks", all,
       [&](grpc::ClientContext* c) {
         v1::ListTasksResponse out;
         return kanban_->ListTasks(c, v1::ListTasksRequest(), &out);
       }},
      {"UpdateTask", produce,
       [&](grpc::ClientContext* c) {
         v1::UpdateTaskRequest r;
         r.set_task_id(task.id());
         r.set_title("renamed");
         v1::Task out;
         return kanban_->UpdateTask(c, r, &out);
       }},
      {"MoveTask", produce,
       [&](grpc::ClientContext* c) {
         v1::MoveTaskRequest r;
         r.set_task_id(task.id());
         r.set_to_status(v1::READY);
         v1::Task out;
         return kanban_->MoveTask(c, r, &out);
       }},
      {"LinkTasks", produce,
       [&](grpc::ClientContext* c) {
         v1::LinkTasksRequest r;
         r.set_parent_id(task.id());
         r.set_child_id("no-such-task");
         v1::Task out;
         return kanban_->LinkTasks(c, r, &out);
       }},
      {"UnlinkTasks", produce,
       [&](grpc::ClientContext* c) {
         v1::UnlinkTasksRequest r;
         r.set_parent_id(task.id());
         r.set_child_id("no-such-task");
         v1::Task out;
         return kanban_->UnlinkTasks(c, r, &out);
       }},
      {"AddComment", produce,
       [&](grpc::ClientContext* c) {
         v1::AddCommentRequest r;
         r.set_task_id(task.id());
         r.set_author("a");
         r.set_body("b");
         v1::Comment out;
         return kanban_->AddComment(c, r, &out);
       }},
      {"ListComments", all,
       [&](grpc::ClientContext* c) {
         v1::ListCommentsRequest r;
         r.set_task_id(task.id());
         v1::ListCommentsResponse out;
         return kanban_->ListComments(c, r, &out);
       }},
      {"ClaimTask", work,
       [&](grpc::ClientContext* c) {
         v1::ClaimTaskRequest r;
         r.set_worker_id("w1");
         r.set_board("nothing-here");
         v1::ClaimTaskResponse out;
         return kanban_->ClaimTask(c, r, &out);
       }},
      {"CompleteTask", work,
       [&](grpc::ClientContext* c) {
         v1::CompleteTaskRequest r;
         r.set_task_id(task.id());
         r.set_lease_token("stale");
         v1::Task out;
         return kanban_->CompleteTask(c, r, &out);
       }},
      {"FailTask", work,
       [&](grpc::ClientContext* c) {
         v1::FailTaskRequest r;
         r.set_task_id(task.id());
         r.set_lease_token("stale");
         v1::Task out;
         return kanban_->FailTask(c, r, &out);
       }},
      {"ReleaseTask", work,
       [&](grpc::ClientContext* c) {
         v1::ReleaseTaskRequest r;
         r.set_task_id(task.id());
         r.set_lease_token("stale");
         v1::Task out;
         return kanban_->ReleaseTask(c, r, &out);
       }},
      {"GetServerInfo", all,
       [&](grpc::ClientContext* c) {
         v1::ServerInfo out;
         return kanban_->GetServerInfo(c, v1::GetServerInfoRequest(), &out);
       }},
      {"WatchEvents", all,
       [&](grpc::ClientContext* c) {
         v1::WatchEventsRequest r;
         r.set_from_now(true);
         auto reader = kanban_->WatchEvents(c, r);
         v1::WatchEventsResponse out;
         if (reader->Read(&out)) {
           c->TryCancel();  // Let in: the first response (a bookmark) came.
           reader->Finish();
           return grpc::Status::OK;
         }
         return reader->Finish();
       }},
      {"Heartbeat", work,
       [&](grpc::ClientContext* c) {
         v1::HeartbeatRequest r;
         r.set_worker_id("w1");
         v1::HeartbeatResponse out;
         return heartbeat_->Heartbeat(c, r, &out);
       }},
      {"ListWorkers", all,
       [&](grpc::ClientContext* c) {
         v1::ListWorkersResponse out;
         return heartbeat_->ListWorkers(c, v1::ListWorkersRequest(), &out);
       }},
      {"Backup", admin,
       [&](grpc::ClientContext* c) {
         v1::BackupRequest r;
         r.set_path(dir_.File(absl::StrCat("backup-", ++unique, ".db")));
         auto reader = admin_->Backup(c, r);
         v1::BackupProgress out;
         while (reader->Read(&out)) {
         }
         return reader->Finish();
       }},
      {"CheckIntegrity", admin,
       [&](grpc::ClientContext* c) {
         v1::CheckIntegrityRequest r;
         r.set_quick(true);
         v1::CheckIntegrityResponse out;
         return admin_->CheckIntegrity(c, r, &out);
       }},
      {"CreateToken", admin,
       [&](grpc::ClientContext* c) {
         v1::CreateTokenRequest r;
         r.set_name(absl::StrCat("made-", ++unique));
         r.set_role(v1::ROLE_VIEWER);
         v1::CreateTokenResponse out;
         return admin_->CreateToken(c, r, &out);
       }},
      {"ListTokens", admin,
       [&](grpc::ClientContext* c) {
         v1::ListTokensResponse out;
         return admin_->ListTokens(c, v1::ListTokensRequest(), &out);
       }},
      {"RevokeToken", admin,
       [&](grpc::ClientContext* c) {
         v1::RevokeTokenRequest r;
         r.set_name("no-such-token");
         v1::Token out;
         return admin_->RevokeToken(c, r, &out);
       }},
  };
  // Every method of the three services is in the table: a new RPC fails
  // here until someone decides who may call it.
  std::set<std::string> methods, tested;
  for (const char* service : {"KanbanService", "HeartbeatService", "AdminService"}) {
    const auto* descriptor = v1::Task::descriptor()->file()->FindServiceByName(service);
    ASSERT_NE(descriptor, nullptr) << service;
    for (int i = 0; i < descriptor->method_count(); ++i) {
      methods.insert(descriptor->method(i)->name());
    }
  }
  for (const Rpc& rpc : rpcs) tested.insert(rpc.name);
  EXPECT_EQ(tested, methods);

  for (const Rpc& rpc : rpcs) {
    for (const std::string& role : all) {
      grpc::Status s = rpc.call(Ctx(secrets_[role]).get());
      if (rpc.allowed.count(role) > 0) {
        EXPECT_NE(s.error_code(), StatusCode::PERMISSION_DENIED)
            << rpc.name << " as " << role << ": " << Describe(s);
        EXPECT_NE(s.error_code(), StatusCode::UNAUTHENTICATED)
            << rpc.name << " as " << role << ": " << Describe(s);
      } else {
        EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED)
            << rpc.name << " as " << role << ": " << Describe(s);
        EXPECT_THAT(s.error_message(), HasSubstr(rpc.name)) << rpc.name;
        EXPECT_THAT(s.error_message(), HasSubstr(role)) << rpc.name;
      }
    }
    grpc::Status none = rpc.call(Ctx("").get());
    EXPECT_EQ(none.error_code(), StatusCode::UNAUTHENTICATED)
        << rpc.name << Describe(none);
    EXPECT_THAT(none.error_message(), HasSubstr("authorization"));
    grpc::Status unknown = rpc.call(Ctx("kb_not-a-real-token").get());
    EXPECT_EQ(unknown.error_code(), StatusCode::UNAUTHENTICATED)
        << rpc.name << Describe(unknown);
    EXPECT_THAT(unknown.error_message(), Not(HasSubstr("kb_not-a-real-token")));
  }
}

// Health needs no token: probes (systemd, Docker, Kubernetes) carry none.
TEST_P(AuthTest, HealthNeedsNoToken) {
  Start();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckResponse out;
  grpc::Status s =
      health->Check(Ctx("").get(), grpc::health::v1::HealthCheckRequest(), &out);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(out.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_P(AuthTest, MalformedAuthorizationIsUnauthenticatedWithoutEchoingIt) {
  Start();
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Basic ") + kAdminSecret);
  v1::ListBoardsResponse out;
  grpc::Status s = kanban_->ListBoards(&ctx, v1::ListBoardsRequest(), &out);
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("Bearer"));
  EXPECT_THAT(s.error_message(), Not(HasSubstr(kAdminSecret)));
}

TEST_P(AuthTest, BoardLimitedTokenSeesAndTouchesOnlyItsBoards) {
  Start();
  ASSERT_TRUE(CreateBoard("alpha").ok());
  ASSERT_TRUE(CreateBoard("beta").ok());
  const std::string producer = MakeToken("alpha-prod", v1::ROLE_PRODUCER, {"alpha"});
  const v1::Task elsewhere = CreateTask(kAdminSecret, "on beta", "beta");
  const v1::Task mine = CreateTask(producer, "on alpha", "alpha");
  EXPECT_EQ(mine.board(), "alpha");

  {  // Creating elsewhere, or on the default board.
    v1::CreateTaskRequest r;
    r.set_title("sneaky");
    r.set_board("beta");
    v1::Task out;
    grpc::Status s = kanban_->CreateTask(Ctx(producer).get(), r, &out);
    EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << Describe(s);
    EXPECT_THAT(s.error_message(), HasSubstr("board"));
    EXPECT_THAT(s.error_message(), HasSubstr("alpha"));
    r.clear_board();
    s = kanban_->CreateTask(Ctx(producer).get(), r, &out);
    EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << Describe(s);
  }
  {  // Reading, moving and commenting on another board's task.
    v1::GetTaskRequest get;
    get.set_task_id(elsewhere.id());
    v1::Task out;
    EXPECT_EQ(kanban_->GetTask(Ctx(producer).get(), get, &out).error_code(),
              StatusCode::PERMISSION_DENIED);
    v1::MoveTaskRequest move;
    move.set_task_id(elsewhere.id());
    move.set_to_status(v1::BLOCKED);
    move.set_expected_version(999);  // Refused for the board, not the version.
    grpc::Status s = kanban_->MoveTask(Ctx(producer).get(), move, &out);
    EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << Describe(s);
    v1::AddCommentRequest comment;
    comment.set_task_id(elsewhere.id());
    comment.set_author("x");
    comment.set_body("y");
    v1::Comment c;
    EXPECT_EQ(kanban_->AddComment(Ctx(producer).get(), comment, &c).error_code(),
              StatusCode::PERMISSION_DENIED);
    v1::ListCommentsRequest list_comments;
    list_comments.set_task_id(elsewhere.id());
    v1::ListCommentsResponse comments;
    EXPECT_EQ(
        kanban_->ListComments(Ctx(producer).get(), list_comments, &comments).error_code(),
        StatusCode::PERMISSION_DENIED);
    v1::LinkTasksRequest link;
    link.set_parent_id(mine.id());
    link.set_child_id(elsewhere.id());
    EXPECT_EQ(kanban_->LinkTasks(Ctx(producer).get(), link, &out).error_code(),
              StatusCode::PERMISSION_DENIED);
  }
  {  // Nothing changed on beta.
    v1::GetTaskRequest get;
    get.set_task_id(elsewhere.id());
    v1::Task out;
    ASSERT_TRUE(kanban_->GetTask(Ctx(kAdminSecret).get(), get, &out).ok());
    EXPECT_EQ(out.version(), elsewhere.version());
    EXPECT_EQ(out.status(), elsewhere.status());
  }
  {  // Lists: only its boards, and a task list must name one.
    v1::ListBoardsResponse boards;
    ASSERT_TRUE(
        kanban_->ListBoards(Ctx(producer).get(), v1::ListBoardsRequest(), &boards).ok());
    ASSERT_EQ(boards.boards_size(), 1);
    EXPECT_EQ(boards.boards(0).name(), "alpha");
    // One board: naming none reads it; naming another is refused.
    v1::ListTasksRequest all;
    v1::ListTasksResponse tasks;
    ASSERT_TRUE(kanban_->ListTasks(Ctx(producer).get(), all, &tasks).ok());
    ASSERT_EQ(tasks.tasks_size(), 1);
    EXPECT_EQ(tasks.tasks(0).id(), mine.id());
    v1::ListTasksRequest beta;
    beta.set_board("beta");
    EXPECT_EQ(kanban_->ListTasks(Ctx(producer).get(), beta, &tasks).error_code(),
              StatusCode::PERMISSION_DENIED);
    // Several boards: a list over all of them must name one.
    const std::string two = MakeToken("two-boards", v1::ROLE_VIEWER, {"alpha", "beta"});
    grpc::Status s = kanban_->ListTasks(Ctx(two).get(), all, &tasks);
    EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << Describe(s);
    EXPECT_THAT(s.error_message(), HasSubstr("name one"));
    all.set_board("beta");
    ASSERT_TRUE(kanban_->ListTasks(Ctx(two).get(), all, &tasks).ok());
    ASSERT_EQ(tasks.tasks_size(), 1);
    EXPECT_EQ(tasks.tasks(0).id(), elsewhere.id());
  }
  {  // Watching everything delivers only alpha's events; naming beta is refused.
    v1::WatchEventsRequest r;
    r.set_after_seq(0);
    grpc::ClientContext* ctx = nullptr;
    auto owned = Ctx(producer);
    ctx = owned.get();
    auto reader = kanban_->WatchEvents(ctx, r);
    v1::WatchEventsResponse out;
    ASSERT_TRUE(reader->Read(&out));
    ASSERT_GT(out.events_size(), 0);
    for (const v1::Event& e : out.events()) EXPECT_EQ(e.board(), "alpha") << e.kind();
    ctx->TryCancel();
    reader->Finish();
    r.set_board("beta");
    auto refused_ctx = Ctx(producer);
    auto refused = kanban_->WatchEvents(refused_ctx.get(), r);
    EXPECT_FALSE(refused->Read(&out));
    EXPECT_EQ(refused->Finish().error_code(), StatusCode::PERMISSION_DENIED);
  }
}

TEST_P(AuthTest, WorkerTokenActsOnlyAsItsWorker) {
  Start();
  const std::string worker = MakeToken("w1-token", v1::ROLE_WORKER, {}, "w1");
  CreateTask(kAdminSecret, "first");
  CreateTask(kAdminSecret, "second");

  {  // Claiming as someone else.
    v1::ClaimTaskRequest r;
    r.set_worker_id("w2");
    v1::ClaimTaskResponse out;
    grpc::Status s = kanban_->ClaimTask(Ctx(worker).get(), r, &out);
    EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << Describe(s);
    EXPECT_THAT(s.error_message(), HasSubstr("w1"));
  }
  const v1::ClaimTaskResponse mine = Claim(worker, "w1");
  ASSERT_TRUE(mine.has_task());
  EXPECT_EQ(mine.lease().worker_id(), "w1");
  // The admin claims the other task as w2: w1's token holds its lease token
  // too (say it leaked), and still may not use it.
  const v1::ClaimTaskResponse theirs = Claim(kAdminSecret, "w2");
  ASSERT_TRUE(theirs.has_task());
  {
    v1::CompleteTaskRequest r;
    r.set_task_id(theirs.task().id());
    r.set_lease_token(theirs.lease().token());
    v1::Task out;
    grpc::Status s = kanban_->CompleteTask(Ctx(worker).get(), r, &out);
    EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << Describe(s);
    v1::FailTaskRequest fail;
    fail.set_task_id(theirs.task().id());
    fail.set_lease_token(theirs.lease().token());
    EXPECT_EQ(kanban_->FailTask(Ctx(worker).get(), fail, &out).error_code(),
              StatusCode::PERMISSION_DENIED);
    v1::ReleaseTaskRequest release;
    release.set_task_id(theirs.task().id());
    release.set_lease_token(theirs.lease().token());
    EXPECT_EQ(kanban_->ReleaseTask(Ctx(worker).get(), release, &out).error_code(),
              StatusCode::PERMISSION_DENIED);
  }
  {  // Heartbeats as w2 are refused; as w1 they extend w1's lease only.
    v1::HeartbeatRequest r;
    r.set_worker_id("w2");
    v1::HeartbeatResponse out;
    EXPECT_EQ(heartbeat_->Heartbeat(Ctx(worker).get(), r, &out).error_code(),
              StatusCode::PERMISSION_DENIED);
    r.set_worker_id("w1");
    auto* held = r.add_leases();
    held->set_task_id(mine.task().id());
    held->set_lease_token(mine.lease().token());
    ASSERT_TRUE(heartbeat_->Heartbeat(Ctx(worker).get(), r, &out).ok());
    ASSERT_EQ(out.leases_size(), 1);
    EXPECT_EQ(out.leases(0).state(), v1::LeaseStatus::EXTENDED);
  }
  {  // Its own lease completes; the other task is still w2's.
    v1::CompleteTaskRequest r;
    r.set_task_id(mine.task().id());
    r.set_lease_token(mine.lease().token());
    v1::Task out;
    grpc::Status s = kanban_->CompleteTask(Ctx(worker).get(), r, &out);
    ASSERT_TRUE(s.ok()) << Describe(s);
    EXPECT_EQ(out.status(), v1::DONE);
    v1::GetTaskRequest get;
    get.set_task_id(theirs.task().id());
    ASSERT_TRUE(kanban_->GetTask(Ctx(worker).get(), get, &out).ok());
    EXPECT_EQ(out.status(), v1::RUNNING);
    EXPECT_EQ(out.worker_id(), "w2");
  }
}

// "Who moved this card": every event names the token that caused it, and
// the server's own reclaims name kanband.
TEST_P(AuthTest, EveryEventRecordsItsPrincipal) {
  Start();
  const std::string producer = MakeToken("alice", v1::ROLE_PRODUCER);
  const std::string worker = MakeToken("bob", v1::ROLE_WORKER, {}, "bob-1");
  const v1::Task task = CreateTask(producer, "card");
  {
    v1::MoveTaskRequest r;
    r.set_task_id(task.id());
    r.set_to_status(v1::BLOCKED);
    v1::Task out;
    ASSERT_TRUE(kanban_->MoveTask(Ctx(kAdminSecret).get(), r, &out).ok());
    r.set_to_status(v1::READY);
    ASSERT_TRUE(kanban_->MoveTask(Ctx(producer).get(), r, &out).ok());
  }
  {
    v1::ClaimTaskRequest r;
    r.set_worker_id("bob-1");
    r.mutable_lease_duration()->set_seconds(1);
    v1::ClaimTaskResponse out;
    ASSERT_TRUE(kanban_->ClaimTask(Ctx(worker).get(), r, &out).ok());
    ASSERT_TRUE(out.has_task());
  }
  absl::SleepFor(absl::Milliseconds(1100));
  auto swept = storage::Await<storage::SweepResult>(
      [&](auto done) { server_->store().Sweep(done); });
  ASSERT_TRUE(swept.ok()) << swept.status();

  v1::WatchEventsRequest r;
  r.set_after_seq(0);
  r.add_task_ids(task.id());
  auto ctx = Ctx(kAdminSecret);
  auto reader = kanban_->WatchEvents(ctx.get(), r);
  std::vector<std::pair<std::string, std::string>> seen;  // kind, principal
  v1::WatchEventsResponse out;
  while (seen.size() < 5 && reader->Read(&out)) {
    for (const v1::Event& e : out.events()) seen.emplace_back(e.kind(), e.principal());
  }
  ctx->TryCancel();
  reader->Finish();
  EXPECT_THAT(seen, ::testing::ElementsAre(std::make_pair("created", "alice"),
                                           std::make_pair("moved", "root"),
                                           std::make_pair("moved", "alice"),
                                           std::make_pair("claimed", "bob"),
                                           std::make_pair("reclaimed", "kanband")));
}

TEST_P(AuthTest, RevocationRefusesTheNextCallAndEndsOpenStreams) {
  Start();
  const std::string viewer = MakeToken("watcher", v1::ROLE_VIEWER);
  v1::WatchEventsRequest r;
  r.set_from_now(true);
  auto ctx = Ctx(viewer);
  auto reader = kanban_->WatchEvents(ctx.get(), r);
  v1::WatchEventsResponse out;
  ASSERT_TRUE(reader->Read(&out));  // The first bookmark: the stream is open.

  v1::RevokeTokenRequest revoke;
  revoke.set_name("watcher");
  v1::Token revoked;
  grpc::Status s = admin_->RevokeToken(Ctx(kAdminSecret).get(), revoke, &revoked);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_TRUE(revoked.has_revoked_at());

  while (reader->Read(&out)) {
  }
  grpc::Status ended = reader->Finish();
  EXPECT_EQ(ended.error_code(), StatusCode::UNAUTHENTICATED) << Describe(ended);
  EXPECT_THAT(ended.error_message(), HasSubstr("revoked"));

  v1::ListBoardsResponse boards;
  s = kanban_->ListBoards(Ctx(viewer).get(), v1::ListBoardsRequest(), &boards);
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("revoked"));
  // Revoking again changes nothing; the name stays taken.
  v1::Token again;
  ASSERT_TRUE(admin_->RevokeToken(Ctx(kAdminSecret).get(), revoke, &again).ok());
  EXPECT_EQ(again.revoked_at().seconds(), revoked.revoked_at().seconds());
  v1::CreateTokenRequest reuse;
  reuse.set_name("watcher");
  reuse.set_role(v1::ROLE_VIEWER);
  v1::CreateTokenResponse created;
  EXPECT_EQ(admin_->CreateToken(Ctx(kAdminSecret).get(), reuse, &created).error_code(),
            StatusCode::ALREADY_EXISTS);
}

TEST_P(AuthTest, RevocationSurvivesARestart) {
  Start();
  const std::string viewer = MakeToken("temp", v1::ROLE_VIEWER);
  v1::RevokeTokenRequest revoke;
  revoke.set_name("temp");
  v1::Token revoked;
  ASSERT_TRUE(admin_->RevokeToken(Ctx(kAdminSecret).get(), revoke, &revoked).ok());
  const std::string kept = MakeToken("kept", v1::ROLE_VIEWER);
  server_->Shutdown(absl::ZeroDuration());
  server_.reset();
  Server::Options options;
  options.listen = "127.0.0.1:0";
  options.store.path = Database(dir_.File("kanban.db"));
  options.auth = true;
  auto server = Server::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                 grpc::InsecureChannelCredentials());
  kanban_ = v1::KanbanService::NewStub(channel_);
  v1::ListBoardsResponse boards;
  EXPECT_EQ(kanban_->ListBoards(Ctx(viewer).get(), v1::ListBoardsRequest(), &boards)
                .error_code(),
            StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(
      kanban_->ListBoards(Ctx(kept).get(), v1::ListBoardsRequest(), &boards).ok());
}

TEST_P(AuthTest, TokensAreListedWithoutSecretsAndStoredOnlyHashed) {
  // SQLite only: it reads the database file and its WAL byte by byte
  if (OnPostgres()) GTEST_SKIP() << "it reads the database file and its WAL byte by byte";
  Start();
  const std::string secret = MakeToken("lister", v1::ROLE_WORKER, {"default"}, "w9");
  EXPECT_THAT(secret, ::testing::StartsWith("kb_"));
  EXPECT_EQ(secret.size(), 3u + 43u);
  v1::ListTokensResponse list;
  ASSERT_TRUE(
      admin_->ListTokens(Ctx(kAdminSecret).get(), v1::ListTokensRequest(), &list).ok());
  ASSERT_EQ(list.tokens_size(), 2);
  EXPECT_EQ(list.tokens(0).name(), "lister");  // By name.
  EXPECT_EQ(list.tokens(0).role(), v1::ROLE_WORKER);
  EXPECT_EQ(list.tokens(0).worker_id(), "w9");
  EXPECT_THAT(list.tokens(0).boards(), ::testing::ElementsAre("default"));
  EXPECT_EQ(list.tokens(1).name(), "root");
  EXPECT_EQ(list.tokens(1).created_by(), "kanband");
  EXPECT_THAT(list.DebugString(), Not(HasSubstr(secret)));
  // Revoked tokens are listed only when asked for.
  v1::RevokeTokenRequest revoke;
  revoke.set_name("lister");
  v1::Token revoked;
  ASSERT_TRUE(admin_->RevokeToken(Ctx(kAdminSecret).get(), revoke, &revoked).ok());
  ASSERT_TRUE(
      admin_->ListTokens(Ctx(kAdminSecret).get(), v1::ListTokensRequest(), &list).ok());
  EXPECT_EQ(list.tokens_size(), 1);
  v1::ListTokensRequest with_revoked;
  with_revoked.set_include_revoked(true);
  ASSERT_TRUE(admin_->ListTokens(Ctx(kAdminSecret).get(), with_revoked, &list).ok());
  EXPECT_EQ(list.tokens_size(), 2);

  // The database file (and its WAL) holds the hash, never the secret.
  server_->Shutdown(absl::ZeroDuration());
  std::string bytes;
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream in(dir_.File("kanban.db") + suffix, std::ios::binary);
    bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  EXPECT_THAT(bytes, Not(HasSubstr(secret)));
  EXPECT_THAT(bytes, HasSubstr(Auth::HashSecret(secret)));
}

TEST_P(AuthTest, BadTokenRequestsNameTheField) {
  Start();
  struct Case {
    std::string name;
    v1::Role role;
    std::string worker_id;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {"", v1::ROLE_VIEWER, "", "name"},
           {"has space", v1::ROLE_VIEWER, "", "name"},
           {"kanband", v1::ROLE_ADMIN, "", "name"},
           {"norole", v1::ROLE_UNSPECIFIED, "", "role"},
           {"badrole", static_cast<v1::Role>(42), "", "role"},
           {"noworker", v1::ROLE_WORKER, "", "worker_id"},
           {"viewer-as-worker", v1::ROLE_VIEWER, "w1", "worker_id"},
       }) {
    v1::CreateTokenRequest r;
    r.set_name(c.name);
    r.set_role(c.role);
    r.set_worker_id(c.worker_id);
    v1::CreateTokenResponse out;
    grpc::Status s = admin_->CreateToken(Ctx(kAdminSecret).get(), r, &out);
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << c.name << Describe(s);
    EXPECT_THAT(s.error_message(), ::testing::StartsWith(c.field + ":")) << c.name;
  }
  v1::CreateTokenRequest r;
  r.set_name("dup");
  r.set_role(v1::ROLE_VIEWER);
  r.add_boards("Not A Board");
  v1::CreateTokenResponse out;
  grpc::Status s = admin_->CreateToken(Ctx(kAdminSecret).get(), r, &out);
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::StartsWith("boards[0]:"));
}

TEST_P(AuthTest, WatchStreamsPerTokenAreLimited) {
  Start([](Server::Options& o) { o.max_watch_streams_per_token = 2; });
  const std::string a = MakeToken("a", v1::ROLE_VIEWER);
  const std::string b = MakeToken("b", v1::ROLE_VIEWER);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>>> open;
  v1::WatchEventsRequest r;
  r.set_from_now(true);
  v1::WatchEventsResponse out;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(Ctx(a));
    open.push_back(kanban_->WatchEvents(contexts.back().get(), r));
    ASSERT_TRUE(open.back()->Read(&out));
  }
  auto third_ctx = Ctx(a);
  auto third = kanban_->WatchEvents(third_ctx.get(), r);
  EXPECT_FALSE(third->Read(&out));
  grpc::Status s = third->Finish();
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("--max_watch_streams_per_token"));
  // Another token is not affected.
  auto other_ctx = Ctx(b);
  auto other = kanban_->WatchEvents(other_ctx.get(), r);
  EXPECT_TRUE(other->Read(&out));
  other_ctx->TryCancel();
  other->Finish();
  // A closed stream frees its place.
  contexts[0]->TryCancel();
  open[0]->Finish();
  bool reopened = false;
  for (int attempt = 0; attempt < 50 && !reopened; ++attempt) {
    auto again_ctx = Ctx(a);
    auto again = kanban_->WatchEvents(again_ctx.get(), r);
    reopened = again->Read(&out);
    again_ctx->TryCancel();
    again->Finish();
    if (!reopened) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(reopened);
  for (size_t i = 1; i < contexts.size(); ++i) {
    contexts[i]->TryCancel();
    open[i]->Finish();
  }
}

TEST(LoopbackTest, OnlyLoopbackAddressesCount) {
  for (const char* yes : {"127.0.0.1:7300", "127.0.0.1:0", "127.1.2.3:1",
                          "localhost:7300", "[::1]:7300", "unix:/run/kanban.sock"}) {
    EXPECT_TRUE(IsLoopbackAddress(yes)) << yes;
  }
  for (const char* no : {"0.0.0.0:7300", "[::]:7300", "10.0.0.5:7300", ":7300",
                         "example.com:7300", "192.168.1.1:0"}) {
    EXPECT_FALSE(IsLoopbackAddress(no)) << no;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, AuthTest, testing::AllBackends(),
                         testing::BackendName);

}  // namespace
}  // namespace kanban::service
