#include "service/watch_registry.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/watch_reactor.h"

namespace kanban::service {

WatchRegistry::WatchRegistry(storage::EventHub* hub, size_t max_streams,
                             size_t max_per_token, absl::Duration tick, int wake_threads)
    : hub_(hub),
      tick_(tick),
      max_streams_(max_streams),
      max_per_token_(max_per_token),
      wire_(hub->capacity(), hub->head()) {
  hub->SetListener([this] {
    absl::MutexLock lock(&signal_mu_);
    published_ = true;
  });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kanban-watch");
    Loop();
  });
  if (wake_threads <= 0) {
    wake_threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }
  for (int i = 0; i < wake_threads; ++i) {
    wakers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "kanban-wake");
      WakeLoop();
    });
  }
}

WatchRegistry::~WatchRegistry() {
  Shutdown();
  thread_.join();
  std::deque<std::vector<WatchReactor*>> wakes;
  {
    absl::MutexLock lock(&wake_mu_);
    wake_stop_ = true;
  }
  for (std::thread& waker : wakers_) waker.join();
  {
    absl::MutexLock lock(&wake_mu_);
    wakes.swap(wakes_);
  }
  std::vector<WatchReactor*> parked;
  {
    absl::MutexLock lock(&park_mu_);
    parked.swap(parked_);
  }
  for (WatchReactor* watcher : parked) watcher->Unref();
  for (const std::vector<WatchReactor*>& chunk : wakes) {
    for (WatchReactor* watcher : chunk) watcher->Unref();
  }
}

absl::Status WatchRegistry::Add(WatchReactor* watcher) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return absl::UnavailableError("server shutting down");
  // Each stream holds a reactor, a gRPC call and a place in every fan-out;
  // the bounds keep a flood of watchers from exhausting memory, and one
  // token from taking every stream.
  if (watchers_.size() >= max_streams_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("watch streams: ", watchers_.size(), " open (--max_watch_streams)"));
  }
  const std::string& principal = watcher->principal();
  if (!principal.empty() && per_token_[principal] >= max_per_token_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("watch streams: token \"", principal, "\" has ",
                     per_token_[principal], " open (--max_watch_streams_per_token)"));
  }
  watcher->Ref();  // Dropped in Remove.
  watchers_.insert(watcher);
  if (!principal.empty()) ++per_token_[principal];
  return absl::OkStatus();
}

void WatchRegistry::Remove(WatchReactor* watcher) {
  bool removed;
  {
    absl::MutexLock lock(&mu_);
    removed = watchers_.erase(watcher) > 0;
    const std::string& principal = watcher->principal();
    if (removed && !principal.empty() && --per_token_[principal] == 0) {
      per_token_.erase(principal);
    }
  }
  if (removed) watcher->Unref();
  // A parked stream that ended is not kept until the next publish.
  bool was_parked = false;
  {
    absl::MutexLock lock(&park_mu_);
    auto it = std::find(parked_.begin(), parked_.end(), watcher);
    if (it != parked_.end()) {
      *it = parked_.back();
      parked_.pop_back();
      was_parked = true;
    }
  }
  if (was_parked) watcher->Unref();
}

bool WatchRegistry::Park(WatchReactor* watcher, int64_t pos) {
  absl::MutexLock lock(&park_mu_);
  // The thread makes wire_.head() move before it takes the parked streams
  // (under park_mu_), so either this sees the new head or that sees this
  // stream: no wake-up is lost.
  if (wire_.head() > pos) return false;
  watcher->Ref();  // Dropped after the wake-up, or in Remove.
  parked_.push_back(watcher);
  return true;
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
    watcher->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    watcher->Unref();
  }
}

void WatchRegistry::EndStreamsOf(const std::string& principal) {
  for (WatchReactor* watcher : Snapshot()) {
    if (watcher->principal() == principal) {
      watcher->End(grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          absl::StrCat("authorization: token \"", principal, "\" was revoked")));
    }
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
    if (published) {
      // Encoded once here, before anyone is woken; then only the streams
      // waiting for it are touched. With no stream open nothing is encoded
      // (a stream that opens later encodes what it sends of these).
      if (size() == 0) {
        wire_.Skip(*hub_);
      } else {
        wire_.Update(*hub_);
      }
      std::vector<WatchReactor*> parked;
      {
        absl::MutexLock lock(&park_mu_);
        parked.swap(parked_);
      }
      if (!parked.empty()) QueueWakes(std::move(parked));
    }
    if (tick) {
      for (WatchReactor* watcher : Snapshot()) {
        watcher->OnTick(now);
        watcher->Unref();
      }
    }
  }
}

void WatchRegistry::QueueWakes(std::vector<WatchReactor*> parked) {
  std::sort(parked.begin(), parked.end(), [](WatchReactor* a, WatchReactor* b) {
    return a->connection() < b->connection();
  });
  const size_t per_chunk = (parked.size() + wakers_.size() - 1) / wakers_.size();
  std::vector<std::vector<WatchReactor*>> chunks;
  for (size_t begin = 0; begin < parked.size();) {
    size_t end = std::min(parked.size(), begin + per_chunk);
    // Whole connections: a chunk ends where a connection does.
    while (end < parked.size() &&
           parked[end]->connection() == parked[end - 1]->connection()) {
      ++end;
    }
    chunks.emplace_back(parked.begin() + begin, parked.begin() + end);
    begin = end;
  }
  absl::MutexLock lock(&wake_mu_);
  for (std::vector<WatchReactor*>& chunk : chunks) wakes_.push_back(std::move(chunk));
}

void WatchRegistry::WakeLoop() {
  while (true) {
    std::vector<WatchReactor*> chunk;
    {
      absl::MutexLock lock(&wake_mu_);
      wake_mu_.Await(absl::Condition(
          +[](WatchRegistry* r) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return r->wake_stop_ || !r->wakes_.empty();
          },
          this));
      if (wake_stop_) return;  // The destructor lets go of what is left.
      chunk = std::move(wakes_.front());
      wakes_.pop_front();
    }
    for (WatchReactor* watcher : chunk) {
      watcher->OnNotify();
      watcher->Unref();
    }
  }
}

}  // namespace kanban::service
