// `kanbanctl health`, the probe behind the container HEALTHCHECK: the exit
// code a supervisor acts on, against a real kanband and against addresses
// where nothing answers.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::Describe;
using ::kanban::testing::Kanband;
using ::kanban::testing::RunResult;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;

constexpr int kExitNotServing = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

// Runs kanbanctl against `server`; --timeout comes first so a test can
// shorten the deadline.
RunResult Ctl(const std::string& server, std::vector<std::string> args,
              const std::string& timeout_seconds = "10") {
  args.insert(args.begin(),
              {KANBANCTL_PATH, "--server", server, "--timeout", timeout_seconds});
  return kanban::testing::Run(args, {"KANBAN_SERVER"});
}

// A TCP socket on 127.0.0.1 with a port of its own, closed on destruction.
// Bound but not listening, connections to it are refused; listening, they
// are accepted by the kernel and then nobody speaks. Holding the socket
// keeps any other process off the port for the whole test.
class LocalSocket {
 public:
  explicit LocalSocket(bool listen_on_it) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    if (listen_on_it) {
      EXPECT_EQ(listen(fd_, 16), 0);
    }
  }
  ~LocalSocket() {
    if (fd_ >= 0) close(fd_);
  }
  LocalSocket(const LocalSocket&) = delete;
  LocalSocket& operator=(const LocalSocket&) = delete;

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class KanbanctlHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kanband_ = StartKanband(KANBAND_PATH, dir_.File("kanban.db"));
    ASSERT_TRUE(kanband_.ok());
  }

  TempDir dir_;  // Outlives the server that uses it.
  Kanband kanband_;
};

TEST_F(KanbanctlHealthTest, ServingServerExitsZero) {
  RunResult r = Ctl(kanband_.address, {"health"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "SERVING\n");
  EXPECT_EQ(r.err, "");

  r = Ctl(kanband_.address, {"health", "--service", "kanban.v1.KanbanService"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "SERVING\n");

  r = Ctl(kanband_.address, {"--json", "health"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "{\"status\":\"SERVING\"}\n");
}

TEST_F(KanbanctlHealthTest, UnknownServiceIsNotServing) {
  RunResult r = Ctl(kanband_.address, {"health", "--service", "no.such.Service"});
  EXPECT_EQ(r.exit_code, kExitNotServing) << Describe(r);
  EXPECT_EQ(r.out, "SERVICE_UNKNOWN\n");
  EXPECT_TRUE(absl::StartsWith(r.err, "error: NOT_FOUND: ")) << r.err;
}

TEST(KanbanctlHealthUnreachableTest, RefusedConnectionExitsThree) {
  LocalSocket refusing(/*listen_on_it=*/false);
  RunResult r = Ctl(refusing.address(), {"health"});
  EXPECT_EQ(r.exit_code, kExitUnreachable) << Describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(absl::StartsWith(r.err, "error: UNAVAILABLE: ")) << r.err;
}

TEST(KanbanctlHealthUnreachableTest, SilentPeerExitsThreeAfterTheTimeout) {
  // The kernel completes the TCP handshake, but no HTTP/2 answer ever comes:
  // a hung server. Either the connection attempt or the call times out.
  LocalSocket silent(/*listen_on_it=*/true);
  RunResult r = Ctl(silent.address(), {"health"}, /*timeout_seconds=*/"1");
  EXPECT_EQ(r.exit_code, kExitUnreachable) << Describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(absl::StartsWith(r.err, "error: DEADLINE_EXCEEDED: ") ||
              absl::StartsWith(r.err, "error: UNAVAILABLE: "))
      << r.err;
}

TEST(KanbanctlHealthUsageTest, ExtraArgumentIsAUsageError) {
  // No call is made: the address is never dialled.
  RunResult r = Ctl("127.0.0.1:1", {"health", "extra"});
  EXPECT_EQ(r.exit_code, kExitUsage) << Describe(r);
  EXPECT_TRUE(absl::StrContains(r.err, "usage: kanbanctl health")) << r.err;
}

}  // namespace
}  // namespace kanban
