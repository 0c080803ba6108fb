// Channels to kanband for clients: plaintext or TLS (see tls.h), and with a
// bearer token, when one is given, sent as "authorization: Bearer <token>"
// on every call. Used by kanbanctl and available to programs built on
// worker.h and watcher.h:
//
//   absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
//       OpenChannel("kanban.example:7300", tls_files, token);  // "": no token
//   if (!channel.ok()) ...;
//   kanban::client::Worker worker(*channel, options);
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

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/cpp/tls.h"
#include "grpcpp/channel.h"

namespace kanban::client {

// OK when `token` can be sent as a bearer token: not empty, and only
// visible ASCII characters (no spaces or line breaks, which metadata cannot
// carry). INVALID_ARGUMENT otherwise; the message never contains the token.
absl::Status CheckBearerToken(absl::string_view token);

// A channel to `address` with `security`'s credentials and arguments. When
// `token` is not empty, every call on the channel carries the metadata
// "authorization: Bearer <token>" unless the call set an "authorization"
// entry of its own (ClientContext::AddMetadata), which is then kept.
// INVALID_ARGUMENT when `token` fails CheckBearerToken. The channel connects
// lazily; it is thread-safe and shared by whoever holds it.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(
    const std::string& address, const ChannelSecurity& security, absl::string_view token);

// LoadChannelSecurity(tls) and then CreateChannel: the one call for a
// program that has an address, TLS file names (all empty: plaintext) and a
// token ("" for none). INVALID_ARGUMENT for unreadable TLS files or a bad
// token, as above.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& address,
                                                           const TlsFiles& tls,
                                                           absl::string_view token);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_CPP_CHANNEL_H_
