// WatchRegistry: the open WatchEvents streams. One thread of its own turns
// newly published events into wire bytes once (WireCache), hands the streams
// that are waiting for them to a few wake threads (so the writer, which
// publishes, never waits on watchers), and ticks every stream for bookmarks
// and stall checks.
//
// Wake-ups cost what is waiting, not what is open: a stream that has
// nothing to send parks itself here; a publish wakes only the parked ones
// (taken in one swap under one lock). A stream that is writing is not
// touched: it looks for more when its write completes.
//
// Waking a stream starts its write on the waking thread, and gRPC sends it
// there. With one thread, 1,000 wakes are 1,000 sends in a row and the last
// watcher waits for all of them; so the parked streams are sorted by
// connection and split, whole connections to a chunk, over the wake
// threads. Streams of one connection woken together on one thread let gRPC
// put their responses into one write to the socket; that is most of the
// gain. How many threads is kanband's --watch_wake_threads (figures in the
// README, "Waking 1,000 watchers").
#ifndef KANBAN_SERVICE_WATCH_REGISTRY_H_
#define KANBAN_SERVICE_WATCH_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/watch_wire.h"
#include "storage/event_hub.h"

namespace kanban::service {

class WatchReactor;

class WatchRegistry {
 public:
  // The defaults of --max_watch_streams and --max_watch_streams_per_token.
  static constexpr size_t kDefaultMaxStreams = 10000;
  static constexpr size_t kDefaultMaxStreamsPerToken = 100;
  static constexpr absl::Duration kDefaultTick = absl::Milliseconds(100);

  // Listens to `hub` (not owned; must outlive the registry) and starts the
  // registry's thread, which ticks every `tick`. At most `max_streams`
  // streams are open at once, and at most `max_per_token` of one token
  // (streams without a principal, with auth off, count only in the total).
  // `wake_threads` wake parked streams (0: one per CPU).
  explicit WatchRegistry(storage::EventHub* hub, size_t max_streams = kDefaultMaxStreams,
                         size_t max_per_token = kDefaultMaxStreamsPerToken,
                         absl::Duration tick = kDefaultTick, int wake_threads = 0);
  ~WatchRegistry();  // Shutdown, then joins the threads.

  // Registers `watcher` (OK), or refuses it: UNAVAILABLE once shut down,
  // RESOURCE_EXHAUSTED naming --max_watch_streams or
  // --max_watch_streams_per_token when that many are open. Thread-safe.
  absl::Status Add(WatchReactor* watcher) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(WatchReactor* watcher) ABSL_LOCKS_EXCLUDED(mu_);
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);
  // Metrics: events the streams have sent (counted when a write completes).
  void CountDelivered(int events) {
    delivered_.fetch_add(events, std::memory_order_relaxed);
  }
  int64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }

  // The encoded tail of the feed. Thread-safe.
  const WireCache& wire() const { return wire_; }

  // Called by `watcher` (registered, under its own lock) when it has sent
  // everything up to `pos` and waits for more: true when it is parked and
  // will get one OnNotify once wire().head() passes `pos`; false when that
  // has happened already (look again). Thread-safe.
  bool Park(WatchReactor* watcher, int64_t pos) ABSL_LOCKS_EXCLUDED(park_mu_);

  // Ends every stream with UNAVAILABLE; later Adds fail. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the streams of token `principal` with UNAUTHENTICATED (revoked).
  void EndStreamsOf(const std::string& principal) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_, signal_mu_);
  // Sorts `parked` by connection and queues it for the wake threads in
  // chunks of whole connections.
  void QueueWakes(std::vector<WatchReactor*> parked) ABSL_LOCKS_EXCLUDED(wake_mu_);
  void WakeLoop() ABSL_LOCKS_EXCLUDED(wake_mu_);
  // The open watchers, each with a reference taken: the caller calls them
  // without holding mu_ and then Unrefs each.
  std::vector<WatchReactor*> Snapshot() ABSL_LOCKS_EXCLUDED(mu_);

  storage::EventHub* const hub_;
  const absl::Duration tick_;
  const size_t max_streams_;
  const size_t max_per_token_;

  mutable absl::Mutex mu_;
  std::set<WatchReactor*> watchers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, size_t> per_token_ ABSL_GUARDED_BY(mu_);  // Open, by principal.
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;

  // Apart from mu_, so that the publishing writer never waits for watchers.
  absl::Mutex signal_mu_;
  // True at first: what was published before the listener was set is
  // encoded by the thread's first round.
  bool published_ ABSL_GUARDED_BY(signal_mu_) = true;
  bool stop_ ABSL_GUARDED_BY(signal_mu_) = false;

  // Written by the registry's thread only (Update), read by everyone.
  WireCache wire_;

  // Taken under a watcher's lock (Park), never the other way round.
  absl::Mutex park_mu_;
  // Each holds a reference; taken by the next publish.
  std::vector<WatchReactor*> parked_ ABSL_GUARDED_BY(park_mu_);

  // Chunks of parked streams (each holding a reference) for the wake
  // threads.
  absl::Mutex wake_mu_;
  std::deque<std::vector<WatchReactor*>> wakes_ ABSL_GUARDED_BY(wake_mu_);
  bool wake_stop_ ABSL_GUARDED_BY(wake_mu_) = false;

  std::thread thread_;
  std::vector<std::thread> wakers_;
  std::atomic<int64_t> delivered_{0};
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_WATCH_REGISTRY_H_
