#include "service/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/stat.h>
// libmicrohttpd's header wants these first.
#include <microhttpd.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/http/http_gateway.h"  // ParseListenAddress.
#include "service/watch_registry.h"

namespace kanban::service {
namespace {

// Upper bounds in seconds: from sub-millisecond unary calls to watch streams
// that stay open for minutes.
const std::vector<double>& RpcBuckets() {
  static const auto* b =
      new std::vector<double>{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                              0.5,    1,     2.5,    5,     10,   30,    60,   300};
  return *b;
}
const std::vector<double>& CommitBuckets() {
  static const auto* b =
      new std::vector<double>{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                              0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
  return *b;
}
const std::vector<double>& BatchBuckets() {
  static const auto* b =
      new std::vector<double>{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
  return *b;
}

const char* StatusName(storage::TaskStatus status) {
  static const char* const kNames[] = {"STATUS_UNSPECIFIED",
                                       "TRIAGE",
                                       "TODO",
                                       "READY",
                                       "RUNNING",
                                       "BLOCKED",
                                       "REVIEW",
                                       "DONE",
                                       "ARCHIVED"};
  int i = static_cast<int>(status);
  return i >= 0 && i <= storage::kMaxTaskStatus ? kNames[i] : "UNKNOWN";
}

prometheus::MetricFamily MakeFamily(std::string name, std::string help,
                                    prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

prometheus::ClientMetric Value(double value, prometheus::MetricType type,
                               std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return metric;
}

double FileBytes(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<double>(st.st_size) : 0.0;
}

// "/kanban.v1.KanbanService/CreateTask" -> {"kanban.v1.KanbanService", "CreateTask"}.
std::pair<std::string, std::string> SplitMethod(absl::string_view full) {
  if (!full.empty() && full.front() == '/') full.remove_prefix(1);
  size_t slash = full.rfind('/');
  if (slash == absl::string_view::npos) return {"", std::string(full)};
  return {std::string(full.substr(0, slash)), std::string(full.substr(slash + 1))};
}

}  // namespace

// The values read at scrape time, on the metrics endpoint's event loop.
class Metrics::LiveCollector final : public prometheus::Collectable {
 public:
  explicit LiveCollector(Metrics* metrics) : metrics_(metrics) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    storage::Store* store = metrics_->store_;
    if (store == nullptr) return out;

    auto depth = MakeFamily("kanban_writer_queue_depth",
                            "Writes waiting for the writer thread.", MetricType::Gauge);
    depth.metric.push_back(
        Value(static_cast<double>(store->writer_queue_depth()), MetricType::Gauge));
    out.push_back(std::move(depth));

    if (WatchRegistry* watchers = metrics_->watchers_; watchers != nullptr) {
      auto open = MakeFamily("kanban_watch_streams", "Open WatchEvents streams.",
                             MetricType::Gauge);
      open.metric.push_back(
          Value(static_cast<double>(watchers->size()), MetricType::Gauge));
      out.push_back(std::move(open));
      auto sent = MakeFamily("kanban_watch_events_delivered_total",
                             "Events sent on WatchEvents streams.", MetricType::Counter);
      sent.metric.push_back(
          Value(static_cast<double>(watchers->delivered()), MetricType::Counter));
      out.push_back(std::move(sent));
    }

    auto tasks = MakeFamily("kanban_tasks",
                            "Tasks by board and status (refreshed every few "
                            "seconds).",
                            MetricType::Gauge);
    auto held = MakeFamily("kanban_leases_held",
                           "Leases held now (tasks RUNNING under a worker's lease).",
                           MetricType::Gauge);
    double running = 0;
    for (const storage::TaskCount& c : metrics_->CurrentTaskCounts()) {
      tasks.metric.push_back(
          Value(static_cast<double>(c.count), MetricType::Gauge,
                {{"board", c.board}, {"status", StatusName(c.status)}}));
      if (c.status == storage::TaskStatus::kRunning)
        running += static_cast<double>(c.count);
    }
    held.metric.push_back(Value(running, MetricType::Gauge));
    out.push_back(std::move(tasks));
    out.push_back(std::move(held));

    // On PostgreSQL the files are the server's (pg_database_size and its
    // own exporters tell them).
    if (!store->is_postgres()) {
      auto bytes = MakeFamily("kanban_database_bytes",
                              "Size of the database file and of its write-ahead log.",
                              MetricType::Gauge);
      bytes.metric.push_back(
          Value(FileBytes(store->path()), MetricType::Gauge, {{"file", "db"}}));
      bytes.metric.push_back(
          Value(FileBytes(store->path() + "-wal"), MetricType::Gauge, {{"file", "wal"}}));
      out.push_back(std::move(bytes));
    }

    const storage::DurabilityInfo& d = store->durability();
    auto durability = MakeFamily("kanban_durability_info",
                                 "The durability settings in force (value is always 1).",
                                 MetricType::Gauge);
    durability.metric.push_back(
        Value(1, MetricType::Gauge,
              {{"synchronous", d.synchronous},
               {"wal_autocheckpoint", absl::StrCat(d.wal_autocheckpoint)}}));
    out.push_back(std::move(durability));
    return out;
  }

 private:
  Metrics* const metrics_;
};

Metrics::Metrics(Options options)
    : options_(options), registry_(std::make_shared<prometheus::Registry>()) {
  rpcs_ = &prometheus::BuildCounter()
               .Name("kanban_rpcs_total")
               .Help("RPCs finished, by service, method and status code.")
               .Register(*registry_);
  rpc_seconds_ = &prometheus::BuildHistogram()
                      .Name("kanban_rpc_duration_seconds")
                      .Help("RPC latency (streams: how long they were open).")
                      .Register(*registry_);
  batch_size_ = &prometheus::BuildHistogram()
                     .Name("kanban_writer_batch_size")
                     .Help("Mutations committed per transaction (group commit).")
                     .Register(*registry_)
                     .Add({}, BatchBuckets());
  commit_seconds_ = &prometheus::BuildHistogram()
                         .Name("kanban_writer_commit_duration_seconds")
                         .Help("Time COMMIT took (the fsync, in FULL mode).")
                         .Register(*registry_)
                         .Add({}, CommitBuckets());
  seq_hold_seconds_ =
      &prometheus::BuildHistogram()
           .Name("kanban_writer_seq_hold_seconds")
           .Help(
               "From reserving a batch's event seqs to the end of its COMMIT: how "
               "long it held the event counter (on PostgreSQL, a row lock shared by "
               "every writer of the database).")
           .Register(*registry_)
           .Add({}, CommitBuckets());
  conflict_retries_ =
      &prometheus::BuildCounter()
           .Name("kanban_writer_conflict_retries_total")
           .Help(
               "Batches run again after losing a race with another kanband of the "
               "same PostgreSQL database (a deadlock, a serialization failure or a "
               "unique key inserted first).")
           .Register(*registry_)
           .Add({});
  leases_reclaimed_ = &prometheus::BuildCounter()
                           .Name("kanban_leases_reclaimed_total")
                           .Help("Expired leases the sweeper took back (task retried).")
                           .Register(*registry_)
                           .Add({});
  leases_gave_up_ = &prometheus::BuildCounter()
                         .Name("kanban_leases_gave_up_total")
                         .Help("Expired leases whose task was out of attempts (BLOCKED).")
                         .Register(*registry_)
                         .Add({});
  events_deleted_ = &prometheus::BuildCounter()
                         .Name("kanban_events_deleted_total")
                         .Help("Events deleted by retention.")
                         .Register(*registry_)
                         .Add({});
  http_refused_ = &prometheus::BuildCounter()
                       .Name("kanban_http_connections_refused_total")
                       .Help(
                           "HTTP door connections closed by its bounds: over "
                           "--http_max_connections_per_peer (per_peer) or "
                           "--http_max_connections (total) at accept, or without a "
                           "complete request within --http_request_timeout "
                           "(request_timeout).")
                       .Register(*registry_);
  // Present (at 0) before the first refusal, so that alerts can rate() them.
  for (const char* reason : {"per_peer", "total", "request_timeout"}) {
    http_refused_->Add({{"reason", reason}});
  }
  live_ = std::make_shared<LiveCollector>(this);
}

Metrics::~Metrics() { StopServing(); }

void Metrics::SetSources(storage::Store* store, WatchRegistry* watchers) {
  store_ = store;
  watchers_ = watchers;
}

// Served by libmicrohttpd, as the HTTP door is, rather than by
// prometheus-cpp's exposer: that is civetweb with two threads, which two
// connections that never finish their headers would take for 30 s each.
// Here every connection is on one event loop; one address may hold
// kMetricsPerPeer at once (more are closed at accept by libmicrohttpd,
// uncounted: a scraper needs one), a silent connection is closed after
// kMetricsIdle, and a request's head must fit in 16 KiB.
namespace {
constexpr unsigned int kMetricsPerPeer = 8;
constexpr unsigned int kMetricsConnections = 256;
constexpr unsigned int kMetricsIdleSeconds = 10;

MHD_Result AnswerScrape(void* cls, MHD_Connection* connection, const char* url,
                        const char* method, const char*, const char*,
                        size_t* upload_data_size, void** con_cls) {
  if (*con_cls == nullptr) {  // Headers in; a body (if any) is dropped.
    *con_cls = connection;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  std::string body;
  unsigned int status = MHD_HTTP_OK;
  const char* type = "text/plain; version=0.0.4; charset=utf-8";
  if (std::string(url) != "/metrics") {
    status = MHD_HTTP_NOT_FOUND;
    body = "not found: the metrics are at /metrics\n";
    type = "text/plain; charset=utf-8";
  } else if (std::string(method) != "GET" && std::string(method) != "HEAD") {
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
    body = "method not allowed\n";
    type = "text/plain; charset=utf-8";
  } else {
    body = static_cast<const std::function<std::string()>*>(cls)->operator()();
  }
  MHD_Response* response =
      MHD_create_response_from_buffer(body.size(), body.data(), MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(response, "Content-Type", type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
    MHD_add_response_header(response, "Allow", "GET, HEAD");
  }
  const MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}
}  // namespace

absl::Status Metrics::Serve(const std::string& listen) {
  absl::MutexLock lock(&serve_mu_);
  sockaddr_storage address;
  if (absl::Status s = ParseListenAddress("metrics_listen", listen, &address); !s.ok()) {
    return s;
  }
  scrape_ = [this] {
    std::vector<prometheus::MetricFamily> families = registry_->Collect();
    std::vector<prometheus::MetricFamily> live = live_->Collect();
    families.insert(families.end(), std::make_move_iterator(live.begin()),
                    std::make_move_iterator(live.end()));
    return prometheus::TextSerializer().Serialize(families);
  };
  unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD;
  if (address.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  MHD_Daemon* daemon = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &AnswerScrape, &scrape_,                //
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&address),        //
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, kMetricsPerPeer,                //
      MHD_OPTION_CONNECTION_LIMIT, kMetricsConnections,                   //
      MHD_OPTION_CONNECTION_TIMEOUT, kMetricsIdleSeconds,                 //
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(16 << 10),  //
      MHD_OPTION_END);
  if (daemon == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("metrics_listen: cannot serve on ", listen));
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
  port_ = info != nullptr ? info->port : 0;
  daemon_ = daemon;
  return absl::OkStatus();
}

void Metrics::StopServing() {
  absl::MutexLock lock(&serve_mu_);
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);  // Waits for a scrape in flight.
  daemon_ = nullptr;
}

void Metrics::OnRpc(absl::string_view full_method, absl::string_view code,
                    absl::Duration latency) {
  auto [service, method] = SplitMethod(full_method);
  rpcs_->Add({{"service", service}, {"method", method}, {"code", std::string(code)}})
      .Increment();
  rpc_seconds_->Add({{"service", service}, {"method", method}}, RpcBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

void Metrics::OnHttpRefused(absl::string_view reason) {
  http_refused_->Add({{"reason", std::string(reason)}}).Increment();
}

void Metrics::OnBatch(const storage::BatchStats& stats) {
  batch_size_->Observe(stats.mutations);
  commit_seconds_->Observe(absl::ToDoubleSeconds(stats.commit));
  if (stats.seq_hold > absl::ZeroDuration()) {
    seq_hold_seconds_->Observe(absl::ToDoubleSeconds(stats.seq_hold));
  }
  if (stats.conflict_retries > 0) conflict_retries_->Increment(stats.conflict_retries);
}

void Metrics::OnSweep(const storage::SweepResult& result) {
  leases_reclaimed_->Increment(result.reclaimed);
  leases_gave_up_->Increment(result.gave_up);
  events_deleted_->Increment(result.events_deleted);
}

std::vector<storage::TaskCount> Metrics::CurrentTaskCounts() {
  absl::MutexLock lock(&counts_mu_);
  const absl::Time now = absl::Now();
  if (now - counts_.read_at >= options_.task_count_interval) {
    // On the metrics endpoint's loop, never a gRPC thread: waiting for a reader is fine.
    absl::StatusOr<std::vector<storage::TaskCount>> counts =
        storage::Await<std::vector<storage::TaskCount>>(
            [&](auto done) { store_->CountTasks(done); });
    if (counts.ok()) {
      counts_.counts = *std::move(counts);
      counts_.read_at = now;
    }
  }
  return counts_.counts;
}

}  // namespace kanban::service
