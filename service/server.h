// The kanband server: one Store plus the gRPC services on top of it
// (KanbanService, grpc.health.v1.Health, server reflection).
#ifndef KANBAN_SERVICE_SERVER_H_
#define KANBAN_SERVICE_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/claim_waiters.h"
#include "service/admin_service.h"
#include "service/health_service.h"
#include "service/heartbeat_service.h"
#include "service/kanban_service.h"
#include "service/watch_registry.h"
#include "storage/store.h"

namespace kanban::service {

class Server {
 public:
  struct Options {
    // host:port; port 0 picks a free port. Default: 127.0.0.1:7300.
    std::string listen = "127.0.0.1:7300";
    storage::Store::Options store;
    // A watcher that takes no response for this long is ended. Default: 5 min.
    absl::Duration watch_stall_timeout = absl::Minutes(5);
  };

  // Opens the store and starts serving. FAILED_PRECONDITION / UNAVAILABLE
  // when the database cannot be opened or the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(Options options);
  ~Server();  // Shuts down.

  // The bound port.
  int port() const { return port_; }
  storage::Store& store() { return *store_; }

  // Stops accepting calls, lets calls in flight finish for up to `grace`
  // (then cancels them), finishes queued writes and closes the database.
  // Thread-safe; idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(10));

 private:
  Server() = default;

  std::unique_ptr<ClaimWaiters> waiters_;  // Outlives the store's callbacks.
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<WatchRegistry> watchers_;  // After store_: stops first.
  std::unique_ptr<KanbanServiceImpl> kanban_;
  std::unique_ptr<HeartbeatServiceImpl> heartbeat_;
  std::unique_ptr<HealthServiceImpl> health_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<grpc::Server> grpc_;
  int port_ = 0;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_SERVER_H_
