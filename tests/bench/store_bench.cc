// store_bench: CreateTask throughput of the Store (no network) in NORMAL and
// FULL, back to back in one process, with and without group commit. Prints
// tasks/s, commit batch sizes and latency percentiles, and the ratios.
//
//   store_bench [--tasks=N] [--inflight=N] [--dir=PATH] [--smoke]
//
// --inflight callers each keep one CreateTask outstanding, as gRPC handlers
// would. "FULL, max_batch=1" is the baseline without group commit: one fsync
// per write, what a naive writer would pay.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "storage/store.h"

namespace kanban::storage {
namespace {

struct Config {
  int tasks = 20000;
  int inflight = 64;
  std::string dir = "/tmp";
};

struct Result {
  std::string name;
  double tasks_per_second = 0;
  double mean_batch = 0;
  double p50_us = 0, p99_us = 0;
  int errors = 0;
};

class Run {
 public:
  Run(Store* store, const Config& config) : store_(store), config_(config) {
    latencies_.reserve(config.tasks);
  }

  // Starts `inflight` callers and waits until `tasks` creates are answered.
  void Go() {
    for (int i = 0; i < config_.inflight; ++i) Next();
    done_.WaitForNotification();
  }

  std::vector<double> latencies() {
    absl::MutexLock lock(&mu_);
    return latencies_;
  }
  int errors() const { return errors_.load(); }

 private:
  void Next() {
    int n = issued_.fetch_add(1);
    if (n >= config_.tasks) return;
    NewTask task;
    task.title = absl::StrFormat("bench task %d", n);
    task.body = "a body of modest size, as a worker's instructions would be";
    task.priority = n % 10;
    task.labels = {"bench"};
    absl::Time start = absl::Now();
    store_->CreateTask(std::move(task), [this, start](absl::StatusOr<Task> r) {
      if (!r.ok()) errors_++;
      {
        absl::MutexLock lock(&mu_);
        latencies_.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
      }
      if (answered_.fetch_add(1) + 1 == config_.tasks) {
        done_.Notify();
      } else {
        Next();  // Callbacks must not block; Submit only queues.
      }
    });
  }

  Store* const store_;
  const Config config_;
  std::atomic<int> issued_{0}, answered_{0}, errors_{0};
  absl::Notification done_;
  absl::Mutex mu_;
  std::vector<double> latencies_ ABSL_GUARDED_BY(mu_);
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

Result Measure(const std::string& name, SyncMode mode, int max_batch,
               const Config& config) {
  std::string path = absl::StrFormat("%s/store_bench_%d_%d.db", config.dir, getpid(),
                                     static_cast<int>(absl::ToUnixMicros(absl::Now())));
  Store::Options options;
  options.path = path;
  options.durability =
      *ResolveDurability(mode == SyncMode::kFull ? "full" : "normal", "");
  options.max_batch = max_batch;
  Result result;
  result.name = name;
  {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    if (!store.ok()) {
      std::fprintf(stderr, "open %s: %s\n", path.c_str(),
                   store.status().ToString().c_str());
      std::exit(1);
    }
    Run run(store->get(), config);
    absl::Time start = absl::Now();
    run.Go();
    double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    result.tasks_per_second = config.tasks / seconds;
    result.mean_batch = static_cast<double>((*store)->writer_mutations()) /
                        std::max<int64_t>(1, (*store)->writer_batches());
    std::vector<double> lat = run.latencies();
    result.p50_us = Percentile(lat, 0.50);
    result.p99_us = Percentile(lat, 0.99);
    result.errors = run.errors();
  }
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  std::printf(
      "%-24s %10.0f tasks/s   mean batch %7.1f   p50 %8.0f us   p99 %8.0f us   errors "
      "%d\n",
      name.c_str(), result.tasks_per_second, result.mean_batch, result.p50_us,
      result.p99_us, result.errors);
  std::fflush(stdout);
  return result;
}

int Main(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      size_t n = std::strlen(flag);
      return arg.compare(0, n, flag) == 0 ? arg.c_str() + n : nullptr;
    };
    if (arg == "--smoke") {
      config.tasks = 500;
      config.inflight = 16;
    } else if (const char* v = value("--tasks=")) {
      if (!absl::SimpleAtoi(v, &config.tasks) || config.tasks <= 0) return 2;
    } else if (const char* v = value("--inflight=")) {
      if (!absl::SimpleAtoi(v, &config.inflight) || config.inflight <= 0) return 2;
    } else if (const char* v = value("--dir=")) {
      config.dir = v;
    } else {
      std::fprintf(
          stderr,
          "usage: store_bench [--tasks=N] [--inflight=N] [--dir=PATH] [--smoke]\n");
      return 2;
    }
  }
  std::printf("store_bench: %d CreateTask calls, %d in flight, databases in %s\n",
              config.tasks, config.inflight, config.dir.c_str());
  Result normal = Measure("NORMAL", SyncMode::kNormal, 1024, config);
  Result full = Measure("FULL", SyncMode::kFull, 1024, config);
  Result full_single = Measure("FULL, max_batch=1", SyncMode::kFull, 1, config);
  std::printf(
      "ratio FULL/NORMAL: %.2f   group commit gain in FULL (batched/unbatched): %.2fx\n",
      full.tasks_per_second / normal.tasks_per_second,
      full.tasks_per_second / full_single.tasks_per_second);
  return normal.errors + full.errors + full_single.errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kanban::storage

int main(int argc, char** argv) { return kanban::storage::Main(argc, argv); }
