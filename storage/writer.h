// The single writer: one thread owns the read-write connection, takes every
// queued mutation, applies them in one transaction (one failure does not
// sink the batch: a mutation that fails after writing sends the batch back
// to run with a savepoint each), commits once (one fsync per batch in
// FULL mode), publishes the batch's events, and hands the answers to a
// second thread, which calls each caller back. Answering (for gRPC: sending
// the response) then overlaps the next batch instead of delaying it, and so
// does a WAL checkpoint, which runs after the answers are handed over.
//
// Some failures end writing for good (the writer is "fenced"): a failed
// fsync, after which neither the page cache nor the file can be trusted
// (PostgreSQL's fsync lesson: retrying the sync would "succeed" and
// acknowledge writes the kernel already dropped), and corruption. Every
// later write is refused with UNAVAILABLE; reads go on; a restart is the
// way out. Busy/locked and other transient I/O errors only fail their batch.
//
// The same writer runs on both backends (storage/db.h). A batch's events are
// inserted last, after every mutation ran, with one block of seqs reserved
// by the batch's last statement before COMMIT: on PostgreSQL an UPDATE of
// the event_counter row, whose lock then orders the commits of every writer
// of the database, so seqs are dense and become visible in order and a
// reader asking for seq > cursor never skips a late commit. On a server
// connection that broke, the batch in flight fails UNAVAILABLE and the next
// one reconnects first (Connection::EnsureConnected). A batch that lost a
// race with another writer of the database (IsWriteConflict: a deadlock, a
// serialization failure, a unique key inserted first) runs again, whole,
// after a short random pause, at most kMaxConflictRetries times.
#ifndef KANBAN_STORAGE_WRITER_H_
#define KANBAN_STORAGE_WRITER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/clock.h"
#include "storage/db.h"
#include "storage/types.h"

namespace kanban::storage {

// What a mutation sees while it runs on the writer thread.
class WriteContext {
 public:
  WriteContext(Connection& db, absl::Time now, absl::BitGen& gen)
      : db_(db), now_(now), gen_(gen) {}
  Connection& db() { return db_; }
  // One timestamp per mutation, from the store's clock.
  absl::Time now() const { return now_; }
  absl::BitGen& gen() { return gen_; }
  // Who asked for this mutation (Store::Write sets it): recorded in its
  // events, and limits the boards and leases it may touch.
  const Actor& actor() const { return *actor_; }
  void set_actor(const Actor* actor) { actor_ = actor; }
  // Records an event row this mutation wrote, for publication after commit.
  void AddEvent(Event event) { events_.push_back(std::move(event)); }
  const std::vector<Event>& events() const { return events_; }
  std::vector<Event> TakeEvents() { return std::move(events_); }

 private:
  Connection& db_;
  absl::Time now_;
  absl::BitGen& gen_;
  const Actor* actor_ = &kAnyone;
  std::vector<Event> events_;
  static inline const Actor kAnyone{};
};

// What one committed batch cost (Writer::Options::on_batch).
struct BatchStats {
  int mutations = 0;
  absl::Duration commit;  // The COMMIT: the fsync (WAL flush) in FULL.
  // From reserving the batch's event seqs to the end of its COMMIT: how
  // long it held the event counter, which on PostgreSQL is a row lock that
  // every writer of the database queues on. Zero when it wrote no events.
  absl::Duration seq_hold;
  // Times the batch ran again after losing a race with another writer of
  // the database (see IsWriteConflict); at most Writer::kMaxConflictRetries.
  int conflict_retries = 0;
};

class Writer {
 public:
  struct Options {
    Clock* clock = SystemClock();  // Not owned. Default: the system clock.
    int max_batch = 1024;          // Mutations per transaction. Default: 1024.
    // Called on the writer thread after each commit that wrote events, with
    // those events in seq order. Must not block. Default: none.
    std::function<void(std::vector<Event>)> on_commit;
    // Called once, when the writer is fenced, with the reason (the status
    // later writes get). Must not block or call back into the writer.
    std::function<void(const absl::Status&)> on_fenced;
    // Called on the writer thread after each committed batch of mutations,
    // with its size and timings. Must not block. Default: none.
    std::function<void(const BatchStats&)> on_batch;
    // Most mutations waiting for the writer thread (the batch being applied
    // does not count). Submit beyond it is refused at once with UNAVAILABLE
    // carrying kRetryPushbackPayload, so a flood of writes is pushed back on
    // the callers instead of growing memory without bound. SubmitAlone (a
    // backup step) is never refused for it. Default: 10,000.
    size_t max_queue = 10000;
  };
  // On a "writer queue full" status: how long (decimal milliseconds) the
  // caller should wait before retrying; the service layer sends it as the
  // grpc-retry-pushback-ms trailer.
  static constexpr char kRetryPushbackPayload[] = "kanban.retry_pushback_ms";
  // Most runs of a batch again after write conflicts (IsWriteConflict);
  // after them its callers get the conflict (ABORTED).
  static constexpr int kMaxConflictRetries = 10;

  // Runs on the writer thread inside the batch's transaction and a savepoint
  // of its own. A non-OK status rolls back just this mutation.
  using Apply = std::function<absl::Status(WriteContext&)>;
  // Runs on the answering thread after the batch committed (or failed), with
  // the mutation's own error, the commit's error, or OK; callbacks run in
  // submission order. Must not block.
  using Finish = std::function<void(absl::Status)>;

  // Takes ownership of `db` and starts the writer thread.
  Writer(std::unique_ptr<Connection> db, Options options);
  // Closes (see Close).
  ~Writer();

  // Queues a mutation. Thread-safe. After Close, or when max_queue
  // mutations are already waiting, `finish` is called at once (on the
  // calling thread) with UNAVAILABLE.
  void Submit(Apply apply, Finish finish) ABSL_LOCKS_EXCLUDED(mu_);

  // Runs on the writer thread between two batches, outside any transaction
  // (for work that must see only committed pages, such as a backup step).
  using Alone = std::function<absl::Status(Connection&)>;
  // Queues `alone` behind what is queued now; `finish` as for Submit.
  void SubmitAlone(Alone alone, Finish finish) ABSL_LOCKS_EXCLUDED(mu_);

  // Applies everything already queued, then stops the thread and, unless
  // told otherwise, closes the connection. Idempotent. Thread-safe; must not
  // be called from `finish`.
  void Close(bool close_database = true) ABSL_LOCKS_EXCLUDED(mu_);
  // Closes the connection after Close(false). SQLite checkpoints the WAL
  // into the database and deletes it when the last connection closes, and
  // only a writable connection can: the Store closes its read-only readers
  // first and this one last. Idempotent.
  void CloseDatabase() ABSL_LOCKS_EXCLUDED(mu_);

  // Stops all writing from now on because of `cause` (a failed fsync, or
  // corruption seen by any connection). The first call wins. Thread-safe.
  void Fence(const absl::Status& cause) ABSL_LOCKS_EXCLUDED(mu_);
  // OK while writes are accepted; else the status they are refused with.
  absl::Status failure() const ABSL_LOCKS_EXCLUDED(mu_);

  // Totals since start, for tests and metrics. Thread-safe.
  int64_t batches() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t mutations() const ABSL_LOCKS_EXCLUDED(mu_);
  // Jobs waiting for the writer thread now (metrics). Thread-safe.
  size_t queue_depth() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Job {
    Apply apply;  // Empty for an Alone job.
    Alone alone;
    Finish finish;
  };
  void Enqueue(Job job) ABSL_LOCKS_EXCLUDED(mu_);

  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  void ApplyBatch(std::vector<Job>& batch);
  // Applies `batch` in the open transaction, each mutation in a savepoint of
  // its own when `isolate`. Without, returns false (and stops) at the first
  // mutation that failed after changing rows, which only a rollback of the
  // whole transaction can undo.
  bool ApplyAll(std::vector<Job>& batch, bool isolate, std::vector<absl::Status>& results,
                std::vector<Event>& committed_events, std::vector<size_t>& change_starts,
                absl::Status& batch_status);
  // Runs `batch` once in a transaction of its own and commits it: the
  // batch's status (each mutation's own in `results`).
  absl::Status TryBatch(std::vector<Job>& batch, std::vector<absl::Status>& results,
                        std::vector<Event>& committed_events,
                        std::vector<size_t>& change_starts, BatchStats& stats);
  // Gives the batch's events their seqs (one block, reserved by the batch's
  // last statement before COMMIT; each change's events share the seq of its
  // first as txn) and inserts them.
  absl::Status InsertEvents(std::vector<Event>& events,
                            const std::vector<size_t>& change_starts);
  void RunAlone(Job& job) ABSL_LOCKS_EXCLUDED(answer_mu_);
  // Answers every job with `status` (on the answering thread).
  void RefuseAll(std::vector<Job>& jobs, const absl::Status& status)
      ABSL_LOCKS_EXCLUDED(answer_mu_);
  // Fences the writer when `status` (of a statement, commit or checkpoint)
  // is one that ends writing.
  void FenceIfFatal(const absl::Status& status);
  // Runs the checkpoint the last commit asked for (Connection::
  // SetCheckpointHook), after that commit's answers were handed over.
  void CheckpointIfDue();
  void Answer() ABSL_LOCKS_EXCLUDED(answer_mu_);

  // Constant after construction; used only on the writer thread.
  const Options options_;
  std::unique_ptr<Connection> db_;
  absl::BitGen gen_;

  mutable absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  int64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t mutations_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex close_mu_;  // Serializes Close.
  std::thread thread_;

  // Answers waiting for the answering thread, one closure per batch.
  absl::Mutex answer_mu_;
  std::deque<std::function<void()>> answers_ ABSL_GUARDED_BY(answer_mu_);
  bool answers_closing_ ABSL_GUARDED_BY(answer_mu_) = false;
  std::thread answer_thread_;
};

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_WRITER_H_
