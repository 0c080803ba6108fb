#include "storage/postgres/leader_lock.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace kanban::storage::postgres {

absl::StatusOr<std::unique_ptr<LeaderLock>> LeaderLock::Open(const std::string& target,
                                                             int32_t key) {
  PgConnection::Options options;
  options.target = target;
  // The server notices a holder it can no longer reach after about
  // idle + interval * count seconds, and ends its session (and the lock).
  options.session_sql = {"SET tcp_keepalives_idle = 10",
                         "SET tcp_keepalives_interval = 5",
                         "SET tcp_keepalives_count = 3"};
  KANBAN_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> db,
                          PgConnection::Open(std::move(options)));
  return std::unique_ptr<LeaderLock>(
      new LeaderLock(std::move(db), absl::StrCat(key, ", hashtext(current_schema())")));
}

bool LeaderLock::TryHold() {
  const int64_t session = db_->session();
  if (!db_->EnsureConnected().ok()) {
    held_ = false;
    return false;
  }
  // A new session holds nothing, whatever the old one did.
  if (db_->session() != session) held_ = false;
  if (held_) {
    // The lock lives as long as the session: a statement proves it does.
    held_ = db_->QueryInt("SELECT 1").ok();
    return held_;
  }
  absl::StatusOr<std::string> taken =
      db_->QueryText(absl::StrCat("SELECT pg_try_advisory_lock(", key_, ")::text"));
  held_ = taken.ok() && *taken == "true";
  return held_;
}

void LeaderLock::Release() {
  if (!held_) return;
  held_ = false;
  (void)db_->QueryText(absl::StrCat("SELECT pg_advisory_unlock(", key_, ")::text"));
}

}  // namespace kanban::storage::postgres
