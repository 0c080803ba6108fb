// The kanband server: one Store plus the gRPC services on top of it
// (KanbanService, grpc.health.v1.Health, server reflection).
#ifndef KANBAN_SERVICE_SERVER_H_
#define KANBAN_SERVICE_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/admin_service.h"
#include "service/auth.h"
#include "service/claim_waiters.h"
#include "service/health_service.h"
#include "service/heartbeat_service.h"
#include "service/http/http_gateway.h"
#include "service/kanban_service.h"
#include "service/metrics.h"
#include "service/token_refresh.h"
#include "service/watch_registry.h"
#include "service/worker_service.h"
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
    // ---- TLS: PEM text, not file names. ----
    struct Tls {
      std::string cert_pem;       // Server certificate chain. Empty: plaintext.
      std::string key_pem;        // Its private key; required with cert_pem.
      std::string client_ca_pem;  // Non-empty: mutual TLS, clients must present
                                  // a certificate this CA signed.
    };
    Tls tls;
    // ---- Metrics and access log. ----
    // host:port for Prometheus' /metrics (port 0 picks a free one); empty
    // turns metrics off. Default: off.
    std::string metrics_listen;
    absl::Duration task_count_interval = absl::Seconds(5);  // See Metrics.
    // One INFO line per finished RPC (method, code, latency, peer).
    bool log_rpcs = false;
    // ---- Limits; the store's are in store.max_page_size and
    // store.max_writer_queue. ----
    // Largest request message accepted; gRPC refuses bigger ones with
    // RESOURCE_EXHAUSTED before any handler runs. Default: 4 MiB.
    int max_request_bytes = 4 << 20;
    // Longest ClaimTask wait accepted. Default: 30 s.
    absl::Duration max_claim_wait = KanbanServiceImpl::kDefaultMaxClaimWait;
    // Open WatchEvents streams, all clients together. Default: 10,000.
    size_t max_watch_streams = WatchRegistry::kDefaultMaxStreams;
    // Open WatchEvents streams of one token. Default: 100.
    size_t max_watch_streams_per_token = WatchRegistry::kDefaultMaxStreamsPerToken;
    // Threads waking parked WatchEvents streams. Default: 0, one per CPU.
    int watch_wake_threads = 0;
    // Serve WorkerService.Work. Default: true.
    bool worker_streams = true;
    // ---- Authentication (service/auth.h). ----
    // Bearer tokens required on every call but health and reflection.
    // Default: off. (kanband refuses a non-loopback listen address without
    // it unless told --insecure_no_auth; the Server itself does not check.)
    bool auth = false;
    // ---- The HTTP door (service/http/http_gateway.h). ----
    // host:port for the JSON API, the event stream and the web page (port 0
    // picks a free one); empty turns it off. Like `listen`, kanband refuses a
    // non-loopback address without auth. Default: off.
    std::string http_listen;
    // How often an idle HTTP event stream gets a bookmark or a keep-alive
    // comment. Default: 15 s.
    absl::Duration http_keepalive = absl::Seconds(15);
    // HTTP event streams open at once. Default: 40.
    int http_max_event_streams = 40;
    // The door's bounds against slow and idle clients (see
    // HttpGateway::Options): request (headers and body) timeout, idle
    // keep-alive timeout, connections in all and per client address.
    absl::Duration http_request_timeout = absl::Seconds(10);
    absl::Duration http_idle_timeout = absl::Seconds(15);
    int http_max_connections = 1024;
    int http_max_connections_per_peer = 128;
    // ---- Several replicas on one PostgreSQL database. ----
    // This kanband's name in GetServerInfo and the logs. Default: the
    // machine's host name and the port it serves, "HOST:PORT".
    std::string replica_id;
  };

  // Opens the store and starts serving. FAILED_PRECONDITION / UNAVAILABLE
  // when the database cannot be opened or the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(Options options);
  ~Server();  // Shuts down.

  // The bound port.
  int port() const { return port_; }
  // Options::replica_id, or the default made of the host name and port.
  const std::string& replica_id() const { return replica_id_; }
  // The bound metrics port; 0 when metrics are off.
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  // The bound HTTP port; 0 when the HTTP door is off.
  int http_port() const { return http_ ? http_->port() : 0; }
  storage::Store& store() { return *store_; }
  // Tokens that are not revoked (for the start-up log).
  size_t active_tokens() const { return auth_->active(); }

  // Stops accepting calls, lets calls in flight finish for up to `grace`
  // (then cancels them), finishes queued writes and closes the database.
  // Thread-safe; idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(10));

 private:
  Server() = default;

  std::unique_ptr<ClaimWaiters> waiters_;      // Outlives the store's callbacks.
  std::unique_ptr<WorkStreams> work_streams_;  // Likewise.
  std::unique_ptr<Auth> auth_;                 // Likewise (token callbacks).
  std::unique_ptr<Metrics> metrics_;           // Likewise; null when off.
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<WatchRegistry> watchers_;  // After store_: stops first.
  // PostgreSQL with auth: tokens other replicas create or revoke.
  std::unique_ptr<TokenRefresh> token_refresh_;
  std::unique_ptr<KanbanServiceImpl> kanban_;
  std::unique_ptr<HeartbeatServiceImpl> heartbeat_;
  std::unique_ptr<WorkerServiceImpl> worker_;
  std::unique_ptr<HealthServiceImpl> health_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<HttpGateway> http_;  // Calls grpc_ in process; stops first.
  int port_ = 0;
  std::string replica_id_;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_SERVER_H_
