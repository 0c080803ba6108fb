#include "service/rpc_interceptor.h"

#include <grpcpp/server_context.h>

#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/log.h"

namespace kanban::service {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(grpc::experimental::ServerRpcInfo* info, Metrics* metrics,
                 const Auth* auth, bool log_rpcs)
      : info_(info),
        metrics_(metrics),
        auth_(auth),
        log_rpcs_(log_rpcs),
        start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Finished(methods->GetSendStatus());
    }
    methods->Proceed();
  }

 private:
  void Finished(const grpc::Status& status) {
    const absl::Duration latency = absl::Now() - start_;
    // gRPC's codes and Abseil's share numbering and names.
    const std::string code =
        absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
    const char* method = info_->method() != nullptr ? info_->method() : "";
    if (metrics_ != nullptr) metrics_->OnRpc(method, code, latency);
    if (log_rpcs_) {
      grpc::ServerContextBase* ctx = info_->server_context();
      // The token's name, never its secret; "-" without a valid token.
      std::string principal =
          ctx != nullptr && auth_ != nullptr ? auth_->PrincipalOf(*ctx) : "";
      if (principal.empty()) principal = "-";
      Log(LogLevel::kInfo, "rpc",
          {{"method", method},
           {"code", code},
           {"latency_ms", absl::ToDoubleMilliseconds(latency)},
           {"peer", ctx != nullptr ? ctx->peer() : std::string("-")},
           {"principal", principal}});
    }
  }

  grpc::experimental::ServerRpcInfo* const info_;
  Metrics* const metrics_;
  const Auth* const auth_;
  const bool log_rpcs_;
  const absl::Time start_;
};

class RpcInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  RpcInterceptorFactory(Metrics* metrics, const Auth* auth, bool log_rpcs)
      : metrics_(metrics), auth_(auth), log_rpcs_(log_rpcs) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcInterceptor(info, metrics_, auth_, log_rpcs_);  // gRPC deletes it.
  }

 private:
  Metrics* const metrics_;
  const Auth* const auth_;
  const bool log_rpcs_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcInterceptorFactory(Metrics* metrics, const Auth* auth, bool log_rpcs) {
  return std::make_unique<RpcInterceptorFactory>(metrics, auth, log_rpcs);
}

}  // namespace kanban::service
