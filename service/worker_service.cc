#include "service/worker_service.h"

#include <utility>

#include "service/grpc_status.h"
#include "service/work_reactor.h"

namespace kanban::service {
namespace {

// A stream refused before it starts (authorization).
class RejectedWork final
    : public grpc::ServerBidiReactor<v1::WorkRequest, v1::WorkResponse> {
 public:
  explicit RejectedWork(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerBidiReactor<v1::WorkRequest, v1::WorkResponse>* WorkerServiceImpl::Work(
    grpc::CallbackServerContext* ctx) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kWork, "Work");
  if (!actor.ok()) return new RejectedWork(actor.status());
  auto* reactor = new WorkReactor(ctx, store_, waiters_, streams_, *std::move(actor),
                                  streams_->NextId());
  reactor->Start();
  return reactor;
}

}  // namespace kanban::service
