// EventTailer: how a kanband on PostgreSQL learns of committed events, its
// own and those of every other kanband on the same database, and publishes
// them to its EventHub in seq order. On SQLite the one writer publishes its
// own commits; with several writers on one database there must be one
// ordering path, and it is this one: the events table, read after the
// hub's head.
//
// Seqs become visible in order (a batch reserves its block from the counter
// row as its last statement before COMMIT, see Writer), so "seq > head" never
// skips a late commit. Wake-ups:
//   - this kanband's writer hands each commit's events over (Committed):
//     when they follow the head they are published at once, on the writer's
//     thread and without a read, so that, as on SQLite, this kanband's
//     watchers have them before its callers hear "done"; otherwise the
//     tailer reads the other replicas' commits in between first. Either way
//     they are then announced to the other replicas with a NOTIFY in a
//     short transaction of its own (a NOTIFY inside the write transaction
//     would take a database-wide lock at COMMIT and serialise every writer);
//   - a NOTIFY from another replica (LISTEN on this tailer's connection);
//   - and a poll of the counter row every poll_interval, the safety net that
//     makes a lost notification cost latency, never an event.
// The same poll applies retention to the ring (the sweeper leader deletes
// old events; the others' rings forget them here).
//
// Thread-safety: Committed and Stop are thread-safe. The callbacks run on
// the tailer's own thread.
#ifndef KANBAN_STORAGE_POSTGRES_EVENT_TAILER_H_
#define KANBAN_STORAGE_POSTGRES_EVENT_TAILER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/event_hub.h"
#include "storage/postgres/connection.h"
#include "storage/types.h"

namespace kanban::storage::postgres {

// The channel the replicas of one database NOTIFY and LISTEN on:
// "kanban_events/SCHEMA" (channels belong to the whole database, which may
// hold several kanban schemas), as a quoted identifier.
std::string EventsChannel(absl::string_view schema);

class EventTailer {
 public:
  struct Options {
    std::string target;       // The database (a --db value). Required.
    std::string schema;       // Its sessions' current_schema(). Required.
    EventHub* hub = nullptr;  // Not owned; outlives the tailer. Required.
    // Called with each run of events (whole changes, in seq order) before
    // the hub gets them. Must not block. Default: none.
    std::function<void(const std::vector<Event>&)> on_events;
    // How often the counter row is read when nothing woke the tailer.
    // Default: 250 ms.
    absl::Duration poll_interval = absl::Milliseconds(250);
    // How often the oldest kept seq is read for the ring. Default: 1 s.
    absl::Duration retention_interval = absl::Seconds(1);
    // Events read per statement. Default: 1,000.
    int read_limit = 1000;
  };

  // Connects (UNAVAILABLE naming the server when it cannot), LISTENs, and
  // starts the thread.
  static absl::StatusOr<std::unique_ptr<EventTailer>> Start(Options options);
  ~EventTailer();  // Stop.

  // This kanband's writer committed `events` (seq order, whole changes).
  // Never blocks on the database. Called on the writer thread.
  void Committed(std::vector<Event> events) ABSL_LOCKS_EXCLUDED(mu_);

  // Publishes what was handed over, then stops the thread. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  EventTailer(Options options, std::unique_ptr<PgConnection> db, std::string channel,
              int wake_fd);
  void Run();
  // Waits until something may be new: a local commit, a notification, the
  // poll interval, or Stop. Returns false once stopping.
  bool Wait(absl::Time poll_at) ABSL_LOCKS_EXCLUDED(mu_);
  // Publishes the local commits that follow the head (reading the events
  // table first when another replica's commits came in between). Returns
  // true if it published any.
  bool PublishLocal() ABSL_LOCKS_EXCLUDED(mu_);
  // Reads and publishes every committed event after the head up to `upto`.
  absl::Status CatchUp(int64_t upto) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Publish(std::vector<Event> events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  void Notify();

  // Constant after construction; the connection is used on the thread only.
  const Options options_;
  std::unique_ptr<PgConnection> db_;
  const std::string channel_;  // EventsChannel.
  const int wake_fd_;          // eventfd: Committed and Stop wake the thread.
  std::thread thread_;

  // Held while publishing to the hub: by the tailer's thread, and by the
  // writer's (which only tries it, so it never waits on a read).
  absl::Mutex publish_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  mutable absl::Mutex mu_;
  std::deque<std::vector<Event>> local_ ABSL_GUARDED_BY(mu_);
  bool notify_ ABSL_GUARDED_BY(mu_) = false;  // A local commit to announce.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kanban::storage::postgres

#endif  // KANBAN_STORAGE_POSTGRES_EVENT_TAILER_H_
