// ClaimWaiters: ClaimTask calls waiting for work. A waiter is woken by the
// commit that made a matching task claimable (fed from the Store's
// on_commit), or at its own wake time, never by polling the database. One
// matching waiter is woken per newly claimable task, so a new task does not
// send every idle worker to the writer at once; a woken claim that ends up
// with a different task (a higher-priority one) hands the task that woke it
// back with Offer, so it wakes the next matching waiter instead of being
// left behind.
#ifndef KANBAN_SERVICE_CLAIM_WAITERS_H_
#define KANBAN_SERVICE_CLAIM_WAITERS_H_

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/types.h"

namespace kanban::service {

class ClaimWaiters {
 public:
  // Called exactly once per registered waiter that is not Removed: on the
  // timer thread, or on the writer thread from OnCommit. `trigger` is the
  // task that became claimable, or null for a timer or shutdown wake-up.
  // Must not block.
  using Wake = std::function<void(const storage::Task* trigger)>;

  ClaimWaiters();   // Starts the timer thread.
  ~ClaimWaiters();  // Shutdown, then joins the timer thread.

  // Registers a waiter for a claim on `board` with `filter`'s labels and
  // assignee, which saw events up to `observed_seq`. Returns its id, or
  // nullopt (and registers nothing) when the caller should claim again at
  // once: a task on the board became claimable after `observed_seq`, or the
  // registry is shut down. `wake` runs at `wake_at` at the latest.
  std::optional<uint64_t> Add(const storage::ClaimRequest& filter, int64_t observed_seq,
                              absl::Time wake_at, Wake wake) ABSL_LOCKS_EXCLUDED(mu_);

  // True if the waiter was still registered (its Wake will never run).
  bool Remove(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes waiters for the tasks these committed events made claimable.
  void OnCommit(const std::vector<storage::Event>& events) ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes the oldest waiter that could claim `task` (READY, claimable now):
  // for a woken claim that took another task instead.
  void Offer(const storage::Task& task) ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes every waiter; later Adds return nullopt. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  bool shut_down() const ABSL_LOCKS_EXCLUDED(mu_);

  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiter {
    storage::ClaimRequest filter;
    absl::Time wake_at;
    Wake wake;
  };

  static bool Matches(const storage::ClaimRequest& filter, const storage::Task& task);
  // Picks who should claim `task` (a READY snapshot): adds the oldest
  // matching waiter's Wake to `wakes`, or, when the task is not claimable
  // until its not_before, reschedules the matching waiters to then.
  void DispatchLocked(const storage::Task& task, absl::Time now,
                      std::vector<std::pair<Wake, const storage::Task*>>* wakes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Unregisters `id` and returns its Wake.
  Wake TakeLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Reschedule(uint64_t id, absl::Time wake_at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TimerLoop() ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  // Waiter ids per board, oldest first.
  absl::flat_hash_map<std::string, std::list<uint64_t>> by_board_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, uint64_t>> by_time_ ABSL_GUARDED_BY(mu_);
  // Per board, the seq of the newest event that left a task READY.
  absl::flat_hash_map<std::string, int64_t> ready_seq_ ABSL_GUARDED_BY(mu_);

  std::thread timer_;
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_CLAIM_WAITERS_H_
