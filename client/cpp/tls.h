// TLS for clients of kanband: turns certificate file names (kanbanctl's
// --tls-* flags, or a program's own settings) into the channel credentials
// and arguments that grpc::CreateCustomChannel takes. Used by kanbanctl and
// available to programs built on worker.h and watcher.h:
//
//   absl::StatusOr<ChannelSecurity> security = LoadChannelSecurity(files);
//   if (!security.ok()) ...;
//   auto channel = grpc::CreateCustomChannel(address, security->credentials,
//                                            security->args);
#ifndef KANBAN_CLIENT_CPP_TLS_H_
#define KANBAN_CLIENT_CPP_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace kanban::client {

// File names of PEM files, and a name override. All empty: plaintext.
struct TlsFiles {
  std::string ca;    // CA certificate(s) to trust. Empty: the system's roots.
  std::string cert;  // Client certificate, for servers that require one (mTLS).
  std::string key;   // Its private key; required with `cert`, and only with it.
  // The name the server's certificate must carry, instead of the host in the
  // address (e.g. "localhost" while dialing 127.0.0.1).
  std::string server_name;

  // True when any field is set: any of them asks for TLS.
  bool enabled() const;
};

// What a channel needs: credentials, and the arguments that go with them
// (the name override). Add further arguments to `args` before creating the
// channel.
struct ChannelSecurity {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments args;
};

// Insecure credentials when `files` is all empty; TLS credentials otherwise.
// Reads the files now. INVALID_ARGUMENT naming the field ("tls-ca",
// "tls-cert", "tls-key", as kanbanctl spells its flags) when a file cannot be
// read or holds no PEM block, or when only one of cert and key is given.
absl::StatusOr<ChannelSecurity> LoadChannelSecurity(const TlsFiles& files);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_CPP_TLS_H_
