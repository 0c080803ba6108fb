// Store: the task board's storage, the one owner of the database file.
// Writes go through the single Writer (group commit); reads run on a small
// pool of read-only connections. Every method answers through a callback so
// that no caller thread (for example a gRPC reaction) ever waits on SQLite.
//
// Thread-safety: every public method is thread-safe. Callbacks run on the
// writer thread or a reader thread and must not block.
#ifndef KANBAN_STORAGE_STORE_H_
#define KANBAN_STORAGE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "storage/clock.h"
#include "storage/durability.h"
#include "storage/event_hub.h"
#include "storage/lease_mutations.h"
#include "storage/postgres/event_tailer.h"
#include "storage/postgres/leader_lock.h"
#include "storage/reader_pool.h"
#include "storage/sqlite/backup.h"
#include "storage/sqlite/file_lock.h"
#include "storage/types.h"
#include "storage/writer.h"

namespace kanban::storage {

template <typename T>
using Done = std::function<void(absl::StatusOr<T>)>;

class Store {
 public:
  struct Options {
    // The database: a SQLite file, or a PostgreSQL URI or libpq connection
    // string (see storage/postgres/connection.h, IsPostgresTarget).
    // Required.
    std::string path;
    DurabilitySettings durability;  // Default: NORMAL.
    int reader_threads = 2;         // Default: 2.
    int max_batch = 1024;           // Mutations per commit. Default: 1024.
    Clock* clock = SystemClock();   // Not owned. Default: the system clock.
    std::string vfs;                // SQLite VFS name. Default: SQLite's.
    mutations::RetryPolicy retry;   // Leases and backoff. Default: see there.
    // How often the sweeper reclaims expired leases; zero turns the sweeper
    // thread off (tests call Sweep themselves). Default: 1 s.
    absl::Duration sweep_interval = absl::Seconds(1);
    // Called with each commit's events, in seq order, before the EventHub
    // gets them: on SQLite on the writer thread, before the callers are
    // answered; on PostgreSQL on the event tailer's thread, for the commits
    // of every kanband of the database (storage/postgres/event_tailer.h).
    // Must not block. Default: none.
    std::function<void(const std::vector<Event>&)> on_commit;
    // Events kept in memory for watchers. Default: 65,536.
    size_t event_ring = 65536;
    // Retention, applied by each sweep: events older than this, and all but
    // the newest event_retention_count, are deleted. Default: 7 days, 10M.
    absl::Duration event_retention = absl::Hours(24 * 7);
    int64_t event_retention_count = 10000000;
    // Called once if writing stops for good (a failed fsync, or corruption
    // seen by any connection; see Writer), with the status writes now get.
    // Must not block. Default: none.
    std::function<void(const absl::Status&)> on_fenced;
    // Run `PRAGMA quick_check` at open (reads the whole file once; reports
    // at most 20 problems). Default: on.
    bool check_at_open = true;
    // Quarantine sets kept when the database is found corrupt at open (see
    // storage/quarantine.h). Default: 3.
    int quarantine_keep = 3;
    // Metrics hooks. on_batch: see Writer::Options::on_batch. on_sweep: called
    // with each committed sweep's result (from the sweeper or a direct Sweep call)
    // before its caller hears of it. Must not block. Default: none.
    std::function<void(const BatchStats&)> on_batch;
    std::function<void(const SweepResult&)> on_sweep;
    // Largest ListTasks page_size accepted (INVALID_ARGUMENT above it); the
    // default page shrinks to it when smaller. Default: kMaxPageSize (1000).
    int32_t max_page_size = 1000;
    // Writes waiting for the writer; more are refused with UNAVAILABLE (see
    // Writer::Options::max_queue). Default: 10,000.
    size_t max_writer_queue = 10000;
  };

  // SQLite: locks "<path>.lock" (FAILED_PRECONDITION if another Store or
  // process holds it), opens (creating if needed) the database, checks it
  // (quick_check), applies the durability settings, migrates the schema,
  // and starts the writer and readers. A database found corrupt (by the
  // check or any step) is copied into a quarantine set first and DATA_LOSS
  // is returned, naming what was found, the copy, and how to restore.
  // PostgreSQL: connects (UNAVAILABLE naming host, port and database when it
  // cannot), migrates the schema under an advisory lock, applies the
  // durability choice as synchronous_commit, and starts the same threads;
  // several Stores may share one database.
  static absl::StatusOr<std::unique_ptr<Store>> Open(Options options);
  ~Store();  // Closes.

  // Finishes every queued write, then stops the threads and closes the
  // database. Later calls answer UNAVAILABLE. Idempotent.
  void Close();

  // ---- Writes: answered after the batch holding them committed. `actor`
  // is recorded in the events and limits what the write may touch
  // (PERMISSION_DENIED): boards, and for a worker token its own leases. ----
  void CreateBoard(Board board, Done<Board> done, const Actor& actor = {});
  void CreateTask(NewTask task, Done<Task> done, const Actor& actor = {});
  void UpdateTask(TaskUpdate update, Done<Task> done, const Actor& actor = {});
  void MoveTask(TaskMove move, Done<Task> done, const Actor& actor = {});
  void LinkTasks(std::string parent_id, std::string child_id, Done<Task> done,
                 const Actor& actor = {});
  void UnlinkTasks(std::string parent_id, std::string child_id, Done<Task> done,
                   const Actor& actor = {});
  void AddComment(NewComment comment, Done<Comment> done, const Actor& actor = {});

  // ---- The worker protocol (writes). ----
  void ClaimTask(ClaimRequest request, Done<ClaimResult> done, const Actor& actor = {});
  void CompleteTask(HeldLease lease, std::string result, Done<Task> done,
                    const Actor& actor = {});
  void FailTask(HeldLease lease, std::string error, bool retry, Done<Task> done,
                const Actor& actor = {});
  void ReleaseTask(HeldLease lease, Done<Task> done, const Actor& actor = {});
  // Heartbeats write no events.
  void Heartbeat(std::string worker_id, std::vector<HeldLease> leases,
                 Done<std::vector<LeaseStatus>> done, const Actor& actor = {});
  // Reclaims expired leases now (the sweeper calls this every interval).
  void Sweep(Done<SweepResult> done);

  // ---- Reads: see every write whose callback has run. An actor limited to
  // some boards gets PERMISSION_DENIED for a task elsewhere, sees only its
  // boards in ListBoards, and in ListWorkers and ListTasks reads its one
  // board when none is named (with several, it must name one). ----
  void ListWorkers(std::string board, Done<std::vector<Worker>> done,
                   const Actor& actor = {});
  void ListBoards(Done<std::vector<Board>> done, const Actor& actor = {});
  void GetTask(std::string id, Done<Task> done, const Actor& actor = {});
  void ListTasks(TaskFilter filter, Done<TaskPage> done, const Actor& actor = {});
  void ListComments(std::string task_id, Done<std::vector<Comment>> done,
                    const Actor& actor = {});
  // Up to about `limit` events after `after_seq`, of every board (seqs have
  // no gaps but for retention, which is how a reader notices it); a change
  // is never cut in two.
  void ReadEvents(int64_t after_seq, int limit, Done<std::vector<Event>> done);
  // The oldest event seq still kept (see sql::OldestEventSeq).
  void OldestEventSeq(Done<int64_t> done);

  // ---- Bearer tokens (see storage/tokens.h); the caller makes the secret
  // and passes its hash. ----
  void CreateToken(TokenRecord token, Done<TokenRecord> done, const Actor& actor = {});
  void RevokeToken(std::string name, Done<TokenRecord> done, const Actor& actor = {});
  void ListTokens(bool include_revoked, Done<std::vector<TokenRecord>> done);

  // ---- Administration. ----
  struct BackupRequest {
    std::string path;  // See ValidateBackupPath.
    bool overwrite = false;
    int pages_per_step = 256;  // Writes wait at most one step.
  };
  // Copies the database to request.path while it keeps serving (see
  // storage/backup.h). `progress` runs on the writer thread after each step,
  // must not block, and may return false to cancel (CANCELLED). ABORTED
  // while another backup runs.
  void Backup(BackupRequest request, std::function<bool(const BackupProgress&)> progress,
              Done<BackupResult> done);
  // integrity_check (quick_check when `quick`) on a reader connection: the
  // problems found, empty when none. Problems are corruption: they stop
  // writes as any corruption does.
  void CheckIntegrity(bool quick, int max_problems, Done<std::vector<std::string>> done);

  // The committed tail of the event log. Never null; owned by the Store.
  EventHub* events() { return hub_.get(); }

  // The pragmas in force on the writer connection, read back at open.
  const DurabilityInfo& durability() const { return durability_; }
  // The database, as messages may show it: the file's path, or the
  // PostgreSQL target without its password.
  const std::string& path() const { return display_path_; }
  // True on PostgreSQL (the SQLite-only tools answer FAILED_PRECONDITION).
  bool is_postgres() const { return durability_.backend == "postgresql"; }
  // True while this Store's sweeper reclaims expired leases and applies
  // retention: on SQLite whenever the sweeper runs; on PostgreSQL while it is
  // the sweeper leader of the database (see SweepLoop).
  bool sweeping() const { return sweeping_.load(std::memory_order_relaxed); }
  // The lease a claim gets when it names no lease_duration.
  absl::Duration default_lease() const { return options_.retry.default_lease; }
  // The clock leases and timestamps follow. Not owned.
  Clock* clock() const { return options_.clock; }
  // OK while writes are accepted; otherwise the UNAVAILABLE status every
  // write now gets (after a failed fsync or corruption): restart to recover.
  absl::Status write_failure() const { return writer_->failure(); }
  // Batches and mutations committed so far (group commit at work).
  int64_t writer_batches() const { return writer_->batches(); }
  int64_t writer_mutations() const { return writer_->mutations(); }
  // Writes waiting for the writer now; and the number of tasks per (board,
  // status), counted on a reader (for metrics).
  size_t writer_queue_depth() const { return writer_->queue_depth(); }
  void CountTasks(Done<std::vector<TaskCount>> done);

 private:
  explicit Store(Options options) : options_(std::move(options)) {}
  // Open's steps on the database, up to the writer and readers.
  absl::Status OpenDatabase(bool postgres);
  // The writer's connection, ready (checked, durable, migrated), with
  // `open_reader` set to open a reader's.
  absl::StatusOr<std::unique_ptr<Connection>> OpenSqlite(
      ReaderPool::OpenConnection& open_reader);
  absl::StatusOr<std::unique_ptr<Connection>> OpenPostgres(
      ReaderPool::OpenConnection& open_reader);

  struct BackupJob;
  void StepBackup(std::shared_ptr<BackupJob> job);
  void EndBackup(const std::shared_ptr<BackupJob>& job,
                 absl::StatusOr<BackupResult> result);
  std::atomic<bool> backup_running_{false};

  template <typename T>
  void Write(std::function<absl::StatusOr<T>(WriteContext&)> apply, Done<T> done,
             Actor actor = {});
  template <typename T>
  void Read(std::function<absl::StatusOr<T>(Connection&)> query, Done<T> done);

  // Constant after Open.
  const Options options_;
  DurabilityInfo durability_;
  std::string display_path_;
  std::string postgres_schema_;     // PostgreSQL: the sessions' current_schema().
  std::unique_ptr<FileLock> lock_;  // Released last.
  std::unique_ptr<EventHub> hub_;
  // PostgreSQL: the hub's one source, and the sweeper's leader lock.
  std::unique_ptr<postgres::EventTailer> tailer_;
  std::unique_ptr<postgres::LeaderLock> leader_;
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<ReaderPool> readers_;

  // The sweeper thread: asks the writer to Sweep every interval; it never
  // writes on its own. On PostgreSQL only while it holds the leader lock, so
  // that of several kanband on one database one sweeps at a time.
  void SweepLoop() ABSL_LOCKS_EXCLUDED(sweep_mu_);
  absl::Mutex sweep_mu_;
  bool sweep_stop_ ABSL_GUARDED_BY(sweep_mu_) = false;
  std::thread sweeper_;
  std::atomic<bool> sweeping_{false};
};

// Calls `start` with a callback and waits for it: for tests and tools, never
// for a gRPC reaction. Example:
//   absl::StatusOr<Task> t = Await<Task>([&](auto done) { store.GetTask(id, done); });
template <typename T, typename Start>
absl::StatusOr<T> Await(Start start) {
  absl::Notification notified;
  absl::StatusOr<T> result = absl::UnknownError("no answer");
  start(Done<T>([&](absl::StatusOr<T> r) {
    result = std::move(r);
    notified.Notify();
  }));
  notified.WaitForNotification();
  return result;
}

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_STORE_H_
