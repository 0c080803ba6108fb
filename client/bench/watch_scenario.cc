#include "client/bench/watch_scenario.h"

#include <google/protobuf/arena.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/bench/driver.h"

namespace kanban::bench {
namespace {

constexpr int kWatchersPerChannel = 64;
// Each watcher parses its responses into an arena that starts with a block
// of this size and is reset after every response: at 1,000 watchers on the
// same two cores as the server, parsing with malloc and free per string
// cost the load generator several times the server's CPU per event.
constexpr size_t kArenaBlockBytes = 16 * 1024;

// What the watch streams share.
struct Shared {
  Recorder deliveries;             // One entry per event per watcher; latency = delay.
  std::atomic<int> subscribed{0};  // Got their first response.
  std::atomic<int64_t> last_delivery_ns{0};  // absl::ToUnixNanos of the latest.
  absl::Mutex mu;
  int done ABSL_GUARDED_BY(mu) = 0;  // OnDone calls so far.
};

// One WatchEvents stream: one read in flight, the next started from
// OnReadDone. Fields are written only by reactions until OnDone, and read
// by the main thread only after every OnDone (Shared::done, under its mutex).
class Watcher final : public grpc::ClientReadReactor<v1::WatchEventsResponse> {
 public:
  Watcher(v1::KanbanService::Stub* stub, const std::string& board, Shared* shared)
      : shared_(shared),
        block_(new char[kArenaBlockBytes]),
        arena_(ArenaOptions(block_.get())),
        response_(
            google::protobuf::Arena::CreateMessage<v1::WatchEventsResponse>(&arena_)) {
    request_.set_board(board);
    request_.set_from_now(true);
    request_.add_kinds("created");
    stub->async()->WatchEvents(&ctx_, &request_, this);
    StartRead(response_);
    StartCall();
  }

  void Cancel() { ctx_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows.
    const absl::Time now = absl::Now();
    if (!subscribed_) {
      subscribed_ = true;
      shared_->subscribed.fetch_add(1, std::memory_order_relaxed);
    }
    for (const v1::Event& event : response_->events()) {
      const absl::Time committed = absl::FromUnixSeconds(event.time().seconds()) +
                                   absl::Nanoseconds(event.time().nanos());
      shared_->deliveries.Record(now - committed, grpc::Status::OK);
    }
    if (response_->events_size() > 0) {
      received_ += response_->events_size();
      ++responses_;
      const int64_t ns = absl::ToUnixNanos(now);
      int64_t seen = shared_->last_delivery_ns.load(std::memory_order_relaxed);
      while (ns > seen && !shared_->last_delivery_ns.compare_exchange_weak(seen, ns)) {
      }
    }
    // Everything the last response allocated goes at once.
    arena_.Reset();
    response_ = google::protobuf::Arena::CreateMessage<v1::WatchEventsResponse>(&arena_);
    StartRead(response_);
  }

  void OnDone(const grpc::Status& status) override {
    status_ = status;
    absl::MutexLock lock(&shared_->mu);
    ++shared_->done;
  }

  int64_t received() const { return received_; }
  int64_t responses() const { return responses_; }  // That carried events.
  const grpc::Status& status() const { return status_; }

 private:
  static google::protobuf::ArenaOptions ArenaOptions(char* block) {
    google::protobuf::ArenaOptions options;
    options.initial_block = block;
    options.initial_block_size = kArenaBlockBytes;
    return options;
  }

  Shared* const shared_;
  grpc::ClientContext ctx_;
  v1::WatchEventsRequest request_;
  std::unique_ptr<char[]> block_;  // The arena's first block, kept by Reset.
  google::protobuf::Arena arena_;
  v1::WatchEventsResponse* response_;  // On arena_.
  bool subscribed_ = false;
  int64_t received_ = 0;
  int64_t responses_ = 0;
  grpc::Status status_;
};

// The watch streams: watcher i on replica i % replicas (so that, with
// several, most events travel from the replica that wrote them to another
// before a watcher sees them), each replica's share on channels of
// kWatchersPerChannel (one connection per channel, so one busy connection
// does not hold them all).
class Fleet {
 public:
  Fleet(const Target& target, int n, const std::string& board, Shared* shared)
      : shared_(shared) {
    const int replicas = static_cast<int>(target.replicas().size());
    // The channel of each replica that takes its next watchers, and how many
    // it has.
    std::vector<v1::KanbanService::Stub*> current(replicas, nullptr);
    std::vector<int> on_current(replicas, 0);
    for (int i = 0; i < n; ++i) {
      const int r = i % replicas;
      if (current[r] == nullptr || on_current[r] == kWatchersPerChannel) {
        stubs_.push_back(v1::KanbanService::NewStub(target.NewChannel(r)));
        current[r] = stubs_.back().get();
        on_current[r] = 0;
      }
      ++on_current[r];
      watchers_.push_back(std::make_unique<Watcher>(current[r], board, shared));
    }
  }
  ~Fleet() { CancelAndWait(); }

  // Cancels every stream and waits for every OnDone; afterwards the
  // watchers may be read. Idempotent.
  void CancelAndWait() {
    for (auto& w : watchers_) w->Cancel();
    const int n = static_cast<int>(watchers_.size());
    absl::MutexLock lock(&shared_->mu);
    auto all_done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
      return shared_->done >= n;
    };
    shared_->mu.Await(absl::Condition(&all_done));
  }

  // Waits until every stream got its first response, one ended, or
  // `timeout` passed. Returns how many are subscribed.
  int WaitSubscribed(absl::Duration timeout) {
    const int n = static_cast<int>(watchers_.size());
    absl::MutexLock lock(&shared_->mu);
    auto ready = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared_->mu) {
      return shared_->subscribed.load() >= n || shared_->done > 0;
    };
    // `subscribed` is bumped outside the mutex, so poll as well as wait.
    const absl::Time deadline = absl::Now() + timeout;
    while (!ready() && absl::Now() < deadline) {
      shared_->mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(20));
    }
    return shared_->subscribed.load();
  }

  const std::vector<std::unique_ptr<Watcher>>& watchers() const { return watchers_; }

 private:
  Shared* const shared_;
  std::vector<std::unique_ptr<v1::KanbanService::Stub>> stubs_;
  std::vector<std::unique_ptr<Watcher>> watchers_;
};

}  // namespace

absl::StatusOr<Result> RunWatch(const Target& target, const Options& options) {
  Shared shared;
  Fleet fleet(target, options.watchers, options.board, &shared);
  const int subscribed = fleet.WaitSubscribed(absl::Seconds(60));
  if (subscribed < options.watchers) {
    return absl::UnavailableError(absl::StrFormat(
        "only %d of %d watchers subscribed within 60 s", subscribed, options.watchers));
  }

  // The writers: the create scenario, with the same load flags.
  absl::StatusOr<std::unique_ptr<UnaryScenario>> create =
      MakeUnaryScenario("create", &target, options);
  if (!create.ok()) return create.status();
  Recorder writes;
  Load load{options.concurrency, options.count, options.duration, options.rate};
  const absl::Time start = absl::Now();
  const absl::Duration write_time = RunLoad(
      "watch", load,
      [&](int loop, int64_t seq, Done done) {
        (*create)->Start(loop, seq, std::move(done));
      },
      &writes,
      [&] { return absl::StrCat(shared.deliveries.completed(), " deliveries"); });

  // Wait until every watcher has every event written, or 30 s pass.
  const Summary write_summary = writes.Summarize(write_time);
  const int64_t expected = write_summary.ok() * options.watchers;
  const absl::Time drain_deadline = absl::Now() + absl::Seconds(30);
  absl::Time last_print = absl::Now();
  while (shared.deliveries.completed() < expected && absl::Now() < drain_deadline) {
    absl::SleepFor(absl::Milliseconds(5));
    if (absl::Now() - last_print >= absl::Seconds(1)) {
      last_print = absl::Now();
      PrintProgress(absl::StrFormat("[watch] draining: %d of %d deliveries",
                                    shared.deliveries.completed(), expected));
    }
  }
  EndProgress();
  const absl::Time last_delivery = absl::FromUnixNanos(shared.last_delivery_ns.load());
  fleet.CancelAndWait();

  Result result;
  result.scenario = "watch";
  for (const auto& w : fleet.watchers()) {
    if (w->status().error_code() != grpc::StatusCode::CANCELLED) {
      shared.deliveries.RecordFailure(w->status());
    }
  }
  result.summary = shared.deliveries.Summarize(std::max(last_delivery, start) - start);
  int missed = 0;
  for (const auto& w : fleet.watchers()) missed += w->received() < write_summary.ok();
  if (missed > 0) {
    result.problems.push_back(
        absl::StrFormat("%d of %d watchers got fewer than the %d events written", missed,
                        options.watchers, write_summary.ok()));
  }
  if (write_summary.ok() != write_summary.count) {
    result.problems.push_back(absl::StrFormat("%d of %d CreateTask calls failed",
                                              write_summary.count - write_summary.ok(),
                                              write_summary.count));
    for (const auto& [code, n] : write_summary.status_codes) {
      if (code != "OK") result.summary.status_codes[code] += n;
    }
    for (const auto& [text, n] : write_summary.errors) result.summary.errors[text] += n;
  }
  if (shared.deliveries.failed() > 0) {
    result.problems.push_back(absl::StrFormat(
        "%d watch streams ended before they were cancelled", shared.deliveries.failed()));
  }
  auto& extras = result.extras;
  const int replicas = static_cast<int>(target.replicas().size());
  extras.push_back(NumberExtra(
      "watchers", options.watchers,
      replicas == 1 ? absl::StrCat(options.watchers)
                    : absl::StrCat(options.watchers, " (spread over ", replicas,
                                   " replicas, as are the writers)")));
  extras.push_back(NumberExtra("replicas", replicas, absl::StrCat(replicas)));
  extras.push_back(NumberExtra("events_written", write_summary.ok(),
                               absl::StrCat(write_summary.ok(), " (CreateTask, ",
                                            options.concurrency, " in flight)")));
  extras.push_back(NumberExtra("write_rps", write_summary.rps,
                               absl::StrFormat("%.2f", write_summary.rps)));
  extras.push_back(NumberExtra("write_p50_ns",
                               absl::ToInt64Nanoseconds(write_summary.Percentile(0.5)),
                               HumanDuration(write_summary.Percentile(0.5))));
  extras.push_back(NumberExtra("write_p99_ns",
                               absl::ToInt64Nanoseconds(write_summary.Percentile(0.99)),
                               HumanDuration(write_summary.Percentile(0.99))));
  // Coalescing: a watcher that is behind should get fewer, larger messages.
  int64_t responses = 0;
  for (const auto& w : fleet.watchers()) responses += w->responses();
  const double seconds = absl::ToDoubleSeconds(
      std::max(last_delivery, start + absl::Milliseconds(1)) - start);
  const double per_watcher_s =
      static_cast<double>(responses) / options.watchers / seconds;
  extras.push_back(NumberExtra(
      "responses_per_watcher_per_s", per_watcher_s,
      absl::StrFormat("%.1f (%.2f events per response)", per_watcher_s,
                      responses > 0 ? static_cast<double>(shared.deliveries.completed()) /
                                          static_cast<double>(responses)
                                    : 0.0)));
  extras.push_back(NumberExtra(
      "watchers_missing_events", missed,
      missed == 0 ? "0 (every watcher got every event)" : absl::StrCat(missed)));
  return result;
}

}  // namespace kanban::bench
