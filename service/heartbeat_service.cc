#include "service/heartbeat_service.h"

#include "service/convert.h"
#include "service/reply.h"

namespace kanban::service {

grpc::ServerUnaryReactor* HeartbeatServiceImpl::Heartbeat(
    grpc::CallbackServerContext* ctx, const v1::HeartbeatRequest* request,
    v1::HeartbeatResponse* response) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kWork, "Heartbeat");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->Heartbeat(request->worker_id(), FromProto(request->leases()),
                    Reply<std::vector<storage::LeaseStatus>>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* HeartbeatServiceImpl::ListWorkers(
    grpc::CallbackServerContext* ctx, const v1::ListWorkersRequest* request,
    v1::ListWorkersResponse* response) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kRead, "ListWorkers");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->ListWorkers(request->board(),
                      Reply<std::vector<storage::Worker>>(reactor, response), *actor);
  return reactor;
}

}  // namespace kanban::service
