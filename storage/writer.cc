#include "storage/writer.h"

#include <pthread.h>

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/status_macros.h"
#include "storage/task_sql.h"

namespace kanban::storage {
namespace {

// A unique key another transaction took first (PostgreSQL's 23505, which
// the connection marks as a write conflict) or that this batch took itself.
bool IsDuplicateKey(const absl::Status& status) {
  return IsWriteConflict(status) && status.code() == absl::StatusCode::kAlreadyExists;
}

}  // namespace

Writer::Writer(std::unique_ptr<Connection> db, Options options)
    : options_(std::move(options)), db_(std::move(db)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kanban-writer");
    Run();
  });
  answer_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kanban-answer");
    Answer();
  });
}

Writer::~Writer() { Close(); }

void Writer::Submit(Apply apply, Finish finish) {
  Enqueue(Job{std::move(apply), nullptr, std::move(finish)});
}

void Writer::SubmitAlone(Alone alone, Finish finish) {
  Enqueue(Job{nullptr, std::move(alone), std::move(finish)});
}

void Writer::Enqueue(Job job) {
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (closing_) {
      refused = absl::UnavailableError("store is closed");
    } else if (!failure_.ok()) {
      refused = failure_;
    } else if (job.apply != nullptr && queue_.size() >= options_.max_queue) {
      // refuse rather than queue. A full queue drains in
      // about max_queue / max_batch commits (tens of ms), so a short
      // pushback lets the caller retry into a queue that has room.
      refused = absl::UnavailableError(
          absl::StrCat("writer queue full (", queue_.size(),
                       " queued, --max_writer_queue); retry after a short backoff"));
      refused.SetPayload(kRetryPushbackPayload, absl::Cord("100"));
    } else {
      queue_.push_back(std::move(job));
      return;
    }
  }
  job.finish(std::move(refused));
}

void Writer::Fence(const absl::Status& cause) {
  absl::Status failure;
  if (cause.code() == absl::StatusCode::kDataLoss) {
    failure = absl::UnavailableError(absl::StrCat(
        "writes stopped: the database is corrupt (", cause.message(),
        "); reads of healthy data still work. Run `kanbanctl db check`, then restart "
        "kanband with `--restore-from` a good backup"));
  } else {
    failure = absl::UnavailableError(
        absl::StrCat("writes stopped after a failed fsync (", cause.message(),
                     "): what was written since the last good sync may not be on disk. "
                     "Restart kanband; reads still work until then"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) return;
    failure_ = failure;
  }
  if (options_.on_fenced) options_.on_fenced(failure);
}

absl::Status Writer::failure() const {
  absl::MutexLock lock(&mu_);
  return failure_;
}

void Writer::FenceIfFatal(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kDataLoss || IsSyncFailure(status)) {
    Fence(status);
  }
}

void Writer::Close(bool close_database) {
  {
    absl::MutexLock close_lock(&close_mu_);
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
    }
    if (thread_.joinable()) thread_.join();
    {
      absl::MutexLock lock(&answer_mu_);
      answers_closing_ = true;
    }
    if (answer_thread_.joinable()) answer_thread_.join();
  }
  if (close_database) CloseDatabase();
}

void Writer::CloseDatabase() {
  absl::MutexLock close_lock(&close_mu_);
  // A fenced database is left exactly as it is: no checkpoint of pages that
  // may not be what was written.
  if (db_ != nullptr && !failure().ok()) db_->DisableCheckpointOnClose();
  db_.reset();
}

int64_t Writer::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

int64_t Writer::mutations() const {
  absl::MutexLock lock(&mu_);
  return mutations_;
}

size_t Writer::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void Writer::Answer() {
  while (true) {
    std::function<void()> answer;
    {
      absl::MutexLock lock(&answer_mu_);
      answer_mu_.Await(absl::Condition(
          +[](Writer* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->answer_mu_) {
            return w->answers_closing_ || !w->answers_.empty();
          },
          this));
      if (answers_.empty()) return;  // Closing and drained.
      answer = std::move(answers_.front());
      answers_.pop_front();
    }
    answer();
  }
}

void Writer::Run() {
  std::vector<Job> batch;
  while (true) {
    batch.clear();
    absl::Status refused;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Writer* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
            return w->closing_ || !w->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // Closing and drained.
      // Fenced: whatever was queued is refused, not applied. Otherwise a
      // batch of mutations up to the next Alone job, or that job by itself.
      size_t n = !failure_.ok()
                     ? queue_.size()
                     : std::min(queue_.size(), static_cast<size_t>(options_.max_batch));
      for (size_t i = 0; i < n; ++i) {
        bool alone = queue_.front().alone != nullptr;
        if (alone && !batch.empty() && failure_.ok()) break;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
        if (alone && failure_.ok()) break;
      }
      refused = failure_;
      if (refused.ok() && batch.front().apply != nullptr) {
        ++batches_;
        mutations_ += static_cast<int64_t>(batch.size());
      }
    }
    if (!refused.ok()) {
      RefuseAll(batch, refused);
    } else if (batch.front().alone != nullptr) {
      RunAlone(batch.front());
    } else {
      ApplyBatch(batch);
    }
  }
}

void Writer::RunAlone(Job& job) {
  absl::Status status = job.alone(*db_);
  FenceIfFatal(status);
  {
    absl::MutexLock lock(&answer_mu_);
    answers_.push_back([finish = std::move(job.finish), status]() mutable {
      finish(std::move(status));
    });
  }
  CheckpointIfDue();
}

void Writer::RefuseAll(std::vector<Job>& jobs, const absl::Status& status) {
  std::vector<Finish> finishes;
  for (Job& job : jobs) finishes.push_back(std::move(job.finish));
  absl::MutexLock lock(&answer_mu_);
  answers_.push_back([finishes = std::move(finishes), status]() mutable {
    for (Finish& finish : finishes) finish(status);
  });
}

bool Writer::ApplyAll(std::vector<Job>& batch, bool isolate,
                      std::vector<absl::Status>& results,
                      std::vector<Event>& committed_events,
                      std::vector<size_t>& change_starts, absl::Status& batch_status) {
  for (size_t i = 0; i < batch.size() && batch_status.ok(); ++i) {
    std::optional<Savepoint> savepoint;
    if (isolate) {
      absl::StatusOr<Savepoint> begun = Savepoint::Begin(*db_);
      if (!begun.ok()) {
        batch_status = begun.status();
        break;
      }
      savepoint.emplace(*std::move(begun));
    }
    const int64_t changes_before = db_->TotalChanges();
    std::optional<WriteContext> ctx;
    ctx.emplace(*db_, options_.clock->Now(), gen_);
    absl::Status status = batch[i].apply(*ctx);
    if (IsDuplicateKey(status)) {
      // Another writer's row, or one of this batch's own: only running the
      // mutation again can tell. That needs a savepoint (the error voided
      // the transaction), so the batch starts over isolated.
      if (!isolate) return false;
      // Under a savepoint, a mutation that lost a race for a key runs again
      // at once: its statements now see the other's row, committed by then.
      // A key still taken was this batch's own, and the error is this
      // mutation's alone (ALREADY_EXISTS), not the batch's.
      if (absl::Status s = savepoint->Rollback(); !s.ok()) {
        batch_status = s;
        break;
      }
      absl::StatusOr<Savepoint> again = Savepoint::Begin(*db_);
      if (!again.ok()) {
        batch_status = again.status();
        break;
      }
      savepoint.emplace(*std::move(again));
      ctx.emplace(*db_, options_.clock->Now(), gen_);
      status = batch[i].apply(*ctx);
      if (IsDuplicateKey(status)) status = ClearWriteConflict(std::move(status));
    }
    if (IsWriteConflict(status)) {
      // Lost a race with another writer of the database: the whole batch
      // runs again (ApplyBatch), not just this mutation.
      batch_status = status;
      break;
    }
    if (!db_->InTransaction()) {
      // SQLite rolled the whole transaction back (disk full, I/O error):
      // every mutation of this batch is lost, not just this one.
      batch_status = status.ok()
                         ? absl::UnavailableError("transaction rolled back by SQLite")
                         : status;
      break;
    }
    if (status.ok() && savepoint.has_value()) status = savepoint->Release();
    if (status.ok()) {
      std::vector<Event> events = ctx->TakeEvents();
      if (!events.empty()) change_starts.push_back(committed_events.size());
      std::move(events.begin(), events.end(), std::back_inserter(committed_events));
    } else if (savepoint.has_value()) {
      absl::Status rollback = savepoint->Rollback();
      if (!rollback.ok()) batch_status = rollback;
    } else if (db_->TotalChanges() != changes_before || db_->TransactionFailed()) {
      return false;  // Its changes (or PostgreSQL's aborted transaction)
                     // cannot be undone alone.
    }
    // (A mutation that failed before changing any row needs no undoing.)
    results[i] = std::move(status);
  }
  return true;
}

void Writer::ApplyBatch(std::vector<Job>& batch) {
  // A server connection that broke is reopened first; while it cannot be,
  // every write is refused at once (UNAVAILABLE), so none waits on it.
  if (absl::Status connected = db_->EnsureConnected(); !connected.ok()) {
    RefuseAll(batch, connected);
    return;
  }
  std::vector<absl::Status> results;
  std::vector<Event> committed_events;
  std::vector<size_t> change_starts;  // Index of each change's first event.
  absl::Status batch_status;
  BatchStats stats;
  stats.mutations = static_cast<int>(batch.size());
  // A batch that lost a race with another writer of the database (several
  // kanband on one PostgreSQL) runs again, after a short random pause, so
  // that a caller never sees the conflict; each run decides against what
  // the other writer committed.
  while (true) {
    results.assign(batch.size(), absl::OkStatus());
    committed_events.clear();
    change_starts.clear();
    batch_status = TryBatch(batch, results, committed_events, change_starts, stats);
    if (!IsWriteConflict(batch_status) || stats.conflict_retries >= kMaxConflictRetries) {
      break;
    }
    ++stats.conflict_retries;
    const int64_t cap_us = int64_t{500} << std::min(stats.conflict_retries, 5);
    absl::SleepFor(absl::Microseconds(absl::Uniform<int64_t>(gen_, 0, cap_us)));
  }
  if (batch_status.ok() && options_.on_batch) options_.on_batch(stats);
  FenceIfFatal(batch_status);
  for (const absl::Status& result : results) FenceIfFatal(result);

  // Publish first: by the time a caller hears "done", watchers have the
  // events too.
  if (batch_status.ok() && !committed_events.empty() && options_.on_commit) {
    options_.on_commit(std::move(committed_events));
  }
  std::vector<std::pair<Finish, absl::Status>> answers;
  answers.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    // A mutation that failed on its own keeps its error; the others share
    // the batch's fate.
    answers.emplace_back(std::move(batch[i].finish),
                         !results[i].ok() ? results[i] : batch_status);
  }
  {
    absl::MutexLock lock(&answer_mu_);
    answers_.push_back([answers = std::move(answers)]() mutable {
      for (auto& [finish, status] : answers) finish(std::move(status));
    });
  }
  CheckpointIfDue();
}

absl::Status Writer::TryBatch(std::vector<Job>& batch, std::vector<absl::Status>& results,
                              std::vector<Event>& committed_events,
                              std::vector<size_t>& change_starts, BatchStats& stats) {
  absl::Status batch_status;
  // Most mutations succeed, and most that fail do so before writing: the
  // batch first runs without a savepoint per mutation (two statements and
  // a copy of every page it touches, each). Only a mutation that failed
  // after changing rows makes the batch start over, isolated.
  absl::StatusOr<Transaction> txn = Transaction::Begin(*db_);
  if (!txn.ok()) batch_status = txn.status();
  if (batch_status.ok() && !ApplyAll(batch, /*isolate=*/false, results, committed_events,
                                     change_starts, batch_status)) {
    absl::Status rollback = txn->Rollback();
    results.assign(batch.size(), absl::OkStatus());
    committed_events.clear();
    change_starts.clear();
    if (rollback.ok()) {
      txn = Transaction::Begin(*db_);
      if (!txn.ok()) batch_status = txn.status();
    } else {
      batch_status = rollback;
    }
    if (batch_status.ok()) {
      ApplyAll(batch, /*isolate=*/true, results, committed_events, change_starts,
               batch_status);
    }
  }
  // The events go in last: see InsertEvents.
  const absl::Time seq_start = absl::Now();
  if (batch_status.ok()) batch_status = InsertEvents(committed_events, change_starts);
  // time the COMMIT (the fsync in FULL mode).
  const absl::Time commit_start = absl::Now();
  if (batch_status.ok()) batch_status = txn->Commit();
  if (batch_status.ok()) {
    const absl::Time end = absl::Now();
    stats.commit = end - commit_start;
    if (!committed_events.empty()) stats.seq_hold = end - seq_start;
  }
  if (!batch_status.ok() && txn.ok()) (void)txn->Rollback();
  return batch_status;
}

absl::Status Writer::InsertEvents(std::vector<Event>& events,
                                  const std::vector<size_t>& change_starts) {
  if (events.empty()) return absl::OkStatus();
  KANBAN_ASSIGN_OR_RETURN(int64_t seq,
                          sql::ReserveEventSeqs(*db_, static_cast<int>(events.size())));
  size_t next_change = 0;
  int64_t txn = seq;
  for (Event& event : events) {
    event.seq = seq++;
    if (next_change < change_starts.size() &&
        &event == &events[change_starts[next_change]]) {
      txn = event.seq;
      ++next_change;
    }
    event.txn = txn;
  }
  return sql::InsertEvents(*db_, events);
}

void Writer::CheckpointIfDue() {
  // After the answers are on their way: they need only the commit. A
  // checkpoint that failed to sync (in NORMAL mode the only sync there is)
  // means nothing committed after the last good sync may be on disk: no
  // batch after this one is applied.
  FenceIfFatal(db_->RunDueCheckpoint());
}

}  // namespace kanban::storage
