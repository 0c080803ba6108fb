// Metrics: kanband's Prometheus metrics, served in the text format at
// http://<--metrics_listen>/metrics by libmicrohttpd (its own event loop;
// see Serve in metrics.cc for its bounds on clients). Counters and histograms are updated
// where things happen (RPC interceptor, writer, sweeper); gauges that describe state
// (queue depth, open streams, task counts, file sizes) are read at scrape time.
//
// Thread-safety: every method is thread-safe.
#ifndef KANBAN_SERVICE_METRICS_H_
#define KANBAN_SERVICE_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/store.h"
#include "storage/types.h"

struct MHD_Daemon;

namespace prometheus {
class Counter;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace kanban::service {

class WatchRegistry;

class Metrics {
 public:
  struct Options {
    // Task counts (kanban_tasks, kanban_leases_held) are read from the
    // database at most this often; scrapes in between reuse the last count.
    // Default: 5 s.
    absl::Duration task_count_interval = absl::Seconds(5);
  };
  explicit Metrics(Options options);
  ~Metrics();  // Stops serving first.

  // Where scrape-time values come from; not owned, must stay valid until
  // StopServing. Call before Serve.
  void SetSources(storage::Store* store, WatchRegistry* watchers);

  // Starts the HTTP endpoint on host:port (port 0 picks a free one).
  // UNAVAILABLE if it cannot bind.
  absl::Status Serve(const std::string& listen);
  // The bound port, or 0 when not serving.
  int port() const { return port_; }
  // Stops the HTTP endpoint (waits for scrapes in flight). Idempotent.
  void StopServing();

  // ---- Events, from any thread; never block. ----
  // `full_method` is gRPC's "/package.Service/Method"; `code` its status name.
  void OnRpc(absl::string_view full_method, absl::string_view code,
             absl::Duration latency);
  void OnBatch(const storage::BatchStats& stats);
  void OnSweep(const storage::SweepResult& result);
  // The HTTP door closed a connection: beyond a cap ("per_peer", "total")
  // or past --http_request_timeout ("request_timeout").
  void OnHttpRefused(absl::string_view reason);

 private:
  class LiveCollector;

  struct TaskCounts {
    absl::Time read_at = absl::InfinitePast();
    std::vector<storage::TaskCount> counts;
  };
  // The cached task counts, re-read when older than task_count_interval.
  std::vector<storage::TaskCount> CurrentTaskCounts() ABSL_LOCKS_EXCLUDED(counts_mu_);

  const Options options_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* rpcs_;
  prometheus::Family<prometheus::Histogram>* rpc_seconds_;
  prometheus::Histogram* batch_size_;
  prometheus::Histogram* commit_seconds_;
  prometheus::Histogram* seq_hold_seconds_;
  prometheus::Counter* conflict_retries_;
  prometheus::Counter* leases_reclaimed_;
  prometheus::Counter* leases_gave_up_;
  prometheus::Counter* events_deleted_;
  prometheus::Family<prometheus::Counter>* http_refused_;
  std::shared_ptr<LiveCollector> live_;

  storage::Store* store_ = nullptr;  // Set before Serve.
  WatchRegistry* watchers_ = nullptr;

  absl::Mutex counts_mu_;  // Held across the read: one query at a time.
  TaskCounts counts_ ABSL_GUARDED_BY(counts_mu_);

  absl::Mutex serve_mu_;
  MHD_Daemon* daemon_ ABSL_GUARDED_BY(serve_mu_) = nullptr;
  std::function<std::string()> scrape_;  // Set by Serve: the text of /metrics.
  int port_ = 0;
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_METRICS_H_
