// RpcInterceptor: sees every RPC's method, final status and latency, for the
// RPC metrics and the access log (--log_rpcs). It never looks at messages or
// metadata values: bearer tokens will travel in `authorization` metadata.
#ifndef KANBAN_SERVICE_RPC_INTERCEPTOR_H_
#define KANBAN_SERVICE_RPC_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "service/metrics.h"

namespace kanban::service {

// `metrics` (not owned; may be null) must outlive the server; `log_rpcs`
// writes one INFO line per finished RPC.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcInterceptorFactory(Metrics* metrics, bool log_rpcs);

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_RPC_INTERCEPTOR_H_
