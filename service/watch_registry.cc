#include "service/watch_registry.h"

#include <pthread.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "service/watch_reactor.h"

namespace kanban::service {

WatchRegistry::WatchRegistry(storage::EventHub* hub, size_t max_streams,
                             absl::Duration tick)
    : tick_(tick), max_streams_(max_streams) {
  hub->SetListener([this] {
    absl::MutexLock lock(&signal_mu_);
    published_ = true;
  });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kanban-watch");
    Loop();
  });
}

WatchRegistry::~WatchRegistry() {
  Shutdown();
  thread_.join();
}

absl::Status WatchRegistry::Add(WatchReactor* watcher) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return absl::UnavailableError("server shutting down");
  // Each stream holds a reactor, a gRPC call and a place in every fan-out;
  // the bound keeps a flood of watchers from exhausting memory. (A per-token
  // bound belongs here too once calls carry a principal: count per
  // principal beside watchers_ and refuse the same way.)
  if (watchers_.size() >= max_streams_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("watch streams: ", watchers_.size(), " open (--max_watch_streams)"));
  }
  watcher->Ref();  // Dropped in Remove.
  watchers_.insert(watcher);
  return absl::OkStatus();
}

void WatchRegistry::Remove(WatchReactor* watcher) {
  bool removed;
  {
    absl::MutexLock lock(&mu_);
    removed = watchers_.erase(watcher) > 0;
  }
  if (removed) watcher->Unref();
}

size_t WatchRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return watchers_.size();
}

std::vector<WatchReactor*> WatchRegistry::Snapshot() {
  absl::MutexLock lock(&mu_);
  std::vector<WatchReactor*> watchers(watchers_.begin(), watchers_.end());
  for (WatchReactor* watcher : watchers) watcher->Ref();
  return watchers;
}

void WatchRegistry::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
  }
  {
    absl::MutexLock lock(&signal_mu_);
    stop_ = true;
  }
  for (WatchReactor* watcher : Snapshot()) {
    watcher->OnShutdown();
    watcher->Unref();
  }
}

void WatchRegistry::Loop() {
  absl::Time next_tick = absl::Now() + tick_;
  while (true) {
    bool published;
    {
      absl::MutexLock lock(&signal_mu_);
      signal_mu_.AwaitWithDeadline(
          absl::Condition(
              +[](WatchRegistry* r)
                   ABSL_NO_THREAD_SAFETY_ANALYSIS { return r->published_ || r->stop_; },
              this),
          next_tick);
      if (stop_) return;
      published = std::exchange(published_, false);
    }
    const absl::Time now = absl::Now();
    const bool tick = now >= next_tick;
    if (tick) next_tick = now + tick_;
    if (!published && !tick) continue;
    for (WatchReactor* watcher : Snapshot()) {
      if (published) watcher->OnNotify();
      if (tick) watcher->OnTick(now);
      watcher->Unref();
    }
  }
}

}  // namespace kanban::service
