// Finishing unary calls from Store callbacks, shared by the services.
#ifndef KANBAN_SERVICE_REPLY_H_
#define KANBAN_SERVICE_REPLY_H_

#include <grpcpp/support/server_callback.h>

#include "service/convert.h"
#include "service/grpc_status.h"
#include "storage/store.h"

namespace kanban::service {

// The Store callback that fills `response` (with ToProto) and finishes the
// call. Runs on a storage thread; Finish does not block.
template <typename T, typename Response>
storage::Done<T> Reply(grpc::ServerUnaryReactor* reactor, Response* response) {
  return [reactor, response](absl::StatusOr<T> result) {
    if (result.ok()) ToProto(*result, response);
    reactor->Finish(ToGrpcStatus(result.status()));
  };
}

// Finishes a call at once with `status` (a request refused before any work).
inline grpc::ServerUnaryReactor* Reject(grpc::CallbackServerContext* ctx,
                                        const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_REPLY_H_
