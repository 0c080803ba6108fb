// ResolveServerAddress: the address forms a client accepts (one server, a
// list of replicas, gRPC's own targets) and the messages for bad ones.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "client/cpp/channel.h"
#include "client/cpp/tls.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kanban::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ServerAddressTest, OneHostPortStaysAsItWas) {
  absl::StatusOr<ServerTarget> t = ResolveServerAddress("kanban.example:7300");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->target, "kanban.example:7300");
  EXPECT_FALSE(t->round_robin);
  EXPECT_EQ(t->authority, "");
  EXPECT_THAT(t->replicas, ElementsAre("kanban.example:7300"));
}

TEST(ServerAddressTest, IpLiteralListBecomesAnIpv4TargetWithRoundRobin) {
  absl::StatusOr<ServerTarget> t =
      ResolveServerAddress("127.0.0.1:7301, 127.0.0.2:7302 ,127.0.0.3:7303");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->target, "ipv4:127.0.0.1:7301,127.0.0.2:7302,127.0.0.3:7303");
  EXPECT_TRUE(t->round_robin);
  EXPECT_EQ(t->authority, "127.0.0.1:7301");
  EXPECT_THAT(t->replicas,
              ElementsAre("127.0.0.1:7301", "127.0.0.2:7302", "127.0.0.3:7303"));
}

TEST(ServerAddressTest, Ipv6LiteralListBecomesAnIpv6Target) {
  absl::StatusOr<ServerTarget> t = ResolveServerAddress("[::1]:7301,[::1]:7302");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->target, "ipv6:[::1]:7301,[::1]:7302");
  EXPECT_TRUE(t->round_robin);
  EXPECT_EQ(t->authority, "[::1]:7301");
}

TEST(ServerAddressTest, NamesInAListAreResolvedAndKeepTheFirstAsAuthority) {
  absl::StatusOr<ServerTarget> t = ResolveServerAddress("localhost:7301,127.0.0.1:7302");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->round_robin);
  EXPECT_EQ(t->authority, "localhost:7301");
  // localhost has an IPv4 address wherever this runs; IPv4 wins when every
  // element has one.
  EXPECT_TRUE(absl::StartsWith(t->target, "ipv4:")) << t->target;
  EXPECT_THAT(t->target, HasSubstr("127.0.0.1:7301"));
  EXPECT_TRUE(absl::EndsWith(t->target, ",127.0.0.1:7302")) << t->target;
}

TEST(ServerAddressTest, GrpcTargetsPassThrough) {
  absl::StatusOr<ServerTarget> dns = ResolveServerAddress("dns:///kanban.example:7300");
  ASSERT_TRUE(dns.ok()) << dns.status();
  EXPECT_EQ(dns->target, "dns:///kanban.example:7300");
  EXPECT_TRUE(dns->round_robin);

  absl::StatusOr<ServerTarget> ipv4 =
      ResolveServerAddress("ipv4:127.0.0.1:1,127.0.0.1:2");
  ASSERT_TRUE(ipv4.ok()) << ipv4.status();
  EXPECT_EQ(ipv4->target, "ipv4:127.0.0.1:1,127.0.0.1:2");
  EXPECT_TRUE(ipv4->round_robin);
  EXPECT_EQ(ipv4->authority, "127.0.0.1:1");
  EXPECT_THAT(ipv4->replicas, ElementsAre("ipv4:127.0.0.1:1", "ipv4:127.0.0.1:2"));

  absl::StatusOr<ServerTarget> unix_socket =
      ResolveServerAddress("unix:/run/kanban.sock");
  ASSERT_TRUE(unix_socket.ok()) << unix_socket.status();
  EXPECT_EQ(unix_socket->target, "unix:/run/kanban.sock");
  EXPECT_FALSE(unix_socket->round_robin);
}

// Each bad address and the part of the message that says what is wrong.
struct BadCase {
  const char* address;
  const char* message;
};

TEST(ServerAddressTest, BadAddressesSayWhatIsWrong) {
  const BadCase cases[] = {
      {"", "the address is empty"},
      {"   ", "the address is empty"},
      {"a:1,,b:2", "\"a:1,,b:2\" has an empty address"},
      {"a:1,", "\"a:1,\" has an empty address"},
      {",a:1", "\",a:1\" has an empty address"},
      {"ipv4:127.0.0.1:1,,127.0.0.1:2", "has an empty address"},
      {"a:1,b", "\"a:1,b\": \"b\" has no port (give host:port)"},
      {"a:1,b:", "\"b:\" has no port from 1 to 65535"},
      {"a:1,b:x", "\"b:x\" has no port from 1 to 65535"},
      {"a:1,b:70000", "\"b:70000\" has no port from 1 to 65535"},
      {"a:1,:2", "\":2\" has no host"},
      {"a:1,::1:2", "write an IPv6 address in brackets"},
      {"a:1,[::1:2", "has no closing ]"},
      {"a:1,[nope]:2", "has no IPv6 address in [...]"},
      {"a:1,dns:///b:2", "a scheme (dns:, ipv4:, ...) goes first"},
      {"127.0.0.1:1,[::1]:2", "mixes IPv4-only and IPv6-only servers"},
      {"127.0.0.1:1,no-such-host.invalid:2", "cannot resolve \"no-such-host.invalid\""},
  };
  for (const BadCase& c : cases) {
    absl::StatusOr<ServerTarget> t = ResolveServerAddress(c.address);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument)
        << c.address << ": " << t.status();
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.message)) << c.address;
  }
}

TEST(ServerAddressTest, CreateChannelNamesTheServerField) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      OpenChannel("a:1,,b:2", TlsFiles{}, "");
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(channel.status().message(), "server: \"a:1,,b:2\" has an empty address");
}

}  // namespace
}  // namespace kanban::client
