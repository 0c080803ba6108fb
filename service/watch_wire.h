// The event feed's wire bytes, made once per event and shared by every
// watcher.
//
// A WatchEventsResponse on the wire is its `events` fields (field 1: a tag,
// a length, the encoded Event) followed by its `bookmark_seq` field (field 2,
// left out at zero): protobuf writes fields in field-number order. So a
// response is the concatenation of per-event encodings and a bookmark, byte
// for byte what SerializeToString gives for the same message. Each event is
// encoded once into a reference-counted gRPC slice; a watcher's response is a
// grpc::ByteBuffer holding references to those slices (and a small bookmark
// slice of its own), so no watcher copies or re-serializes an event, and
// watchers with different filters share the same per-event encodings.
#ifndef KANBAN_SERVICE_WATCH_WIRE_H_
#define KANBAN_SERVICE_WATCH_WIRE_H_

#include <grpcpp/support/slice.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "storage/event_hub.h"
#include "storage/types.h"

namespace kanban::service {

// `event` as a WatchEventsResponse.events field: tag, length, v1::Event.
// Never empty.
grpc::Slice EncodeEventField(const storage::Event& event);

// `seq` as a WatchEventsResponse.bookmark_seq field; empty for 0 (proto3
// leaves a zero out).
grpc::Slice EncodeBookmarkField(int64_t seq);

// The encodings of the newest published events, in seq order. One thread
// (the watch registry's) calls Update after each publish, before it wakes
// watchers; watchers take events only up to head(), so each is encoded once
// however many watchers send it. Thread-safe.
class WireCache {
 public:
  // Keeps at most `capacity` events (at least one publish's worth), the
  // newest; `head` is the hub's head when the cache starts (what came before
  // is not encoded here, and counts as visible).
  WireCache(size_t capacity, int64_t head);

  // Encodes what `hub` has published after head() and makes it visible. When
  // the hub no longer holds everything after head() (a burst larger than its
  // ring), forgets the cache and moves head() to the hub's head: watchers
  // then encode those events themselves. Called by one thread at a time.
  void Update(const storage::EventHub& hub) ABSL_LOCKS_EXCLUDED(mu_);

  // Moves head() to the hub's head without encoding anything, for when
  // nobody watches: a watcher that starts later encodes those events
  // itself. Called by the thread that calls Update.
  void Skip(const storage::EventHub& hub) ABSL_LOCKS_EXCLUDED(mu_);

  // Every event up to this seq may be sent; the ones still cached are in
  // Lookup. Always the end of a publish, so never inside a change.
  int64_t head() const { return head_.load(std::memory_order_acquire); }

  // For each of `events`, its encoding, or an empty slice when it is not
  // cached (older than the cache, or not yet visible). One lock for all.
  std::vector<grpc::Slice> Lookup(const std::vector<storage::EventHub::EventPtr>& events)
      const ABSL_LOCKS_EXCLUDED(mu_);

  // Events cached now (tests, metrics).
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t capacity_;
  std::atomic<int64_t> head_;

  mutable absl::Mutex mu_;
  std::deque<grpc::Slice> slices_ ABSL_GUARDED_BY(mu_);  // Consecutive seqs.
  int64_t first_seq_ ABSL_GUARDED_BY(mu_) = 0;           // Of slices_.front().
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_WATCH_WIRE_H_
