#include "storage/store.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/lease_sql.h"
#include "storage/mutations.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/schema.h"
#include "storage/rules.h"
#include "storage/sqlite/integrity.h"
#include "storage/sqlite/quarantine.h"
#include "storage/sqlite/schema.h"
#include "storage/status_macros.h"
#include "storage/task_sql.h"
#include "storage/tokens.h"

namespace kanban::storage {
namespace {

// A read over one board or all of them: an actor limited to one board reads
// that one when none is named; limited to several, it must name one.
absl::Status ResolveNamedBoard(const Actor& actor, std::string& board) {
  if (actor.boards.empty()) return absl::OkStatus();
  if (board.empty() && actor.boards.size() == 1) board = actor.boards.front();
  if (board.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("board: token \"", actor.principal, "\" is limited to boards ",
                     absl::StrJoin(actor.boards, ", "), "; name one of them"));
  }
  return CheckBoardAccess(actor, board, "board");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(Options options) {
  if (options.path.empty()) return absl::InvalidArgumentError("path: must be set");
  std::unique_ptr<Store> store(new Store(std::move(options)));
  const Options& opts = store->options_;
  if (IsPostgresTarget(opts.path)) {
    store->display_path_ = RedactPostgresTarget(opts.path);
    KANBAN_RETURN_IF_ERROR(store->OpenDatabase(/*postgres=*/true));
  } else {
    store->display_path_ = opts.path;
    KANBAN_ASSIGN_OR_RETURN(store->lock_, FileLock::Acquire(opts.path + ".lock"));
    absl::Status opened = store->OpenDatabase(/*postgres=*/false);
    if (opened.code() == absl::StatusCode::kDataLoss) {
      // Still under the lock: nobody else touches the files while they are
      // copied.
      store->writer_.reset();
      store->readers_.reset();
      absl::StatusOr<QuarantineSet> set =
          Quarantine(opts.path, absl::Now(), opts.quarantine_keep);
      std::string copy =
          set.ok()
              ? absl::StrCat(
                    "A copy of the damaged files is in ", set->dir,
                    set->reused ? " (identical to the last copy, not copied again)" : "")
              : absl::StrCat("Copying the damaged files failed: ",
                             set.status().message());
      return absl::DataLossError(absl::StrCat(
          "database ", opts.path, " is corrupt: ", opened.message(), ". ", copy,
          ". kanband does not start on a corrupt database. To restore: "
          "`kanband --db=",
          opts.path,
          " --restore-from=BACKUP` (checks the backup first and keeps the damaged file "
          "aside); to salvage what is readable: `sqlite3 COPY .recover`."));
    }
    KANBAN_RETURN_IF_ERROR(opened);
  }
  if (opts.sweep_interval > absl::ZeroDuration()) {
    store->sweeping_ = !store->is_postgres();
    store->sweeper_ = std::thread([s = store.get()] {
      pthread_setname_np(pthread_self(), "kanban-sweeper");
      s->SweepLoop();
    });
  }
  return store;
}

absl::StatusOr<std::unique_ptr<Connection>> Store::OpenSqlite(
    ReaderPool::OpenConnection& open_reader) {
  const Options& opts = options_;
  SqliteConnection::Options write_options;
  write_options.vfs = opts.vfs;
  KANBAN_ASSIGN_OR_RETURN(std::unique_ptr<SqliteConnection> db,
                          SqliteConnection::Open(opts.path, write_options));
  if (opts.check_at_open) KANBAN_RETURN_IF_ERROR(QuickCheck(*db));
  KANBAN_RETURN_IF_ERROR(ApplyDurability(*db, opts.durability));
  KANBAN_RETURN_IF_ERROR(Migrate(*db, opts.clock->Now()).status());
  KANBAN_ASSIGN_OR_RETURN(durability_, ReadDurability(*db));
  // Same checkpoints as SQLite's own, but a failed one is seen (after the
  // pragmas were read back: SQLite reports 0 for a hook of the caller's).
  db->SetCheckpointHook(durability_.wal_autocheckpoint);
  open_reader = [path = opts.path,
                 vfs = opts.vfs]() -> absl::StatusOr<std::unique_ptr<Connection>> {
    SqliteConnection::Options read_only;
    read_only.read_only = true;
    read_only.vfs = vfs;
    return SqliteConnection::Open(path, read_only);
  };
  return db;
}

absl::StatusOr<std::unique_ptr<Connection>> Store::OpenPostgres(
    ReaderPool::OpenConnection& open_reader) {
  const Options& opts = options_;
  PgConnection::Options write_options;
  write_options.target = opts.path;
  // Unset leaves the server's own setting; the operator's choice is applied
  // to every session of the writer (after a reconnect too).
  if (opts.durability.source != "default") {
    write_options.session_sql.push_back(opts.durability.mode == SyncMode::kFull
                                            ? "SET synchronous_commit = on"
                                            : "SET synchronous_commit = off");
  }
  KANBAN_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> db,
                          PgConnection::Open(write_options));
  KANBAN_ASSIGN_OR_RETURN(int version, postgres::Migrate(*db, opts.clock->Now()));
  (void)version;
  durability_.backend = "postgresql";
  durability_.server_version = db->ServerVersion();
  KANBAN_ASSIGN_OR_RETURN(durability_.synchronous,
                          db->QueryText("SHOW synchronous_commit"));
  durability_.schema_version = postgres::CurrentSchemaVersion();
  KANBAN_ASSIGN_OR_RETURN(postgres_schema_, db->QueryText("SELECT current_schema()"));
  open_reader = [target = opts.path]() -> absl::StatusOr<std::unique_ptr<Connection>> {
    PgConnection::Options read_only;
    read_only.target = target;
    read_only.session_sql.push_back("SET default_transaction_read_only = on");
    return PgConnection::Open(read_only);
  };
  return db;
}

absl::Status Store::OpenDatabase(bool postgres) {
  const Options& opts = options_;
  ReaderPool::OpenConnection open_reader;
  std::unique_ptr<Connection> db;
  if (postgres) {
    KANBAN_ASSIGN_OR_RETURN(db, OpenPostgres(open_reader));
  } else {
    KANBAN_ASSIGN_OR_RETURN(db, OpenSqlite(open_reader));
  }
  KANBAN_ASSIGN_OR_RETURN(int64_t head, sql::LastEventSeq(*db));
  hub_ = std::make_unique<EventHub>(opts.event_ring, head);
  KANBAN_ASSIGN_OR_RETURN(int64_t oldest, sql::OldestEventSeq(*db));
  hub_->ForgetBefore(oldest);

  KANBAN_ASSIGN_OR_RETURN(readers_, ReaderPool::Open(opts.reader_threads, open_reader));
  Writer::Options writer_options;
  writer_options.clock = opts.clock;
  writer_options.max_batch = opts.max_batch;
  writer_options.on_fenced = opts.on_fenced;
  writer_options.on_batch = opts.on_batch;
  writer_options.max_queue = opts.max_writer_queue;
  if (postgres) {
    // Several kanband may write the database: the events table is the one
    // order, and the tailer the one path into the hub (its own commits are
    // handed over to it, so they need no read).
    postgres::EventTailer::Options tail;
    tail.target = opts.path;
    tail.schema = postgres_schema_;
    tail.hub = hub_.get();
    tail.on_events = opts.on_commit;
    KANBAN_ASSIGN_OR_RETURN(tailer_, postgres::EventTailer::Start(std::move(tail)));
    if (opts.sweep_interval > absl::ZeroDuration()) {
      KANBAN_ASSIGN_OR_RETURN(
          leader_, postgres::LeaderLock::Open(opts.path, postgres::kSweeperLockKey));
    }
    writer_options.on_commit = [tailer = tailer_.get()](std::vector<Event> events) {
      tailer->Committed(std::move(events));
    };
  } else {
    writer_options.on_commit = [hub = hub_.get(),
                                then = opts.on_commit](std::vector<Event> events) {
      if (then) then(events);
      hub->Publish(std::move(events));
    };
  }
  writer_ = std::make_unique<Writer>(std::move(db), std::move(writer_options));
  return absl::OkStatus();
}

Store::~Store() { Close(); }

void Store::Close() {
  {
    absl::MutexLock lock(&sweep_mu_);
    sweep_stop_ = true;
  }
  if (sweeper_.joinable()) sweeper_.join();
  // Writes first: a queued write may be followed by reads its caller issues
  // from the callback, which then get UNAVAILABLE from the closed pool. The
  // writer's connection closes last, so that it checkpoints the WAL away.
  if (writer_) writer_->Close(/*close_database=*/false);
  // After the writer: every commit it handed over is published.
  if (tailer_) tailer_->Stop();
  if (readers_) readers_->Close();
  if (writer_) writer_->CloseDatabase();
}

template <typename T>
void Store::Write(std::function<absl::StatusOr<T>(WriteContext&)> apply, Done<T> done,
                  Actor actor) {
  auto result = std::make_shared<absl::StatusOr<T>>(absl::UnknownError("not applied"));
  writer_->Submit(
      [apply = std::move(apply), actor = std::move(actor), result](WriteContext& ctx) {
        ctx.set_actor(&actor);
        *result = apply(ctx);
        return result->status();
      },
      [result, done = std::move(done)](absl::Status status) {
        if (status.ok()) {
          done(std::move(*result));
        } else {
          done(std::move(status));
        }
      });
}

template <typename T>
void Store::Read(std::function<absl::StatusOr<T>(Connection&)> query, Done<T> done) {
  readers_->Submit(
      [this, query = std::move(query), done = std::move(done)](Connection* db) {
        if (db == nullptr) {
          done(absl::UnavailableError("store is closed"));
          return;
        }
        absl::StatusOr<T> result = query(*db);
        // A read is safe to repeat: one that found its server connection
        // broken runs once more on a new one.
        if (absl::IsUnavailable(result.status()) && db->dialect() == Dialect::kPostgres &&
            db->EnsureConnected().ok()) {
          result = query(*db);
        }
        // Corruption seen by a reader ends writing as it would on the writer:
        // writing on into a damaged file would spread the damage.
        if (result.status().code() == absl::StatusCode::kDataLoss) {
          writer_->Fence(result.status());
        }
        done(std::move(result));
      });
}

void Store::CreateBoard(Board board, Done<Board> done, const Actor& actor) {
  if (absl::Status s = ValidateNewBoard(board); !s.ok()) return done(s);
  Write<Board>([board = std::move(board)](
                   WriteContext& ctx) { return mutations::CreateBoard(ctx, board); },
               std::move(done), actor);
}

void Store::CreateTask(NewTask task, Done<Task> done, const Actor& actor) {
  if (absl::Status s = ValidateNewTask(task); !s.ok()) return done(s);
  Write<Task>([task = std::move(task)](
                  WriteContext& ctx) { return mutations::CreateTask(ctx, task); },
              std::move(done), actor);
}

void Store::UpdateTask(TaskUpdate update, Done<Task> done, const Actor& actor) {
  if (absl::Status s = ValidateTaskUpdate(update); !s.ok()) return done(s);
  Write<Task>([update = std::move(update)](
                  WriteContext& ctx) { return mutations::UpdateTask(ctx, update); },
              std::move(done), actor);
}

void Store::MoveTask(TaskMove move, Done<Task> done, const Actor& actor) {
  if (absl::Status s = ValidateTaskMove(move); !s.ok()) return done(s);
  Write<Task>([move = std::move(move)](
                  WriteContext& ctx) { return mutations::MoveTask(ctx, move); },
              std::move(done), actor);
}

void Store::LinkTasks(std::string parent_id, std::string child_id, Done<Task> done,
                      const Actor& actor) {
  if (absl::Status s = ValidateTaskId(parent_id, "parent_id"); !s.ok()) return done(s);
  if (absl::Status s = ValidateTaskId(child_id, "child_id"); !s.ok()) return done(s);
  Write<Task>(
      [parent_id = std::move(parent_id), child_id = std::move(child_id)](
          WriteContext& ctx) { return mutations::LinkTasks(ctx, parent_id, child_id); },
      std::move(done), actor);
}

void Store::UnlinkTasks(std::string parent_id, std::string child_id, Done<Task> done,
                        const Actor& actor) {
  if (absl::Status s = ValidateTaskId(parent_id, "parent_id"); !s.ok()) return done(s);
  if (absl::Status s = ValidateTaskId(child_id, "child_id"); !s.ok()) return done(s);
  Write<Task>(
      [parent_id = std::move(parent_id), child_id = std::move(child_id)](
          WriteContext& ctx) { return mutations::UnlinkTasks(ctx, parent_id, child_id); },
      std::move(done), actor);
}

void Store::AddComment(NewComment comment, Done<Comment> done, const Actor& actor) {
  if (absl::Status s = ValidateNewComment(comment); !s.ok()) return done(s);
  Write<Comment>([comment = std::move(comment)](
                     WriteContext& ctx) { return mutations::AddComment(ctx, comment); },
                 std::move(done), actor);
}

void Store::SweepLoop() {
  absl::MutexLock lock(&sweep_mu_);
  while (!sweep_mu_.AwaitWithTimeout(absl::Condition(&sweep_stop_),
                                     options_.sweep_interval)) {
    sweep_mu_.Unlock();
    bool lead = true;
    if (leader_ != nullptr) {
      // A writer that stopped for good must not keep the others from
      // sweeping.
      if (!writer_->failure().ok()) leader_->Release();
      lead = writer_->failure().ok() && leader_->TryHold();
      sweeping_ = lead;
    }
    // Wait for the sweep to commit, so sweeps never pile up in the queue.
    if (lead) (void)Await<SweepResult>([&](auto done) { Sweep(done); });
    sweep_mu_.Lock();
  }
}

void Store::ClaimTask(ClaimRequest request, Done<ClaimResult> done, const Actor& actor) {
  if (absl::Status s = ValidateClaimRequest(request); !s.ok()) return done(s);
  Write<ClaimResult>(
      [request = std::move(request), this](WriteContext& ctx) {
        return mutations::ClaimTask(ctx, request, options_.retry);
      },
      std::move(done), actor);
}

void Store::CompleteTask(HeldLease lease, std::string result, Done<Task> done,
                         const Actor& actor) {
  if (absl::Status s = ValidateHeldLease(lease, ""); !s.ok()) return done(s);
  if (absl::Status s = ValidateOutcomeText(result, "result"); !s.ok()) return done(s);
  Write<Task>(
      [lease = std::move(lease), result = std::move(result)](WriteContext& ctx) {
        return mutations::CompleteTask(ctx, lease, result);
      },
      std::move(done), actor);
}

void Store::FailTask(HeldLease lease, std::string error, bool retry, Done<Task> done,
                     const Actor& actor) {
  if (absl::Status s = ValidateHeldLease(lease, ""); !s.ok()) return done(s);
  if (absl::Status s = ValidateOutcomeText(error, "error"); !s.ok()) return done(s);
  Write<Task>(
      [lease = std::move(lease), error = std::move(error), retry,
       this](WriteContext& ctx) {
        return mutations::FailTask(ctx, lease, error, retry, options_.retry);
      },
      std::move(done), actor);
}

void Store::ReleaseTask(HeldLease lease, Done<Task> done, const Actor& actor) {
  if (absl::Status s = ValidateHeldLease(lease, ""); !s.ok()) return done(s);
  Write<Task>([lease = std::move(lease)](
                  WriteContext& ctx) { return mutations::ReleaseTask(ctx, lease); },
              std::move(done), actor);
}

void Store::Heartbeat(std::string worker_id, std::vector<HeldLease> leases,
                      Done<std::vector<LeaseStatus>> done, const Actor& actor) {
  if (absl::Status s = ValidateWorkerId(worker_id, "worker_id"); !s.ok()) return done(s);
  if (static_cast<int>(leases.size()) > kMaxHeartbeatLeases) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("leases: at most ", kMaxHeartbeatLeases, " per heartbeat")));
  }
  for (size_t i = 0; i < leases.size(); ++i) {
    if (absl::Status s = ValidateHeldLease(leases[i], absl::StrCat("leases[", i, "]"));
        !s.ok()) {
      return done(s);
    }
  }
  Write<std::vector<LeaseStatus>>(
      [worker_id = std::move(worker_id), leases = std::move(leases)](WriteContext& ctx) {
        return mutations::Heartbeat(ctx, worker_id, leases);
      },
      std::move(done), actor);
}

void Store::Sweep(Done<SweepResult> done) {
  Write<SweepResult>(
      [this](WriteContext& ctx) -> absl::StatusOr<SweepResult> {
        KANBAN_ASSIGN_OR_RETURN(SweepResult result,
                                mutations::Sweep(ctx, options_.retry));
        KANBAN_ASSIGN_OR_RETURN(
            result.events_deleted,
            sql::DeleteOldEvents(ctx.db(), ctx.now() - options_.event_retention,
                                 options_.event_retention_count, /*batch=*/10000));
        KANBAN_ASSIGN_OR_RETURN(result.oldest_event_seq, sql::OldestEventSeq(ctx.db()));
        return result;
      },
      [this, done = std::move(done)](absl::StatusOr<SweepResult> result) {
        // Committed: the ring must not serve what the database no longer has.
        if (result.ok()) hub_->ForgetBefore(result->oldest_event_seq);
        if (result.ok() && options_.on_sweep) options_.on_sweep(*result);  // Metrics.
        done(std::move(result));
      },
      Actor{kServerPrincipal, {}, {}});  // Reclaims are the server's own doing.
}

void Store::OldestEventSeq(Done<int64_t> done) {
  Read<int64_t>([](Connection& db) { return sql::OldestEventSeq(db); }, std::move(done));
}

void Store::ListWorkers(std::string board, Done<std::vector<Worker>> done,
                        const Actor& actor) {
  if (!board.empty()) {
    if (absl::Status s = ValidateBoardName(board, "board"); !s.ok()) return done(s);
  }
  if (absl::Status s = ResolveNamedBoard(actor, board); !s.ok()) return done(s);
  Read<std::vector<Worker>>(
      [board = std::move(board)](Connection& db) { return sql::ListWorkers(db, board); },
      std::move(done));
}

void Store::CountTasks(Done<std::vector<TaskCount>> done) {
  Read<std::vector<TaskCount>>([](Connection& db) { return sql::CountTasks(db); },
                               std::move(done));
}

void Store::ListBoards(Done<std::vector<Board>> done, const Actor& actor) {
  Read<std::vector<Board>>(
      [actor](Connection& db) -> absl::StatusOr<std::vector<Board>> {
        KANBAN_ASSIGN_OR_RETURN(std::vector<Board> boards, sql::ListBoards(db));
        boards.erase(
            std::remove_if(boards.begin(), boards.end(),
                           [&](const Board& b) { return !actor.MayUse(b.name); }),
            boards.end());
        return boards;
      },
      std::move(done));
}

void Store::GetTask(std::string id, Done<Task> done, const Actor& actor) {
  if (absl::Status s = ValidateTaskId(id, "task_id"); !s.ok()) return done(s);
  Read<Task>(
      [id = std::move(id), actor](Connection& db) -> absl::StatusOr<Task> {
        KANBAN_ASSIGN_OR_RETURN(Task task, sql::LoadTask(db, id));
        KANBAN_RETURN_IF_ERROR(CheckBoardAccess(actor, task.board, "task_id"));
        return task;
      },
      std::move(done));
}

void Store::ListTasks(TaskFilter filter, Done<TaskPage> done, const Actor& actor) {
  // --max_page_size bounds explicit and default pages alike.
  if (absl::Status s = ValidateTaskFilter(filter, options_.max_page_size); !s.ok()) {
    return done(s);
  }
  if (absl::Status s = ResolveNamedBoard(actor, filter.board); !s.ok()) return done(s);
  if (filter.page_size == 0) {
    filter.page_size = std::min(kDefaultPageSize, options_.max_page_size);
  }
  Read<TaskPage>(
      [filter = std::move(filter)](Connection& db) -> absl::StatusOr<TaskPage> {
        if (!filter.board.empty()) {
          KANBAN_RETURN_IF_ERROR(sql::RequireBoard(db, filter.board));
        }
        return sql::ListTasks(db, filter);
      },
      std::move(done));
}

void Store::ListComments(std::string task_id, Done<std::vector<Comment>> done,
                         const Actor& actor) {
  if (absl::Status s = ValidateTaskId(task_id, "task_id"); !s.ok()) return done(s);
  Read<std::vector<Comment>>(
      [task_id = std::move(task_id),
       actor](Connection& db) -> absl::StatusOr<std::vector<Comment>> {
        if (actor.boards.empty()) {
          KANBAN_RETURN_IF_ERROR(sql::CheckTaskExists(db, task_id));
        } else {
          KANBAN_ASSIGN_OR_RETURN(Task task, sql::LoadTask(db, task_id));
          KANBAN_RETURN_IF_ERROR(CheckBoardAccess(actor, task.board, "task_id"));
        }
        return sql::ListComments(db, task_id);
      },
      std::move(done));
}

void Store::CreateToken(TokenRecord token, Done<TokenRecord> done, const Actor& actor) {
  if (absl::Status s = ValidateNewToken(token); !s.ok()) return done(s);
  Write<TokenRecord>(
      [token = std::move(token)](WriteContext& ctx) {
        return mutations::CreateToken(ctx, token);
      },
      std::move(done), actor);
}

void Store::RevokeToken(std::string name, Done<TokenRecord> done, const Actor& actor) {
  if (absl::Status s = ValidateTokenName(name, "name"); !s.ok()) return done(s);
  Write<TokenRecord>([name = std::move(name)](
                         WriteContext& ctx) { return mutations::RevokeToken(ctx, name); },
                     std::move(done), actor);
}

void Store::ListTokens(bool include_revoked, Done<std::vector<TokenRecord>> done) {
  Read<std::vector<TokenRecord>>(
      [include_revoked](Connection& db) { return sql::ListTokens(db, include_revoked); },
      std::move(done));
}

void Store::ReadEvents(int64_t after_seq, int limit, Done<std::vector<Event>> done) {
  Read<std::vector<Event>>(
      [after_seq, limit](Connection& db) {
        return sql::ReadEventsAfter(db, after_seq, limit);
      },
      std::move(done));
}

}  // namespace kanban::storage

namespace kanban::storage {

struct Store::BackupJob {
  BackupRequest request;
  std::function<bool(const BackupProgress&)> progress;
  Done<BackupResult> done;
  std::unique_ptr<BackupCopy> copy;  // Made, stepped and dropped on the writer thread.
  bool complete = false;
};

void Store::Backup(BackupRequest request,
                   std::function<bool(const BackupProgress&)> progress,
                   Done<BackupResult> done) {
  if (is_postgres()) {
    return done(absl::FailedPreconditionError(
        "backup: this kanband stores its board in PostgreSQL; back it up with the "
        "server's own tools (pg_dump for a logical copy, pg_basebackup for a physical "
        "one, with WAL archiving for point-in-time recovery)"));
  }
  if (absl::Status s = ValidateBackupPath(request.path, request.overwrite, options_.path);
      !s.ok()) {
    return done(s);
  }
  if (request.pages_per_step <= 0) {
    return done(absl::InvalidArgumentError("pages_per_step: must be positive"));
  }
  if (backup_running_.exchange(true)) {
    return done(absl::AbortedError("backup: another backup is running; try again later"));
  }
  auto job = std::make_shared<BackupJob>();
  job->request = std::move(request);
  job->progress = std::move(progress);
  job->done = std::move(done);
  StepBackup(std::move(job));
}

void Store::StepBackup(std::shared_ptr<BackupJob> job) {
  writer_->SubmitAlone(
      [this, job](Connection& db) -> absl::Status {
        if (job->copy == nullptr) {
          KANBAN_ASSIGN_OR_RETURN(
              job->copy,
              BackupCopy::Start(static_cast<SqliteConnection&>(db), job->request.path));
        }
        absl::StatusOr<bool> complete = job->copy->Step(job->request.pages_per_step);
        if (!complete.ok()) {
          job->copy.reset();
          return complete.status();
        }
        if (!job->progress(job->copy->progress())) {
          job->copy.reset();
          return absl::CancelledError("backup: cancelled");
        }
        job->complete = *complete;
        // Other writes run before the next step.
        if (!job->complete) StepBackup(job);
        return absl::OkStatus();
      },
      [this, job](absl::Status status) {
        if (!status.ok()) return EndBackup(job, std::move(status));
        if (!job->complete) return;  // The next step is queued.
        // Checking and syncing the copy need no writer: do it on a reader
        // thread, so that neither writes nor answers wait for it.
        readers_->Submit(
            [this, job](Connection*) { EndBackup(job, job->copy->Finish()); });
      });
}

void Store::EndBackup(const std::shared_ptr<BackupJob>& job,
                      absl::StatusOr<BackupResult> result) {
  job->copy.reset();
  backup_running_ = false;
  job->done(std::move(result));
}

void Store::CheckIntegrity(bool quick, int max_problems,
                           Done<std::vector<std::string>> done) {
  if (is_postgres()) {
    return done(absl::FailedPreconditionError(
        "check: this kanband stores its board in PostgreSQL; check it with the "
        "server's own tools (the amcheck extension: bt_index_check, and "
        "pg_amcheck)"));
  }
  Read<std::vector<std::string>>(
      [this, quick,
       max_problems](Connection& db) -> absl::StatusOr<std::vector<std::string>> {
        KANBAN_ASSIGN_OR_RETURN(std::vector<std::string> problems,
                                FindProblems(db, !quick, max_problems));
        if (!problems.empty()) {
          writer_->Fence(absl::DataLossError(absl::StrCat(
              quick ? "quick_check" : "integrity_check", " found: ", problems.front())));
        }
        return problems;
      },
      std::move(done));
}

}  // namespace kanban::storage
