#include "client/cpp/channel.h"

#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
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

}  // namespace

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
    const std::string& address, const ChannelSecurity& security,
    absl::string_view token) {
  if (token.empty()) {
    return grpc::CreateCustomChannel(address, security.credentials, security.args);
  }
  if (absl::Status status = CheckBearerToken(token); !status.ok()) return status;
  std::vector<std::unique_ptr<ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerTokenInterceptorFactory>(token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, security.credentials, security.args, std::move(interceptors));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& address,
                                                           const TlsFiles& tls,
                                                           absl::string_view token) {
  absl::StatusOr<ChannelSecurity> security = LoadChannelSecurity(tls);
  if (!security.ok()) return security.status();
  return CreateChannel(address, *security, token);
}

}  // namespace kanban::client
