// What a load run measured, and its summary in ghz's terms (count, total,
// average, fastest, slowest, RPS, latency distribution, status codes,
// errors).
#ifndef KANBAN_CLIENT_BENCH_STATS_H_
#define KANBAN_CLIENT_BENCH_STATS_H_

#include <grpcpp/grpcpp.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kanban::bench {

// ghz's name for a status code ("OK", "Unavailable", "DeadlineExceeded"...).
std::string CodeName(grpc::StatusCode code);

// ghz's text for a failed call: "rpc error: code = X desc = MESSAGE".
std::string ErrorText(const grpc::Status& status);

// One bar of ghz's response time histogram.
struct Bucket {
  absl::Duration mark;  // Upper edge.
  int64_t count = 0;
  double frequency = 0;  // count / total count.
};

// A run's summary. Durations are exact for fastest/slowest/average and
// within 1.6% for the percentiles (log-linear buckets).
struct Summary {
  int64_t count = 0;     // Completed calls, OK or not (ghz's "count").
  absl::Duration total;  // Start of the run to the last completion.
  absl::Duration average, fastest, slowest;
  double rps = 0;  // count / total, as ghz.
  std::vector<std::pair<int, absl::Duration>> latency_distribution;  // 10..99 %.
  std::vector<Bucket> histogram;
  std::map<std::string, int64_t> status_codes;  // CodeName -> calls.
  std::map<std::string, int64_t> errors;        // ErrorText -> calls.

  int64_t ok() const;
  // The p-quantile (0 < p < 1) of latency_distribution's data; 0 if empty.
  absl::Duration Percentile(double p) const;

  // Filled by Summarize; kept for Percentile.
  std::vector<int64_t> raw_buckets;
};

// Counts calls and their latencies. Thread-safe; cheap enough to call from
// every gRPC callback (atomic counters; a mutex only for error texts).
class Recorder {
 public:
  Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // A completed call: its latency counts whatever its status.
  void Record(absl::Duration latency, const grpc::Status& status);
  // A failure with no meaningful latency (a stream that ended badly).
  void RecordFailure(const grpc::Status& status);

  int64_t completed() const { return completed_.load(std::memory_order_relaxed); }
  int64_t failed() const { return failed_.load(std::memory_order_relaxed); }

  // The summary of everything recorded, over a run of length `total`.
  Summary Summarize(absl::Duration total) const;

 private:
  std::vector<std::atomic<int64_t>> buckets_;
  std::array<std::atomic<int64_t>, 17> codes_{};
  std::atomic<int64_t> completed_{0}, failed_{0};
  std::atomic<int64_t> timed_{0}, sum_ns_{0};
  std::atomic<int64_t> min_ns_{INT64_MAX}, max_ns_{0};
  mutable absl::Mutex mu_;
  std::map<std::string, int64_t> errors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kanban::bench

#endif  // KANBAN_CLIENT_BENCH_STATS_H_
