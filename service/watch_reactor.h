// One WatchEvents stream. Reads committed events after its position from the
// EventHub's ring, or, when it has fallen behind the ring, from a reader
// connection (never on a gRPC thread, never through the writer); filters
// them; one write in flight; bookmarks when idle; ends a stalled stream.
// Decisions are made under the reactor's lock and carried out (StartWrite,
// Finish, database reads) outside it.
//
// It writes pre-encoded bytes (see watch_wire.h): a response is the cached
// encodings of the events it takes plus its bookmark, byte for byte the
// WatchEventsResponse a protobuf writer would produce. Everything ready when
// a write can start goes into that one write (up to max_response_bytes), so
// a stream that is behind sends fewer, larger messages. With nothing to
// send it parks with the registry, which wakes it after the next publish.
#ifndef KANBAN_SERVICE_WATCH_REACTOR_H_
#define KANBAN_SERVICE_WATCH_REACTOR_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/slice.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/store.h"

namespace kanban::service {

class WatchRegistry;

struct WatchFilter {
  std::string board;  // Empty: all boards.
  // The caller's token's boards (see storage::Actor); empty: all.
  std::vector<std::string> boards;
  std::set<std::string> task_ids;
  std::set<std::string> kinds;
  bool Matches(const storage::Event& event) const;
};

class WatchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  struct Options {
    absl::Duration bookmark_interval = absl::Seconds(10);  // Zero: none.
    absl::Duration stall_timeout = absl::Minutes(5);
    // A response holds everything ready, closed at the first change
    // boundary past this size, so it stays under clients' default 4 MB
    // message limit (a single change larger than that still goes whole).
    size_t max_response_bytes = 1 << 20;
    size_t read_chunk = 512;   // Events per read of the ring.
    int catch_up_batch = 512;  // Events per database read.
    // The caller's token name ("" with auth off): the registry counts
    // streams per token and ends them when the token is revoked.
    std::string principal;
  };

  // `after_seq` empty means "from now". Everything passed must outlive the
  // call. The reactor deletes itself in OnDone.
  WatchReactor(grpc::CallbackServerContext* ctx, storage::Store* store,
               WatchRegistry* registry, WatchFilter filter,
               std::optional<int64_t> after_seq, Options options);

  // Registers with the registry and sends the first response.
  void Start() ABSL_LOCKS_EXCLUDED(mu_);

  // From the registry's thread, once after Park: new events are encoded.
  void OnNotify() ABSL_LOCKS_EXCLUDED(mu_);
  // From the registry's thread, every tick: bookmarks and stall checks.
  void OnTick(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // From the registry: the server is shutting down, or the stream's token
  // was revoked; end the stream with `status` (after what is being sent).
  void End(grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& principal() const { return options_.principal; }
  // Which client connection the stream is on (a hash of the peer address):
  // the registry wakes the streams of one connection together.
  size_t connection() const { return connection_; }

  // Lifetime: gRPC holds one reference until OnDone, the registry one while
  // the watcher is registered, and the registry's thread one per call it
  // makes; the last Unref deletes the reactor.
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnCancel() override ABSL_LOCKS_EXCLUDED(mu_);
  void OnDone() override;

 private:
  // What Plan decided; Execute carries it out without the lock.
  struct Action {
    bool write = false;
    std::optional<int64_t> read_after;  // Catch up from the database.
    std::optional<grpc::Status> finish;
    std::optional<int64_t> oldest_seq;  // Trailing metadata with an OUT_OF_RANGE.
    bool cancel = false;                // Cancel the call (stalled).
  };

  Action Plan() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Execute(const Action& action) ABSL_LOCKS_EXCLUDED(mu_);
  // Adds `event` to the response being built if it matches (as `encoded`,
  // or encoded here when that is empty) and advances pos_ past it.
  void Take(const storage::Event& event, grpc::Slice encoded)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True when response_ is full and `next` starts another change.
  bool Full(const storage::Event& next) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ClearResponse() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Action StartWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Action FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnCatchUp(absl::StatusOr<std::vector<storage::Event>> events)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  grpc::CallbackServerContext* const ctx_;
  storage::Store* const store_;
  WatchRegistry* const registry_;
  const WatchFilter filter_;
  const Options options_;
  const size_t connection_;

  std::atomic<int> refs_{1};

  absl::Mutex mu_;
  int64_t pos_ ABSL_GUARDED_BY(mu_) = 0;  // Everything up to here was handled.
  // The response being built: its events' encodings, in order.
  std::vector<grpc::Slice> slices_ ABSL_GUARDED_BY(mu_);
  size_t response_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int response_events_ ABSL_GUARDED_BY(mu_) = 0;
  // The response being written (not touched while writing_), and its events.
  grpc::ByteBuffer buffer_ ABSL_GUARDED_BY(mu_);
  int buffer_events_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_txn_ ABSL_GUARDED_BY(mu_) = 0;  // Of the last event taken.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;  // A database read is in flight.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool parked_ ABSL_GUARDED_BY(mu_) = false;  // Waiting for OnNotify.
  bool first_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool bookmark_due_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_pending_ ABSL_GUARDED_BY(mu_);
  std::optional<int64_t> pending_oldest_ ABSL_GUARDED_BY(mu_);
  absl::Time write_started_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sent_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_WATCH_REACTOR_H_
