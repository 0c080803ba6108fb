// kanband's logs and metrics endpoint as an operator sees them: a real
// kanband with --log_format=json --log_rpcs, calls through the generated
// stubs, then every stderr line parsed as JSON; and --metrics_listen with
// --metrics_port_file scraped over a plain TCP socket.
#include <arpa/inet.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::Kanband;
using ::kanban::testing::ReadFileOrEmpty;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;

constexpr char kSecret[] = "s3cr3t-t0ken-do-not-log";

// A strict parser for one JSON value, enough to check that a log line is
// JSON: objects, arrays, strings (with escapes), numbers, true/false/null.
// Top-level object members that are strings or numbers land in `fields`.
class JsonLine {
 public:
  explicit JsonLine(absl::string_view text) : s_(text) {}

  bool ParseObject(std::map<std::string, std::string>* fields) {
    SkipSpace();
    if (!Object(fields)) return false;
    SkipSpace();
    return i_ == s_.size();
  }

 private:
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool Eat(char c) {
    SkipSpace();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool Object(std::map<std::string, std::string>* fields) {
    if (!Eat('{')) return false;
    if (Eat('}')) return true;
    do {
      std::string key, value;
      SkipSpace();
      if (!String(&key) || !Eat(':') || !Value(&value)) return false;
      if (fields != nullptr) (*fields)[key] = value;
    } while (Eat(','));
    return Eat('}');
  }
  bool Value(std::string* out) {
    SkipSpace();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"') return String(out);
    if (c == '{') return Object(nullptr);
    if (c == '[') {
      ++i_;
      if (Eat(']')) return true;
      do {
        std::string ignored;
        if (!Value(&ignored)) return false;
      } while (Eat(','));
      return Eat(']');
    }
    for (absl::string_view literal : {"true", "false", "null"}) {
      if (absl::StartsWith(s_.substr(i_), literal)) {
        i_ += literal.size();
        *out = std::string(literal);
        return true;
      }
    }
    size_t start = i_;
    while (i_ < s_.size() && absl::StrContains("+-0123456789.eE", s_[i_])) ++i_;
    double number;
    *out = std::string(s_.substr(start, i_ - start));
    return i_ > start && absl::SimpleAtod(*out, &number);
  }
  bool String(std::string* out) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    out->clear();
    while (i_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;  // Raw control characters are not JSON.
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      if (e == 'u') {
        if (i_ + 4 > s_.size()) return false;
        for (int k = 0; k < 4; ++k) {
          if (!absl::ascii_isxdigit(static_cast<unsigned char>(s_[i_ + k]))) return false;
        }
        out->push_back('?');
        i_ += 4;
      } else if (absl::StrContains("\"\\/bfnrt", e)) {
        out->push_back(e);
      } else {
        return false;
      }
    }
    return false;
  }

  absl::string_view s_;
  size_t i_ = 0;
};

std::unique_ptr<v1::KanbanService::Stub> Connect(const Kanband& server) {
  return v1::KanbanService::NewStub(
      grpc::CreateChannel(server.address, grpc::InsecureChannelCredentials()));
}

// One CreateTask carrying a bearer token, as authenticated clients will.
grpc::StatusCode CreateWithToken(v1::KanbanService::Stub* stub,
                                 const std::string& board) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kSecret));
  v1::CreateTaskRequest request;
  request.set_board(board);
  request.set_title("logged, but not its contents");
  v1::Task response;
  return stub->CreateTask(&ctx, request, &response).error_code();
}

TEST(KanbandLogTest, JsonLinesWithOneAccessLinePerRpcAndNoSecrets) {
  TempDir dir;
  Kanband server = StartKanband(KANBAND_PATH, dir.File("kanban.db"),
                                {"--log_format=json", "--log_rpcs"});
  ASSERT_TRUE(server.ok());
  auto stub = Connect(server);
  ASSERT_EQ(CreateWithToken(stub.get(), ""), grpc::StatusCode::OK);
  ASSERT_EQ(CreateWithToken(stub.get(), ""), grpc::StatusCode::OK);
  ASSERT_EQ(CreateWithToken(stub.get(), "Not A Board!"),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(server.process.Signal(SIGTERM), 0);
  ASSERT_EQ(server.process.Wait(absl::Seconds(20)), 0) << server.Log();

  const std::string log = server.Log();
  EXPECT_FALSE(absl::StrContains(log, kSecret)) << log;
  EXPECT_FALSE(absl::StrContains(log, "logged, but not its contents")) << log;
  int lines = 0, ok = 0, invalid = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    ++lines;
    std::map<std::string, std::string> f;
    ASSERT_TRUE(JsonLine(line).ParseObject(&f)) << "not one JSON object: " << line;
    EXPECT_FALSE(f["time"].empty()) << line;
    EXPECT_FALSE(f["level"].empty()) << line;
    EXPECT_TRUE(f.count("message")) << line;
    if (f["message"] != "rpc") continue;
    EXPECT_EQ(f["level"], "INFO") << line;
    EXPECT_EQ(f["principal"], "-") << line;
    EXPECT_TRUE(absl::StrContains(f["peer"], "127.0.0.1")) << line;
    double latency = -1;
    EXPECT_TRUE(absl::SimpleAtod(f["latency_ms"], &latency) && latency >= 0) << line;
    if (f["method"] == "/kanban.v1.KanbanService/CreateTask") {
      if (f["code"] == "OK") ++ok;
      if (f["code"] == "INVALID_ARGUMENT") ++invalid;
    }
  }
  EXPECT_GT(lines, 5);  // Start-up and shutdown lines are JSON too.
  EXPECT_EQ(ok, 2) << log;
  EXPECT_EQ(invalid, 1) << log;
}

TEST(KanbandLogTest, TextIsTheDefaultAndRpcsAreNotLoggedUnlessAsked) {
  TempDir dir;
  Kanband server = StartKanband(KANBAND_PATH, dir.File("kanban.db"));
  ASSERT_TRUE(server.ok());
  auto stub = Connect(server);
  ASSERT_EQ(CreateWithToken(stub.get(), ""), grpc::StatusCode::OK);
  ASSERT_EQ(server.process.Signal(SIGTERM), 0);
  ASSERT_EQ(server.process.Wait(absl::Seconds(20)), 0) << server.Log();
  const std::string log = server.Log();
  EXPECT_TRUE(absl::StrContains(log, " INFO kanband ")) << log;
  EXPECT_FALSE(absl::StrContains(log, "{\"time\"")) << log;
  EXPECT_FALSE(absl::StrContains(log, "CreateTask")) << log;
}

TEST(KanbandLogTest, BadLogFormatIsAConfigurationError) {
  TempDir dir;
  kanban::testing::RunResult r =
      kanban::testing::Run({KANBAND_PATH, "--listen=127.0.0.1:0",
                            "--db=" + dir.File("kanban.db"), "--log_format=xml"},
                           {}, "", absl::Seconds(15));
  EXPECT_EQ(r.exit_code, 2) << kanban::testing::Describe(r);
  EXPECT_TRUE(absl::StrContains(r.err, "--log_format")) << kanban::testing::Describe(r);
}

// GET /metrics over HTTP/1.0; the whole response.
std::string HttpGetMetrics(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  struct timeval timeout = {20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\n\r\n";
    if (::write(fd, request.data(), request.size()) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[8192];
      ssize_t n;
      while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
    }
  }
  ::close(fd);
  return response;
}

TEST(KanbandMetricsTest, MetricsPortFileAndEndpoint) {
  TempDir dir;
  const std::string metrics_port_file = dir.File("metrics.port");
  Kanband server =
      StartKanband(KANBAND_PATH, dir.File("kanban.db"),
                   {"--metrics_listen=127.0.0.1:0",
                    "--metrics_port_file=" + metrics_port_file, "--synchronous=full"});
  ASSERT_TRUE(server.ok());
  // Written before --port_file, which StartKanband waited for.
  int metrics_port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::StripAsciiWhitespace(ReadFileOrEmpty(metrics_port_file)), &metrics_port));
  ASSERT_GT(metrics_port, 0);
  EXPECT_FALSE(absl::EndsWith(server.address, absl::StrCat(":", metrics_port)));
  auto stub = Connect(server);
  ASSERT_EQ(CreateWithToken(stub.get(), ""), grpc::StatusCode::OK);

  const std::string response = HttpGetMetrics(metrics_port);
  EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.")) << response;
  EXPECT_TRUE(absl::StrContains(
      response,
      "kanban_durability_info{synchronous=\"FULL\",wal_autocheckpoint=\"100\"} 1"))
      << response;
  EXPECT_TRUE(absl::StrContains(response,
                                "kanban_rpcs_total{code=\"OK\",method=\"CreateTask\","
                                "service=\"kanban.v1.KanbanService\"} 1"))
      << response;
  EXPECT_TRUE(absl::StrContains(server.Log(), absl::StrCat("metrics on http://127.0.0.1:",
                                                           metrics_port, "/metrics")))
      << server.Log();
  ASSERT_EQ(server.process.Signal(SIGTERM), 0);
  EXPECT_EQ(server.process.Wait(absl::Seconds(20)), 0) << server.Log();
}

}  // namespace
}  // namespace kanban
