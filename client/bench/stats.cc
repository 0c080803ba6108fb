#include "client/bench/stats.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace kanban::bench {

std::string CodeName(grpc::StatusCode code) {
  // Go's codes.Code names, which ghz prints.
  static const char* const kNames[] = {"OK",
                                       "Canceled",
                                       "Unknown",
                                       "InvalidArgument",
                                       "DeadlineExceeded",
                                       "NotFound",
                                       "AlreadyExists",
                                       "PermissionDenied",
                                       "ResourceExhausted",
                                       "FailedPrecondition",
                                       "Aborted",
                                       "OutOfRange",
                                       "Unimplemented",
                                       "Internal",
                                       "Unavailable",
                                       "DataLoss",
                                       "Unauthenticated"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : absl::StrCat("Code(", i, ")");
}

std::string ErrorText(const grpc::Status& status) {
  return absl::StrCat("rpc error: code = ", CodeName(status.error_code()),
                      " desc = ", status.error_message());
}

int64_t Summary::ok() const {
  auto it = status_codes.find("OK");
  return it == status_codes.end() ? 0 : it->second;
}

namespace {

// Latency buckets: values below 2^kSubBits ns get a bucket each; above, each
// power of two is split into 2^kSubBits buckets, so a bucket is at most
// 1/64 of its value wide.
constexpr int kSubBits = 6;
constexpr int kBuckets = (64 - kSubBits) << kSubBits;

int BucketOf(int64_t ns) {
  if (ns < (1 << kSubBits)) return static_cast<int>(std::max<int64_t>(ns, 0));
  const int exp = 63 - __builtin_clzll(static_cast<uint64_t>(ns));
  const int sub = static_cast<int>((ns >> (exp - kSubBits)) & ((1 << kSubBits) - 1));
  return ((exp - kSubBits + 1) << kSubBits) + sub;
}

int64_t BucketMid(int index) {
  if (index < (1 << kSubBits)) return index;
  const int exp = (index >> kSubBits) + kSubBits - 1;
  const int64_t sub = index & ((1 << kSubBits) - 1);
  const int64_t width = int64_t{1} << (exp - kSubBits);
  return (int64_t{1} << exp) + sub * width + width / 2;
}

}  // namespace

Recorder::Recorder() : buckets_(kBuckets) {}

void Recorder::Record(absl::Duration latency, const grpc::Status& status) {
  const int64_t ns = std::max<int64_t>(0, absl::ToInt64Nanoseconds(latency));
  buckets_[std::min(BucketOf(ns), kBuckets - 1)].fetch_add(1, std::memory_order_relaxed);
  timed_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  int64_t seen = min_ns_.load(std::memory_order_relaxed);
  while (ns < seen && !min_ns_.compare_exchange_weak(seen, ns)) {
  }
  seen = max_ns_.load(std::memory_order_relaxed);
  while (ns > seen && !max_ns_.compare_exchange_weak(seen, ns)) {
  }
  if (status.ok()) {
    codes_[0].fetch_add(1, std::memory_order_relaxed);
    completed_.fetch_add(1, std::memory_order_relaxed);
  } else {
    RecordFailure(status);
  }
}

void Recorder::RecordFailure(const grpc::Status& status) {
  const int code = std::clamp(static_cast<int>(status.error_code()), 0, 16);
  codes_[code].fetch_add(1, std::memory_order_relaxed);
  completed_.fetch_add(1, std::memory_order_relaxed);
  failed_.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  ++errors_[ErrorText(status)];
}

absl::Duration Summary::Percentile(double p) const {
  int64_t total = 0;
  for (int64_t n : raw_buckets) total += n;
  if (total == 0) return absl::ZeroDuration();
  // The value of rank ceil(p * total), as ghz (and most tools) report it.
  const int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(p * total)));
  int64_t seen = 0;
  for (size_t i = 0; i < raw_buckets.size(); ++i) {
    seen += raw_buckets[i];
    if (seen >= rank) {
      absl::Duration d = absl::Nanoseconds(BucketMid(static_cast<int>(i)));
      return std::clamp(d, fastest, slowest);
    }
  }
  return slowest;
}

Summary Recorder::Summarize(absl::Duration total) const {
  Summary s;
  s.total = total;
  s.count = completed();
  s.rps = total > absl::ZeroDuration() ? s.count / absl::ToDoubleSeconds(total) : 0;
  const int64_t timed = timed_.load();
  if (timed > 0) {
    s.average = absl::Nanoseconds(sum_ns_.load() / timed);
    s.fastest = absl::Nanoseconds(min_ns_.load());
    s.slowest = absl::Nanoseconds(max_ns_.load());
  }
  s.raw_buckets.resize(kBuckets);
  for (int i = 0; i < kBuckets; ++i) s.raw_buckets[i] = buckets_[i].load();
  for (int p : {10, 25, 50, 75, 90, 95, 99}) {
    s.latency_distribution.emplace_back(p, s.Percentile(p / 100.0));
  }
  // ghz's histogram: ten equal bars from fastest to slowest.
  if (timed > 0) {
    constexpr int kBars = 10;
    const absl::Duration width = (s.slowest - s.fastest) / kBars;
    for (int b = 0; b < kBars; ++b) {
      s.histogram.push_back(Bucket{s.fastest + width * (b + 1), 0, 0});
    }
    for (int i = 0; i < kBuckets; ++i) {
      if (s.raw_buckets[i] == 0) continue;
      const absl::Duration v =
          std::clamp(absl::Nanoseconds(BucketMid(i)), s.fastest, s.slowest);
      int bar = width > absl::ZeroDuration()
                    ? static_cast<int>(absl::FDivDuration(v - s.fastest, width))
                    : 0;
      s.histogram[std::clamp(bar, 0, kBars - 1)].count += s.raw_buckets[i];
    }
    for (Bucket& b : s.histogram) b.frequency = static_cast<double>(b.count) / timed;
  }
  for (int c = 0; c < 17; ++c) {
    if (const int64_t n = codes_[c].load(); n > 0) {
      s.status_codes[CodeName(static_cast<grpc::StatusCode>(c))] = n;
    }
  }
  absl::MutexLock lock(&mu_);
  s.errors = errors_;
  return s;
}

}  // namespace kanban::bench
