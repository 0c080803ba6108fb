// watch_bench: WatchEvents fan-out against a real kanband.
//
//   watch_bench [--kanband=PATH | --server=HOST:PORT] [--watchers=1000]
//               [--rate=100] [--seconds=10] [--idle=10000] [--per_channel=64]
//               [--dir=/tmp] [--smoke]
//
// live: --watchers from-now watches (callback API, one reactor each, one
// channel and connection per --per_channel of them) while one writer creates
// tasks at --rate events/s for --seconds. Prints deliveries/s, the delay
// from each event's commit (Event.time) to its receipt, p50/p99/max, and
// whether every watcher got every event, in order, once.
// idle: --idle watches that only wait; prints kanband's RSS growth per watch
// (only when the bench started kanband itself; read from /proc/PID/status).
//
// With --kanband (the default: the kanband built beside this program) each
// phase gets a fresh kanband on a fresh database on 127.0.0.1, so one phase's
// heap does not blur the other's figures. Exits 1 if any watcher missed an
// event or any stream failed.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/bench/kanband_child.h"
#include "kanban/v1/kanban.grpc.pb.h"

namespace kanban::bench {
namespace {

struct Config {
  std::string kanband = KANBAND_PATH;
  std::string server;  // If set, use this server instead of starting one.
  int watchers = 1000;
  double rate = 100;  // Events per second.
  double seconds = 10;
  int idle = 10000;
  int per_channel = 64;
  std::string dir = "/tmp";
};

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

// VmRSS of `pid` in KiB; -1 if unknown.
long RssKb(pid_t pid) {
  std::ifstream in(absl::StrFormat("/proc/%d/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    long kb = 0;
    if (line.rfind("VmRSS:", 0) == 0 &&
        absl::SimpleAtoi(
            absl::StripAsciiWhitespace(absl::StripSuffix(line.substr(6), "kB")), &kb)) {
      return kb;
    }
  }
  return -1;
}

// CPU seconds (user + system) used so far by `pid`; -1 if unknown.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrFormat("/proc/%d/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces.
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::vector<std::string> fields =
      absl::StrSplit(stat.substr(paren + 2), ' ', absl::SkipEmpty());
  double utime = 0, stime = 0;  // Fields 14 and 15 of proc(5), in clock ticks.
  if (fields.size() < 13 || !absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return -1;
  }
  return (utime + stime) / sysconf(_SC_CLK_TCK);
}

// Delays in 0.1 ms buckets up to 10 s (the last bucket holds the rest);
// updated from gRPC's callback threads without a lock.
class DelayHistogram {
 public:
  DelayHistogram() : buckets_(kBuckets) {}
  void Add(absl::Duration delay) {
    int64_t i = std::clamp<int64_t>(delay / absl::Microseconds(100), 0, kBuckets - 1);
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    int64_t us = absl::ToInt64Microseconds(delay);
    int64_t seen = max_us_.load(std::memory_order_relaxed);
    while (us > seen && !max_us_.compare_exchange_weak(seen, us)) {
    }
  }
  // The p-quantile in milliseconds (bucket upper bound).
  double QuantileMs(double p) const {
    int64_t total = 0;
    for (const auto& b : buckets_) total += b.load();
    int64_t want = static_cast<int64_t>(p * total), seen = 0;
    for (int64_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i].load();
      if (seen > want) return std::min((i + 1) * 0.1, MaxMs());
    }
    return 0;
  }
  double MaxMs() const { return max_us_.load() / 1000.0; }

 private:
  static constexpr int64_t kBuckets = 100001;
  std::vector<std::atomic<int64_t>> buckets_;
  std::atomic<int64_t> max_us_{0};
};

// What all the watch reactors of a phase share.
struct Shared {
  DelayHistogram* delays = nullptr;  // Null: do not measure.
  std::atomic<int> subscribed{0};    // Got their first response.
  std::atomic<int64_t> deliveries{0};
  absl::Mutex mu;
  int done ABSL_GUARDED_BY(mu) = 0;  // OnDone calls so far.
};

// One WatchEvents stream. Counts what arrives and checks the seq order.
// Fields are written only from reactions until OnDone, and read by the
// main thread only after every OnDone (Shared::done, under its mutex).
class WatchReactor final : public grpc::ClientReadReactor<v1::WatchEventsResponse> {
 public:
  WatchReactor(v1::KanbanService::Stub* stub, Shared* shared) : shared_(shared) {
    request_.set_from_now(true);
    stub->async()->WatchEvents(&ctx_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void Cancel() { ctx_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows.
    absl::Time now = absl::Now();
    if (first_bookmark_ < 0) {
      first_bookmark_ = response_.bookmark_seq();
      last_seq_ = first_bookmark_;
      shared_->subscribed.fetch_add(1, std::memory_order_relaxed);
    }
    for (const v1::Event& event : response_.events()) {
      if (event.seq() <= last_seq_) ++out_of_order_;
      last_seq_ = event.seq();
      if (shared_->delays != nullptr) {
        absl::Time time = absl::FromUnixSeconds(event.time().seconds()) +
                          absl::Nanoseconds(event.time().nanos());
        shared_->delays->Add(now - time);
      }
    }
    received_ += response_.events_size();
    shared_->deliveries.fetch_add(response_.events_size(), std::memory_order_relaxed);
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    status_ = status;
    absl::MutexLock lock(&shared_->mu);
    ++shared_->done;
  }

  int64_t first_bookmark() const { return first_bookmark_; }
  int64_t received() const { return received_; }
  int64_t out_of_order() const { return out_of_order_; }
  const grpc::Status& status() const { return status_; }

 private:
  Shared* const shared_;
  grpc::ClientContext ctx_;
  v1::WatchEventsRequest request_;
  v1::WatchEventsResponse response_;
  int64_t first_bookmark_ = -1;
  int64_t last_seq_ = 0;
  int64_t received_ = 0;
  int64_t out_of_order_ = 0;
  grpc::Status status_;
};

// `n` watch streams spread over channels of `per_channel` streams each, one
// connection per channel.
class WatchFleet {
 public:
  WatchFleet(const std::string& address, int n, int per_channel, Shared* shared)
      : shared_(shared) {
    for (int i = 0; i < n; ++i) {
      if (i % per_channel == 0) {
        grpc::ChannelArguments args;
        // Without this, channels to one address share one connection.
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        stubs_.push_back(v1::KanbanService::NewStub(grpc::CreateCustomChannel(
            address, grpc::InsecureChannelCredentials(), args)));
      }
      reactors_.push_back(std::make_unique<WatchReactor>(stubs_.back().get(), shared));
    }
  }
  ~WatchFleet() { CancelAndWait(); }

  // Cancels every stream and waits for their OnDone; afterwards the
  // reactors may be read.
  void CancelAndWait() {
    for (auto& r : reactors_) r->Cancel();
    const int n = static_cast<int>(reactors_.size());
    absl::MutexLock lock(&shared_->mu);
    auto all_done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
      return shared_->done >= n;
    };
    shared_->mu.Await(absl::Condition(&all_done));
  }

  // Waits until every stream got its first response (or ended); prints a
  // progress line each second. Returns how many are subscribed.
  int WaitSubscribed(const char* phase, absl::Duration timeout) {
    const absl::Time start = absl::Now(), deadline = start + timeout;
    absl::Time last_print = start;
    const int n = static_cast<int>(reactors_.size());
    while (shared_->subscribed.load() < n && absl::Now() < deadline && ended() < n) {
      absl::SleepFor(absl::Milliseconds(20));
      if (absl::Now() - last_print >= absl::Seconds(1)) {
        last_print = absl::Now();
        std::fprintf(stderr, "[%s] %.0f s: %d/%d watchers subscribed\n", phase,
                     absl::ToDoubleSeconds(last_print - start),
                     shared_->subscribed.load(), n);
      }
    }
    return shared_->subscribed.load();
  }

  // Streams that ended already (none should, before CancelAndWait).
  int ended() {
    absl::MutexLock lock(&shared_->mu);
    return shared_->done;
  }

  int channels() const { return static_cast<int>(stubs_.size()); }
  const std::vector<std::unique_ptr<WatchReactor>>& reactors() const { return reactors_; }

 private:
  Shared* const shared_;
  std::vector<std::unique_ptr<v1::KanbanService::Stub>> stubs_;
  std::vector<std::unique_ptr<WatchReactor>> reactors_;
};

// The seq of the newest event: the first bookmark of a from-now watch.
// Exits the program if the server cannot be watched.
int64_t Head(v1::KanbanService::Stub* stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
  v1::WatchEventsRequest request;
  request.set_from_now(true);
  auto reader = stub->WatchEvents(&ctx, request);
  v1::WatchEventsResponse response;
  int64_t head = -1;
  if (reader->Read(&response)) head = response.bookmark_seq();
  ctx.TryCancel();
  while (reader->Read(&response)) {
  }
  grpc::Status status = reader->Finish();
  if (head < 0) {
    std::fprintf(stderr, "WatchEvents failed: code %d: %s\n", status.error_code(),
                 status.error_message().c_str());
    std::exit(1);
  }
  return head;
}

// Tallies a cancelled fleet: streams that ended with another code than
// CANCELLED, and (if `expected` >= 0) watchers that did not get exactly
// `expected` events in increasing seq order. Prints them; returns the
// number of problems.
int Tally(const WatchFleet& fleet, int64_t expected) {
  int failed = 0, missed = 0, out_of_order = 0;
  std::map<std::string, int> ends;
  for (const auto& r : fleet.reactors()) {
    if (r->status().error_code() != grpc::StatusCode::CANCELLED) {
      ++failed;
      ends[absl::StrFormat("code %d: %s", r->status().error_code(),
                           r->status().error_message())]++;
    }
    if (expected >= 0 && r->received() != expected) ++missed;
    if (r->out_of_order() > 0) ++out_of_order;
  }
  for (const auto& [end, n] : ends) {
    std::printf("  %d streams ended before they were cancelled, %s\n", n, end.c_str());
  }
  if (expected >= 0) {
    std::printf("  every watcher got every event once, in order: %s",
                missed + out_of_order == 0 ? "yes\n" : "NO");
    if (missed + out_of_order > 0) {
      std::printf(" (%d of %zu got another count than %lld, %d saw seq go backwards)\n",
                  missed, fleet.reactors().size(), static_cast<long long>(expected),
                  out_of_order);
    }
  }
  return failed + missed + out_of_order;
}

// The live phase; returns the number of problems found. `server_pid` is
// -1 when the server is not ours (no server CPU figure then).
int LivePhase(const Config& config, const std::string& address, pid_t server_pid) {
  auto stub = v1::KanbanService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  DelayHistogram delays;
  Shared shared;
  shared.delays = &delays;
  const int64_t total = std::max<int64_t>(1, std::llround(config.rate * config.seconds));
  std::printf("live: %d from-now watchers on %d channels; %lld events at %.0f/s\n",
              config.watchers,
              (config.watchers + config.per_channel - 1) / config.per_channel,
              static_cast<long long>(total), config.rate);
  std::fflush(stdout);

  WatchFleet fleet(address, config.watchers, config.per_channel, &shared);
  const int subscribed = fleet.WaitSubscribed("live", absl::Seconds(60));
  int problems = config.watchers - subscribed;
  if (problems > 0)
    std::printf("  only %d of %d subscribed\n", subscribed, config.watchers);
  const int64_t start_head = Head(stub.get());

  std::atomic<int64_t> written{0}, failed{0};
  const double server_cpu = server_pid > 0 ? CpuSeconds(server_pid) : -1;
  const double own_cpu = CpuSeconds(getpid());
  const absl::Time start = absl::Now();
  std::thread writer([&] {
    for (int64_t i = 0; i < total; ++i) {
      absl::SleepFor(start + absl::Seconds(i / config.rate) - absl::Now());
      v1::CreateTaskRequest request;
      request.set_title(absl::StrFormat("watch bench %d", i));
      v1::Task task;
      grpc::ClientContext ctx;
      ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
      if (stub->CreateTask(&ctx, request, &task).ok()) {
        ++written;
      } else {
        ++failed;
      }
    }
  });

  // Progress while writing, then wait until every watcher has every event
  // (or 10 s pass without that).
  absl::Time last_print = start, drain_deadline = absl::InfiniteFuture();
  int64_t events = -1;  // Committed by the writer; known once it is done.
  while (true) {
    absl::SleepFor(absl::Milliseconds(5));
    if (events < 0 && written.load() + failed.load() == total) {
      writer.join();
      events = Head(stub.get()) - start_head;
      drain_deadline = absl::Now() + absl::Seconds(10);
    }
    if (events >= 0 && (shared.deliveries.load() >= events * subscribed ||
                        absl::Now() > drain_deadline)) {
      break;
    }
    if (absl::Now() - last_print >= absl::Seconds(1)) {
      last_print = absl::Now();
      std::fprintf(stderr, "[live] %.0f s: %lld/%lld events written, %lld deliveries\n",
                   absl::ToDoubleSeconds(last_print - start),
                   static_cast<long long>(written.load()), static_cast<long long>(total),
                   static_cast<long long>(shared.deliveries.load()));
    }
  }
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  const int64_t deliveries = shared.deliveries.load();
  std::printf(
      "  %.0f deliveries/s (%lld in %.1f s); delay commit->receipt p50 %.1f ms, "
      "p99 %.1f ms, max %.1f ms\n",
      deliveries / elapsed, static_cast<long long>(deliveries), elapsed,
      delays.QuantileMs(0.50), delays.QuantileMs(0.99), delays.MaxMs());
  std::printf(
      "  CPU over those %.1f s: kanband %s, this bench %.1f s (%d cores)\n", elapsed,
      server_pid > 0
          ? absl::StrFormat("%.1f s", CpuSeconds(server_pid) - server_cpu).c_str()
          : "not measured",
      CpuSeconds(getpid()) - own_cpu, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  if (failed.load() > 0) {
    std::printf("  %lld CreateTask calls failed\n",
                static_cast<long long>(failed.load()));
    ++problems;
  }

  fleet.CancelAndWait();
  int late = 0;  // Subscribed after the writer started.
  for (const auto& r : fleet.reactors()) late += r->first_bookmark() != start_head;
  if (late > 0) {
    std::printf("  %d watchers started at another seq than %lld\n", late,
                static_cast<long long>(start_head));
  }
  return problems + late + Tally(fleet, events);
}

// The idle phase; returns the number of problems found. `server_pid` is
// -1 when the server is not ours (no RSS figures then).
int IdlePhase(const Config& config, const std::string& address, pid_t server_pid) {
  std::printf("idle: %d from-now watchers on %d channels\n", config.idle,
              (config.idle + config.per_channel - 1) / config.per_channel);
  std::fflush(stdout);
  Shared shared;
  const long rss_before = server_pid > 0 ? RssKb(server_pid) : -1;
  WatchFleet fleet(address, config.idle, config.per_channel, &shared);
  const int subscribed = fleet.WaitSubscribed("idle", absl::Seconds(120));
  absl::SleepFor(absl::Seconds(1));  // Let the server settle.
  const long rss_after = server_pid > 0 ? RssKb(server_pid) : -1;
  int problems = config.idle - subscribed;
  if (problems > 0) std::printf("  only %d of %d subscribed\n", subscribed, config.idle);
  if (rss_before > 0 && rss_after > 0) {
    std::printf("  kanband RSS %ld KiB -> %ld KiB: %.1f KiB per idle watcher\n",
                rss_before, rss_after,
                static_cast<double>(rss_after - rss_before) / std::max(subscribed, 1));
    const double cpu = CpuSeconds(server_pid);
    absl::SleepFor(absl::Seconds(3));
    std::printf("  kanband CPU while they idle: %.0f%% of a core\n",
                (CpuSeconds(server_pid) - cpu) / 3 * 100);
  } else {
    std::printf("  kanband RSS: not measured (not started by this bench)\n");
  }
  fleet.CancelAndWait();
  return problems + Tally(fleet, -1);
}

int Main(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::vector<std::string> kv = absl::StrSplit(arg, absl::MaxSplits('=', 1));
    const std::string& key = kv[0];
    const std::string value = kv.size() > 1 ? kv[1] : "";
    bool ok = true;
    if (key == "--smoke") {
      config.watchers = 20;
      config.rate = 100;
      config.seconds = 0.2;
      config.idle = 100;
    } else if (key == "--kanband") {
      config.kanband = value;
    } else if (key == "--server") {
      config.server = value;
    } else if (key == "--watchers") {
      ok = absl::SimpleAtoi(value, &config.watchers) && config.watchers > 0;
    } else if (key == "--rate") {
      ok = absl::SimpleAtod(value, &config.rate) && config.rate > 0;
    } else if (key == "--seconds") {
      ok = absl::SimpleAtod(value, &config.seconds) && config.seconds > 0;
    } else if (key == "--idle") {
      ok = absl::SimpleAtoi(value, &config.idle) && config.idle >= 0;
    } else if (key == "--per_channel") {
      ok = absl::SimpleAtoi(value, &config.per_channel) && config.per_channel > 0;
    } else if (key == "--dir") {
      config.dir = value;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: watch_bench [--kanband=PATH | --server=HOST:PORT] "
                   "[--watchers=N] [--rate=EVENTS_PER_S] [--seconds=S] [--idle=N] "
                   "[--per_channel=N] [--dir=PATH] [--smoke]\n");
      return 2;
    }
  }
  int problems = 0;
  {
    std::unique_ptr<KanbandChild> server;
    std::string address = config.server;
    if (address.empty()) {
      server =
          std::make_unique<KanbandChild>(config.kanband, config.dir, "watch_bench_live");
      address = server->address();
    }
    problems += LivePhase(config, address, server ? server->pid() : -1);
  }
  if (config.idle > 0) {
    std::unique_ptr<KanbandChild> server;
    std::string address = config.server;
    if (address.empty()) {
      server =
          std::make_unique<KanbandChild>(config.kanband, config.dir, "watch_bench_idle");
      address = server->address();
    }
    problems += IdlePhase(config, address, server ? server->pid() : -1);
  }
  std::printf("%s\n", problems == 0 ? "OK" : "FAILED");
  return problems == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kanban::bench

int main(int argc, char** argv) { return kanban::bench::Main(argc, argv); }
