// Metrics end to end: a real server at 127.0.0.1:0 with metrics on
// 127.0.0.1:0, known traffic through the generated stubs, and /metrics read
// over a plain TCP socket. Each check is on how much a number moved (or on a
// gauge's value), never on timing. A fake clock lets a lease expire without
// waiting; the sweeper thread is off and the test sweeps itself.
#include <arpa/inet.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/server.h"
#include "storage/clock.h"
#include "storage/store.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

using Stub = v1::KanbanService::Stub;

// Only keeps a broken server from hanging the binary.
constexpr auto kCallTimeout = std::chrono::seconds(20);
constexpr absl::Duration kWaitLimit = absl::Seconds(20);

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + kCallTimeout;
}

// GET /metrics over HTTP/1.0 (the server closes the connection after the
// answer); returns the body, or "" with a test failure.
std::string Scrape(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  if (fd < 0) return "";
  struct timeval timeout = {20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ADD_FAILURE() << "connect to metrics port " << port << " failed";
    ::close(fd);
    return "";
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  EXPECT_EQ(::write(fd, request.data(), request.size()),
            static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[8192];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t body = response.find("\r\n\r\n");
  EXPECT_EQ(response.rfind("HTTP/1.", 0), 0u) << response.substr(0, 200);
  EXPECT_NE(response.find(" 200 "), std::string::npos) << response.substr(0, 200);
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// Samples by `name{label="value",...}` with labels sorted by name, so that
// lookups do not depend on the order the serializer writes them in.
using Samples = std::map<std::string, double>;

std::string Key(absl::string_view name, std::vector<std::string> labels) {
  std::sort(labels.begin(), labels.end());
  return labels.empty() ? std::string(name)
                        : absl::StrCat(name, "{", absl::StrJoin(labels, ","), "}");
}

Samples Parse(const std::string& text) {
  Samples samples;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line.front() == '#') continue;
    size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    absl::string_view series = line.substr(0, space);
    double value = 0;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(space + 1), &value)) << line;
    std::vector<std::string> labels;
    absl::string_view name = series;
    if (size_t brace = series.find('{'); brace != absl::string_view::npos) {
      name = series.substr(0, brace);
      absl::string_view inside = series.substr(brace + 1);
      absl::ConsumeSuffix(&inside, "}");
      // Label values here hold no commas or escaped quotes.
      for (absl::string_view label : absl::StrSplit(inside, ',', absl::SkipEmpty())) {
        labels.emplace_back(label);
      }
    }
    samples[Key(name, labels)] = value;
  }
  return samples;
}

// A sample's value; 0 when absent (a counter not yet incremented).
double Get(const Samples& s, absl::string_view name,
           std::vector<std::string> labels = {}) {
  auto it = s.find(Key(name, std::move(labels)));
  return it == s.end() ? 0.0 : it->second;
}

bool Has(const Samples& s, absl::string_view name, std::vector<std::string> labels = {}) {
  return s.count(Key(name, std::move(labels))) > 0;
}

class MetricsTest : public testing::BackendTest {
 protected:
  void SetUp() override {
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "127.0.0.1:0";
    options.task_count_interval = absl::ZeroDuration();  // Every scrape reads.
    options.store.path = Database(dir_.File("kanban.db"));
    if (options.store.path.empty()) return;
    options.store.clock = &clock_;
    options.store.sweep_interval = absl::ZeroDuration();  // The test sweeps.
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->metrics_port(), 0);
    ASSERT_NE(server_->metrics_port(), server_->port());
    stub_ = v1::KanbanService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    stub_.reset();
    if (server_) server_->Shutdown();
  }

  Samples ScrapeNow() { return Parse(Scrape(server_->metrics_port())); }

  // Scrapes until `done` holds (values read at scrape time may trail the
  // client by a moment); fails the test after kWaitLimit.
  template <typename Done>
  Samples ScrapeUntil(Done done) {
    const absl::Time limit = absl::Now() + kWaitLimit;
    Samples s = ScrapeNow();
    while (!done(s) && absl::Now() < limit) {
      absl::SleepFor(absl::Milliseconds(20));  // Poll interval, not a sync.
      s = ScrapeNow();
    }
    EXPECT_TRUE(done(s)) << "condition not reached within " << kWaitLimit;
    return s;
  }

  grpc::Status CreateTask(const std::string& board, const std::string& title) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::CreateTaskRequest request;
    request.set_board(board);
    request.set_title(title);
    v1::Task response;
    return stub_->CreateTask(&ctx, request, &response);
  }

  storage::FakeClock clock_{absl::FromUnixSeconds(1800000000)};
  kanban::testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Stub> stub_;
};

constexpr char kService[] = "service=\"kanban.v1.KanbanService\"";

std::string Method(const char* m) { return absl::StrCat("method=\"", m, "\""); }
std::string Code(const char* c) { return absl::StrCat("code=\"", c, "\""); }

TEST_P(MetricsTest, CountsKnownTraffic) {
  const Samples before = ScrapeNow();
  const int64_t mutations_before = server_->store().writer_mutations();
  const int64_t batches_before = server_->store().writer_batches();
  // Fixed per server: the durability actually in force, as a labelled gauge.
  const storage::DurabilityInfo& d = server_->store().durability();
  EXPECT_EQ(Get(before, "kanban_durability_info",
                {absl::StrCat("synchronous=\"", d.synchronous, "\""),
                 absl::StrCat("wal_autocheckpoint=\"", d.wal_autocheckpoint, "\"")}),
            1.0);
  if (OnPostgres()) {
    // The files are the server's: no file-size gauge.
    EXPECT_FALSE(Has(before, "kanban_database_bytes", {"file=\"db\""}));
  } else {
    EXPECT_GT(Get(before, "kanban_database_bytes", {"file=\"db\""}), 0.0);
    EXPECT_TRUE(Has(before, "kanban_database_bytes", {"file=\"wal\""}));
  }
  EXPECT_EQ(Get(before, "kanban_leases_held"), 0.0);

  // 3 tasks created, 1 refused, 1 claimed.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(CreateTask("", absl::StrCat("task ", i)).ok());
  }
  EXPECT_EQ(CreateTask("Not A Board!", "bad").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::ClaimTaskRequest request;
    request.set_worker_id("w1");
    request.mutable_lease_duration()->set_seconds(5);
    v1::ClaimTaskResponse response;
    ASSERT_TRUE(stub_->ClaimTask(&ctx, request, &response).ok());
    ASSERT_TRUE(response.has_lease());
  }

  Samples after = ScrapeNow();
  auto delta = [&](absl::string_view name, std::vector<std::string> labels) {
    return Get(after, name, labels) - Get(before, name, labels);
  };
  EXPECT_EQ(delta("kanban_rpcs_total", {kService, Method("CreateTask"), Code("OK")}), 3);
  EXPECT_EQ(delta("kanban_rpcs_total",
                  {kService, Method("CreateTask"), Code("INVALID_ARGUMENT")}),
            1);
  EXPECT_EQ(delta("kanban_rpcs_total", {kService, Method("ClaimTask"), Code("OK")}), 1);
  EXPECT_EQ(delta("kanban_rpc_duration_seconds_count", {kService, Method("CreateTask")}),
            4);
  EXPECT_EQ(delta("kanban_rpc_duration_seconds_count", {kService, Method("ClaimTask")}),
            1);
  EXPECT_EQ(delta("kanban_rpc_duration_seconds_bucket",
                  {kService, Method("CreateTask"), "le=\"+Inf\""}),
            4);

  // The writer's histograms account for exactly what the writer committed.
  const int64_t mutations = server_->store().writer_mutations() - mutations_before;
  const int64_t batches = server_->store().writer_batches() - batches_before;
  EXPECT_GE(mutations, 4);  // 3 creates and a claim, at least.
  EXPECT_EQ(delta("kanban_writer_batch_size_sum", {}), mutations);
  EXPECT_EQ(delta("kanban_writer_batch_size_count", {}), batches);
  EXPECT_EQ(delta("kanban_writer_commit_duration_seconds_count", {}), batches);
  // Every batch of this traffic wrote events, and held the counter for them.
  EXPECT_EQ(delta("kanban_writer_seq_hold_seconds_count", {}), batches);
  EXPECT_GT(delta("kanban_writer_seq_hold_seconds_sum", {}), 0.0);
  EXPECT_EQ(Get(after, "kanban_writer_queue_depth"), 0);

  // Gauges read from the database.
  EXPECT_EQ(Get(after, "kanban_tasks", {"board=\"default\"", "status=\"READY\""}), 2);
  EXPECT_EQ(Get(after, "kanban_tasks", {"board=\"default\"", "status=\"RUNNING\""}), 1);
  EXPECT_EQ(Get(after, "kanban_leases_held"), 1);

  // The lease expires (fake time) and a sweep takes it back.
  clock_.Advance(absl::Seconds(10));
  absl::StatusOr<storage::SweepResult> swept = storage::Await<storage::SweepResult>(
      [&](auto done) { server_->store().Sweep(done); });
  ASSERT_TRUE(swept.ok()) << swept.status();
  ASSERT_EQ(swept->reclaimed, 1);
  Samples swept_samples = ScrapeNow();
  EXPECT_EQ(Get(swept_samples, "kanban_leases_reclaimed_total") -
                Get(before, "kanban_leases_reclaimed_total"),
            1);
  EXPECT_EQ(Get(swept_samples, "kanban_leases_held"), 0);
  EXPECT_EQ(
      Get(swept_samples, "kanban_tasks", {"board=\"default\"", "status=\"RUNNING\""}), 0);
}

TEST_P(MetricsTest, CountsWatchStreamsAndDeliveredEvents) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(CreateTask("", absl::StrCat("t", i)).ok());
  const Samples before = ScrapeNow();
  EXPECT_EQ(Get(before, "kanban_watch_streams"), 0);
  const double delivered_before = Get(before, "kanban_watch_events_delivered_total");

  int received = 0;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::WatchEventsRequest request;
    request.set_after_seq(0);
    std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader =
        stub_->WatchEvents(&ctx, request);
    v1::WatchEventsResponse response;
    while (received < 3 && reader->Read(&response)) received += response.events_size();
    ASSERT_EQ(received, 3);
    ScrapeUntil([&](const Samples& s) {
      return Get(s, "kanban_watch_streams") == 1 &&
             Get(s, "kanban_watch_events_delivered_total") - delivered_before == received;
    });
    ctx.TryCancel();
    while (reader->Read(&response)) {
    }
    (void)reader->Finish();
  }
  Samples after =
      ScrapeUntil([](const Samples& s) { return Get(s, "kanban_watch_streams") == 0; });
  EXPECT_EQ(Get(after, "kanban_watch_events_delivered_total") - delivered_before,
            received);
  EXPECT_EQ(Get(after, "kanban_rpcs_total",
                {kService, Method("WatchEvents"), Code("CANCELLED")}),
            1);
}

TEST(MetricsServeTest, BusyMetricsPortIsAnErrorNamingTheFlag) {
  kanban::testing::TempDir dir;
  Server::Options first_options;
  first_options.listen = "127.0.0.1:0";
  first_options.metrics_listen = "127.0.0.1:0";
  first_options.store.path = dir.File("a.db");
  absl::StatusOr<std::unique_ptr<Server>> first = Server::Start(first_options);
  ASSERT_TRUE(first.ok()) << first.status();
  Server::Options second_options;
  second_options.listen = "127.0.0.1:0";
  second_options.metrics_listen = absl::StrCat("127.0.0.1:", (*first)->metrics_port());
  second_options.store.path = dir.File("b.db");
  absl::StatusOr<std::unique_ptr<Server>> second = Server::Start(second_options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("metrics_listen"), std::string::npos)
      << second.status();
}

INSTANTIATE_TEST_SUITE_P(Backends, MetricsTest, testing::AllBackends(),
                         testing::BackendName);

}  // namespace
}  // namespace kanban::service
