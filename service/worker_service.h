// WorkerService over the callback API: one Work stream per worker process
// (see service/work_reactor.h), registered in a WorkStreams.
#ifndef KANBAN_SERVICE_WORKER_SERVICE_H_
#define KANBAN_SERVICE_WORKER_SERVICE_H_

#include "kanban/v1/kanban.grpc.pb.h"
#include "service/auth.h"
#include "service/claim_waiters.h"
#include "service/work_streams.h"
#include "storage/store.h"

namespace kanban::service {

class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  // Nothing passed is owned; all must outlive the server.
  WorkerServiceImpl(storage::Store* store, const Auth* auth, ClaimWaiters* waiters,
                    WorkStreams* streams)
      : store_(store), auth_(auth), waiters_(waiters), streams_(streams) {}

  grpc::ServerBidiReactor<v1::WorkRequest, v1::WorkResponse>* Work(
      grpc::CallbackServerContext* ctx) override;

 private:
  storage::Store* const store_;
  const Auth* const auth_;
  ClaimWaiters* const waiters_;
  WorkStreams* const streams_;
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_WORKER_SERVICE_H_
