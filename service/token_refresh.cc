#include "service/token_refresh.h"

#include <pthread.h>

#include <utility>

namespace kanban::service {

TokenRefresh::TokenRefresh(storage::Store* store, Auth* auth, WatchRegistry* watchers,
                           const std::vector<storage::TokenRecord>& loaded,
                           absl::Duration interval)
    : store_(store), auth_(auth), watchers_(watchers), interval_(interval) {
  for (const storage::TokenRecord& token : loaded) {
    if (token.revoked_at.has_value()) revoked_.insert(token.name);
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kanban-tokens");
    Loop();
  });
}

TokenRefresh::~TokenRefresh() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void TokenRefresh::Loop() {
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stop_), interval_)) {
    mu_.Unlock();
    Refresh();
    mu_.Lock();
  }
}

void TokenRefresh::Refresh() {
  absl::StatusOr<std::vector<storage::TokenRecord>> tokens =
      storage::Await<std::vector<storage::TokenRecord>>(
          [&](auto done) { store_->ListTokens(/*include_revoked=*/true, done); });
  // The database cannot be read now: what is known stays, and the next
  // interval tries again.
  if (!tokens.ok()) return;
  auth_->Load(*tokens);
  for (const storage::TokenRecord& token : *tokens) {
    if (token.revoked_at.has_value() && revoked_.insert(token.name).second) {
      watchers_->EndStreamsOf(token.name);
    }
  }
}

}  // namespace kanban::service
