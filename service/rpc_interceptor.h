// RpcInterceptor: sees every RPC's method, final status and latency, for the
// RPC metrics and the access log (--log_rpcs). It never looks at messages,
// and of the metadata only asks Auth for the name of the call's token: the
// secret itself is never logged.
#ifndef KANBAN_SERVICE_RPC_INTERCEPTOR_H_
#define KANBAN_SERVICE_RPC_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "service/auth.h"
#include "service/metrics.h"

namespace kanban::service {

// `metrics` and `auth` (not owned; may be null) must outlive the server;
// `log_rpcs` writes one INFO line per finished RPC.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcInterceptorFactory(Metrics* metrics, const Auth* auth, bool log_rpcs);

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_RPC_INTERCEPTOR_H_
