#include "storage/event_hub.h"

#include <algorithm>
#include <utility>

namespace kanban::storage {

EventHub::EventHub(size_t capacity, int64_t head)
    : capacity_(std::max<size_t>(capacity, 1)), head_(head) {}

void EventHub::SetListener(std::function<void()> listener) {
  listener_ = std::move(listener);
}

void EventHub::Publish(std::vector<Event> events) {
  if (events.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    const int64_t first_new = events.front().seq;
    for (Event& e : events) ring_.push_back(std::make_shared<const Event>(std::move(e)));
    head_ = ring_.back()->seq;
    // Evict the oldest events, but never this commit's.
    while (ring_.size() > capacity_ && ring_.front()->seq < first_new) ring_.pop_front();
  }
  if (listener_) listener_();
}

void EventHub::ForgetBefore(int64_t oldest) {
  absl::MutexLock lock(&mu_);
  oldest_ = std::max(oldest_, oldest);
  while (!ring_.empty() && ring_.front()->seq < oldest_) ring_.pop_front();
}

int64_t EventHub::head() const {
  absl::MutexLock lock(&mu_);
  return head_;
}

EventHub::ReadStatus EventHub::Read(int64_t after, size_t max,
                                    std::vector<EventPtr>* out) const {
  absl::MutexLock lock(&mu_);
  // Not `after + 1`: a client's after_seq may be INT64_MAX.
  if (after < oldest_ - 1) return ReadStatus::kTooOld;
  if (after >= head_) return ReadStatus::kOk;
  if (ring_.empty() || after + 1 < ring_.front()->seq) return ReadStatus::kTooOld;
  // Seqs are consecutive, so the position is arithmetic.
  size_t i = static_cast<size_t>(after + 1 - ring_.front()->seq);
  size_t taken = 0;
  for (; i < ring_.size(); ++i) {
    const EventPtr& e = ring_[i];
    // Stop at a change boundary once enough is taken.
    if (taken >= max && e->txn != (*out).back()->txn) break;
    out->push_back(e);
    ++taken;
  }
  return ReadStatus::kOk;
}

}  // namespace kanban::storage
