// The HTTP door under hostile clients (issue 19): a real server with
// --http_listen and --metrics_listen on 127.0.0.1:0, raw sockets that never
// finish their requests or sit idle, and a second client on another
// loopback address (127.0.0.2, so that the per-address cap on 127.0.0.1
// does not apply to it). What must hold: the second client is answered at
// once and its event stream gets events made through gRPC; the held
// connections are closed by the server within their timeout; refusals are
// counted in /metrics.
//
// On SQLite only: the subject is the door's sockets, which never reach the
// backend (the door's behaviour on each backend is tests/service/http_test.cc).
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/server.h"
#include "tests/support/http_client.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

using ::kanban::testing::ConnectLoopback;
using ::kanban::testing::HttpFetch;
using ::kanban::testing::HttpResponse;
using ::kanban::testing::SseEvent;
using ::kanban::testing::SseStream;
using ::testing::HasSubstr;

constexpr char kOther[] = "127.0.0.2";  // The well-behaved client.

// Room for a thousand client sockets and the server's own, in one process.
void RaiseFileLimit(rlim_t wanted) {
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_cur >= wanted) return;
  ASSERT_GE(limit.rlim_max, wanted) << "ulimit -Hn is too low for this test";
  limit.rlim_cur = wanted;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
}

void SendAll(int fd, const std::string& data) {
  // Errors are expected: the server may have closed the connection already.
  (void)send(fd, data.data(), data.size(), MSG_NOSIGNAL);
}

// Whether the server closed `fd` (end of stream or reset) by `deadline`;
// any bytes it sends first (an answer) are read and dropped.
bool ClosedBy(int fd, absl::Time deadline) {
  for (;;) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    pollfd p{fd, POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(std::max<int64_t>(ms, 0)));
    if (n <= 0) return false;
    char buffer[4096];
    const ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got <= 0) return true;
  }
}

class HttpHostileTest : public ::testing::Test {
 protected:
  void Start(std::function<void(Server::Options&)> configure) {
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.http_listen = "127.0.0.1:0";
    options.metrics_listen = "127.0.0.1:0";
    options.store.path = dir_.File("kanban.db");
    configure(options);
    auto server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    kanban_ = v1::KanbanService::NewStub(channel_);
  }

  void TearDown() override {
    for (int fd : held_) close(fd);
    kanban_.reset();
    channel_.reset();
    if (server_) server_->Shutdown(absl::ZeroDuration());
  }

  // A raw connection from 127.0.0.1, kept until the test ends.
  int Hold() {
    absl::StatusOr<int> fd = ConnectLoopback(server_->http_port());
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return -1;
    held_.push_back(*fd);
    return *fd;
  }

  void CreateTask(const std::string& title) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::CreateTaskRequest request;
    request.set_title(title);
    v1::Task task;
    grpc::Status s = kanban_->CreateTask(&ctx, request, &task);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  int TaskCount() {
    grpc::ClientContext ctx;
    v1::ListTasksRequest request;
    request.set_board("default");
    v1::ListTasksResponse response;
    grpc::Status s = kanban_->ListTasks(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.tasks_size();
  }

  // kanban_http_connections_refused_total{reason="<reason>"} from /metrics.
  double Refused(const std::string& reason) {
    auto metrics = HttpFetch(server_->metrics_port(), "GET", "/metrics");
    EXPECT_TRUE(metrics.ok()) << metrics.status();
    if (!metrics.ok()) return -1;
    const std::string key =
        absl::StrCat("kanban_http_connections_refused_total{reason=\"", reason, "\"} ");
    for (absl::string_view line : absl::StrSplit(metrics->body, '\n')) {
      double value = 0;
      if (absl::ConsumePrefix(&line, key) && absl::SimpleAtod(line, &value)) return value;
    }
    ADD_FAILURE() << "no " << key << " in /metrics";
    return -1;
  }

  // The other client: a well-formed request on a new connection, answered
  // within `bound` (generous: a bound on behaviour, not a speed figure).
  void ExpectOtherClientAnswered(absl::Duration bound) {
    const absl::Time start = absl::Now();
    auto boards =
        HttpFetch(server_->http_port(), "GET", "/api/v1/boards", {}, "", bound, kOther);
    ASSERT_TRUE(boards.ok()) << boards.status();
    EXPECT_EQ(boards->status, 200) << boards->body;
    EXPECT_LT(absl::Now() - start, bound);
  }

  // Reads `stream` until an event whose data names `title`.
  static bool Receives(SseStream& stream, const std::string& title) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (absl::Now() < give_up) {
      std::optional<SseEvent> event = stream.Next(give_up - absl::Now());
      if (!event.has_value()) return false;
      if (event->event.empty() && absl::StrContains(event->data, title)) return true;
    }
    return false;
  }

  kanban::testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KanbanService::Stub> kanban_;
  std::vector<int> held_;
};

// A thousand connections from one address that send the first lines of a
// request and then nothing (slowloris): up to the per-address cap they are
// held, beyond it closed at once; all are gone within the request timeout,
// and meanwhile another client is served, page and event stream alike.
TEST_F(HttpHostileTest, ThousandHalfOpenConnectionsFromOnePeerStarveNobody) {
  ASSERT_NO_FATAL_FAILURE(RaiseFileLimit(4096));
  constexpr int kHalfOpen = 1000;
  constexpr int kPerPeer = 600;
  const absl::Duration request_timeout = absl::Seconds(3);
  ASSERT_NO_FATAL_FAILURE(Start([&](Server::Options& o) {
    o.http_request_timeout = request_timeout;
    o.http_idle_timeout = absl::Seconds(30);  // Only the request timeout cuts.
    o.http_max_connections = 2000;
    o.http_max_connections_per_peer = kPerPeer;
  }));
  const absl::Time opened = absl::Now();
  for (int i = 0; i < kHalfOpen; ++i) {
    const int fd = Hold();
    ASSERT_GE(fd, 0);
    SendAll(fd, "GET /api/v1/boards HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
  }
  ASSERT_NO_FATAL_FAILURE(ExpectOtherClientAnswered(absl::Seconds(1)));
  auto stream = SseStream::Open(server_->http_port(), "/api/v1/events?from_now=true", {},
                                absl::Seconds(5), kOther);
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_EQ((*stream)->status(), 200);
  ASSERT_NO_FATAL_FAILURE(CreateTask("made while under siege"));
  EXPECT_TRUE(Receives(**stream, "made while under siege"));

  // Every held connection is closed by the server: at accept (over the
  // cap) or once the request timeout passed since it opened.
  const absl::Time deadline = opened + request_timeout + absl::Seconds(3);
  int closed = 0;
  for (int fd : held_) closed += ClosedBy(fd, deadline) ? 1 : 0;
  EXPECT_EQ(closed, kHalfOpen);
  // Each was counted once, as one or the other.
  const double per_peer = Refused("per_peer");
  const double timed_out = Refused("request_timeout");
  EXPECT_GE(per_peer, 1);
  EXPECT_GE(timed_out, 1);
  EXPECT_EQ(per_peer + timed_out, kHalfOpen);
  EXPECT_EQ(Refused("total"), 0);
  // The other client's stream is still live.
  ASSERT_NO_FATAL_FAILURE(CreateTask("after the siege"));
  EXPECT_TRUE(Receives(**stream, "after the siege"));
}

// A hundred idle keep-alive connections and forty open event streams from
// one address: another client is still served and gets events; the idle
// ones are closed at the idle timeout, the streams (idle longer than that,
// but waiting for events) stay and keep receiving; connections beyond the
// per-address cap are refused at once and counted.
TEST_F(HttpHostileTest, IdleKeepAlivesAndOpenStreamsStarveNobody) {
  ASSERT_NO_FATAL_FAILURE(RaiseFileLimit(4096));
  constexpr int kIdle = 100;
  constexpr int kStreams = 40;
  constexpr int kPerPeer = kIdle + kStreams + 5;
  const absl::Duration idle_timeout = absl::Seconds(2);
  ASSERT_NO_FATAL_FAILURE(Start([&](Server::Options& o) {
    o.http_idle_timeout = idle_timeout;
    o.http_request_timeout = absl::Seconds(30);  // Only the idle timeout cuts.
    o.http_keepalive = absl::Seconds(30);        // Streams stay quiet past it.
    o.http_max_event_streams = kStreams + 1;
    o.http_max_connections_per_peer = kPerPeer;
  }));
  // Keep-alive: one answered request each, then silence.
  const std::string request = absl::StrCat(
      "GET /api/v1/boards HTTP/1.1\r\nHost: 127.0.0.1:", server_->http_port(),
      "\r\n\r\n");
  std::vector<int> idle;
  for (int i = 0; i < kIdle; ++i) {
    const int fd = Hold();
    ASSERT_GE(fd, 0);
    SendAll(fd, request);
    idle.push_back(fd);
  }
  for (int fd : idle) {
    std::string got;
    while (!absl::StrContains(got, "\r\n\r\n{")) {  // The head and the body's start.
      pollfd p{fd, POLLIN, 0};
      ASSERT_EQ(poll(&p, 1, 10000), 1) << "no answer on a keep-alive connection";
      char buffer[4096];
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      ASSERT_GT(n, 0) << "closed instead of kept alive: " << got;
      got.append(buffer, static_cast<size_t>(n));
    }
    EXPECT_THAT(got, HasSubstr("HTTP/1.1 200"));
  }
  const absl::Time idle_since = absl::Now();
  std::vector<std::unique_ptr<SseStream>> streams;
  for (int i = 0; i < kStreams; ++i) {
    auto stream = SseStream::Open(server_->http_port(), "/api/v1/events?from_now=true");
    ASSERT_TRUE(stream.ok()) << stream.status();
    ASSERT_EQ((*stream)->status(), 200);
    streams.push_back(*std::move(stream));
  }
  // Past the cap: 5 more are held (silent), the other 5 closed at once.
  std::vector<int> extra;
  for (int i = 0; i < 10; ++i) extra.push_back(Hold());
  int refused_at_once = 0;
  const absl::Time look_until = absl::Now() + absl::Milliseconds(500);
  for (int fd : extra) refused_at_once += ClosedBy(fd, look_until) ? 1 : 0;
  EXPECT_EQ(refused_at_once, 5);
  EXPECT_EQ(Refused("per_peer"), 5);

  ASSERT_NO_FATAL_FAILURE(ExpectOtherClientAnswered(absl::Seconds(1)));
  auto fresh = SseStream::Open(server_->http_port(), "/api/v1/events?from_now=true", {},
                               absl::Seconds(5), kOther);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_EQ((*fresh)->status(), 200);
  ASSERT_NO_FATAL_FAILURE(CreateTask("first"));
  EXPECT_TRUE(Receives(**fresh, "first"));
  for (auto& stream : streams) EXPECT_TRUE(Receives(*stream, "first"));

  // The idle keep-alive connections are closed within the idle timeout
  // (libmicrohttpd counts it in whole seconds: a second of margin).
  int closed = 0;
  for (int fd : idle) {
    closed += ClosedBy(fd, idle_since + idle_timeout + absl::Seconds(2)) ? 1 : 0;
  }
  EXPECT_EQ(closed, kIdle);
  // The streams, quiet for longer than the idle timeout, are not idle.
  ASSERT_NO_FATAL_FAILURE(CreateTask("second"));
  for (auto& stream : streams) EXPECT_TRUE(Receives(*stream, "second"));
  EXPECT_TRUE(Receives(**fresh, "second"));
}

// A body sent a byte at a time is cut at the request timeout, and the
// request it would have made does nothing.
TEST_F(HttpHostileTest, SlowBodyIsCutAtTheRequestTimeoutAndCreatesNothing) {
  const absl::Duration request_timeout = absl::Seconds(2);
  ASSERT_NO_FATAL_FAILURE(Start([&](Server::Options& o) {
    o.http_request_timeout = request_timeout;
    o.http_idle_timeout = absl::Seconds(30);
  }));
  const std::string body = R"({"title":"dribbled"})";
  const absl::Time start = absl::Now();
  const int fd = Hold();
  ASSERT_GE(fd, 0);
  SendAll(fd, absl::StrCat("POST /api/v1/boards/default/tasks HTTP/1.1\r\n"
                           "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           "Content-Length: ",
                           body.size(), "\r\n\r\n"));
  bool closed = false;
  for (size_t i = 0; i + 1 < body.size() && !closed; ++i) {  // All but the last byte.
    SendAll(fd, body.substr(i, 1));
    closed = ClosedBy(fd, absl::Now() + absl::Milliseconds(300));
  }
  ASSERT_TRUE(closed) << "the server waited for the whole dribbled body";
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, request_timeout - absl::Milliseconds(100));
  EXPECT_LT(took, request_timeout + absl::Seconds(2));
  // The close may reach this test before the server's count does.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (Refused("request_timeout") < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Refused("request_timeout"), 1);
  EXPECT_EQ(TaskCount(), 0);
}

// Past --http_max_connections a new connection is closed at once, from
// any address, and counted.
TEST_F(HttpHostileTest, ConnectionsPastTheTotalCapAreRefusedAtOnce) {
  ASSERT_NO_FATAL_FAILURE(Start([](Server::Options& o) {
    o.http_max_connections = 5;
    o.http_request_timeout = absl::Seconds(30);
  }));
  for (int i = 0; i < 5; ++i) ASSERT_GE(Hold(), 0);
  const absl::Time look_until = absl::Now() + absl::Milliseconds(200);
  for (int fd : held_) EXPECT_FALSE(ClosedBy(fd, look_until));
  absl::StatusOr<int> over = ConnectLoopback(server_->http_port(), kOther);
  ASSERT_TRUE(over.ok()) << over.status();
  held_.push_back(*over);
  EXPECT_TRUE(ClosedBy(*over, absl::Now() + absl::Seconds(1)));
  EXPECT_EQ(Refused("total"), 1);
  // Room again once one closes.
  close(held_.front());
  held_.erase(held_.begin());
  absl::SleepFor(absl::Milliseconds(200));
  ExpectOtherClientAnswered(absl::Seconds(5));
}

// /metrics is served the same way: connections that never finish their
// headers (prometheus-cpp's exposer had two threads for them) leave
// another scraper served; beyond 8 from one address they are closed.
TEST_F(HttpHostileTest, MetricsServeThroughHalfOpenConnections) {
  ASSERT_NO_FATAL_FAILURE(Start([](Server::Options&) {}));
  std::vector<int> slow;
  for (int i = 0; i < 50; ++i) {
    absl::StatusOr<int> fd = ConnectLoopback(server_->metrics_port());
    ASSERT_TRUE(fd.ok()) << fd.status();
    held_.push_back(*fd);
    slow.push_back(*fd);
    SendAll(*fd, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  }
  const absl::Time look_until = absl::Now() + absl::Milliseconds(500);
  int closed = 0;
  for (int fd : slow) closed += ClosedBy(fd, look_until) ? 1 : 0;
  EXPECT_EQ(closed, 50 - 8);
  const absl::Time start = absl::Now();
  auto scrape = HttpFetch(server_->metrics_port(), "GET", "/metrics", {}, "",
                          absl::Seconds(1), kOther);
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_EQ(scrape->status, 200);
  EXPECT_THAT(scrape->body, HasSubstr("kanban_http_connections_refused_total"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

}  // namespace
}  // namespace kanban::service
