#include "client/cpp/tls.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace kanban::client {
namespace {

// The text of the PEM file at `path`, or INVALID_ARGUMENT naming `field`.
// Checked here because gRPC reads the PEM only when it connects, and then
// reports every problem as the same UNAVAILABLE.
absl::StatusOr<std::string> ReadPem(absl::string_view field, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();  // Sets failbit, rather than throwing, on a directory.
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", field, ": cannot read a PEM file from \"", path, "\""));
  }
  return text.str();
}

}  // namespace

bool TlsFiles::enabled() const {
  return !ca.empty() || !cert.empty() || !key.empty() || !server_name.empty();
}

absl::StatusOr<ChannelSecurity> LoadChannelSecurity(const TlsFiles& files) {
  ChannelSecurity security;
  if (!files.enabled()) {
    security.credentials = grpc::InsecureChannelCredentials();
    return security;
  }
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError(files.cert.empty() ? "--tls-key needs --tls-cert"
                                                         : "--tls-cert needs --tls-key");
  }
  grpc::SslCredentialsOptions ssl;
  if (!files.ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("tls-ca", files.ca);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!files.cert.empty()) {
    absl::StatusOr<std::string> cert = ReadPem("tls-cert", files.cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem("tls-key", files.key);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  security.credentials = grpc::SslCredentials(ssl);
  if (!files.server_name.empty()) {
    security.args.SetSslTargetNameOverride(files.server_name);
  }
  return security;
}

}  // namespace kanban::client
