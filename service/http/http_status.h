// How the HTTP door reports a gRPC status: the HTTP status code for each
// gRPC code, and the JSON error body {"code":"NOT_FOUND","message":"..."}.
// Pure functions; thread-safe.
#ifndef KANBAN_SERVICE_HTTP_HTTP_STATUS_H_
#define KANBAN_SERVICE_HTTP_HTTP_STATUS_H_

#include <grpcpp/support/status.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace kanban::service {

// INVALID_ARGUMENT and OUT_OF_RANGE 400, UNAUTHENTICATED 401,
// PERMISSION_DENIED 403, NOT_FOUND 404, ALREADY_EXISTS and ABORTED 409,
// FAILED_PRECONDITION 412, RESOURCE_EXHAUSTED 429, CANCELLED 499,
// UNIMPLEMENTED 501, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, anything else
// (INTERNAL, DATA_LOSS, UNKNOWN) 500. OK is 200.
int HttpStatusFor(grpc::StatusCode code);

// The code's canonical name: "NOT_FOUND", "FAILED_PRECONDITION", ...
absl::string_view StatusCodeName(grpc::StatusCode code);

// {"code":"<name>","message":"<message>"}, plus "oldestSeq":"<n>" when
// `oldest_seq` is given (a compacted resume point). "code" comes first;
// the message is escaped as JSON.
std::string ErrorJson(grpc::StatusCode code, absl::string_view message,
                      std::optional<int64_t> oldest_seq = std::nullopt);

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_HTTP_HTTP_STATUS_H_
