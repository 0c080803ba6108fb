#include "service/watch_registry.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/watch_reactor.h"

namespace kanban::service {

WatchRegistry::WatchRegistry(storage::EventHub* hub, size_t max_streams,
                             size_t max_per_token, absl::Duration tick)
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
}

WatchRegistry::~WatchRegistry() {
  Shutdown();
  thread_.join();
  std::vector<WatchReactor*> parked;
  {
    absl::MutexLock lock(&park_mu_);
    parked.swap(parked_);
  }
  for (WatchReactor* watcher : parked) watcher->Unref();
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
      // waiting for it are touched.
      wire_.Update(*hub_);
      std::vector<WatchReactor*> parked;
      {
        absl::MutexLock lock(&park_mu_);
        parked.swap(parked_);
      }
      for (WatchReactor* watcher : parked) {
        watcher->OnNotify();
        watcher->Unref();
      }
    }
    if (tick) {
      for (WatchReactor* watcher : Snapshot()) {
        watcher->OnTick(now);
        watcher->Unref();
      }
    }
  }
}

}  // namespace kanban::service
