#include "client/cpp/channel.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpc/grpc.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/client_interceptor.h"
#include "grpcpp/support/interceptor.h"

namespace kanban::client {
namespace {

using grpc::experimental::ClientInterceptorFactoryInterface;
using grpc::experimental::ClientRpcInfo;
using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::Interceptor;
using grpc::experimental::InterceptorBatchMethods;

constexpr char kAuthorizationKey[] = "authorization";

// Adds the header to the call's initial metadata, once, before it is sent.
class BearerTokenInterceptor final : public Interceptor {
 public:
  explicit BearerTokenInterceptor(std::shared_ptr<const std::string> header)
      : header_(std::move(header)) {}

  void Intercept(InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      std::multimap<std::string, std::string>* metadata =
          methods->GetSendInitialMetadata();
      // A call that brought its own credentials keeps them: two
      // authorization entries would be ambiguous to the server.
      if (metadata->find(kAuthorizationKey) == metadata->end()) {
        metadata->emplace(kAuthorizationKey, *header_);
      }
    }
    methods->Proceed();
  }

 private:
  const std::shared_ptr<const std::string> header_;
};

class BearerTokenInterceptorFactory final : public ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(absl::string_view token)
      : header_(std::make_shared<const std::string>(absl::StrCat("Bearer ", token))) {}

  // gRPC owns the interceptor and deletes it when the call ends.
  Interceptor* CreateClientInterceptor(ClientRpcInfo* info) override {
    return new BearerTokenInterceptor(header_);
  }

 private:
  // Shared by every call's interceptor, so that none copies the secret.
  const std::shared_ptr<const std::string> header_;
};

// ---- Server addresses. -----------------------------------------------------

// Schemes of gRPC's own resolvers that a bare "word:rest" means; anything
// else without "://" is host:port ("localhost:7300").
constexpr absl::string_view kKnownSchemes[] = {"dns",  "ipv4",          "ipv6",
                                               "unix", "unix-abstract", "vsock"};

// The scheme of a gRPC target URI ("dns" for "dns:///x:1"), or "" when
// `address` is not one.
absl::string_view SchemeOf(absl::string_view address) {
  const size_t colon = address.find(':');
  if (colon == absl::string_view::npos || colon == 0) return "";
  const absl::string_view scheme = address.substr(0, colon);
  if (!std::isalpha(static_cast<unsigned char>(scheme[0]))) return "";
  for (char c : scheme) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' &&
        c != '.') {
      return "";
    }
  }
  const bool known = std::find(std::begin(kKnownSchemes), std::end(kKnownSchemes),
                               scheme) != std::end(kKnownSchemes);
  return known || absl::StartsWith(address.substr(colon + 1), "//") ? scheme : "";
}

// One host:port of a list, split and checked.
struct HostPort {
  std::string host;  // Without brackets.
  std::string port;
  int family = AF_UNSPEC;  // AF_INET or AF_INET6 for an IP literal.
};

absl::Status BadAddress(absl::string_view address, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("\"", address, "\"", problem));
}

absl::StatusOr<HostPort> SplitHostPort(absl::string_view address,
                                       absl::string_view element) {
  const std::string quoted = absl::StrCat(": \"", element, "\"");
  if (!SchemeOf(element).empty() || absl::StrContains(element, '/')) {
    return BadAddress(address, absl::StrCat(quoted,
                                            " is not host:port; a scheme (dns:, ipv4:, "
                                            "...) goes first, for the whole address"));
  }
  HostPort hp;
  absl::string_view rest;
  if (absl::StartsWith(element, "[")) {
    const size_t close = element.find(']');
    if (close == absl::string_view::npos) {
      return BadAddress(address, absl::StrCat(quoted, " has no closing ]"));
    }
    hp.host = std::string(element.substr(1, close - 1));
    rest = element.substr(close + 1);
    in6_addr v6;
    if (inet_pton(AF_INET6, hp.host.c_str(), &v6) != 1) {
      return BadAddress(address, absl::StrCat(quoted, " has no IPv6 address in [...]"));
    }
    hp.family = AF_INET6;
  } else {
    const size_t colon = element.rfind(':');
    if (colon == absl::string_view::npos) {
      return BadAddress(address, absl::StrCat(quoted, " has no port (give host:port)"));
    }
    hp.host = std::string(element.substr(0, colon));
    rest = element.substr(colon);
    if (absl::StrContains(hp.host, ':')) {
      return BadAddress(address, absl::StrCat(quoted,
                                              " is ambiguous: write an IPv6 address "
                                              "in brackets, [::1]:7300"));
    }
    in_addr v4;
    if (inet_pton(AF_INET, hp.host.c_str(), &v4) == 1) hp.family = AF_INET;
  }
  if (hp.host.empty()) {
    return BadAddress(address, absl::StrCat(quoted, " has no host"));
  }
  int port = 0;
  if (!absl::ConsumePrefix(&rest, ":") || rest.empty() ||
      !std::all_of(rest.begin(), rest.end(),
                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
      !absl::SimpleAtoi(rest, &port) || port < 1 || port > 65535) {
    return BadAddress(
        address, absl::StrCat(quoted, " has no port from 1 to 65535 (give host:port)"));
  }
  hp.port = std::string(rest);
  return hp;
}

// The IP addresses of `host`, IPv4 and IPv6 apart, in the resolver's order
// without repeats.
struct Resolved {
  std::vector<std::string> v4;
  std::vector<std::string> v6;
};

absl::StatusOr<Resolved> ResolveHost(absl::string_view address, const HostPort& hp) {
  Resolved resolved;
  if (hp.family == AF_INET) {
    resolved.v4.push_back(hp.host);
    return resolved;
  }
  if (hp.family == AF_INET6) {
    resolved.v6.push_back(hp.host);
    return resolved;
  }
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const int rc = getaddrinfo(hp.host.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    const std::string message =
        absl::StrCat(": cannot resolve \"", hp.host, "\": ", gai_strerror(rc));
    if (rc == EAI_AGAIN) {
      return absl::UnavailableError(absl::StrCat("\"", address, "\"", message));
    }
    return BadAddress(address, message);
  }
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    std::vector<std::string>* into = nullptr;
    if (ai->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr,
                text, sizeof(text));
      into = &resolved.v4;
    } else if (ai->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr,
                text, sizeof(text));
      into = &resolved.v6;
    } else {
      continue;
    }
    if (std::find(into->begin(), into->end(), text) == into->end()) {
      into->push_back(text);
    }
  }
  freeaddrinfo(list);
  return resolved;
}

// An ipv4:/ipv6: target given as is: round_robin over its elements.
absl::StatusOr<ServerTarget> IpListTarget(absl::string_view address,
                                          absl::string_view scheme) {
  const absl::string_view list = address.substr(scheme.size() + 1);
  ServerTarget target{std::string(address), true, "", {}};
  for (absl::string_view element : absl::StrSplit(list, ',')) {
    if (absl::StripAsciiWhitespace(element).empty()) {
      return BadAddress(address, " has an empty address");
    }
    target.replicas.push_back(absl::StrCat(scheme, ":", element));
  }
  // gRPC's default authority would be the whole list.
  target.authority = std::string(target.replicas.front().substr(scheme.size() + 1));
  return target;
}

// "a:1,b:2": resolved into one ipv4: (or ipv6:) list.
absl::StatusOr<ServerTarget> HostPortListTarget(absl::string_view address) {
  // Every element is checked before any name is looked up: a typo is
  // reported as such, not as a name that does not resolve.
  std::vector<HostPort> elements;
  for (absl::string_view element : absl::StrSplit(address, ',')) {
    element = absl::StripAsciiWhitespace(element);
    if (element.empty()) return BadAddress(address, " has an empty address");
    absl::StatusOr<HostPort> hp = SplitHostPort(address, element);
    if (!hp.ok()) return hp.status();
    elements.push_back(*std::move(hp));
  }
  std::vector<Resolved> resolved;
  for (const HostPort& hp : elements) {
    absl::StatusOr<Resolved> ips = ResolveHost(address, hp);
    if (!ips.ok()) return ips.status();
    resolved.push_back(*std::move(ips));
  }
  const bool all_v4 = std::all_of(resolved.begin(), resolved.end(),
                                  [](const Resolved& r) { return !r.v4.empty(); });
  const bool all_v6 = std::all_of(resolved.begin(), resolved.end(),
                                  [](const Resolved& r) { return !r.v6.empty(); });
  if (!all_v4 && !all_v6) {
    return BadAddress(address,
                      " mixes IPv4-only and IPv6-only servers; one list holds one "
                      "family (or give one dns:///name:port)");
  }
  ServerTarget target;
  target.round_robin = true;
  const HostPort& first = elements.front();
  target.authority = first.family == AF_INET6
                         ? absl::StrCat("[", first.host, "]:", first.port)
                         : absl::StrCat(first.host, ":", first.port);
  for (size_t i = 0; i < elements.size(); ++i) {
    for (const std::string& ip : all_v4 ? resolved[i].v4 : resolved[i].v6) {
      target.replicas.push_back(all_v4 ? absl::StrCat(ip, ":", elements[i].port)
                                       : absl::StrCat("[", ip, "]:", elements[i].port));
    }
  }
  target.target =
      absl::StrCat(all_v4 ? "ipv4:" : "ipv6:", absl::StrJoin(target.replicas, ","));
  return target;
}

}  // namespace

absl::StatusOr<ServerTarget> ResolveServerAddress(absl::string_view address) {
  address = absl::StripAsciiWhitespace(address);
  if (address.empty()) return absl::InvalidArgumentError("the address is empty");
  const absl::string_view scheme = SchemeOf(address);
  if (scheme == "ipv4" || scheme == "ipv6") return IpListTarget(address, scheme);
  if (!scheme.empty()) {
    // dns: may name several records; other schemes are gRPC's business.
    return ServerTarget{
        std::string(address), scheme == "dns", "", {std::string(address)}};
  }
  if (!absl::StrContains(address, ',')) {
    return ServerTarget{std::string(address), false, "", {std::string(address)}};
  }
  return HostPortListTarget(address);
}

absl::Status CheckBearerToken(absl::string_view token) {
  if (token.empty()) return absl::InvalidArgumentError("the token is empty");
  for (char c : token) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "the token contains a character a bearer token cannot have (only "
          "visible ASCII: no spaces, line breaks or other control characters)");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(
    const ServerTarget& target, const ChannelSecurity& security,
    absl::string_view token) {
  grpc::ChannelArguments args = security.args;
  if (target.round_robin) args.SetLoadBalancingPolicyName("round_robin");
  if (!target.authority.empty()) {
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, target.authority);
  }
  if (token.empty()) {
    return grpc::CreateCustomChannel(target.target, security.credentials, args);
  }
  if (absl::Status status = CheckBearerToken(token); !status.ok()) return status;
  std::vector<std::unique_ptr<ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerTokenInterceptorFactory>(token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      target.target, security.credentials, args, std::move(interceptors));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(
    const std::string& address, const ChannelSecurity& security,
    absl::string_view token) {
  absl::StatusOr<ServerTarget> target = ResolveServerAddress(address);
  if (!target.ok()) {
    return absl::Status(target.status().code(),
                        absl::StrCat("server: ", target.status().message()));
  }
  return CreateChannel(*target, security, token);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& address,
                                                           const TlsFiles& tls,
                                                           absl::string_view token) {
  absl::StatusOr<ChannelSecurity> security = LoadChannelSecurity(tls);
  if (!security.ok()) return security.status();
  return CreateChannel(address, *security, token);
}

}  // namespace kanban::client
