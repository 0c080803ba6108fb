// A resuming watcher of the kanban event feed: follows WatchEvents and hands
// every matching event to a callback exactly once, in seq order, across
// dropped connections and server restarts.
//
//   kanban::client::WatchOptions options;
//   options.after_seq = saved_position;  // Or -1: only what happens from now.
//   kanban::client::Watcher watcher(channel, options);
//   absl::Status status = watcher.Run([](const kanban::v1::Event& event) {
//     Apply(event);
//   });
//   // OK after Stop(); OUT_OF_RANGE: the history was trimmed, re-list and
//   // start over from a fresh position.
#ifndef KANBAN_CLIENT_CPP_WATCHER_H_
#define KANBAN_CLIENT_CPP_WATCHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "kanban/v1/kanban.grpc.pb.h"

namespace kanban::client {

struct WatchOptions {
  // Board to watch. Default: "" (every board).
  std::string board;

  // Only these tasks' events. Default: empty (every task).
  std::vector<std::string> task_ids;

  // Only these kinds ("created", "moved", ...). Default: empty (every kind).
  std::vector<std::string> kinds;

  // Deliver every event with seq > after_seq; 0 is the start of the retained
  // history. -1 (or any negative) delivers only events committed after the
  // first stream was established. Default: -1.
  int64_t after_seq = -1;

  // How often the server sends a bookmark on an idle stream; bookmarks move
  // position() forward past events the filter skipped, so a resume does not
  // rescan them. Zero or less turns bookmarks off. Default: 10 s.
  absl::Duration bookmark_interval = absl::Seconds(10);

  // Pause before reconnecting after a stream failed: starts at min_backoff,
  // doubles with each failure in a row up to max_backoff, randomized to
  // between half and the whole of that (jitter), and resets once a stream
  // delivers something. Default: 100 ms and 5 s; at least 1 ms is used.
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
};

// Follows one WatchEvents feed. Thread-safe: Stop() and position() may be
// called from any thread, including from the callbacks; Run() from one
// thread at a time.
class Watcher {
 public:
  // `channel` is shared and must not be null. Its own reconnect backoff
  // (gRPC's, up to minutes by default) adds to this class's; pass channel
  // arguments GRPC_ARG_{INITIAL,MAX}_RECONNECT_BACKOFF_MS to shorten it.
  Watcher(std::shared_ptr<grpc::Channel> channel, WatchOptions options);
  ~Watcher();  // Must not run while Run() does; Stop() and wait for it first.

  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Watches until Stop() or an error that retrying cannot fix. Calls
  // `on_event` for every matching event exactly once, in increasing seq
  // order, and `on_bookmark` (optional) each time a bookmark arrives, with
  // the new position() (the point to save for a later resume). Both run on
  // the calling thread, never concurrently, and may call Stop(); after one
  // that did, no further callback is made. position() moves past an event
  // when on_event returns, and to a bookmark before on_bookmark is called.
  //
  // Reconnects from position() after UNAVAILABLE (connection failures,
  // server shutdown), a CANCELLED that Stop() did not cause (the server
  // resets a watcher that stalled, e.g. in a slow on_event),
  // RESOURCE_EXHAUSTED (too many watchers), DEADLINE_EXCEEDED, ABORTED,
  // INTERNAL (transport resets), and a stream the server ended with OK.
  //
  // Returns OK after Stop() (at once if Stop() came first); OUT_OF_RANGE
  // when the resume point is older than the server's retained history (the
  // caller must re-list and start over with a new Watcher; the message names
  // the oldest seq still available); INTERNAL if the server broke the seq
  // order; any other code the server answered with (INVALID_ARGUMENT,
  // UNIMPLEMENTED, ...).
  absl::Status Run(std::function<void(const v1::Event&)> on_event,
                   std::function<void(int64_t)> on_bookmark = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Makes Run() return OK promptly by cancelling the current stream or
  // backoff. Called from another thread, at most one more callback starts
  // before Run() returns; position() then covers exactly what was delivered.
  // Idempotent; cannot be undone.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // The resume point: the seq of the last event delivered or bookmark
  // received, whichever is greater; every matching event up to it has been
  // delivered. Starts at options.after_seq (-1 until the first response of a
  // from-now watch). A new Watcher with after_seq = position() continues
  // exactly where this one stopped.
  int64_t position() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // How one stream ended.
  struct StreamEnd {
    absl::Status status;    // The server's status, or a broken seq order.
    bool retry = false;     // Reconnecting from position() may succeed.
    bool stopped = false;   // Stop() was called; Run() returns OK.
    bool received = false;  // At least one response arrived.
  };

  // Follows one stream from position() until it ends or Stop().
  StreamEnd Follow(const std::function<void(const v1::Event&)>& on_event,
                   const std::function<void(int64_t)>& on_bookmark)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Returns false if Stop() was called; otherwise records `ctx` as the
  // stream that Stop() cancels and fills `request` from position().
  bool BeginStream(grpc::ClientContext* ctx, v1::WatchEventsRequest* request)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Moves position() up to `seq`. Returns false if Stop() was called.
  bool Advance(int64_t seq) ABSL_LOCKS_EXCLUDED(mu_);

  // Whether Stop() was called.
  bool stopped() const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits `delay` or until Stop(). Returns false if Stop() was called.
  bool SleepUnlessStopped(absl::Duration delay) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const std::unique_ptr<v1::KanbanService::Stub> stub_;
  const WatchOptions options_;

  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int64_t position_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* stream_ ABSL_GUARDED_BY(mu_) = nullptr;  // Not owned.
};

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_CPP_WATCHER_H_
