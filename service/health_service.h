// grpc.health.v1.Health, implemented on the generated descriptors so that it
// is visible through server reflection (gRPC's built-in health service is
// not, and ghz/grpcurl resolve methods by reflection). The overall service
// ("") and kanban.v1.KanbanService report SERVING until Shutdown(), or until
// the store stops accepting writes (SetNotWritable): a server that can only
// read needs its operator, and an orchestrator's health check is how it asks.
#ifndef KANBAN_SERVICE_HEALTH_SERVICE_H_
#define KANBAN_SERVICE_HEALTH_SERVICE_H_

#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace kanban::service {

class HealthWatchReactor;

class HealthServiceImpl final : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  grpc::ServerUnaryReactor* Check(
      grpc::CallbackServerContext* ctx,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* ctx,
      const grpc::health::v1::HealthCheckRequest* request) override;

  // Reports NOT_SERVING from now on and ends every Watch stream, so that
  // server shutdown does not wait for them. Thread-safe; idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Reports NOT_SERVING from now on (streams stay open). Thread-safe.
  void SetNotWritable() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class HealthWatchReactor;
  // SERVING, NOT_SERVING or SERVICE_UNKNOWN for `service`.
  ServingStatus StatusOf(const std::string& service) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unregister(HealthWatchReactor* watcher) ABSL_LOCKS_EXCLUDED(mu_);
  // Shutdown or SetNotWritable, telling every watcher.
  void Change(bool shutdown) ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool writable_ ABSL_GUARDED_BY(mu_) = true;
  std::set<HealthWatchReactor*> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_HEALTH_SERVICE_H_
