// EventHub: the committed tail of the event log in memory. The writer
// publishes each commit's events after COMMIT; watchers read the ring from
// their own position and, when they have fallen behind it, catch up from a
// reader connection instead. Memory is bounded by the ring's capacity, not by
// the number or the speed of watchers.
#ifndef KANBAN_STORAGE_EVENT_HUB_H_
#define KANBAN_STORAGE_EVENT_HUB_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "storage/types.h"

namespace kanban::storage {

class EventHub {
 public:
  using EventPtr = std::shared_ptr<const Event>;

  // `capacity`: events kept (at least one commit's worth is always kept).
  // `head`: the newest seq already committed when the hub starts.
  EventHub(size_t capacity, int64_t head);

  // Appends one commit's events (in seq order, following head()) and calls
  // the listener. Called by the writer thread only.
  void Publish(std::vector<Event> events) ABSL_LOCKS_EXCLUDED(mu_);

  // The newest published seq. Thread-safe.
  int64_t head() const ABSL_LOCKS_EXCLUDED(mu_);

  // Events the ring keeps (see the constructor). Thread-safe.
  size_t capacity() const { return capacity_; }

  enum class ReadStatus {
    kOk,      // `out` holds what the ring has after `after` (maybe nothing).
    kTooOld,  // Some events after `after` have left the ring: use the database.
  };
  // Appends to `out` the events with seq > after, whole changes only, about
  // `max` at most (a change is never cut). Thread-safe.
  ReadStatus Read(int64_t after, size_t max, std::vector<EventPtr>* out) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Retention deleted every event before `oldest` from the database: the
  // ring forgets them too, and reads after older positions are kTooOld (the
  // database then says OUT_OF_RANGE). Thread-safe.
  void ForgetBefore(int64_t oldest) ABSL_LOCKS_EXCLUDED(mu_);

  // `listener` is called after every Publish, on the writer thread, outside
  // the hub's lock; it must not block. Set once, before the first Publish.
  void SetListener(std::function<void()> listener);

 private:
  const size_t capacity_;
  std::function<void()> listener_;  // Constant after SetListener.

  mutable absl::Mutex mu_;
  std::deque<EventPtr> ring_ ABSL_GUARDED_BY(mu_);
  int64_t head_ ABSL_GUARDED_BY(mu_);
  int64_t oldest_ ABSL_GUARDED_BY(mu_) = 0;  // Nothing before it exists any more.
};

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_EVENT_HUB_H_
