// LeaderLock: at most one holder among the kanband processes that share one
// PostgreSQL database, for work that one of them should do at a time (the
// sweeper). It is a session-level advisory lock held on a connection of its
// own: when the holder dies (SIGKILL, crash) PostgreSQL ends its session and
// frees the lock at once, and the next TryHold of another process takes
// it. A holder cut off by the network loses it when the server's TCP
// keepalive gives up on the session (about 25 s, set per session here);
// until then nobody else holds it, and after it the work may overlap for an
// instant, so that work must be idempotent (sweeps are: see
// mutations::Sweep).
//
// Thread-safety: not thread-safe; one thread (the sweeper) uses it.
#ifndef KANBAN_STORAGE_POSTGRES_LEADER_LOCK_H_
#define KANBAN_STORAGE_POSTGRES_LEADER_LOCK_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/postgres/connection.h"

namespace kanban::storage::postgres {

// The sweeper's lock. Advisory locks belong to the whole database, so the
// key is this constant with a hash of the schema the sessions use: kanban
// deployments in different schemas of one database lead separately.
inline constexpr int32_t kSweeperLockKey = 0x6b737770;  // "kswp"

class LeaderLock {
 public:
  // Connects (UNAVAILABLE naming the server when it cannot); holds nothing
  // yet.
  static absl::StatusOr<std::unique_ptr<LeaderLock>> Open(const std::string& target,
                                                          int32_t key);

  // True while this process holds the lock: checks that the session that
  // holds it is alive, or takes the lock when it is free. False when another
  // process holds it or the server cannot be reached (then it reconnects
  // with backoff on later calls).
  bool TryHold();
  // Frees the lock if held (a fenced writer should not lead).
  void Release();
  bool held() const { return held_; }

 private:
  LeaderLock(std::unique_ptr<PgConnection> db, std::string key)
      : db_(std::move(db)), key_(std::move(key)) {}

  std::unique_ptr<PgConnection> db_;
  const std::string key_;  // "KEY, hashtext(current_schema())"
  bool held_ = false;
};

}  // namespace kanban::storage::postgres

#endif  // KANBAN_STORAGE_POSTGRES_LEADER_LOCK_H_
