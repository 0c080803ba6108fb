#include "service/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "storage/writer.h"

namespace kanban::service {
namespace {

// Error details are otherwise unused by this server; this prefix marks the
// ones that only carry a pushback for the interceptor, which never lets them
// reach the wire.
constexpr absl::string_view kPushbackDetailsPrefix = "kanban-retry-pushback-ms:";

class RetryPushbackInterceptor final : public grpc::experimental::Interceptor {
 public:
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      const std::string& all_details = status.error_details();
      absl::string_view details = all_details;
      if (absl::ConsumePrefix(&details, kPushbackDetailsPrefix)) {
        methods->GetSendTrailingMetadata()->emplace(kRetryPushbackTrailer,
                                                    std::string(details));
        methods->ModifySendStatus(
            grpc::Status(status.error_code(), status.error_message()));
      }
    }
    methods->Proceed();
  }
};

class RetryPushbackFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RetryPushbackInterceptor();
  }
};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode both follow google.rpc.Code.
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  if (auto pushback = status.GetPayload(storage::Writer::kRetryPushbackPayload);
      pushback.has_value()) {
    return grpc::Status(code, std::move(message),
                        absl::StrCat(kPushbackDetailsPrefix, std::string(*pushback)));
  }
  return grpc::Status(code, std::move(message));
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewRetryPushbackInterceptorFactory() {
  return std::make_unique<RetryPushbackFactory>();
}

}  // namespace kanban::service
