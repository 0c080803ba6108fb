#include "client/bench/idle_watchers.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iterator>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kanban/v1/kanban.grpc.pb.h"

namespace kanban::bench {
namespace {

constexpr int kStreamsPerChannel = 64;

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
  const size_t paren = stat.rfind(')');
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

// What the streams share.
struct Shared {
  absl::Mutex mu;
  int subscribed ABSL_GUARDED_BY(mu) = 0;  // Got their first response.
  int done ABSL_GUARDED_BY(mu) = 0;        // OnDone calls so far.
  int failed ABSL_GUARDED_BY(mu) = 0;      // Ended other than CANCELLED.
};

// One stream that reads and does nothing else: one read in flight, the
// next started from OnReadDone.
class IdleStream final : public grpc::ClientReadReactor<v1::WatchEventsResponse> {
 public:
  IdleStream(v1::KanbanService::Stub* stub, Shared* shared) : shared_(shared) {
    request_.set_from_now(true);
    stub->async()->WatchEvents(&ctx_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void Cancel() { ctx_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows.
    if (!subscribed_) {
      subscribed_ = true;
      absl::MutexLock lock(&shared_->mu);
      ++shared_->subscribed;
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&shared_->mu);
    ++shared_->done;
    if (status.error_code() != grpc::StatusCode::CANCELLED) ++shared_->failed;
  }

 private:
  Shared* const shared_;
  grpc::ClientContext ctx_;
  v1::WatchEventsRequest request_;
  v1::WatchEventsResponse response_;
  bool subscribed_ = false;  // Touched by reactions only.
};

}  // namespace

absl::StatusOr<std::vector<Extra>> MeasureIdleWatchers(const std::string& address, int n,
                                                       pid_t kanband_pid) {
  Shared shared;
  const long rss_before = kanband_pid > 0 ? RssKb(kanband_pid) : -1;
  std::vector<std::unique_ptr<v1::KanbanService::Stub>> stubs;
  std::vector<std::unique_ptr<IdleStream>> streams;
  for (int i = 0; i < n; ++i) {
    if (i % kStreamsPerChannel == 0) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // A connection each.
      stubs.push_back(v1::KanbanService::NewStub(
          grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
    }
    streams.push_back(std::make_unique<IdleStream>(stubs.back().get(), &shared));
  }
  int subscribed = 0;
  {
    absl::MutexLock lock(&shared.mu);
    auto ready = [&shared, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared.mu) {
      return shared.subscribed + shared.failed >= n;
    };
    shared.mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(120));
    subscribed = shared.subscribed;
  }
  std::vector<Extra> extras;
  extras.push_back(NumberExtra("idle_watchers", subscribed, absl::StrCat(subscribed)));
  if (subscribed == n) {
    absl::SleepFor(absl::Seconds(1));  // Let the server settle.
    const long rss_after = kanband_pid > 0 ? RssKb(kanband_pid) : -1;
    if (rss_before > 0 && rss_after > 0) {
      const double each = static_cast<double>(rss_after - rss_before) / n;
      extras.push_back(NumberExtra(
          "idle_watch_rss_kib_each", each,
          absl::StrFormat("%.1f KiB of kanband memory each (RSS %d -> %d KiB)", each,
                          rss_before, rss_after)));
      const double cpu = CpuSeconds(kanband_pid);
      absl::SleepFor(absl::Seconds(3));
      const double percent = (CpuSeconds(kanband_pid) - cpu) / 3 * 100;
      extras.push_back(
          NumberExtra("idle_cpu_percent", percent,
                      absl::StrFormat("%.0f%% of a core while they idle", percent)));
    } else {
      extras.push_back(StringExtra("idle_watch_rss_kib_each",
                                   "not measured (kanband not started by kanban-bench)"));
    }
  }
  for (auto& stream : streams) stream->Cancel();
  {
    absl::MutexLock lock(&shared.mu);
    auto all_done = [&shared, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared.mu) {
      return shared.done >= n;
    };
    shared.mu.Await(absl::Condition(&all_done));
  }
  if (subscribed < n) {
    return absl::UnavailableError(absl::StrFormat(
        "only %d of %d idle watchers subscribed within 120 s", subscribed, n));
  }
  return extras;
}

}  // namespace kanban::bench
