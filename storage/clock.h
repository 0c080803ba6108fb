// The one source of time for leases, backoff, retention and timestamps, so
// tests move time instead of sleeping.
#ifndef KANBAN_STORAGE_CLOCK_H_
#define KANBAN_STORAGE_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kanban::storage {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // The current time, truncated to whole microseconds (the stored precision).
  virtual absl::Time Now() const = 0;
};

// The process-wide real clock. Never null; not owned by the caller.
Clock* SystemClock();

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override ABSL_LOCKS_EXCLUDED(mu_);
  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_);
  void Set(absl::Time t) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_CLOCK_H_
