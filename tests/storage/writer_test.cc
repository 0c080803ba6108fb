// The writer's group commit on each backend (a real SQLite file, a fresh
// database on the suite's PostgreSQL): batching, per-mutation rollback, a
// failed batch answering every caller, and draining on Close.
#include "storage/writer.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/postgres/connection.h"
#include "storage/postgres/schema.h"
#include "storage/sqlite/connection.h"
#include "storage/sqlite/schema.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
namespace {

using ::testing::HasSubstr;

class WriterTest : public testing::BackendTest {
 protected:
  void SetUp() override {
    if (Database(dir_.File("w.db")).empty()) return;
    auto db = Connect();
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec("CREATE TABLE t(v INTEGER PRIMARY KEY)").ok());
    // The event log: the writer inserts each batch's events itself.
    if (OnPostgres()) {
      ASSERT_TRUE(postgres::Migrate(**db, absl::Now()).ok());
    } else {
      ASSERT_TRUE((*db)->Exec("PRAGMA journal_mode=WAL").ok());
      ASSERT_TRUE(Migrate(**db, absl::Now()).ok());
    }
    writer_ = std::make_unique<Writer>(*std::move(db), Writer::Options{});
  }

  // A new connection to the test's database.
  absl::StatusOr<std::unique_ptr<Connection>> Connect(int sqlite_busy_timeout_ms = 5000) {
    if (OnPostgres()) {
      PgConnection::Options options;
      options.target = Database("");
      auto db = PgConnection::Open(options);
      if (!db.ok()) return db.status();
      return std::unique_ptr<Connection>(*std::move(db));
    }
    SqliteConnection::Options options;
    options.busy_timeout_ms = sqlite_busy_timeout_ms;
    auto db = SqliteConnection::Open(dir_.File("w.db"), options);
    if (!db.ok()) return db.status();
    return std::unique_ptr<Connection>(*std::move(db));
  }

  // Replaces the writer with one on a new connection, with `options`.
  void Reopen(Writer::Options options) {
    writer_.reset();
    auto db = Connect();
    ASSERT_TRUE(db.ok()) << db.status();
    writer_ = std::make_unique<Writer>(*std::move(db), std::move(options));
  }

  int64_t CountRows() {
    auto db = Connect();
    EXPECT_TRUE(db.ok()) << db.status();
    return *(*db)->QueryInt("SELECT count(*) FROM t");
  }

  static Writer::Apply Insert(int v) {
    return [v](WriteContext& ctx) {
      return ctx.db().Exec("INSERT INTO t(v) VALUES (" + std::to_string(v) + ")");
    };
  }

  testing::TempDir dir_;
  std::unique_ptr<Writer> writer_;
};

INSTANTIATE_TEST_SUITE_P(Backends, WriterTest, testing::AllBackends(),
                         testing::BackendName);

// Holds the writer on one mutation while `submit` queues more, so that they
// are applied as one batch once it returns.
void AsOneBatch(Writer& writer, const std::function<void()>& submit) {
  // Shared: the writer thread may still be leaving WaitForNotification when
  // this function returns.
  auto release = std::make_shared<absl::Notification>();
  auto started = std::make_shared<absl::Notification>();
  writer.Submit(
      [release, started](WriteContext&) {
        started->Notify();
        release->WaitForNotification();
        return absl::OkStatus();
      },
      [](absl::Status) {});
  started->WaitForNotification();
  submit();
  release->Notify();
}

TEST_P(WriterTest, OneFailureDoesNotSinkItsBatch) {
  std::vector<absl::Status> results(5, absl::UnknownError("unanswered"));
  absl::BlockingCounter answered(5);
  int64_t batches_before = 0;
  AsOneBatch(*writer_, [&] {
    batches_before = writer_->batches();
    for (int i = 0; i < 5; ++i) {
      // Mutation 2 inserts then fails: its insert must be rolled back alone.
      Writer::Apply apply = Insert(i + 1);
      if (i == 2) {
        apply = [](WriteContext& ctx) {
          absl::Status s = ctx.db().Exec("INSERT INTO t(v) VALUES (100)");
          if (!s.ok()) return s;
          return absl::InvalidArgumentError("refused after writing");
        };
      }
      writer_->Submit(apply, [&, i](absl::Status s) {
        results[i] = s;
        answered.DecrementCount();
      });
    }
  });
  answered.Wait();
  EXPECT_TRUE(results[0].ok());
  EXPECT_TRUE(results[1].ok());
  EXPECT_EQ(results[2].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(results[3].ok());
  EXPECT_TRUE(results[4].ok());
  EXPECT_EQ(writer_->batches() - batches_before, 1) << "the five were one commit";
  EXPECT_EQ(CountRows(), 4);
}

TEST_P(WriterTest, FailureBeforeWritingLeavesTheRestOfTheBatchAppliedOnce) {
  // Most failures (not found, wrong version) happen before a mutation
  // writes: nothing to undo, so the others must not be applied again.
  std::atomic<int> applied[3] = {0, 0, 0};
  std::vector<absl::Status> results(3, absl::UnknownError("unanswered"));
  absl::BlockingCounter answered(3);
  int64_t batches_before = 0;
  AsOneBatch(*writer_, [&] {
    batches_before = writer_->batches();
    for (int i = 0; i < 3; ++i) {
      writer_->Submit(
          [&, i](WriteContext& ctx) {
            ++applied[i];
            if (i == 1) return absl::NotFoundError("task: refused before writing");
            return ctx.db().Exec("INSERT INTO t(v) VALUES (" + std::to_string(i) + ")");
          },
          [&, i](absl::Status s) {
            results[i] = s;
            answered.DecrementCount();
          });
    }
  });
  answered.Wait();
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1].code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(results[2].ok());
  EXPECT_EQ(writer_->batches() - batches_before, 1) << "the three were one commit";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(applied[i], 1) << "mutation " << i;
  EXPECT_EQ(CountRows(), 2);
}

TEST_P(WriterTest, FailureAfterWritingPublishesOnlyWhatCommitted) {
  // A mutation that wrote and then failed makes the batch start over with
  // a savepoint per mutation: its row and event must vanish, and every
  // other event be published exactly once.
  absl::Mutex mu;
  std::vector<std::string> published;
  Writer::Options options;
  options.on_commit = [&](std::vector<Event> events) {
    absl::MutexLock lock(&mu);
    for (const Event& e : events) published.push_back(e.task_id);
  };
  Reopen(std::move(options));

  std::vector<absl::Status> results(4, absl::UnknownError("unanswered"));
  absl::BlockingCounter answered(4);
  AsOneBatch(*writer_, [&] {
    for (int i = 0; i < 4; ++i) {
      writer_->Submit(
          [i](WriteContext& ctx) {
            absl::Status s =
                ctx.db().Exec("INSERT INTO t(v) VALUES (" + std::to_string(i) + ")");
            if (!s.ok()) return s;
            Event event;
            event.task_id = absl::StrCat("task-", i);
            ctx.AddEvent(event);
            if (i == 2) return absl::AbortedError("version: refused after writing");
            return absl::OkStatus();
          },
          [&, i](absl::Status s) {
            results[i] = s;
            answered.DecrementCount();
          });
    }
  });
  answered.Wait();
  EXPECT_TRUE(results[0].ok());
  EXPECT_TRUE(results[1].ok());
  EXPECT_EQ(results[2].code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(results[3].ok());
  writer_->Close();
  EXPECT_EQ(CountRows(), 3);
  absl::MutexLock lock(&mu);
  EXPECT_THAT(published, ::testing::ElementsAre("task-0", "task-1", "task-3"));
}

TEST_P(WriterTest, ConstraintErrorsRollBackOnlyTheirMutation) {
  // One batch takes a key twice: the second is ALREADY_EXISTS alone. (On
  // PostgreSQL a duplicate key is also what losing a race to another writer
  // looks like; the writer must tell the batch's own key from that race
  // instead of sinking the whole batch.)
  std::vector<absl::Status> results(3, absl::UnknownError("unanswered"));
  absl::BlockingCounter answered(3);
  int64_t batches_before = 0;
  AsOneBatch(*writer_, [&] {
    batches_before = writer_->batches();
    const int values[] = {7, 7, 8};
    for (int i = 0; i < 3; ++i) {
      writer_->Submit(Insert(values[i]), [&, i](absl::Status s) {
        results[i] = s;
        answered.DecrementCount();
      });
    }
  });
  answered.Wait();
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_EQ(results[1].code(), absl::StatusCode::kAlreadyExists) << results[1];
  EXPECT_FALSE(IsWriteConflict(results[1])) << "the batch's own key, not a race";
  EXPECT_TRUE(results[2].ok()) << results[2];
  EXPECT_EQ(writer_->batches() - batches_before, 1) << "the three were one commit";
  EXPECT_EQ(CountRows(), 2);
}

TEST_P(WriterTest, ManyThreadsFewerCommitsThanWrites) {
  constexpr int kThreads = 8, kEach = 200;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < kEach; ++j) {
        absl::Notification done;
        writer_->Submit(Insert(i * kEach + j + 1), [&](absl::Status s) {
          if (s.ok()) ok++;
          done.Notify();
        });
        done.WaitForNotification();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  EXPECT_EQ(CountRows(), kThreads * kEach);
  EXPECT_EQ(writer_->mutations(), kThreads * kEach);
  // With 8 writers waiting on each other, batches must form; this is a
  // property of the design, not a timing target.
  EXPECT_LT(writer_->batches(), writer_->mutations());
}

TEST_P(WriterTest, CloseDrainsTheQueueThenRefuses) {
  std::atomic<int> ok{0};
  for (int i = 1; i <= 100; ++i) {
    writer_->Submit(Insert(i), [&](absl::Status s) { ok += s.ok(); });
  }
  writer_->Close();
  EXPECT_EQ(ok.load(), 100);
  EXPECT_EQ(CountRows(), 100);
  absl::Status late = absl::OkStatus();
  writer_->Submit(Insert(101), [&](absl::Status s) { late = s; });
  EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable);
}

TEST_P(WriterTest, BusyDatabaseFailsTheBatchAsUnavailable) {
  // Another process-like connection holds the write lock: BEGIN IMMEDIATE
  // times out with SQLITE_BUSY, which must surface as UNAVAILABLE (retry),
  // never as corruption. PostgreSQL has no database-wide write lock (its
  // lost connection is tests/storage/postgres_faults_test.cc).
  if (OnPostgres()) GTEST_SKIP() << testing::kSqliteOnly;
  auto other = Connect(/*sqlite_busy_timeout_ms=*/0);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Exec("BEGIN IMMEDIATE").ok());
  absl::Notification done;
  absl::Status result;
  // The writer's busy timeout is 5 s by default; this waits it out once.
  writer_->Submit(Insert(1), [&](absl::Status s) {
    result = s;
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(result.code(), absl::StatusCode::kUnavailable) << result;
  ASSERT_TRUE((*other)->Exec("ROLLBACK").ok());
  absl::Notification done2;
  writer_->Submit(Insert(2), [&](absl::Status s) {
    result = s;
    done2.Notify();
  });
  done2.WaitForNotification();
  EXPECT_TRUE(result.ok()) << result;
}

// the queue bound. The writer thread is held inside a
// mutation, so what is submitted meanwhile stays queued and the bound is hit
// deterministically.
TEST_P(WriterTest, FullQueueRefusesWithRetryPushback) {
  Writer::Options options;  // Replaced by one with a small bound.
  options.max_queue = 3;
  Reopen(std::move(options));

  absl::Notification release, started;
  writer_->Submit(
      [&](WriteContext&) {
        started.Notify();
        release.WaitForNotification();
        return absl::OkStatus();
      },
      [](absl::Status) {});
  started.WaitForNotification();  // Taken off the queue: it does not count.

  // Up to the bound: queued (the third one is the value just under it).
  std::vector<absl::Status> results(3, absl::UnknownError("unanswered"));
  absl::BlockingCounter answered(3);
  for (int i = 0; i < 3; ++i) {
    writer_->Submit(Insert(i + 1), [&, i](absl::Status s) {
      results[i] = s;
      answered.DecrementCount();
    });
  }
  EXPECT_EQ(writer_->queue_depth(), 3u);

  // One more: refused at once, on the submitting thread, never queued.
  absl::Status refused = absl::UnknownError("unanswered");
  writer_->Submit(Insert(99), [&](absl::Status s) { refused = s; });
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("writer queue full (3 queued, --max_writer_queue)"));
  auto pushback = refused.GetPayload(Writer::kRetryPushbackPayload);
  ASSERT_TRUE(pushback.has_value());
  int pushback_ms = 0;
  EXPECT_TRUE(absl::SimpleAtoi(std::string(*pushback), &pushback_ms)) << *pushback;
  EXPECT_GT(pushback_ms, 0);
  EXPECT_EQ(writer_->queue_depth(), 3u);

  // A backup step is not a client write: never refused for the bound.
  absl::Notification alone_done;
  absl::Status alone_status = absl::UnknownError("unanswered");
  writer_->SubmitAlone([](Connection&) { return absl::OkStatus(); },
                       [&](absl::Status s) {
                         alone_status = s;
                         alone_done.Notify();
                       });

  release.Notify();
  answered.Wait();
  alone_done.WaitForNotification();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_TRUE(alone_status.ok()) << alone_status;
  EXPECT_EQ(CountRows(), 3);  // The refused insert never ran.

  // Drained: there is room again.
  absl::Notification done;
  absl::Status after = absl::UnknownError("unanswered");
  writer_->Submit(Insert(4), [&](absl::Status s) {
    after = s;
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_TRUE(after.ok()) << after;
}

}  // namespace
}  // namespace kanban::storage
