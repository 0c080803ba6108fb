// The one place where absl::Status becomes grpc::Status.
#ifndef KANBAN_SERVICE_GRPC_STATUS_H_
#define KANBAN_SERVICE_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace kanban::service {

// Same code (the enums share numbering), same message. Thread-safe.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_GRPC_STATUS_H_
