// The HTTP door end to end: a real server with --http_listen on 127.0.0.1:0
// over each backend (a real SQLite file, a fresh database on the suite's
// PostgreSQL), called with a raw-socket HTTP/1.1 client
// (tests/support/http_client.h). Checks the gRPC-code-to-HTTP-status table,
// the canonical JSON shape, bearer tokens and roles, and the Server-Sent
// Events stream: exact resumption with Last-Event-ID and the error event for
// a compacted resume point.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/auth.h"
#include "service/http/http_status.h"
#include "service/server.h"
#include "storage/store.h"
#include "tests/service/seed_token.h"
#include "tests/support/backends.h"
#include "tests/support/http_client.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

using ::grpc::StatusCode;
using ::kanban::testing::HttpFetch;
using ::kanban::testing::HttpHeaders;
using ::kanban::testing::HttpResponse;
using ::kanban::testing::SseEvent;
using ::kanban::testing::SseStream;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kCallTimeout = std::chrono::seconds(60);
constexpr char kAdminSecret[] = "kb_http-test-admin-secret-long-enough-00000000";

template <typename Message>
Message FromJson(const std::string& json) {
  Message message;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << json;
  return message;
}

class HttpTest : public kanban::testing::BackendTest {
 protected:
  // Skips the test here, before its body, when there is no PostgreSQL.
  void SetUp() override { Database(dir_.File("kanban.db")); }

  void Start(std::function<void(Server::Options&)> configure = nullptr) {
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.http_listen = "127.0.0.1:0";
    options.http_keepalive = absl::Milliseconds(200);
    options.store.path = Database(dir_.File("kanban.db"));
    ASSERT_FALSE(options.store.path.empty());
    if (configure) configure(options);
    if (options.auth) {
      // The first admin token goes straight into the database, as
      // `kanband token create` does.
      ASSERT_TRUE(SeedAdminToken(options.store.path, kAdminSecret).ok());
    }
    auto server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_NE(server_->http_port(), 0);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    kanban_ = v1::KanbanService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  void TearDown() override {
    kanban_.reset();
    admin_.reset();
    channel_.reset();
    if (server_) server_->Shutdown(absl::ZeroDuration());
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& secret = "") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    if (!secret.empty()) ctx->AddMetadata("authorization", "Bearer " + secret);
    return ctx;
  }

  HttpResponse Fetch(const std::string& method, const std::string& target,
                     const std::string& body = "", const HttpHeaders& headers = {}) {
    auto response = HttpFetch(server_->http_port(), method, target, headers, body);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.value_or(HttpResponse());
  }

  static HttpHeaders Bearer(const std::string& secret) {
    return {{"Authorization", "Bearer " + secret}};
  }

  std::unique_ptr<SseStream> Events(const std::string& query,
                                    const HttpHeaders& headers = {}) {
    auto stream =
        SseStream::Open(server_->http_port(), "/api/v1/events" + query, headers);
    EXPECT_TRUE(stream.ok()) << stream.status();
    return stream.ok() ? *std::move(stream) : nullptr;
  }

  v1::Task CreateTask(const std::string& title, const std::string& secret = "") {
    v1::CreateTaskRequest request;
    request.set_title(title);
    v1::Task task;
    grpc::Status s = kanban_->CreateTask(Ctx(secret).get(), request, &task);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return task;
  }

  std::string MakeToken(const std::string& name, v1::Role role) {
    v1::CreateTokenRequest request;
    request.set_name(name);
    request.set_role(role);
    v1::CreateTokenResponse response;
    grpc::Status s = admin_->CreateToken(Ctx(kAdminSecret).get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.secret();
  }

  int64_t OldestSeq() {
    auto oldest = storage::Await<int64_t>(
        [&](auto done) { server_->store().OldestEventSeq(done); });
    EXPECT_TRUE(oldest.ok()) << oldest.status();
    return oldest.value_or(-1);
  }

  // Reads events (skipping bookmarks) until one has id `last`; their ids.
  static std::vector<int64_t> ReadThrough(SseStream& stream, int64_t last) {
    std::vector<int64_t> ids;
    while (ids.empty() || ids.back() < last) {
      std::optional<SseEvent> event = stream.Next(absl::Seconds(30));
      if (!event.has_value()) {
        ADD_FAILURE() << "stream ended or stalled after ids " << ids.size();
        break;
      }
      if (!event->event.empty()) continue;  // Bookmarks.
      int64_t id = 0;
      EXPECT_TRUE(event->id.has_value() && absl::SimpleAtoi(*event->id, &id));
      const v1::Event parsed = FromJson<v1::Event>(event->data);
      EXPECT_EQ(parsed.seq(), id) << event->data;
      ids.push_back(id);
    }
    return ids;
  }

  static std::vector<int64_t> Range(int64_t first, int64_t last) {
    std::vector<int64_t> out;
    for (int64_t i = first; i <= last; ++i) out.push_back(i);
    return out;
  }

  kanban::testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KanbanService::Stub> kanban_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

INSTANTIATE_TEST_SUITE_P(Backends, HttpTest, kanban::testing::AllBackends(),
                         kanban::testing::BackendName);

// Every gRPC code has its HTTP status, as the issue's table says.
TEST(HttpStatusTest, MapsEveryCode) {
  EXPECT_EQ(HttpStatusFor(StatusCode::OK), 200);
  EXPECT_EQ(HttpStatusFor(StatusCode::INVALID_ARGUMENT), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::OUT_OF_RANGE), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::UNAUTHENTICATED), 401);
  EXPECT_EQ(HttpStatusFor(StatusCode::PERMISSION_DENIED), 403);
  EXPECT_EQ(HttpStatusFor(StatusCode::NOT_FOUND), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::ALREADY_EXISTS), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::ABORTED), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::FAILED_PRECONDITION), 412);
  EXPECT_EQ(HttpStatusFor(StatusCode::RESOURCE_EXHAUSTED), 429);
  EXPECT_EQ(HttpStatusFor(StatusCode::UNAVAILABLE), 503);
  EXPECT_EQ(HttpStatusFor(StatusCode::DEADLINE_EXCEEDED), 504);
  EXPECT_EQ(HttpStatusFor(StatusCode::UNIMPLEMENTED), 501);
  EXPECT_EQ(HttpStatusFor(StatusCode::INTERNAL), 500);
  EXPECT_EQ(HttpStatusFor(StatusCode::DATA_LOSS), 500);
  EXPECT_EQ(HttpStatusFor(StatusCode::UNKNOWN), 500);
  EXPECT_EQ(ErrorJson(StatusCode::NOT_FOUND, "task \"x\"\n"),
            R"({"code":"NOT_FOUND","message":"task \"x\"\n"})");
}

TEST_P(HttpTest, CreateGetListMoveCommentInCanonicalJson) {
  ASSERT_NO_FATAL_FAILURE(Start());
  HttpResponse created =
      Fetch("POST", "/api/v1/boards/default/tasks",
            R"({"title":"write docs","priority":5,"labels":["docs"],"maxAttempts":2})");
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_EQ(created.Header("content-type"), "application/json");
  // Canonical JSON: lowerCamelCase names, enums by name, int64 as strings.
  EXPECT_THAT(created.body, HasSubstr(R"("board":"default")"));
  EXPECT_THAT(created.body, HasSubstr(R"("status":"READY")"));
  EXPECT_THAT(created.body, HasSubstr(R"("version":"1")"));
  EXPECT_THAT(created.body, HasSubstr(R"("maxAttempts":2)"));
  EXPECT_THAT(created.body, HasSubstr(R"("createdAt":")"));
  EXPECT_THAT(created.body, Not(HasSubstr("created_at")));
  const v1::Task task = FromJson<v1::Task>(created.body);
  ASSERT_FALSE(task.id().empty());

  // What gRPC sees is the same task.
  v1::GetTaskRequest get;
  get.set_task_id(task.id());
  v1::Task via_grpc;
  ASSERT_TRUE(kanban_->GetTask(Ctx().get(), get, &via_grpc).ok());
  EXPECT_EQ(via_grpc.title(), "write docs");
  EXPECT_EQ(via_grpc.priority(), 5);

  HttpResponse fetched = Fetch("GET", "/api/v1/tasks/" + task.id());
  ASSERT_EQ(fetched.status, 200) << fetched.body;
  EXPECT_EQ(FromJson<v1::Task>(fetched.body).id(), task.id());

  HttpResponse boards = Fetch("GET", "/api/v1/boards");
  ASSERT_EQ(boards.status, 200) << boards.body;
  EXPECT_THAT(boards.body, HasSubstr(R"({"boards":[{"name":"default")"));

  HttpResponse ready = Fetch("GET", "/api/v1/boards/default/tasks?status=READY,todo");
  ASSERT_EQ(ready.status, 200) << ready.body;
  ASSERT_EQ(FromJson<v1::ListTasksResponse>(ready.body).tasks_size(), 1);
  HttpResponse done = Fetch("GET", "/api/v1/boards/default/tasks?status=DONE");
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(done.body, "{}");

  HttpResponse moved = Fetch("POST", "/api/v1/tasks/" + task.id() + ":move",
                             R"({"toStatus":"DONE","expectedVersion":"1"})");
  ASSERT_EQ(moved.status, 200) << moved.body;
  const v1::Task after = FromJson<v1::Task>(moved.body);
  EXPECT_EQ(after.status(), v1::DONE);
  EXPECT_EQ(after.version(), 2);

  HttpResponse comment = Fetch("POST", "/api/v1/tasks/" + task.id() + "/comments",
                               R"({"author":"ann","body":"looks good"})");
  ASSERT_EQ(comment.status, 200) << comment.body;
  HttpResponse comments = Fetch("GET", "/api/v1/tasks/" + task.id() + "/comments");
  ASSERT_EQ(comments.status, 200) << comments.body;
  const auto list = FromJson<v1::ListCommentsResponse>(comments.body);
  ASSERT_EQ(list.comments_size(), 1);
  EXPECT_EQ(list.comments(0).body(), "looks good");
  EXPECT_EQ(list.comments(0).author(), "ann");

  HttpResponse workers = Fetch("GET", "/api/v1/workers");
  EXPECT_EQ(workers.status, 200) << workers.body;

  // Paging: page_size and page_token reach ListTasks.
  for (int i = 0; i < 3; ++i) CreateTask(absl::StrCat("more ", i));
  HttpResponse first = Fetch("GET", "/api/v1/boards/default/tasks?page_size=2");
  ASSERT_EQ(first.status, 200) << first.body;
  const auto page = FromJson<v1::ListTasksResponse>(first.body);
  EXPECT_EQ(page.tasks_size(), 2);
  ASSERT_FALSE(page.next_page_token().empty());
  HttpResponse second =
      Fetch("GET", "/api/v1/boards/default/tasks?page_size=2&page_token=" +
                       page.next_page_token());
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(FromJson<v1::ListTasksResponse>(second.body).tasks_size(), 2);
}

TEST_P(HttpTest, GrpcCodesBecomeHttpStatusesWithJsonErrorBodies) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const v1::Task task = CreateTask("t");
  const auto expect = [&](const HttpResponse& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.Header("content-type"), "application/json");
    EXPECT_THAT(r.body, HasSubstr(absl::StrCat(R"({"code":")", code, R"(","message":")")))
        << r.body;
  };
  // NOT_FOUND: an unknown task (a well-formed id that does not exist).
  std::string missing = task.id();
  missing.back() = missing.back() == '0' ? '1' : '0';
  expect(Fetch("GET", "/api/v1/tasks/" + missing), 404, "NOT_FOUND");
  // INVALID_ARGUMENT: the service's validation, and the door's own parsing.
  expect(Fetch("POST", "/api/v1/boards/default/tasks", R"({"title":""})"), 400,
         "INVALID_ARGUMENT");
  expect(Fetch("POST", "/api/v1/boards/default/tasks", R"({"title":)"), 400,
         "INVALID_ARGUMENT");
  expect(Fetch("POST", "/api/v1/boards/default/tasks", R"({"nonsense":1})"), 400,
         "INVALID_ARGUMENT");
  expect(
      Fetch("POST", "/api/v1/boards/default/tasks", R"({"title":"x","board":"other"})"),
      400, "INVALID_ARGUMENT");
  expect(Fetch("GET", "/api/v1/boards/default/tasks?status=SOON"), 400,
         "INVALID_ARGUMENT");
  expect(Fetch("GET", "/api/v1/boards/default/tasks?page_size=5000"), 400,
         "INVALID_ARGUMENT");
  // NOT_FOUND for a board that does not exist.
  expect(Fetch("POST", "/api/v1/boards/nope/tasks", R"({"title":"x"})"), 404,
         "NOT_FOUND");
  // ABORTED: a stale expected_version (the message has the current one).
  HttpResponse stale = Fetch("POST", "/api/v1/tasks/" + task.id() + ":move",
                             R"({"toStatus":"TODO","expectedVersion":"7"})");
  expect(stale, 409, "ABORTED");
  // FAILED_PRECONDITION: a move the table does not allow (READY -> REVIEW).
  HttpResponse illegal =
      Fetch("POST", "/api/v1/tasks/" + task.id() + ":move", R"({"toStatus":"REVIEW"})");
  expect(illegal, 412, "FAILED_PRECONDITION");
  EXPECT_THAT(illegal.body, HasSubstr("REVIEW"));
  // ALREADY_EXISTS: an idempotency key reused with other content.
  HttpResponse first = Fetch("POST", "/api/v1/boards/default/tasks",
                             R"({"title":"a","idempotencyKey":"k1"})");
  EXPECT_EQ(first.status, 200) << first.body;
  expect(Fetch("POST", "/api/v1/boards/default/tasks",
               R"({"title":"b","idempotencyKey":"k1"})"),
         409, "ALREADY_EXISTS");
  // The door's own refusals.
  expect(Fetch("GET", "/api/v1/nothing"), 404, "NOT_FOUND");
  expect(Fetch("DELETE", "/api/v1/boards"), 405, "UNIMPLEMENTED");
}

// Bodies are read up to --max_request_bytes, as gRPC would take them.
TEST_P(HttpTest, BodiesOverTheRequestLimitAreRefused) {
  ASSERT_NO_FATAL_FAILURE(Start([](Server::Options& o) { o.max_request_bytes = 1024; }));
  const std::string big = R"({"title":"x","body":")" + std::string(2000, 'b') + R"("})";
  HttpResponse refused = Fetch("POST", "/api/v1/boards/default/tasks", big);
  EXPECT_EQ(refused.status, 413) << refused.body;
  EXPECT_THAT(refused.body, HasSubstr(R"("code":"RESOURCE_EXHAUSTED")"));
  HttpResponse fits =
      Fetch("POST", "/api/v1/boards/default/tasks", R"({"title":"small"})");
  EXPECT_EQ(fits.status, 200) << fits.body;
}

// Streams hold a thread each: a cap keeps them from taking every thread
// from the API.
TEST_P(HttpTest, EventStreamsAreCappedAndTheApiStillAnswers) {
  ASSERT_NO_FATAL_FAILURE(
      Start([](Server::Options& o) { o.http_max_event_streams = 2; }));
  std::vector<std::unique_ptr<SseStream>> open;
  for (int i = 0; i < 2; ++i) {
    open.push_back(Events("?from_now=true"));
    ASSERT_NE(open.back(), nullptr);
    ASSERT_EQ(open.back()->status(), 200);
  }
  auto refused = SseStream::Open(server_->http_port(), "/api/v1/events?from_now=true");
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ((*refused)->status(), 429);
  EXPECT_THAT((*refused)->RestOfBody(), HasSubstr("--http_max_event_streams"));
  EXPECT_EQ(Fetch("GET", "/api/v1/boards").status, 200);
}

// Another site's page must not drive a loopback board from the user's
// browser: no form or text/plain POSTs (no CORS preflight), and no requests
// addressed to a name other than loopback (DNS rebinding).
TEST_P(HttpTest, RefusesCrossSiteShapedRequests) {
  ASSERT_NO_FATAL_FAILURE(Start());
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded"}) {
    HttpResponse r = Fetch("POST", "/api/v1/boards/default/tasks", R"({"title":"csrf"})",
                           {{"Content-Type", type}});
    EXPECT_EQ(r.status, 415) << type << ": " << r.body;
    EXPECT_THAT(r.body, HasSubstr("Content-Type"));
  }
  HttpResponse rebound = Fetch("GET", "/api/v1/boards", "", {{"Host", "evil.example"}});
  EXPECT_EQ(rebound.status, 403) << rebound.body;
  EXPECT_EQ(Fetch("GET", "/", "", {{"Host", "evil.example:7380"}}).status, 403);
  EXPECT_EQ(Fetch("GET", "/api/v1/boards", "", {{"Host", "localhost:7380"}}).status, 200);
  EXPECT_EQ(Fetch("GET", "/api/v1/boards", "", {{"Host", "[::1]:7380"}}).status, 200);
  // Nothing was created.
  HttpResponse tasks = Fetch("GET", "/api/v1/boards/default/tasks");
  EXPECT_THAT(tasks.body, Not(HasSubstr("csrf")));
}

TEST_P(HttpTest, ServesThePage) {
  ASSERT_NO_FATAL_FAILURE(Start());
  HttpResponse page = Fetch("GET", "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_THAT(page.body, HasSubstr("<title>"));
  HttpResponse script = Fetch("GET", "/app.js");
  EXPECT_EQ(script.status, 200);
  EXPECT_THAT(script.Header("content-type"), HasSubstr("javascript"));
  EXPECT_EQ(Fetch("GET", "/style.css").status, 200);
}

TEST_P(HttpTest, BearerTokensAndRolesAreThoseOfGrpc) {
  ASSERT_NO_FATAL_FAILURE(Start([](Server::Options& o) { o.auth = true; }));
  const std::string viewer = MakeToken("view", v1::ROLE_VIEWER);
  const std::string producer = MakeToken("prod", v1::ROLE_PRODUCER);

  HttpResponse none = Fetch("GET", "/api/v1/boards");
  EXPECT_EQ(none.status, 401) << none.body;
  EXPECT_THAT(none.body, HasSubstr(R"("code":"UNAUTHENTICATED")"));
  EXPECT_EQ(Fetch("GET", "/api/v1/boards", "", Bearer("kb_wrong")).status, 401);
  EXPECT_EQ(Fetch("GET", "/api/v1/boards", "", Bearer(viewer)).status, 200);

  HttpResponse denied =
      Fetch("POST", "/api/v1/boards/default/tasks", R"({"title":"x"})", Bearer(viewer));
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_THAT(denied.body, HasSubstr(R"("code":"PERMISSION_DENIED")"));
  EXPECT_THAT(denied.body, HasSubstr("CreateTask"));
  HttpResponse made =
      Fetch("POST", "/api/v1/boards/default/tasks", R"({"title":"x"})", Bearer(producer));
  ASSERT_EQ(made.status, 200) << made.body;
  // The event records the token that made it: the call went through gRPC's auth.
  auto stream = Events("?after_seq=0", Bearer(viewer));
  ASSERT_EQ(stream->status(), 200);
  std::optional<SseEvent> first = stream->Next();
  ASSERT_TRUE(first.has_value());
  EXPECT_THAT(first->data, HasSubstr(R"("principal":"prod")"));

  // Event streams: no token is 401; ?access_token= works there (EventSource
  // cannot send headers), and only there.
  auto refused = Events("?after_seq=0");
  EXPECT_EQ(refused->status(), 401);
  EXPECT_THAT(refused->RestOfBody(), HasSubstr("UNAUTHENTICATED"));
  auto by_query = Events("?after_seq=0&access_token=" + viewer);
  EXPECT_EQ(by_query->status(), 200);
  EXPECT_EQ(Fetch("GET", "/api/v1/boards?access_token=" + viewer).status, 401);
}

// A browser resumes with Last-Event-ID: exactly the events after it, no gap
// and no duplicate, then the live tail.
TEST_P(HttpTest, EventStreamResumesExactlyFromLastEventId) {
  ASSERT_NO_FATAL_FAILURE(Start());
  for (int i = 0; i < 5; ++i) CreateTask(absl::StrCat("t", i));
  {
    auto stream = Events("?after_seq=0");
    ASSERT_EQ(stream->status(), 200);
    EXPECT_EQ(stream->headers().at("content-type"), "text/event-stream");
    EXPECT_EQ(ReadThrough(*stream, 3), Range(1, 3));
  }  // The "browser" goes away after event 3.
  for (int i = 5; i < 8; ++i) CreateTask(absl::StrCat("t", i));
  // Last-Event-ID wins over the URL's own start (the browser re-sends the
  // same URL).
  auto resumed = Events("?from_now=true", {{"Last-Event-ID", "3"}});
  ASSERT_EQ(resumed->status(), 200);
  EXPECT_EQ(ReadThrough(*resumed, 8), Range(4, 8));
  CreateTask("live");
  EXPECT_EQ(ReadThrough(*resumed, 9), Range(9, 9));
}

// Events filtered out still move the position: bookmarks carry an id, so a
// resume skips them; idle streams get keep-alive comments.
TEST_P(HttpTest, BookmarksCarryIdsAndIdleStreamsGetKeepAlives) {
  ASSERT_NO_FATAL_FAILURE(Start());
  v1::CreateBoardRequest board;
  board.set_name("other");
  v1::Board made;
  ASSERT_TRUE(kanban_->CreateBoard(Ctx().get(), board, &made).ok());  // seq 1
  auto stream = Events("?board=other&from_now=true");
  ASSERT_EQ(stream->status(), 200);
  CreateTask("elsewhere");  // seq 2, on "default": filtered out.
  std::optional<SseEvent> event;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  do {
    event = stream->Next(absl::Seconds(30));
    ASSERT_TRUE(event.has_value());
  } while (!(event->event == "bookmark" && event->id == "2") && absl::Now() < give_up);
  EXPECT_EQ(event->id, "2");
  EXPECT_EQ(event->data, R"({"bookmarkSeq":"2"})");
  // Idle: comments every keepalive (200 ms here).
  EXPECT_FALSE(stream->Next(absl::Seconds(1)).has_value());
  EXPECT_GE(stream->comments(), 2);
  EXPECT_FALSE(stream->ended());
}

// A resume point older than the retained history ends the stream with an
// error event naming the oldest seq; resuming from just before it works.
TEST_P(HttpTest, CompactedResumePointEndsWithErrorEventNamingOldestSeq) {
  ASSERT_NO_FATAL_FAILURE(Start([](Server::Options& o) {
    o.store.event_retention_count = 10;
    o.store.sweep_interval = absl::Milliseconds(50);
  }));
  for (int i = 0; i < 100; ++i) CreateTask(absl::StrCat("t", i));
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (OldestSeq() != 91 && absl::Now() < give_up)
    absl::SleepFor(absl::Milliseconds(20));
  ASSERT_EQ(OldestSeq(), 91);

  auto stream = Events("?board=default", {{"Last-Event-ID", "50"}});
  ASSERT_EQ(stream->status(), 200);
  std::optional<SseEvent> error = stream->Next();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->event, "error");
  EXPECT_FALSE(error->id.has_value());
  EXPECT_THAT(error->data, HasSubstr(R"("code":"OUT_OF_RANGE")"));
  EXPECT_THAT(error->data, HasSubstr(R"("oldestSeq":"91")"));
  EXPECT_THAT(error->data, HasSubstr("oldest available is 91"));
  EXPECT_FALSE(stream->Next().has_value());
  EXPECT_TRUE(stream->ended());

  auto from_oldest = Events("", {{"Last-Event-ID", "90"}});
  EXPECT_EQ(ReadThrough(*from_oldest, 100), Range(91, 100));
}

// Shutdown ends open streams (first, before gRPC) instead of hanging.
TEST_P(HttpTest, ShutdownEndsOpenStreams) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto stream = Events("?from_now=true");
  ASSERT_EQ(stream->status(), 200);
  ASSERT_TRUE(stream->Next().has_value());  // The first bookmark (head 0): a comment.
  const absl::Time start = absl::Now();
  server_->Shutdown(absl::Seconds(10));
  while (stream->Next(absl::Seconds(10)).has_value()) {
  }
  EXPECT_TRUE(stream->ended());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace kanban::service
