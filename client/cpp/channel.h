// Channels to kanband for clients: plaintext or TLS (see tls.h), and with a
// bearer token, when one is given, sent as "authorization: Bearer <token>"
// on every call. Used by kanbanctl and available to programs built on
// worker.h and watcher.h:
//
//   absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
//       OpenChannel("kanban.example:7300", tls_files, token);  // "": no token
//   // Or several replicas of one kanban: "kanban-1:7300,kanban-2:7300".
//   if (!channel.ok()) ...;
//   kanban::client::Worker worker(*channel, options);
//
// The address names one server or several replicas that share a database
// (see ResolveServerAddress); a channel to several spreads its calls over
// them with gRPC's round_robin policy and skips a replica that is down.
//
// The token goes in through a client interceptor, not call credentials:
// gRPC attaches call credentials only to TLS channels, and a kanband on
// 127.0.0.1 or behind a TLS-terminating proxy is plaintext. On a plaintext
// channel the token crosses the network unencrypted; use TLS beyond
// localhost.
#ifndef KANBAN_CLIENT_CPP_CHANNEL_H_
#define KANBAN_CLIENT_CPP_CHANNEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/cpp/tls.h"
#include "grpcpp/channel.h"

namespace kanban::client {

// A server address as gRPC should dial it.
struct ServerTarget {
  // The gRPC target: "host:port", "ipv4:A:P,B:Q", "ipv6:[A]:P,...",
  // "dns:///name:port", ...
  std::string target;
  // Spread calls over every address with round_robin. False: gRPC's default
  // (pick_first), as for one host:port.
  bool round_robin = false;
  // The :authority of calls and the name TLS checks the server's
  // certificate against (unless TlsFiles::server_name overrides it); empty:
  // gRPC's default, which is the host:port of `target`.
  std::string authority;
  // One dialable target per replica, in the order given: the elements of a
  // list (after resolving names), or just `target` when it cannot be split
  // (one host:port, dns:///...). For programs that want a channel per
  // replica, such as kanban-bench.
  std::vector<std::string> replicas;
};

// Turns what a user gives as the server (kanbanctl --server, $KANBAN_SERVER)
// into a ServerTarget. Accepted forms:
//
//   host:port, [v6]:port   one server, dialed as today (pick_first; a name
//                          is resolved by gRPC).
//   a:1,b:2,c:3            several replicas, round_robin. Spaces around
//                          the commas are ignored. Every element needs a
//                          port. IP literals become one ipv4: (or ipv6:)
//                          list. Host names are resolved here, once, with
//                          getaddrinfo, and every address of every name
//                          joins the list (IPv4 when every element has one,
//                          else IPv6); a replica that later moves to
//                          another address is not followed: use a dns:
//                          target for that. The authority is the first
//                          element as written (so TLS checks its host
//                          name; give TlsFiles::server_name when the
//                          replicas' certificates name something else).
//   ipv4:A:P,B:Q           gRPC's own lists, passed through; round_robin.
//   ipv6:[A]:P,[B]:Q
//   dns:///name:port       one name, re-resolved by gRPC; round_robin over
//                          all of its records.
//   unix:path, other       passed through unchanged (pick_first).
//   scheme:...
//
// INVALID_ARGUMENT, with the address quoted, for an empty address, an empty
// list element ("\"a:1,,b\" has an empty address"), an element without a
// port, a scheme inside a list, a list mixing IPv4-only and IPv6-only
// replicas, or a name that does not resolve; UNAVAILABLE when the resolver
// fails temporarily. The message does not name the flag: callers prefix it
// ("--server: ..."). Thread-safe; blocks while names are resolved.
absl::StatusOr<ServerTarget> ResolveServerAddress(absl::string_view address);

// OK when `token` can be sent as a bearer token: not empty, and only
// visible ASCII characters (no spaces or line breaks, which metadata cannot
// carry). INVALID_ARGUMENT otherwise; the message never contains the token.
absl::Status CheckBearerToken(absl::string_view token);

// A channel to `target` with `security`'s credentials and arguments (plus
// round_robin and the authority when `target` asks for them). When
// `token` is not empty, every call on the channel carries the metadata
// "authorization: Bearer <token>" unless the call set an "authorization"
// entry of its own (ClientContext::AddMetadata), which is then kept.
// INVALID_ARGUMENT when `token` fails CheckBearerToken. The channel connects
// lazily; it is thread-safe and shared by whoever holds it.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(
    const ServerTarget& target, const ChannelSecurity& security, absl::string_view token);

// ResolveServerAddress(address), then the CreateChannel above. Its
// INVALID_ARGUMENT messages start with "server: ".
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(
    const std::string& address, const ChannelSecurity& security, absl::string_view token);

// LoadChannelSecurity(tls) and then CreateChannel: the one call for a
// program that has an address (any form ResolveServerAddress takes), TLS
// file names (all empty: plaintext) and a token ("" for none).
// INVALID_ARGUMENT for a bad address ("server: ..."), unreadable TLS files or
// a bad token, as above.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& address,
                                                           const TlsFiles& tls,
                                                           absl::string_view token);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_CPP_CHANNEL_H_
