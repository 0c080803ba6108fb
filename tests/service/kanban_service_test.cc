// KanbanService and grpc.health.v1.Health end to end: a real server on
// 127.0.0.1:0 over a real SQLite file, called through the generated stubs.
// Every failure is checked for its exact status code, and INVALID_ARGUMENT
// for naming the offending field.
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/server.h"
#include "storage/durability.h"
#include "storage/postgres/connection.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

using ::grpc::StatusCode;
using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using Stub = v1::KanbanService::Stub;

// Long enough never to fire on a loaded 2-core machine; it only keeps a
// broken server from hanging the test binary.
constexpr auto kCallTimeout = std::chrono::seconds(30);

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + kCallTimeout;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat("code ", static_cast<int>(s.error_code()), ": ", s.error_message());
}

// `status` has `code`, and its message starts with `field` (the rules name
// the offending field first: "title: must not be empty").
void ExpectInvalid(const grpc::Status& status, const std::string& field) {
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(status);
  EXPECT_THAT(status.error_message(), StartsWith(field)) << Describe(status);
}

class KanbanServiceTest : public testing::BackendTest {
 protected:
  // Variants adjust the options before the server starts.
  virtual void Configure(Server::Options& options) {}

  void SetUp() override {
    db_path_ = Database(dir_.File("kanban.db"));
    if (db_path_.empty()) return;
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.store.path = db_path_;
    Configure(options);
    if (HasFatalFailure()) return;
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::KanbanService::NewStub(channel_);
    health_ = Health::NewStub(channel_);
  }

  void TearDown() override {
    stub_.reset();
    health_.reset();
    channel_.reset();
    if (server_) server_->Shutdown();
    server_.reset();
  }

  // One unary call with a deadline, e.g. Call(&Stub::GetTask, request, &task).
  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                 Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    return (stub_.get()->*method)(&ctx, request, response);
  }

  // ---- Calls expected to succeed (a failure is reported, not thrown). ----

  v1::Task Create(const v1::CreateTaskRequest& request) {
    v1::Task task;
    grpc::Status s = Call(&Stub::CreateTask, request, &task);
    EXPECT_TRUE(s.ok()) << Describe(s) << " for " << request.ShortDebugString();
    return task;
  }
  v1::Task Create(const std::string& title, int priority = 0,
                  const std::string& board = "", std::vector<std::string> parents = {}) {
    v1::CreateTaskRequest r;
    r.set_title(title);
    r.set_priority(priority);
    r.set_board(board);
    for (const std::string& p : parents) r.add_parent_ids(p);
    return Create(r);
  }

  grpc::Status CreateStatus(const v1::CreateTaskRequest& request) {
    v1::Task ignored;
    return Call(&Stub::CreateTask, request, &ignored);
  }

  v1::Task Get(const std::string& id) {
    v1::GetTaskRequest r;
    r.set_task_id(id);
    v1::Task task;
    grpc::Status s = Call(&Stub::GetTask, r, &task);
    EXPECT_TRUE(s.ok()) << Describe(s) << " for GetTask " << id;
    return task;
  }

  grpc::Status Move(const std::string& id, v1::Status to, v1::Task* out = nullptr,
                    int64_t expected_version = 0) {
    v1::MoveTaskRequest r;
    r.set_task_id(id);
    r.set_to_status(to);
    r.set_expected_version(expected_version);
    v1::Task ignored;
    return Call(&Stub::MoveTask, r, out != nullptr ? out : &ignored);
  }
  v1::Task MustMove(const std::string& id, v1::Status to) {
    v1::Task task;
    grpc::Status s = Move(id, to, &task);
    EXPECT_TRUE(s.ok()) << Describe(s) << " moving " << id << " to "
                        << v1::Status_Name(to);
    return task;
  }

  grpc::Status Link(const std::string& parent, const std::string& child,
                    v1::Task* out = nullptr) {
    v1::LinkTasksRequest r;
    r.set_parent_id(parent);
    r.set_child_id(child);
    v1::Task ignored;
    return Call(&Stub::LinkTasks, r, out != nullptr ? out : &ignored);
  }
  grpc::Status Unlink(const std::string& parent, const std::string& child,
                      v1::Task* out = nullptr) {
    v1::UnlinkTasksRequest r;
    r.set_parent_id(parent);
    r.set_child_id(child);
    v1::Task ignored;
    return Call(&Stub::UnlinkTasks, r, out != nullptr ? out : &ignored);
  }

  grpc::Status CreateBoard(const std::string& name, const std::string& description = "") {
    v1::CreateBoardRequest r;
    r.set_name(name);
    r.set_description(description);
    v1::Board ignored;
    return Call(&Stub::CreateBoard, r, &ignored);
  }

  v1::ListTasksResponse List(const v1::ListTasksRequest& request) {
    v1::ListTasksResponse response;
    grpc::Status s = Call(&Stub::ListTasks, request, &response);
    EXPECT_TRUE(s.ok()) << Describe(s) << " for " << request.ShortDebugString();
    return response;
  }

  // Every task matching `request`, following page tokens to the end.
  std::vector<v1::Task> ListAll(v1::ListTasksRequest request) {
    std::vector<v1::Task> all;
    for (int pages = 0; pages < 10000; ++pages) {
      v1::ListTasksResponse page;
      grpc::Status s = Call(&Stub::ListTasks, request, &page);
      EXPECT_TRUE(s.ok()) << Describe(s);
      if (!s.ok()) break;
      all.insert(all.end(), page.tasks().begin(), page.tasks().end());
      if (page.next_page_token().empty()) break;
      request.set_page_token(page.next_page_token());
    }
    return all;
  }

  static std::vector<std::string> Ids(const std::vector<v1::Task>& tasks) {
    std::vector<std::string> ids;
    for (const v1::Task& t : tasks) ids.push_back(t.id());
    return ids;
  }
  static std::vector<std::string> Ids(const v1::ListTasksResponse& page) {
    return Ids(std::vector<v1::Task>(page.tasks().begin(), page.tasks().end()));
  }

  kanban::testing::TempDir dir_;
  std::string db_path_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
  std::unique_ptr<Health::Stub> health_;
};

// ---- CreateTask / GetTask --------------------------------------------------

TEST_P(KanbanServiceTest, CreateTaskFillsServerFieldsAndGetReturnsTheSame) {
  v1::CreateTaskRequest r;
  r.set_title("write the tests");
  r.set_body("all of them");
  r.set_priority(4);
  r.add_labels("qa");
  r.add_labels("cpp");
  r.set_assignee("ann");
  v1::Task task = Create(r);

  EXPECT_FALSE(task.id().empty());
  EXPECT_EQ(task.board(), "default");
  EXPECT_EQ(task.title(), "write the tests");
  EXPECT_EQ(task.body(), "all of them");
  EXPECT_EQ(task.status(), v1::READY);
  EXPECT_EQ(task.priority(), 4);
  EXPECT_THAT(task.labels(), ElementsAre("qa", "cpp"));
  EXPECT_EQ(task.assignee(), "ann");
  EXPECT_THAT(task.parent_ids(), IsEmpty());
  EXPECT_EQ(task.version(), 1);
  EXPECT_EQ(task.attempt(), 0);
  EXPECT_EQ(task.max_attempts(), 3);
  EXPECT_TRUE(task.has_created_at());
  EXPECT_GT(task.created_at().seconds(), 0);
  EXPECT_FALSE(task.has_not_before());
  EXPECT_TRUE(task.idempotency_key().empty());

  v1::Task got = Get(task.id());
  EXPECT_EQ(got.SerializeAsString(), task.SerializeAsString())
      << "created: " << task.ShortDebugString()
      << "\ngot:     " << got.ShortDebugString();
}

TEST_P(KanbanServiceTest, CreateTaskKeepsExplicitMaxAttemptsAndNotBefore) {
  v1::CreateTaskRequest r;
  r.set_title("later");
  r.set_max_attempts(7);
  r.mutable_not_before()->set_seconds(4102444800);  // 2100-01-01.
  r.mutable_not_before()->set_nanos(123456789);
  v1::Task task = Create(r);
  EXPECT_EQ(task.max_attempts(), 7);
  ASSERT_TRUE(task.has_not_before());
  EXPECT_EQ(task.not_before().seconds(), 4102444800);
  EXPECT_EQ(task.not_before().nanos(), 123456000);  // Microsecond precision.
  EXPECT_EQ(Get(task.id()).not_before().nanos(), 123456000);
}

TEST_P(KanbanServiceTest, CreateTaskInTriageWhenAsked) {
  v1::CreateTaskRequest r;
  r.set_title("look at this");
  r.set_initial_status(v1::TRIAGE);
  v1::Task task = Create(r);
  EXPECT_EQ(task.status(), v1::TRIAGE);
  EXPECT_EQ(Get(task.id()).status(), v1::TRIAGE);
}

TEST_P(KanbanServiceTest, CreateTaskRejectsInitialStatusOtherThanTriage) {
  v1::CreateTaskRequest r;
  r.set_title("t");
  r.set_initial_status(v1::DONE);
  ExpectInvalid(CreateStatus(r), "initial_status");

  r.set_initial_status(static_cast<v1::Status>(99));
  ExpectInvalid(CreateStatus(r), "initial_status");

  r.set_initial_status(static_cast<v1::Status>(-1));
  ExpectInvalid(CreateStatus(r), "initial_status");
}

TEST_P(KanbanServiceTest, CreateTaskRejectsOutOfRangeNotBefore) {
  v1::CreateTaskRequest r;
  r.set_title("t");
  r.mutable_not_before()->set_seconds(253402300800);  // Year 10000.
  ExpectInvalid(CreateStatus(r), "not_before");
  r.mutable_not_before()->set_seconds(0);
  r.mutable_not_before()->set_nanos(-1);
  ExpectInvalid(CreateStatus(r), "not_before");
}

// ---- Validation ------------------------------------------------------------

TEST_P(KanbanServiceTest, InvalidTasksAreRejectedNamingTheFieldAndNothingIsWritten) {
  auto with_title = [](const std::string& title) {
    v1::CreateTaskRequest r;
    r.set_title(title);
    return r;
  };
  ExpectInvalid(CreateStatus(with_title("")), "title");
  ExpectInvalid(CreateStatus(with_title(" \t\n ")), "title");
  ExpectInvalid(CreateStatus(with_title(std::string(501, 'x'))), "title");
  // 501 two-byte characters.
  std::string long_multibyte;
  for (int i = 0; i < 501; ++i) long_multibyte += "\xc3\xa9";  // é
  ExpectInvalid(CreateStatus(with_title(long_multibyte)), "title");

  v1::CreateTaskRequest big_body = with_title("t");
  big_body.set_body(std::string(64 * 1024 + 1, 'b'));
  ExpectInvalid(CreateStatus(big_body), "body");

  v1::CreateTaskRequest many_labels = with_title("t");
  for (int i = 0; i < 33; ++i) many_labels.add_labels(absl::StrCat("l", i));
  ExpectInvalid(CreateStatus(many_labels), "labels");

  v1::CreateTaskRequest long_label = with_title("t");
  long_label.add_labels("ok");
  long_label.add_labels(std::string(65, 'l'));
  ExpectInvalid(CreateStatus(long_label), "labels");

  v1::CreateTaskRequest bad_board = with_title("t");
  bad_board.set_board("Bad Name");
  ExpectInvalid(CreateStatus(bad_board), "board");

  v1::CreateTaskRequest bad_attempts = with_title("t");
  bad_attempts.set_max_attempts(-1);
  ExpectInvalid(CreateStatus(bad_attempts), "max_attempts");

  v1::CreateTaskRequest bad_label = with_title("t");
  bad_label.add_labels("");
  ExpectInvalid(CreateStatus(bad_label), "labels[0]");
  bad_label.set_labels(0, "tab\there");
  ExpectInvalid(CreateStatus(bad_label), "labels[0]");
  bad_label.set_labels(0, "same");
  bad_label.add_labels("same");
  ExpectInvalid(CreateStatus(bad_label), "labels[1]");

  v1::CreateTaskRequest long_assignee = with_title("t");
  long_assignee.set_assignee(std::string(129, 'a'));
  ExpectInvalid(CreateStatus(long_assignee), "assignee");

  v1::CreateTaskRequest long_key = with_title("t");
  long_key.set_idempotency_key(std::string(129, 'k'));
  ExpectInvalid(CreateStatus(long_key), "idempotency_key");

  v1::CreateTaskRequest too_many_attempts = with_title("t");
  too_many_attempts.set_max_attempts(1001);
  ExpectInvalid(CreateStatus(too_many_attempts), "max_attempts");

  v1::CreateTaskRequest twice_parent = with_title("t");
  twice_parent.add_parent_ids("01someparent");
  twice_parent.add_parent_ids("01someparent");
  ExpectInvalid(CreateStatus(twice_parent), "parent_ids[1]");

  v1::CreateTaskRequest many_parents = with_title("t");
  for (int i = 0; i < 101; ++i) many_parents.add_parent_ids(absl::StrCat("p", i));
  ExpectInvalid(CreateStatus(many_parents), "parent_ids");

  v1::ListTasksResponse all = List(v1::ListTasksRequest());
  EXPECT_THAT(Ids(all), IsEmpty());
  EXPECT_TRUE(all.next_page_token().empty());
}

TEST_P(KanbanServiceTest, LimitsAreInclusive) {
  v1::CreateTaskRequest r;
  r.set_title(std::string(500, 'x'));
  r.set_body(std::string(64 * 1024, 'b'));
  for (int i = 0; i < 32; ++i) r.add_labels(absl::StrCat(std::string(62, 'l'), i));
  v1::Task ascii = Create(r);
  EXPECT_EQ(ascii.title().size(), 500u);
  EXPECT_EQ(ascii.body().size(), 64u * 1024u);
  EXPECT_EQ(ascii.labels_size(), 32);

  // 500 characters are 1500 bytes here: the limit counts characters.
  std::string multibyte;
  for (int i = 0; i < 500; ++i) multibyte += "\xe2\x82\xac";  // €
  v1::Task euro = Create(multibyte);
  EXPECT_EQ(euro.title(), multibyte);
  EXPECT_EQ(Get(euro.id()).title(), multibyte);

  EXPECT_EQ(List(v1::ListTasksRequest()).tasks_size(), 2);
}

// ---- NOT_FOUND -------------------------------------------------------------

TEST_P(KanbanServiceTest, UnknownThingsAreNotFound) {
  v1::Task task;
  v1::GetTaskRequest get;
  get.set_task_id("01nosuchtask");
  grpc::Status s = Call(&Stub::GetTask, get, &task);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);

  v1::CreateTaskRequest create;
  create.set_title("t");
  create.set_board("nosuchboard");
  s = CreateStatus(create);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);

  s = Move("01nosuchtask", v1::DONE);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);

  v1::ListCommentsRequest comments;
  comments.set_task_id("01nosuchtask");
  v1::ListCommentsResponse listed;
  s = Call(&Stub::ListComments, comments, &listed);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);

  v1::AddCommentRequest add;
  add.set_task_id("01nosuchtask");
  add.set_body("hello");
  v1::Comment comment;
  s = Call(&Stub::AddComment, add, &comment);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);

  v1::UpdateTaskRequest update;
  update.set_task_id("01nosuchtask");
  update.set_title("x");
  s = Call(&Stub::UpdateTask, update, &task);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);

  v1::CreateTaskRequest orphan;
  orphan.set_title("t");
  orphan.add_parent_ids("01nosuchparent");
  s = CreateStatus(orphan);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);

  EXPECT_THAT(Ids(List(v1::ListTasksRequest())), IsEmpty());
}

TEST_P(KanbanServiceTest, EmptyTaskIdIsInvalid) {
  v1::Task task;
  grpc::Status s = Call(&Stub::GetTask, v1::GetTaskRequest(), &task);
  ExpectInvalid(s, "task_id");
}

// ---- Boards ----------------------------------------------------------------

TEST_P(KanbanServiceTest, BoardsAreCreatedAndListed) {
  v1::ListBoardsResponse boards;
  grpc::Status s = Call(&Stub::ListBoards, v1::ListBoardsRequest(), &boards);
  ASSERT_TRUE(s.ok()) << Describe(s);
  ASSERT_EQ(boards.boards_size(), 1);
  EXPECT_EQ(boards.boards(0).name(), "default");

  v1::CreateBoardRequest r;
  r.set_name("ops");
  r.set_description("operations");
  v1::Board board;
  s = Call(&Stub::CreateBoard, r, &board);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(board.name(), "ops");
  EXPECT_EQ(board.description(), "operations");
  EXPECT_GT(board.created_at().seconds(), 0);

  boards.Clear();
  s = Call(&Stub::ListBoards, v1::ListBoardsRequest(), &boards);
  ASSERT_TRUE(s.ok()) << Describe(s);
  std::vector<std::string> names;
  for (const v1::Board& b : boards.boards()) names.push_back(b.name());
  EXPECT_THAT(names, ElementsAre("default", "ops"));
  EXPECT_EQ(boards.boards(1).description(), "operations");

  s = CreateBoard("ops", "again");
  EXPECT_EQ(s.error_code(), StatusCode::ALREADY_EXISTS) << Describe(s);
  s = CreateBoard("default");
  EXPECT_EQ(s.error_code(), StatusCode::ALREADY_EXISTS) << Describe(s);

  ExpectInvalid(CreateBoard("Bad Name"), "name");
  ExpectInvalid(CreateBoard("fine", std::string(1025, 'd')), "description");
  ExpectInvalid(CreateBoard(""), "name");
  ExpectInvalid(CreateBoard(std::string(65, 'a')), "name");

  // A task can now go on the new board.
  EXPECT_EQ(Create("on ops", 0, "ops").board(), "ops");
}

// ---- Idempotency -----------------------------------------------------------

TEST_P(KanbanServiceTest, IdempotencyKeyReturnsTheOriginalTask) {
  ASSERT_TRUE(CreateBoard("ops").ok());
  v1::CreateTaskRequest r;
  r.set_title("deploy");
  r.add_labels("release");
  r.set_idempotency_key("req-1");
  v1::Task first = Create(r);
  ASSERT_FALSE(first.id().empty());
  EXPECT_EQ(first.idempotency_key(), "req-1");

  v1::Task again = Create(r);
  EXPECT_EQ(again.id(), first.id());
  EXPECT_EQ(again.version(), first.version());
  // "" and "default" name the same board, so this is the same content.
  r.set_board("default");
  EXPECT_EQ(Create(r).id(), first.id());
  EXPECT_EQ(List(v1::ListTasksRequest()).tasks_size(), 1);

  v1::CreateTaskRequest other = r;
  other.set_title("deploy something else");
  grpc::Status s = CreateStatus(other);
  EXPECT_EQ(s.error_code(), StatusCode::ALREADY_EXISTS) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("idempotency_key"));

  v1::CreateTaskRequest elsewhere = r;
  elsewhere.set_board("ops");
  v1::Task on_ops = Create(elsewhere);
  EXPECT_FALSE(on_ops.id().empty());
  EXPECT_NE(on_ops.id(), first.id());
  EXPECT_EQ(on_ops.board(), "ops");

  EXPECT_EQ(List(v1::ListTasksRequest()).tasks_size(), 2);
}

// ---- UpdateTask ------------------------------------------------------------

TEST_P(KanbanServiceTest, UpdateChangesOnlySetFields) {
  v1::CreateTaskRequest c;
  c.set_title("old title");
  c.set_body("old body");
  c.set_priority(2);
  c.add_labels("a");
  c.add_labels("b");
  c.set_assignee("ann");
  v1::Task task = Create(c);
  ASSERT_EQ(task.version(), 1);

  v1::UpdateTaskRequest u;
  u.set_task_id(task.id());
  u.set_title("new title");
  v1::Task updated;
  grpc::Status s = Call(&Stub::UpdateTask, u, &updated);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(updated.title(), "new title");
  EXPECT_EQ(updated.body(), "old body");
  EXPECT_EQ(updated.priority(), 2);
  EXPECT_THAT(updated.labels(), ElementsAre("a", "b"));
  EXPECT_EQ(updated.assignee(), "ann");
  EXPECT_EQ(updated.status(), v1::READY);
  EXPECT_EQ(updated.version(), 2);
  EXPECT_EQ(Get(task.id()).SerializeAsString(), updated.SerializeAsString());

  // Set to zero / empty is still "set".
  u.Clear();
  u.set_task_id(task.id());
  u.set_priority(0);
  u.set_assignee("");
  s = Call(&Stub::UpdateTask, u, &updated);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(updated.priority(), 0);
  EXPECT_EQ(updated.assignee(), "");
  EXPECT_EQ(updated.title(), "new title");
  EXPECT_EQ(updated.body(), "old body");
  EXPECT_EQ(updated.version(), 3);

  // Labels are replaced as a whole.
  u.Clear();
  u.set_task_id(task.id());
  u.mutable_labels()->add_values("c");
  s = Call(&Stub::UpdateTask, u, &updated);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_THAT(updated.labels(), ElementsAre("c"));
  EXPECT_EQ(updated.version(), 4);

  // An empty LabelSet clears them.
  u.Clear();
  u.set_task_id(task.id());
  u.mutable_labels();
  s = Call(&Stub::UpdateTask, u, &updated);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_THAT(updated.labels(), IsEmpty());
  EXPECT_EQ(updated.version(), 5);
  EXPECT_THAT(Get(task.id()).labels(), IsEmpty());
  EXPECT_EQ(Get(task.id()).title(), "new title");
}

TEST_P(KanbanServiceTest, UpdateWithStaleVersionIsAbortedNamingTheCurrentVersion) {
  v1::Task task = Create("t");
  v1::UpdateTaskRequest u;
  u.set_task_id(task.id());
  u.set_body("one");
  v1::Task updated;
  ASSERT_TRUE(Call(&Stub::UpdateTask, u, &updated).ok());
  u.set_body("two");
  ASSERT_TRUE(Call(&Stub::UpdateTask, u, &updated).ok());
  ASSERT_EQ(updated.version(), 3);

  u.set_body("three");
  u.set_expected_version(1);
  grpc::Status s = Call(&Stub::UpdateTask, u, &updated);
  EXPECT_EQ(s.error_code(), StatusCode::ABORTED) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("current version 3"));
  EXPECT_EQ(Get(task.id()).body(), "two");

  u.set_expected_version(3);
  s = Call(&Stub::UpdateTask, u, &updated);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(updated.body(), "three");
  EXPECT_EQ(updated.version(), 4);

  u.set_expected_version(-1);
  ExpectInvalid(Call(&Stub::UpdateTask, u, &updated), "expected_version");
}

TEST_P(KanbanServiceTest, NoOpUpdateKeepsTheVersion) {
  v1::CreateTaskRequest c;
  c.set_title("same");
  c.add_labels("x");
  v1::Task task = Create(c);

  v1::UpdateTaskRequest u;
  u.set_task_id(task.id());
  u.set_title("same");
  u.mutable_labels()->add_values("x");
  v1::Task updated;
  grpc::Status s = Call(&Stub::UpdateTask, u, &updated);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(updated.version(), 1);

  u.Clear();
  u.set_task_id(task.id());  // Nothing set at all.
  s = Call(&Stub::UpdateTask, u, &updated);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(updated.version(), 1);
  EXPECT_EQ(Get(task.id()).version(), 1);
}

TEST_P(KanbanServiceTest, UpdateValidatesLikeCreate) {
  v1::Task task = Create("t");
  v1::UpdateTaskRequest u;
  u.set_task_id(task.id());
  u.set_title("  ");
  v1::Task updated;
  ExpectInvalid(Call(&Stub::UpdateTask, u, &updated), "title");

  u.Clear();
  u.set_task_id(task.id());
  u.mutable_labels()->add_values("dup");
  u.mutable_labels()->add_values("dup");
  ExpectInvalid(Call(&Stub::UpdateTask, u, &updated), "labels");
  EXPECT_EQ(Get(task.id()).version(), 1);
}

TEST_P(KanbanServiceTest, ArchivedTasksCannotBeUpdated) {
  v1::Task task = Create("t");
  MustMove(task.id(), v1::ARCHIVED);
  v1::UpdateTaskRequest u;
  u.set_task_id(task.id());
  u.set_title("changed");
  v1::Task updated;
  grpc::Status s = Call(&Stub::UpdateTask, u, &updated);
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << Describe(s);
  EXPECT_EQ(Get(task.id()).title(), "t");
}

// ---- MoveTask --------------------------------------------------------------

TEST_P(KanbanServiceTest, AllowedMovesSucceedAndBumpTheVersion) {
  v1::Task task = Create("t");
  int64_t version = task.version();
  for (v1::Status to : {v1::BLOCKED, v1::READY, v1::DONE, v1::READY, v1::ARCHIVED}) {
    v1::Task moved = MustMove(task.id(), to);
    EXPECT_EQ(moved.status(), to);
    EXPECT_EQ(moved.version(), version + 1) << v1::Status_Name(to);
    version = moved.version();
    EXPECT_EQ(Get(task.id()).status(), to);
  }
}

TEST_P(KanbanServiceTest, IllegalMovesFailNamingBothStatuses) {
  v1::Task archived = Create("archived");
  MustMove(archived.id(), v1::ARCHIVED);
  grpc::Status s = Move(archived.id(), v1::READY);
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << Describe(s);
  EXPECT_THAT(s.error_message(), AllOf(HasSubstr("ARCHIVED"), HasSubstr("READY")));

  v1::Task ready = Create("ready");
  s = Move(ready.id(), v1::RUNNING);
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << Describe(s);
  EXPECT_THAT(s.error_message(), AllOf(HasSubstr("READY"), HasSubstr("RUNNING")));
  EXPECT_EQ(Get(ready.id()).status(), v1::READY);
  EXPECT_EQ(Get(ready.id()).version(), 1);

  v1::CreateTaskRequest triage;
  triage.set_title("triage");
  triage.set_initial_status(v1::TRIAGE);
  v1::Task t = Create(triage);
  s = Move(t.id(), v1::DONE);
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << Describe(s);
  EXPECT_THAT(s.error_message(), AllOf(HasSubstr("TRIAGE"), HasSubstr("DONE")));
  EXPECT_EQ(Get(t.id()).status(), v1::TRIAGE);
}

TEST_P(KanbanServiceTest, MoveWithWrongVersionIsAborted) {
  v1::Task task = Create("t");
  v1::Task moved;
  grpc::Status s = Move(task.id(), v1::BLOCKED, &moved, /*expected_version=*/2);
  EXPECT_EQ(s.error_code(), StatusCode::ABORTED) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("current version 1"));
  EXPECT_EQ(Get(task.id()).status(), v1::READY);

  s = Move(task.id(), v1::BLOCKED, &moved, /*expected_version=*/1);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(moved.status(), v1::BLOCKED);
  EXPECT_EQ(moved.version(), 2);
}

TEST_P(KanbanServiceTest, MoveToUnknownOrUnsetStatusIsInvalid) {
  v1::Task task = Create("t");
  ExpectInvalid(Move(task.id(), static_cast<v1::Status>(99)), "to_status");
  ExpectInvalid(Move(task.id(), v1::STATUS_UNSPECIFIED), "to_status");
  v1::MoveTaskRequest r;
  r.set_task_id(task.id());
  r.set_to_status(v1::BLOCKED);
  r.set_reason(std::string(1025, 'r'));
  v1::Task moved;
  ExpectInvalid(Call(&Stub::MoveTask, r, &moved), "reason");
  EXPECT_EQ(Get(task.id()).version(), 1);
}

// ---- Dependencies ----------------------------------------------------------

TEST_P(KanbanServiceTest, ChildWaitsForParentAndFollowsItsReopening) {
  v1::Task parent = Create("parent");
  v1::Task child = Create("child", 0, "", {parent.id()});
  EXPECT_EQ(child.status(), v1::TODO);
  EXPECT_THAT(child.parent_ids(), ElementsAre(parent.id()));

  MustMove(parent.id(), v1::DONE);
  EXPECT_EQ(Get(child.id()).status(), v1::READY);

  MustMove(parent.id(), v1::READY);  // Reopened.
  EXPECT_EQ(Get(child.id()).status(), v1::TODO);

  // A child of a finished parent starts READY.
  MustMove(parent.id(), v1::DONE);
  EXPECT_EQ(Create("late child", 0, "", {parent.id()}).status(), v1::READY);
}

TEST_P(KanbanServiceTest, ChildCannotBeMadeReadyWhileAParentIsUnfinished) {
  v1::Task parent = Create("parent");
  v1::Task child = Create("child", 0, "", {parent.id()});
  ASSERT_EQ(child.status(), v1::TODO);
  grpc::Status s = Move(child.id(), v1::READY);
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr(parent.id()));
  EXPECT_EQ(Get(child.id()).status(), v1::TODO);

  // From BLOCKED, "ready" means "wait in TODO" while the parent is unfinished.
  MustMove(child.id(), v1::BLOCKED);
  EXPECT_EQ(MustMove(child.id(), v1::READY).status(), v1::TODO);
}

TEST_P(KanbanServiceTest, ChildWithTwoParentsWaitsForBoth) {
  v1::Task p1 = Create("p1");
  v1::Task p2 = Create("p2");
  v1::Task child = Create("child", 0, "", {p1.id(), p2.id()});
  EXPECT_EQ(child.status(), v1::TODO);
  MustMove(p1.id(), v1::DONE);
  EXPECT_EQ(Get(child.id()).status(), v1::TODO);
  MustMove(p2.id(), v1::ARCHIVED);
  EXPECT_EQ(Get(child.id()).status(), v1::READY);
}

TEST_P(KanbanServiceTest, LinkRejectsCyclesAndCrossBoardAndSelfLinks) {
  v1::Task a = Create("a");
  v1::Task b = Create("b");
  v1::Task c = Create("c");
  v1::Task child;
  grpc::Status s = Link(a.id(), b.id(), &child);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(child.id(), b.id());
  EXPECT_THAT(child.parent_ids(), ElementsAre(a.id()));
  ASSERT_TRUE(Link(b.id(), c.id()).ok());
  // Linking again changes nothing.
  v1::Task before = Get(b.id());
  s = Link(a.id(), b.id(), &child);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(child.version(), before.version());
  EXPECT_THAT(child.parent_ids(), ElementsAre(a.id()));

  s = Link(b.id(), a.id());
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << Describe(s);
  s = Link(c.id(), a.id());  // Longer cycle: a -> b -> c -> a.
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << Describe(s);
  EXPECT_THAT(Get(a.id()).parent_ids(), IsEmpty());

  ASSERT_TRUE(CreateBoard("ops").ok());
  v1::Task other = Create("elsewhere", 0, "ops");
  s = Link(a.id(), other.id());
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << Describe(s);
  EXPECT_THAT(Get(other.id()).parent_ids(), IsEmpty());

  ExpectInvalid(Link(a.id(), a.id()), "child_id");

  s = Link(a.id(), "01nosuchtask");
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);
}

TEST_P(KanbanServiceTest, CreateWithParentOnAnotherBoardFails) {
  ASSERT_TRUE(CreateBoard("ops").ok());
  v1::Task parent = Create("parent");
  v1::CreateTaskRequest r;
  r.set_title("child");
  r.set_board("ops");
  r.add_parent_ids(parent.id());
  grpc::Status s = CreateStatus(r);
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << Describe(s);
  v1::ListTasksRequest ops;
  ops.set_board("ops");
  EXPECT_THAT(Ids(List(ops)), IsEmpty());
}

TEST_P(KanbanServiceTest, UnlinkOfMissingLinkIsNotFound) {
  v1::Task a = Create("a");
  v1::Task b = Create("b");
  grpc::Status s = Unlink(a.id(), b.id());
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);
  EXPECT_EQ(Get(b.id()).version(), 1);
}

TEST_P(KanbanServiceTest, LinkingToUnfinishedParentDemotesAndUnlinkingPromotes) {
  v1::Task parent = Create("parent");
  v1::Task child = Create("child");
  ASSERT_EQ(child.status(), v1::READY);

  v1::Task linked;
  grpc::Status s = Link(parent.id(), child.id(), &linked);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(linked.status(), v1::TODO);
  EXPECT_THAT(linked.parent_ids(), ElementsAre(parent.id()));
  EXPECT_GT(linked.version(), child.version());
  EXPECT_EQ(Get(child.id()).status(), v1::TODO);

  v1::Task unlinked;
  s = Unlink(parent.id(), child.id(), &unlinked);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(unlinked.status(), v1::READY);
  EXPECT_THAT(unlinked.parent_ids(), IsEmpty());
  EXPECT_GT(unlinked.version(), linked.version());
  v1::Task got = Get(child.id());
  EXPECT_EQ(got.status(), v1::READY);
  EXPECT_THAT(got.parent_ids(), IsEmpty());
}

// ---- ListTasks -------------------------------------------------------------

TEST_P(KanbanServiceTest, ListOrdersByPriorityThenAge) {
  v1::Task low_old = Create("low old", 1);
  v1::Task high_old = Create("high old", 3);
  v1::Task low_new = Create("low new", 1);
  v1::Task mid = Create("mid", 2);
  v1::Task high_new = Create("high new", 3);
  v1::Task negative = Create("negative", -5);

  EXPECT_THAT(Ids(List(v1::ListTasksRequest())),
              ElementsAre(high_old.id(), high_new.id(), mid.id(), low_old.id(),
                          low_new.id(), negative.id()));
  // The same order one page at a time, across the negative priority too.
  v1::ListTasksRequest q;
  q.set_page_size(1);
  EXPECT_THAT(Ids(ListAll(q)), ElementsAre(high_old.id(), high_new.id(), mid.id(),
                                           low_old.id(), low_new.id(), negative.id()));
}

TEST_P(KanbanServiceTest, ListFiltersByStatusLabelAssigneeAndBoard) {
  ASSERT_TRUE(CreateBoard("ops").ok());
  v1::CreateTaskRequest r;
  r.set_title("a");
  r.add_labels("bug");
  r.set_assignee("ann");
  v1::Task a = Create(r);

  r.Clear();
  r.set_title("b");
  r.add_labels("feature");
  r.add_labels("bug-ish");
  r.set_assignee("bob");
  v1::Task b = Create(r);

  r.Clear();
  r.set_title("c");
  r.add_labels("feature");
  r.add_labels("bug");
  r.set_assignee("ann");
  r.set_board("ops");
  v1::Task c = Create(r);
  MustMove(c.id(), v1::BLOCKED);

  v1::Task d = Create("d");
  MustMove(d.id(), v1::DONE);

  v1::ListTasksRequest q;
  q.add_statuses(v1::BLOCKED);
  EXPECT_THAT(Ids(List(q)), ElementsAre(c.id()));
  q.add_statuses(v1::DONE);
  EXPECT_THAT(Ids(List(q)), ElementsAre(c.id(), d.id()));
  q.clear_statuses();
  q.add_statuses(v1::READY);
  EXPECT_THAT(Ids(List(q)), ElementsAre(a.id(), b.id()));
  q.clear_statuses();
  q.add_statuses(v1::ARCHIVED);
  EXPECT_THAT(Ids(List(q)), IsEmpty());

  q.Clear();
  q.set_label("bug");
  EXPECT_THAT(Ids(List(q)), ElementsAre(a.id(), c.id()));  // Not "bug-ish".
  q.set_label("feature");
  EXPECT_THAT(Ids(List(q)), ElementsAre(b.id(), c.id()));
  q.set_label("nope");
  EXPECT_THAT(Ids(List(q)), IsEmpty());

  q.Clear();
  q.set_assignee("ann");
  EXPECT_THAT(Ids(List(q)), ElementsAre(a.id(), c.id()));
  q.set_assignee("bob");
  EXPECT_THAT(Ids(List(q)), ElementsAre(b.id()));

  q.Clear();
  q.set_board("ops");
  EXPECT_THAT(Ids(List(q)), ElementsAre(c.id()));
  q.set_board("default");
  EXPECT_THAT(Ids(List(q)), ElementsAre(a.id(), b.id(), d.id()));

  // Filters combine.
  q.Clear();
  q.set_board("default");
  q.set_assignee("ann");
  q.set_label("bug");
  q.add_statuses(v1::READY);
  EXPECT_THAT(Ids(List(q)), ElementsAre(a.id()));
}

TEST_P(KanbanServiceTest, PagesVisitEveryTaskOnceInOrder) {
  std::vector<std::string> expected;
  // Priorities chosen so that order differs from creation order.
  std::vector<v1::Task> created;
  for (int priority : {1, 3, 1, 2, 3}) {
    created.push_back(Create(absl::StrCat("p", priority), priority));
  }
  expected = {created[1].id(), created[4].id(), created[3].id(), created[0].id(),
              created[2].id()};

  v1::ListTasksRequest q;
  q.set_page_size(2);
  v1::ListTasksResponse page1 = List(q);
  EXPECT_THAT(Ids(page1), ElementsAre(expected[0], expected[1]));
  ASSERT_FALSE(page1.next_page_token().empty());

  q.set_page_token(page1.next_page_token());
  v1::ListTasksResponse page2 = List(q);
  EXPECT_THAT(Ids(page2), ElementsAre(expected[2], expected[3]));
  ASSERT_FALSE(page2.next_page_token().empty());

  q.set_page_token(page2.next_page_token());
  v1::ListTasksResponse page3 = List(q);
  EXPECT_THAT(Ids(page3), ElementsAre(expected[4]));
  EXPECT_TRUE(page3.next_page_token().empty());

  // A full last page also ends with an empty token.
  q.Clear();
  q.set_page_size(5);
  v1::ListTasksResponse whole = List(q);
  EXPECT_THAT(Ids(whole), ElementsAreArray(expected));
  EXPECT_TRUE(whole.next_page_token().empty());

  // Pages of one, through the helper.
  q.Clear();
  q.set_page_size(1);
  EXPECT_THAT(Ids(ListAll(q)), ElementsAreArray(expected));
}

TEST_P(KanbanServiceTest, ListRejectsBadArguments) {
  v1::ListTasksResponse response;
  v1::ListTasksRequest q;
  q.set_page_size(1001);
  ExpectInvalid(Call(&Stub::ListTasks, q, &response), "page_size");
  q.set_page_size(-1);
  ExpectInvalid(Call(&Stub::ListTasks, q, &response), "page_size");
  q.set_page_size(1000);
  EXPECT_TRUE(Call(&Stub::ListTasks, q, &response).ok());

  q.Clear();
  q.set_page_token("garbage!!");
  ExpectInvalid(Call(&Stub::ListTasks, q, &response), "page_token");
  q.set_page_token("Z2FyYmFnZQ");  // base64url of "garbage".
  ExpectInvalid(Call(&Stub::ListTasks, q, &response), "page_token");

  q.Clear();
  q.add_statuses(static_cast<v1::Status>(99));
  ExpectInvalid(Call(&Stub::ListTasks, q, &response), "statuses[0]");

  q.Clear();
  q.set_board("Bad Name");
  ExpectInvalid(Call(&Stub::ListTasks, q, &response), "board");

  q.Clear();
  q.set_board("nosuchboard");
  grpc::Status s = Call(&Stub::ListTasks, q, &response);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);
}

// ---- Comments --------------------------------------------------------------

TEST_P(KanbanServiceTest, CommentsAreListedOldestFirst) {
  v1::Task task = Create("t");
  std::vector<v1::Comment> added;
  for (const auto& [author, body] : std::vector<std::pair<std::string, std::string>>{
           {"ann", "first"}, {"bob", "second"}, {"", "third, anonymous"}}) {
    v1::AddCommentRequest r;
    r.set_task_id(task.id());
    r.set_author(author);
    r.set_body(body);
    v1::Comment c;
    grpc::Status s = Call(&Stub::AddComment, r, &c);
    ASSERT_TRUE(s.ok()) << Describe(s);
    EXPECT_GT(c.id(), 0);
    EXPECT_EQ(c.task_id(), task.id());
    EXPECT_EQ(c.author(), author);
    EXPECT_EQ(c.body(), body);
    EXPECT_TRUE(c.has_created_at());
    added.push_back(c);
  }

  v1::ListCommentsRequest lr;
  lr.set_task_id(task.id());
  v1::ListCommentsResponse listed;
  grpc::Status s = Call(&Stub::ListComments, lr, &listed);
  ASSERT_TRUE(s.ok()) << Describe(s);
  ASSERT_EQ(listed.comments_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(listed.comments(i).SerializeAsString(), added[i].SerializeAsString())
        << i << ": " << listed.comments(i).ShortDebugString();
  }
  EXPECT_LT(listed.comments(0).id(), listed.comments(1).id());
  EXPECT_LT(listed.comments(1).id(), listed.comments(2).id());

  // Another task's comments are its own.
  v1::Task other = Create("other");
  lr.set_task_id(other.id());
  listed.Clear();
  ASSERT_TRUE(Call(&Stub::ListComments, lr, &listed).ok());
  EXPECT_EQ(listed.comments_size(), 0);
}

TEST_P(KanbanServiceTest, EmptyCommentIsInvalid) {
  v1::Task task = Create("t");
  v1::AddCommentRequest r;
  r.set_task_id(task.id());
  r.set_author("ann");
  v1::Comment c;
  ExpectInvalid(Call(&Stub::AddComment, r, &c), "body");
  r.set_body("   ");
  ExpectInvalid(Call(&Stub::AddComment, r, &c), "body");
  r.set_body(std::string(64 * 1024 + 1, 'b'));
  ExpectInvalid(Call(&Stub::AddComment, r, &c), "body");
  r.set_body("fine");
  r.set_author(std::string(129, 'a'));
  ExpectInvalid(Call(&Stub::AddComment, r, &c), "author");

  v1::ListCommentsRequest lr;
  lr.set_task_id(task.id());
  v1::ListCommentsResponse listed;
  ASSERT_TRUE(Call(&Stub::ListComments, lr, &listed).ok());
  EXPECT_EQ(listed.comments_size(), 0);
}

// ---- GetServerInfo ---------------------------------------------------------

TEST_P(KanbanServiceTest, ServerInfoReportsNormalDurabilityByDefault) {
  v1::ServerInfo info;
  grpc::Status s = Call(&Stub::GetServerInfo, v1::GetServerInfoRequest(), &info);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_GE(info.schema_version(), 1);
  if (OnPostgres()) {
    // No choice made: the server's own synchronous_commit, read back (the
    // suite's server runs with off; PostgreSQL's default would be on).
    EXPECT_EQ(info.backend(), "postgresql");
    EXPECT_THAT(info.backend_version(), StartsWith("15."));
    EXPECT_EQ(info.synchronous(), "off");
    EXPECT_EQ(info.journal_mode(), "");
    EXPECT_EQ(info.database_path(), storage::RedactPostgresTarget(db_path_));
    EXPECT_THAT(info.database_path(), StartsWith("postgresql://kanban@127.0.0.1:"));
  } else {
    EXPECT_EQ(info.backend(), "sqlite");
    EXPECT_THAT(info.backend_version(), StartsWith("3."));
    EXPECT_EQ(info.synchronous(), "NORMAL");
    EXPECT_EQ(info.wal_autocheckpoint(), 1000);
    EXPECT_EQ(info.journal_mode(), "wal");
    EXPECT_EQ(info.database_path(), db_path_);
  }
  EXPECT_FALSE(info.version().empty());
  EXPECT_GE(info.uptime().seconds(), 0);
}

// NORMAL, chosen: on PostgreSQL that is synchronous_commit=off.
class KanbanServiceNormalTest : public KanbanServiceTest {
 protected:
  void Configure(Server::Options& options) override {
    absl::StatusOr<storage::DurabilitySettings> normal =
        storage::ResolveDurability(std::nullopt, "normal");
    ASSERT_TRUE(normal.ok()) << normal.status();
    options.store.durability = *normal;
  }
};

TEST_P(KanbanServiceNormalTest, ServerInfoReportsTheChoiceReadBack) {
  v1::ServerInfo info;
  grpc::Status s = Call(&Stub::GetServerInfo, v1::GetServerInfoRequest(), &info);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(info.synchronous(), OnPostgres() ? "off" : "NORMAL");
}

class KanbanServiceFullTest : public KanbanServiceTest {
 protected:
  void Configure(Server::Options& options) override {
    absl::StatusOr<storage::DurabilitySettings> full =
        storage::ResolveDurability(absl::string_view("full"), "");
    ASSERT_TRUE(full.ok()) << full.status();
    ASSERT_EQ(full->mode, storage::SyncMode::kFull);
    options.store.durability = *full;
  }
};

TEST_P(KanbanServiceFullTest, ServerInfoReportsFullDurability) {
  v1::ServerInfo info;
  grpc::Status s = Call(&Stub::GetServerInfo, v1::GetServerInfoRequest(), &info);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_GE(info.schema_version(), 1);
  if (OnPostgres()) {
    EXPECT_EQ(info.synchronous(), "on");
  } else {
    EXPECT_EQ(info.synchronous(), "FULL");
    EXPECT_EQ(info.wal_autocheckpoint(), 100);
    EXPECT_EQ(info.journal_mode(), "wal");
    EXPECT_EQ(info.database_path(), db_path_);
  }

  // And it still stores things.
  v1::Task task = Create("durable");
  EXPECT_EQ(Get(task.id()).title(), "durable");
}

// ---- Health ----------------------------------------------------------------

TEST_P(KanbanServiceTest, HealthCheckKnowsTheServices) {
  for (const std::string& service :
       {std::string(""), std::string("kanban.v1.KanbanService")}) {
    HealthCheckRequest r;
    r.set_service(service);
    HealthCheckResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    grpc::Status s = health_->Check(&ctx, r, &response);
    ASSERT_TRUE(s.ok()) << "\"" << service << "\": " << Describe(s);
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING) << "\"" << service << "\"";
  }

  HealthCheckRequest r;
  r.set_service("no.such.Service");
  HealthCheckResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  grpc::Status s = health_->Check(&ctx, r, &response);
  EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << Describe(s);
}

TEST_P(KanbanServiceTest, HealthWatchOfUnknownServiceSaysSo) {
  HealthCheckRequest r;
  r.set_service("no.such.Service");
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> stream =
      health_->Watch(&ctx, r);
  HealthCheckResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  ctx.TryCancel();
  while (stream->Read(&response)) {
  }
  stream->Finish();
}

TEST_P(KanbanServiceTest, HealthWatchEndsWhenTheServerShutsDown) {
  HealthCheckRequest r;
  r.set_service("kanban.v1.KanbanService");
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> stream =
      health_->Watch(&ctx, r);
  HealthCheckResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  std::thread shutdown([this] { server_->Shutdown(); });
  std::vector<HealthCheckResponse::ServingStatus> after;
  while (stream->Read(&response)) after.push_back(response.status());
  grpc::Status s = stream->Finish();
  shutdown.join();

  // The stream was ended by the server, not by our deadline.
  EXPECT_NE(s.error_code(), StatusCode::DEADLINE_EXCEEDED) << Describe(s);
  EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << Describe(s);
  EXPECT_THAT(after, ElementsAre(HealthCheckResponse::NOT_SERVING));
}

// ---- Concurrency -----------------------------------------------------------

TEST_P(KanbanServiceTest, ConcurrentCreatesAreAllStored) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 100;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &ids, &failures] {
      for (int i = 0; i < kPerThread; ++i) {
        v1::CreateTaskRequest r;
        r.set_title(absl::StrCat("thread ", t, " task ", i));
        r.set_priority(i % 7);
        v1::Task task;
        grpc::Status s = Call(&Stub::CreateTask, r, &task);
        if (!s.ok()) {
          failures.fetch_add(1);
          ADD_FAILURE() << Describe(s);
          continue;
        }
        ids[t].push_back(task.id());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);

  std::set<std::string> acknowledged;
  for (const auto& per_thread : ids) {
    for (const std::string& id : per_thread) {
      EXPECT_TRUE(acknowledged.insert(id).second) << "duplicate id " << id;
      v1::GetTaskRequest r;
      r.set_task_id(id);
      v1::Task task;
      grpc::Status s = Call(&Stub::GetTask, r, &task);
      EXPECT_TRUE(s.ok()) << id << ": " << Describe(s);
    }
  }
  EXPECT_EQ(acknowledged.size(), static_cast<size_t>(kThreads * kPerThread));

  v1::ListTasksRequest q;
  q.set_page_size(250);
  std::vector<v1::Task> listed = ListAll(q);
  EXPECT_EQ(listed.size(), static_cast<size_t>(kThreads * kPerThread));
  std::vector<std::string> listed_ids = Ids(listed);
  EXPECT_EQ(std::set<std::string>(listed_ids.begin(), listed_ids.end()), acknowledged);
  for (size_t i = 1; i < listed.size(); ++i) {
    ASSERT_GE(listed[i - 1].priority(), listed[i].priority()) << "at " << i;
  }
}

// ---- Start -----------------------------------------------------------------

TEST(ServerStartTest, UnopenableDatabaseFails) {
  kanban::testing::TempDir dir;
  Server::Options options;
  options.listen = "127.0.0.1:0";
  options.store.path = dir.File("missing/dir/kanban.db");
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition)
      << server.status();
}

TEST(ServerStartTest, UnusableAddressIsUnavailable) {
  kanban::testing::TempDir dir;
  Server::Options options;
  options.listen = "256.0.0.1:0";
  options.store.path = dir.File("kanban.db");
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable) << server.status();
}

TEST_P(KanbanServiceTest, PortInUseIsUnavailable) {
  // SQLite only: the second server needs a database of its own to reach the
  // port check, and a file in another directory is that.
  if (OnPostgres()) GTEST_SKIP() << "the second server's database is a file";
  kanban::testing::TempDir other_dir;
  Server::Options options;
  options.listen = "127.0.0.1:" + std::to_string(server_->port());
  options.store.path = other_dir.File("kanban.db");
  absl::StatusOr<std::unique_ptr<Server>> second = Server::Start(std::move(options));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable)
      << "a second server started on port " << server_->port()
      << " that the first one is serving: " << second.status();
}

// ---- Shutdown --------------------------------------------------------------

TEST_P(KanbanServiceTest, CallsAfterShutdownAreUnavailable) {
  v1::Task task = Create("before");
  ASSERT_FALSE(task.id().empty());
  server_->Shutdown();
  server_->Shutdown();  // Idempotent.

  v1::GetTaskRequest r;
  r.set_task_id(task.id());
  v1::Task got;
  grpc::Status s = Call(&Stub::GetTask, r, &got);
  EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << Describe(s);

  HealthCheckResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  s = health_->Check(&ctx, HealthCheckRequest(), &response);
  EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << Describe(s);
}

TEST_P(KanbanServiceTest, DataSurvivesARestartOnTheSameFile) {
  v1::Task task = Create("persistent");
  server_->Shutdown();
  server_.reset();

  Server::Options options;
  options.listen = "127.0.0.1:0";
  options.store.path = db_path_;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                 grpc::InsecureChannelCredentials());
  stub_ = v1::KanbanService::NewStub(channel_);
  v1::Task got = Get(task.id());
  EXPECT_EQ(got.title(), "persistent");
  EXPECT_EQ(got.version(), task.version());
}

INSTANTIATE_TEST_SUITE_P(Backends, KanbanServiceTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, KanbanServiceNormalTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, KanbanServiceFullTest, testing::AllBackends(),
                         testing::BackendName);

}  // namespace
}  // namespace kanban::service
