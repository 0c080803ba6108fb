// HeartbeatService over the callback API: workers extend their leases and
// say they are alive; operators list workers. Converts, calls the Store,
// finishes from its callback.
#ifndef KANBAN_SERVICE_HEARTBEAT_SERVICE_H_
#define KANBAN_SERVICE_HEARTBEAT_SERVICE_H_

#include "kanban/v1/kanban.grpc.pb.h"
#include "service/auth.h"
#include "storage/store.h"

namespace kanban::service {

class HeartbeatServiceImpl final : public v1::HeartbeatService::CallbackService {
 public:
  // `store` is not owned and must outlive the server. Thread-safe.
  // `store` and `auth` are not owned and must outlive the server.
  HeartbeatServiceImpl(storage::Store* store, const Auth* auth)
      : store_(store), auth_(auth) {}

  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx,
                                        const v1::ListWorkersRequest* request,
                                        v1::ListWorkersResponse* response) override;

 private:
  storage::Store* const store_;
  const Auth* const auth_;
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_HEARTBEAT_SERVICE_H_
