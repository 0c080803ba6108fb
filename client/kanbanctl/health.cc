#include "client/kanbanctl/health.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"

namespace kanban::client {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

void PrintError(const Invocation& in, const grpc::Status& status) {
  in.err << "error: "
         << absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()))
         << ": " << status.error_message() << "\n";
}

}  // namespace

int RunHealth(const Invocation& in) {
  HealthCheckRequest request;
  request.set_service(in.args.Get("service"));
  std::unique_ptr<Health::Stub> stub = Health::NewStub(in.channel);

  grpc::ClientContext context;
  // Fail fast (no wait_for_ready): a probe wants "down" now, not a retry
  // loop until the deadline.
  context.set_deadline(absl::ToChronoTime(absl::Now() + in.timeout));
  HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      break;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      PrintError(in, status);
      return kExitUnreachable;
    case grpc::StatusCode::NOT_FOUND:
      // The health protocol answers an unknown service with NOT_FOUND rather
      // than a status; show it as the status Watch would have sent.
      PrintError(in, status);
      response.set_status(HealthCheckResponse::SERVICE_UNKNOWN);
      break;
    default:
      PrintError(in, status);
      return kExitRpcFailed;
  }

  const std::string name = HealthCheckResponse::ServingStatus_Name(response.status());
  if (in.json) {
    // Not ToJson: it leaves out default values, and UNKNOWN is the default,
    // so a script would see "{}".
    in.out << "{\"status\":\"" << name << "\"}\n";
  } else {
    in.out << name << "\n";
  }
  return response.status() == HealthCheckResponse::SERVING ? kExitOk : kExitRpcFailed;
}

}  // namespace kanban::client
