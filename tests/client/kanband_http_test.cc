// kanband's HTTP door as an operator meets it: --http_listen and
// --http_port_file, the loopback-only rule without auth (the same as for
// --listen), and tokens that travel in URLs (?access_token=) never reaching
// the log. Each test starts its own kanband; HTTP through the raw-socket
// client of tests/support/http_client.h.
#include <csignal>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::Describe;
using ::kanban::testing::HttpFetch;
using ::kanban::testing::Kanband;
using ::kanban::testing::ReadFileOrEmpty;
using ::kanban::testing::RunResult;
using ::kanban::testing::SseStream;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;

int HttpPort(const std::string& file) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFileOrEmpty(file)), &port))
      << "no port in " << file;
  return port;
}

TEST(KanbandHttpTest, ServesHttpAndWritesItsPortFile) {
  TempDir dir;
  const std::string port_file = dir.File("http_port");
  Kanband server =
      StartKanband(KANBAND_PATH, dir.File("kanban.db"),
                   {"--http-listen=127.0.0.1:0", "--http_port_file=" + port_file});
  ASSERT_TRUE(server.ok());
  const int port = HttpPort(port_file);
  ASSERT_GT(port, 0);
  EXPECT_TRUE(
      absl::StrContains(server.Log(), absl::StrCat("http on http://127.0.0.1:", port)))
      << server.Log();
  auto boards = HttpFetch(port, "GET", "/api/v1/boards");
  ASSERT_TRUE(boards.ok()) << boards.status();
  EXPECT_EQ(boards->status, 200) << boards->body;
  auto page = HttpFetch(port, "GET", "/");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->status, 200);
}

TEST(KanbandHttpTest, HttpPortFileNeedsHttpListen) {
  TempDir dir;
  RunResult r = kanban::testing::Run(
      {KANBAND_PATH, "--listen=127.0.0.1:0", "--db=" + dir.File("kanban.db"),
       "--http_port_file=" + dir.File("p")},
      {"KANBAN_SYNCHRONOUS_MODE"}, "", absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(absl::StrContains(r.err, "--http_port_file needs --http_listen")) << r.err;
}

// Without auth the HTTP door, like gRPC, serves loopback only unless told
// --insecure_no_auth.
TEST(KanbandHttpTest, NoAuthOnANonLoopbackHttpAddressNeedsInsecureNoAuth) {
  TempDir dir;
  RunResult refused =
      kanban::testing::Run({KANBAND_PATH, "--listen=127.0.0.1:0",
                            "--http_listen=0.0.0.0:0", "--db=" + dir.File("kanban.db")},
                           {"KANBAN_SYNCHRONOUS_MODE"}, "", absl::Seconds(20));
  EXPECT_EQ(refused.exit_code, 2) << Describe(refused);
  EXPECT_TRUE(absl::StrContains(refused.err, "--http_listen=0.0.0.0:0 is not a loopback"))
      << refused.err;
  EXPECT_TRUE(absl::StrContains(refused.err, "--insecure_no_auth")) << refused.err;
  EXPECT_EQ(ReadFileOrEmpty(dir.File("kanban.db")), "");

  const std::string port_file = dir.File("http_port");
  Kanband allowed = StartKanband(
      KANBAND_PATH, dir.File("kanban.db"),
      {"--http_listen=0.0.0.0:0", "--http_port_file=" + port_file, "--insecure_no_auth"});
  ASSERT_TRUE(allowed.ok());
  EXPECT_TRUE(
      absl::StrContains(allowed.Log(), "INSECURE: no authentication on 0.0.0.0:0"))
      << allowed.Log();
  auto boards = HttpFetch(HttpPort(port_file), "GET", "/api/v1/boards");
  ASSERT_TRUE(boards.ok()) << boards.status();
  EXPECT_EQ(boards->status, 200);

  TempDir other;
  Kanband with_auth = StartKanband(KANBAND_PATH, other.File("kanban.db"),
                                   {"--http_listen=0.0.0.0:0", "--auth=token"});
  EXPECT_TRUE(with_auth.ok());
}

// EventSource sends the token as ?access_token=: it must not reach the log,
// neither through the access log (--log_rpcs) nor through the HTTP
// library's own messages.
TEST(KanbandHttpTest, TokensInUrlsAreNeverLogged) {
  TempDir dir;
  const std::string db = dir.File("kanban.db");
  RunResult made = kanban::testing::Run(
      {KANBAND_PATH, "token", "create", "--db=" + db, "--role=viewer", "--name=eyes"},
      {"KANBAN_SYNCHRONOUS_MODE"}, "", absl::Seconds(30));
  ASSERT_EQ(made.exit_code, 0) << Describe(made);
  const std::string secret(absl::StripAsciiWhitespace(made.out));
  const std::string port_file = dir.File("http_port");
  Kanband server =
      StartKanband(KANBAND_PATH, db,
                   {"--auth=token", "--log_rpcs", "--http_listen=127.0.0.1:0",
                    "--http_port_file=" + port_file});
  ASSERT_TRUE(server.ok());
  const int port = HttpPort(port_file);
  {
    auto stream =
        SseStream::Open(port, "/api/v1/events?from_now=true&access_token=" + secret);
    ASSERT_TRUE(stream.ok()) << stream.status();
    EXPECT_EQ((*stream)->status(), 200);
    EXPECT_TRUE((*stream)->Next().has_value());  // The first bookmark.
  }
  auto refused =
      HttpFetch(port, "GET", "/api/v1/events?access_token=kb_wrong-secret-value");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 401);
  auto header =
      HttpFetch(port, "GET", "/api/v1/boards", {{"Authorization", "Bearer " + secret}});
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->status, 200);
  // A request line too long for the server: its complaint must not quote it.
  (void)HttpFetch(
      port, "GET",
      "/api/v1/events?access_token=" + secret + "&pad=" + std::string(20000, 'x'));
  // The stream's access line is written when the stream ends (within a
  // keepalive of the client leaving); stop kanband to flush everything.
  server.process.Signal(SIGTERM);
  EXPECT_EQ(server.process.Wait(absl::Seconds(30)), 0) << server.Log();
  const std::string log = server.Log();
  EXPECT_TRUE(absl::StrContains(log, "principal=eyes")) << log;
  EXPECT_FALSE(absl::StrContains(log, secret)) << log;
  EXPECT_FALSE(absl::StrContains(log, "kb_wrong-secret-value")) << log;
}

}  // namespace
}  // namespace kanban
