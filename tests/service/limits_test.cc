// kanband's limits end to end: a real server on 127.0.0.1:0 over a
// real SQLite file, called through the generated stubs. Each limit refuses
// the value just over it with its own code and a message naming the flag, and
// accepts the value at it.
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/server.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

using ::grpc::StatusCode;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Stub = v1::KanbanService::Stub;

// Long enough never to fire on a loaded 2-core machine; it only keeps a
// broken server from hanging the test binary.
constexpr auto kCallTimeout = std::chrono::seconds(60);

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + kCallTimeout;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat("code ", static_cast<int>(s.error_code()), ": ", s.error_message());
}

class LimitsTest : public testing::BackendTest {
 protected:
  // Starts the server with `configure` applied to default options.
  void Start(std::function<void(Server::Options&)> configure = nullptr) {
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.store.path = Database(dir_.File("kanban.db"));
    if (options.store.path.empty()) return;
    if (configure) configure(options);
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::KanbanService::NewStub(channel_);
  }

  void TearDown() override {
    stub_.reset();
    channel_.reset();
    if (server_) server_->Shutdown();
  }

  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                 Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    return (stub_.get()->*method)(&ctx, request, response);
  }

  v1::Task CreateTask(const std::string& title) {
    v1::CreateTaskRequest request;
    request.set_title(title);
    v1::Task task;
    grpc::Status s = Call(&Stub::CreateTask, request, &task);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return task;
  }

  grpc::Status ListTasks(int page_size, v1::ListTasksResponse* response) {
    v1::ListTasksRequest request;
    request.set_page_size(page_size);
    return Call(&Stub::ListTasks, request, response);
  }

  grpc::Status Claim(absl::Duration wait, v1::ClaimTaskResponse* response) {
    v1::ClaimTaskRequest request;
    request.set_worker_id("w1");
    request.mutable_wait()->set_seconds(absl::ToInt64Seconds(wait));
    request.mutable_wait()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(wait - absl::Seconds(absl::ToInt64Seconds(wait)))));
    return Call(&Stub::ClaimTask, request, response);
  }

  testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
};

TEST_P(LimitsTest, DefaultsKeepTheEarlierLimits) {
  Start();
  v1::ListTasksResponse page;
  grpc::Status s = ListTasks(1001, &page);
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(),
              StartsWith("page_size: at most 1000 (--max_page_size), got 1001"));
  s = ListTasks(1000, &page);
  EXPECT_TRUE(s.ok()) << Describe(s);

  v1::ClaimTaskResponse claimed;
  s = Claim(absl::Seconds(30) + absl::Nanoseconds(1), &claimed);
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), StartsWith("wait: at most 30s (--max_claim_wait)"));
  // At the limit: accepted (a ready task answers at once).
  const v1::Task task = CreateTask("ready");
  s = Claim(absl::Seconds(30), &claimed);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(claimed.task().id(), task.id());
}

TEST_P(LimitsTest, PageSizeAboveTheLimitIsRefused) {
  Start([](Server::Options& o) { o.store.max_page_size = 2; });
  for (int i = 0; i < 3; ++i) CreateTask(absl::StrCat("t", i));
  v1::ListTasksResponse page;
  grpc::Status s = ListTasks(3, &page);
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), StartsWith("page_size: at most 2 (--max_page_size)"));

  s = ListTasks(2, &page);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(page.tasks_size(), 2);
  EXPECT_FALSE(page.next_page_token().empty());
  // The default page (100) shrinks to the limit rather than being refused.
  page.Clear();
  s = ListTasks(0, &page);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(page.tasks_size(), 2);
  EXPECT_FALSE(page.next_page_token().empty());
}

TEST_P(LimitsTest, ClaimWaitAboveTheLimitIsRefused) {
  Start([](Server::Options& o) { o.max_claim_wait = absl::Seconds(1); });
  v1::ClaimTaskResponse claimed;
  grpc::Status s = Claim(absl::Milliseconds(1001), &claimed);
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(),
              StartsWith("wait: at most 1s (--max_claim_wait), got 1.001s"));
  // At the limit: accepted; nothing is ready, so it answers empty.
  s = Claim(absl::Seconds(1), &claimed);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_FALSE(claimed.has_task());
}

// One WatchEvents stream; Open returns once the first response (which
// always carries a bookmark) arrived, or the stream ended.
struct Watch {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader;
  v1::WatchEventsResponse first;
  bool open = false;

  void Open(Stub* stub) {
    ctx.set_deadline(Deadline());
    v1::WatchEventsRequest request;
    request.set_from_now(true);
    reader = stub->WatchEvents(&ctx, request);
    open = reader->Read(&first);
  }
  grpc::Status Close() {
    ctx.TryCancel();
    v1::WatchEventsResponse ignored;
    while (reader->Read(&ignored)) {
    }
    return reader->Finish();
  }
};

TEST_P(LimitsTest, WatchStreamsAboveTheLimitAreRefused) {
  Start([](Server::Options& o) { o.max_watch_streams = 2; });
  Watch first, second, third;
  first.Open(stub_.get());
  second.Open(stub_.get());  // The value at the limit: accepted.
  ASSERT_TRUE(first.open);
  ASSERT_TRUE(second.open);
  third.Open(stub_.get());
  EXPECT_FALSE(third.open);
  grpc::Status s = third.reader->Finish();
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED) << Describe(s);
  EXPECT_EQ(s.error_message(), "watch streams: 2 open (--max_watch_streams)");

  // A closed stream frees its place. The server forgets it when gRPC is done
  // with the call, a moment after the client sees the end: retry until then.
  first.Close();
  bool reopened = false;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!reopened && absl::Now() < give_up) {
    Watch again;
    again.Open(stub_.get());
    reopened = again.open;
    if (reopened) {
      again.Close();
    } else {
      // Finish without cancelling first, or the client may report CANCELLED.
      grpc::Status end = again.reader->Finish();
      ASSERT_EQ(end.error_code(), StatusCode::RESOURCE_EXHAUSTED) << Describe(end);
    }
  }
  EXPECT_TRUE(reopened);
  second.Close();
}

TEST_P(LimitsTest, RequestsAboveMaxRequestBytesAreRefused) {
  constexpr int kLimit = 16 * 1024;
  Start([](Server::Options& o) { o.max_request_bytes = kLimit; });
  // A CreateTask request of exactly kLimit bytes (the body is within the
  // 64 KiB rule, so only the message limit can refuse it).
  v1::CreateTaskRequest request;
  request.set_title("big");
  for (int n = kLimit; n > 0 && static_cast<int>(request.ByteSizeLong()) != kLimit; --n) {
    request.set_body(std::string(n, 'x'));
    if (static_cast<int>(request.ByteSizeLong()) <= kLimit) break;
  }
  ASSERT_EQ(static_cast<int>(request.ByteSizeLong()), kLimit);
  v1::Task task;
  grpc::Status s = Call(&Stub::CreateTask, request, &task);
  EXPECT_TRUE(s.ok()) << Describe(s);

  request.mutable_body()->push_back('x');
  s = Call(&Stub::CreateTask, request, &task);
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED) << Describe(s);
  // gRPC's own message names the sizes, not the flag (see the README).
  EXPECT_THAT(s.error_message(), HasSubstr(std::to_string(kLimit))) << Describe(s);
  RecordProperty("grpc_message", s.error_message());
}

TEST_P(LimitsTest, WritesBeyondTheWriterQueueGetUnavailableWithPushback) {
  // SQLite only: it holds the writer thread with a Backup step, a SQLite tool
  if (OnPostgres())
    GTEST_SKIP() << "it holds the writer thread with a Backup step, a SQLite tool";
  Start([](Server::Options& o) { o.store.max_writer_queue = 2; });
  // Hold the writer thread: a backup step's progress callback runs on it.
  absl::Notification stepping, release;
  absl::Notification backed_up;
  storage::Store::BackupRequest backup;
  backup.path = dir_.File("backup.db");
  server_->store().Backup(
      backup,
      [&](const storage::BackupProgress&) {
        stepping.Notify();
        release.WaitForNotification();
        return true;
      },
      [&](absl::StatusOr<storage::BackupResult> result) {
        EXPECT_TRUE(result.ok()) << result.status();
        backed_up.Notify();
      });
  stepping.WaitForNotification();

  // Two writes queue up behind it (the value at the limit).
  struct Pending {
    grpc::ClientContext ctx;
    v1::CreateTaskRequest request;
    v1::Task task;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Pending>> pending;
  absl::BlockingCounter answered(2);
  for (int i = 0; i < 2; ++i) {
    auto p = std::make_unique<Pending>();
    p->ctx.set_deadline(Deadline());
    p->request.set_title(absl::StrCat("queued ", i));
    Pending* raw = p.get();
    stub_->async()->CreateTask(&raw->ctx, &raw->request, &raw->task,
                               [raw, &answered](grpc::Status s) {
                                 raw->status = std::move(s);
                                 answered.DecrementCount();
                               });
    pending.push_back(std::move(p));
  }
  // They travel to the server and into the queue; wait until both are there.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (server_->store().writer_queue_depth() < 2 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));  // Polls a condition; no event to wait on.
  }
  ASSERT_EQ(server_->store().writer_queue_depth(), 2u);

  // One more: refused at once, with a hint for gRPC's retry logic.
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  v1::CreateTaskRequest request;
  request.set_title("refused");
  v1::Task task;
  grpc::Status s = stub_->CreateTask(&ctx, request, &task);
  EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << Describe(s);
  EXPECT_EQ(s.error_message(),
            "writer queue full (2 queued, --max_writer_queue); retry after a short "
            "backoff");
  EXPECT_TRUE(s.error_details().empty());  // The side channel never leaks.
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto pushback = trailers.find("grpc-retry-pushback-ms");
  ASSERT_NE(pushback, trailers.end());
  EXPECT_EQ(std::string(pushback->second.data(), pushback->second.size()), "100");

  release.Notify();
  answered.Wait();
  for (const auto& p : pending) EXPECT_TRUE(p->status.ok()) << Describe(p->status);
  backed_up.WaitForNotification();
  // Drained: writes are accepted again, without the trailer.
  grpc::ClientContext after;
  after.set_deadline(Deadline());
  s = stub_->CreateTask(&after, request, &task);
  EXPECT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(after.GetServerTrailingMetadata().count("grpc-retry-pushback-ms"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, LimitsTest, testing::AllBackends(),
                         testing::BackendName);

}  // namespace
}  // namespace kanban::service
