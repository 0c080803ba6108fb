// The one place where absl::Status becomes grpc::Status, and where a status
// that asks callers to back off becomes the grpc-retry-pushback-ms trailer.
#ifndef KANBAN_SERVICE_GRPC_STATUS_H_
#define KANBAN_SERVICE_GRPC_STATUS_H_

#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>

#include <memory>

#include "absl/status/status.h"

namespace kanban::service {

// Same code (the enums share numbering), same message. A status carrying
// storage::Writer::kRetryPushbackPayload also carries that delay in the
// grpc::Status's error details, where the interceptor below finds it.
// Thread-safe.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The trailing-metadata key gRPC clients read as "retry after this many ms"
// (gRPC A6, client retries).
inline constexpr char kRetryPushbackTrailer[] = "grpc-retry-pushback-ms";

// An interceptor that, as a call sends its status, moves the retry delay
// ToGrpcStatus put in the error details into the grpc-retry-pushback-ms
// trailer (and clears the details). Unary reactors finish from storage
// callbacks that have no ServerContext at hand, so the status itself has to
// carry the delay to the one point that can add trailers to any call.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewRetryPushbackInterceptorFactory();

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_GRPC_STATUS_H_
