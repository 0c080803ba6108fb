// TokenRefresh: keeps the tokens a kanband knows in step with a database
// that several kanband share (PostgreSQL). A token is created or revoked
// through one replica, which updates its own Auth at once; every other
// replica reads the tokens table every `interval`, replaces what it knows,
// and ends the WatchEvents streams of each token revoked since its last
// read. A token is thus honoured (or refused) by every replica from its next
// call within about one interval. On SQLite, where one kanband owns the
// database, nothing needs it.
//
// Thread-safety: construction and destruction from one thread; the work
// runs on a thread of its own.
#ifndef KANBAN_SERVICE_TOKEN_REFRESH_H_
#define KANBAN_SERVICE_TOKEN_REFRESH_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/auth.h"
#include "service/watch_registry.h"
#include "storage/store.h"

namespace kanban::service {

class TokenRefresh {
 public:
  // The default interval: well inside the 1 s promised to operators.
  static constexpr absl::Duration kDefaultInterval = absl::Milliseconds(500);

  // `loaded`: the tokens `auth` was loaded with. `store`, `auth` and
  // `watchers` are not owned and must outlive this. Starts the thread.
  TokenRefresh(storage::Store* store, Auth* auth, WatchRegistry* watchers,
               const std::vector<storage::TokenRecord>& loaded,
               absl::Duration interval = kDefaultInterval);
  ~TokenRefresh();  // Stops and joins the thread.

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  void Refresh();

  // Constant after construction.
  storage::Store* const store_;
  Auth* const auth_;
  WatchRegistry* const watchers_;
  const absl::Duration interval_;
  // Used on the thread only: the revoked tokens as last read.
  absl::flat_hash_set<std::string> revoked_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_TOKEN_REFRESH_H_
