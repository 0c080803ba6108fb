// The worker protocol in the Store, on real files, with time moved by a
// FakeClock: claims, fencing, expiry and backoff, gave_up, cancellation,
// heartbeats, and leases surviving a restart.
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/lease_mutations.h"
#include "storage/store.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class LeaseTest : public ::testing::TestWithParam<testing::Backend> {
 protected:
  void SetUp() override {
    target_ = testing::FreshDatabase(GetParam(), dir_.File("kanban.db"));
    if (IsSkipped() || HasFailure()) return;
    Reopen();
  }

  void Reopen() {
    store_.reset();
    Store::Options options;
    options.path = target_;
    options.clock = &clock_;
    options.sweep_interval = absl::ZeroDuration();  // Tests sweep by hand.
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  Task MustCreate(const std::string& title, int priority = 0, int max_attempts = 0,
                  std::vector<std::string> labels = {}, std::string assignee = "") {
    NewTask t;
    t.title = title;
    t.priority = priority;
    t.max_attempts = max_attempts;
    t.labels = std::move(labels);
    t.assignee = std::move(assignee);
    absl::StatusOr<Task> task =
        Await<Task>([&](auto done) { store_->CreateTask(t, done); });
    EXPECT_TRUE(task.ok()) << task.status();
    return task.ok() ? *task : Task();
  }
  absl::StatusOr<ClaimResult> TryClaim(const std::string& worker,
                                       absl::Duration lease = {},
                                       std::vector<std::string> labels = {},
                                       std::string assignee = "") {
    ClaimRequest r;
    r.worker_id = worker;
    r.lease_duration = lease;
    r.labels = std::move(labels);
    r.assignee = std::move(assignee);
    return Await<ClaimResult>([&](auto done) { store_->ClaimTask(r, done); });
  }
  Claim MustClaim(const std::string& worker, absl::Duration lease = {}) {
    absl::StatusOr<ClaimResult> r = TryClaim(worker, lease);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r.ok() && r->claim.has_value()) << "nothing claimable";
    return r.ok() && r->claim ? *r->claim : Claim();
  }
  absl::StatusOr<Task> Complete(const Lease& l, const std::string& result = "ok") {
    return Await<Task>([&](auto done) {
      store_->CompleteTask({l.task_id, l.token}, result, done);
    });
  }
  absl::StatusOr<Task> Fail(const Lease& l, bool retry,
                            const std::string& error = "boom") {
    return Await<Task>([&](auto done) {
      store_->FailTask({l.task_id, l.token}, error, retry, done);
    });
  }
  absl::StatusOr<Task> Release(const Lease& l) {
    return Await<Task>([&](auto done) {
      store_->ReleaseTask({l.task_id, l.token}, done);
    });
  }
  std::vector<LeaseStatus> Beat(const std::string& worker,
                                std::vector<HeldLease> leases) {
    absl::StatusOr<std::vector<LeaseStatus>> r = Await<std::vector<LeaseStatus>>(
        [&](auto done) { store_->Heartbeat(worker, leases, done); });
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<LeaseStatus>();
  }
  SweepResult Sweep() {
    absl::StatusOr<SweepResult> r =
        Await<SweepResult>([&](auto done) { store_->Sweep(done); });
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : SweepResult();
  }
  Task Get(const std::string& id) {
    absl::StatusOr<Task> t = Await<Task>([&](auto done) { store_->GetTask(id, done); });
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Task();
  }
  // The newest event's kind, read from the database (on_commit publishes
  // only after the callers were answered).
  std::string LastKind() {
    absl::StatusOr<std::vector<Event>> events = Await<std::vector<Event>>(
        [&](auto done) { store_->ReadEvents(0, 1000000, done); });
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() && !events->empty() ? events->back().kind : "";
  }
  static void ExpectLeaseLost(const absl::StatusOr<Task>& r, const std::string& reason) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
    EXPECT_THAT(std::string(r.status().message()), StartsWith("lease lost: " + reason));
    EXPECT_EQ(mutations::LeaseLostReason(r.status()), reason);
  }

  testing::TempDir dir_;
  std::string target_;  // The database: a file in dir_, or a PostgreSQL schema.
  FakeClock clock_{absl::FromUnixSeconds(1800000000)};
  std::unique_ptr<Store> store_;
};

TEST_P(LeaseTest, ClaimTakesHighestPriorityThenOldest) {
  MustCreate("low", 1);
  clock_.Advance(absl::Seconds(1));
  Task high_old = MustCreate("high-old", 5);
  clock_.Advance(absl::Seconds(1));
  MustCreate("high-new", 5);

  Claim claim = MustClaim("w1", absl::Seconds(30));
  EXPECT_EQ(claim.task.id, high_old.id);
  EXPECT_EQ(claim.task.status, TaskStatus::kRunning);
  EXPECT_EQ(claim.task.attempt, 1);
  EXPECT_EQ(claim.task.version, 2);
  EXPECT_EQ(claim.task.worker_id, "w1");
  EXPECT_EQ(claim.task.lease_expires_at, clock_.Now() + absl::Seconds(30));
  EXPECT_EQ(claim.lease.token.size(), 36u);
  EXPECT_EQ(claim.lease.attempt, 1);
  EXPECT_EQ(claim.lease.expires_at, clock_.Now() + absl::Seconds(30));
  EXPECT_EQ(LastKind(), "claimed");
  EXPECT_EQ(MustClaim("w1").task.title, "high-new");
  EXPECT_EQ(MustClaim("w1").lease.duration, absl::Seconds(60)) << "the default lease";
  absl::StatusOr<ClaimResult> empty = TryClaim("w1");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->claim.has_value());
  EXPECT_GT(empty->observed_seq, 0);
}

TEST_P(LeaseTest, ClaimHonoursLabelsAssigneeAndNotBefore) {
  MustCreate("gpu-big", 0, 0, {"gpu", "big"});
  MustCreate("for-alice", 9, 0, {}, "alice");
  NewTask later;
  later.title = "later";
  later.priority = 10;
  later.not_before = clock_.Now() + absl::Minutes(1);
  ASSERT_TRUE(Await<Task>([&](auto done) { store_->CreateTask(later, done); }).ok());

  // Not claimable yet: reported as the next ready time.
  absl::StatusOr<ClaimResult> r = TryClaim("w", {}, {"gpu", "small"});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->claim.has_value()) << "needs every label";
  EXPECT_EQ(r->next_ready_at, clock_.Now() + absl::Minutes(1));

  r = TryClaim("w", {}, {"gpu"}, "bob");
  ASSERT_TRUE(r.ok() && r->claim.has_value());
  EXPECT_EQ(r->claim->task.title, "gpu-big") << "alice's task is not bob's";
  r = TryClaim("w", {}, {}, "alice");
  ASSERT_TRUE(r.ok() && r->claim.has_value());
  EXPECT_EQ(r->claim->task.title, "for-alice");
  r = TryClaim("w");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->claim.has_value());
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(MustClaim("w").task.title, "later");
}

TEST_P(LeaseTest, BadClaimsAreRefusedByField) {
  EXPECT_EQ(TryClaim("").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ClaimResult> r = TryClaim("w", absl::Milliseconds(500));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), StartsWith("lease_duration:"));
  EXPECT_EQ(TryClaim("w", absl::Hours(2)).status().code(),
            absl::StatusCode::kInvalidArgument);
  ClaimRequest unknown;
  unknown.worker_id = "w";
  unknown.board = "nope";
  EXPECT_EQ(Await<ClaimResult>([&](auto done) { store_->ClaimTask(unknown, done); })
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST_P(LeaseTest, ThirtyTwoClaimersNeverShareATask) {
  constexpr int kTasks = 2000;
  for (int i = 0; i < kTasks; ++i) MustCreate("t" + std::to_string(i), i % 7);
  std::vector<std::vector<std::string>> got(32);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 32; ++w) {
    threads.emplace_back([&, w] {
      while (true) {
        absl::StatusOr<ClaimResult> r = TryClaim("w" + std::to_string(w));
        if (!r.ok()) {
          errors++;
          return;
        }
        if (!r->claim.has_value()) return;
        got[w].push_back(r->claim->task.id);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  std::multiset<std::string> all;
  for (auto& v : got) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kTasks));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size())
      << "a task was claimed twice";
}

TEST_P(LeaseTest, CompleteFinishesAndPromotesChildren) {
  Task parent = MustCreate("parent");
  NewTask c;
  c.title = "child";
  c.parent_ids = {parent.id};
  Task child = *Await<Task>([&](auto done) { store_->CreateTask(c, done); });
  ASSERT_EQ(child.status, TaskStatus::kTodo);
  Claim claim = MustClaim("w");
  absl::StatusOr<Task> done = Complete(claim.lease, "42");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status, TaskStatus::kDone);
  EXPECT_EQ(done->result, "42");
  EXPECT_TRUE(done->worker_id.empty());
  EXPECT_EQ(Get(child.id).status, TaskStatus::kReady);
  EXPECT_EQ(LastKind(), "promoted");
  // A second completion with the same token is refused.
  ExpectLeaseLost(Complete(claim.lease), "completed");
}

TEST_P(LeaseTest, ReclaimedLeaseIsFencedAndTheNewHolderWins) {
  Task task = MustCreate("fenced");
  Claim first = MustClaim("w1", absl::Seconds(10));
  clock_.Advance(absl::Seconds(11));
  // Expired but not yet swept: already refused.
  ExpectLeaseLost(Complete(first.lease), "expired");
  EXPECT_EQ(Beat("w1", {{task.id, first.lease.token}})[0].reason, "expired");

  SweepResult sweep = Sweep();
  EXPECT_EQ(sweep.reclaimed, 1);
  Task reclaimed = Get(task.id);
  EXPECT_EQ(reclaimed.status, TaskStatus::kReady);
  ASSERT_TRUE(reclaimed.not_before.has_value());
  // Backoff after attempt 1: base 1 s with equal jitter, so 0.5 s to 1 s.
  EXPECT_GE(*reclaimed.not_before, clock_.Now() + absl::Milliseconds(500));
  EXPECT_LE(*reclaimed.not_before, clock_.Now() + absl::Seconds(1));
  EXPECT_EQ(LastKind(), "reclaimed");

  ExpectLeaseLost(Complete(first.lease), "reclaimed");
  ExpectLeaseLost(Fail(first.lease, true), "reclaimed");
  ExpectLeaseLost(Release(first.lease), "reclaimed");
  std::vector<LeaseStatus> beat = Beat("w1", {{task.id, first.lease.token}});
  ASSERT_EQ(beat.size(), 1u);
  EXPECT_FALSE(beat[0].extended);
  EXPECT_EQ(beat[0].reason, "reclaimed");

  clock_.Advance(absl::Seconds(1));
  Claim second = MustClaim("w2");
  EXPECT_EQ(second.task.id, task.id);
  EXPECT_EQ(second.task.attempt, 2);
  ExpectLeaseLost(Complete(first.lease), "reclaimed");
  EXPECT_TRUE(Complete(second.lease).ok());
  EXPECT_EQ(Get(task.id).status, TaskStatus::kDone);
}

TEST_P(LeaseTest, ExpiriesBackOffThenGiveUp) {
  Task task = MustCreate("flaky", 0, /*max_attempts=*/3);
  absl::Duration previous_backoff = absl::ZeroDuration();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Claim claim = MustClaim("w", absl::Seconds(5));
    ASSERT_EQ(claim.task.attempt, attempt);
    clock_.Advance(absl::Seconds(6));
    Sweep();
    Task after = Get(task.id);
    if (attempt < 3) {
      ASSERT_EQ(after.status, TaskStatus::kReady);
      absl::Duration backoff = *after.not_before - clock_.Now();
      // Exponential with equal jitter: [d/2, d] for d = 1 s, 2 s, ...
      absl::Duration d = absl::Seconds(1 << (attempt - 1));
      EXPECT_GE(backoff, d / 2);
      EXPECT_LE(backoff, d);
      EXPECT_GE(backoff, previous_backoff / 2);
      previous_backoff = backoff;
      // Not claimable until the backoff has passed.
      absl::StatusOr<ClaimResult> early = TryClaim("w");
      ASSERT_TRUE(early.ok());
      EXPECT_FALSE(early->claim.has_value());
      clock_.Advance(backoff);
    } else {
      EXPECT_EQ(after.status, TaskStatus::kBlocked);
      EXPECT_THAT(after.last_error, HasSubstr("attempt 3 of 3"));
      EXPECT_EQ(LastKind(), "gave_up");
    }
  }
}

TEST_P(LeaseTest, BackoffIsCapped) {
  mutations::RetryPolicy policy;
  absl::BitGen gen;
  for (int attempt : {1, 5, 10, 40, 1000}) {
    absl::Duration d = mutations::Backoff(attempt, policy, gen);
    EXPECT_LE(d, policy.backoff_cap) << attempt;
    EXPECT_GE(d, std::min(policy.backoff_cap, policy.backoff_base) / 2) << attempt;
  }
  EXPECT_GE(mutations::Backoff(1000, policy, gen), policy.backoff_cap / 2);
}

TEST_P(LeaseTest, FailWithAndWithoutRetryAndRelease) {
  Task a = MustCreate("a", 3);
  Claim claim = MustClaim("w");
  absl::StatusOr<Task> failed = Fail(claim.lease, /*retry=*/true, "disk on fire");
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->status, TaskStatus::kReady);
  EXPECT_EQ(failed->last_error, "disk on fire");
  EXPECT_TRUE(failed->not_before.has_value());
  EXPECT_EQ(LastKind(), "failed");

  clock_.Advance(absl::Seconds(2));
  claim = MustClaim("w");
  ASSERT_EQ(claim.task.id, a.id);
  failed = Fail(claim.lease, /*retry=*/false, "hopeless");
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->status, TaskStatus::kBlocked);

  Task b = MustCreate("b");
  claim = MustClaim("w");
  ASSERT_EQ(claim.task.id, b.id);
  absl::StatusOr<Task> released = Release(claim.lease);
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(released->status, TaskStatus::kReady);
  EXPECT_EQ(released->attempt, 0) << "a release does not count as an attempt";
  EXPECT_EQ(LastKind(), "released");
  ExpectLeaseLost(Release(claim.lease), "released");

  Task c = MustCreate("c", -1, /*max_attempts=*/1);
  Claim last = MustClaim("w");
  ASSERT_EQ(last.task.id, b.id);
  ASSERT_TRUE(Complete(last.lease).ok());
  last = MustClaim("w");
  ASSERT_EQ(last.task.id, c.id);
  failed = Fail(last.lease, /*retry=*/true);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->status, TaskStatus::kBlocked) << "no attempts left";
  EXPECT_EQ(LastKind(), "gave_up");
}

TEST_P(LeaseTest, OperatorMoveCancelsTheLease) {
  Task task = MustCreate("stop me");
  Claim claim = MustClaim("w");
  TaskMove move{task.id, TaskStatus::kBlocked, 0, "wrong input"};
  absl::StatusOr<Task> moved =
      Await<Task>([&](auto done) { store_->MoveTask(move, done); });
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->status, TaskStatus::kBlocked);
  EXPECT_TRUE(moved->worker_id.empty());
  EXPECT_EQ(LastKind(), "lease_cancelled");
  std::vector<LeaseStatus> beat = Beat("w", {{task.id, claim.lease.token}});
  EXPECT_EQ(beat[0].reason, "cancelled");
  ExpectLeaseLost(Complete(claim.lease), "cancelled");
  EXPECT_EQ(Get(task.id).status, TaskStatus::kBlocked);
}

TEST_P(LeaseTest, HeartbeatsExtendOnlyTheHoldersLiveLeases) {
  Task a = MustCreate("a", 2);
  Task b = MustCreate("b", 1);
  Claim ca = MustClaim("w1", absl::Seconds(10));
  Claim cb = MustClaim("w1", absl::Seconds(20));
  const int64_t version = Get(a.id).version;
  clock_.Advance(absl::Seconds(8));
  // On PostgreSQL one statement extends them all, the tokens passed as a
  // JSON array: a quote or a backslash in a bogus one must not break it.
  std::vector<LeaseStatus> beat = Beat("w1", {{a.id, ca.lease.token},
                                              {b.id, cb.lease.token},
                                              {a.id, "bogus"},
                                              {b.id, "bo\"g\\us"}});
  ASSERT_EQ(beat.size(), 4u);
  EXPECT_EQ(beat[3].reason, "unknown");
  EXPECT_TRUE(beat[0].extended);
  EXPECT_EQ(beat[0].expires_at, clock_.Now() + absl::Seconds(10));
  EXPECT_TRUE(beat[1].extended);
  EXPECT_EQ(beat[1].expires_at, clock_.Now() + absl::Seconds(20));
  EXPECT_FALSE(beat[2].extended);
  EXPECT_EQ(beat[2].reason, "unknown");
  EXPECT_EQ(Get(a.id).version, version) << "heartbeats do not change the task";
  EXPECT_EQ(Get(a.id).lease_expires_at, clock_.Now() + absl::Seconds(10));

  EXPECT_EQ(Beat("w2", {{a.id, ca.lease.token}})[0].reason, "not_held");
  clock_.Advance(absl::Seconds(9));  // 17 s after claim: alive thanks to the beat.
  EXPECT_EQ(Sweep().reclaimed, 0);
  EXPECT_TRUE(Complete(ca.lease).ok());

  absl::StatusOr<std::vector<Worker>> workers =
      Await<std::vector<Worker>>([&](auto done) { store_->ListWorkers("", done); });
  ASSERT_TRUE(workers.ok());
  ASSERT_EQ(workers->size(), 2u);
  EXPECT_EQ((*workers)[0].worker_id, "w1");
  EXPECT_THAT((*workers)[0].task_ids, ::testing::ElementsAre(b.id));
}

TEST_P(LeaseTest, LeasesSurviveARestart) {
  Task short_task = MustCreate("short", 2);
  Task long_task = MustCreate("long", 1);
  Claim short_claim = MustClaim("w", absl::Seconds(10));
  Claim long_claim = MustClaim("w", absl::Seconds(100));
  ASSERT_EQ(short_claim.task.id, short_task.id);

  Reopen();  // kanband restarted; the sweeper picks up where it stopped.
  EXPECT_EQ(Get(long_task.id).status, TaskStatus::kRunning);
  clock_.Advance(absl::Seconds(20));
  SweepResult sweep = Sweep();
  EXPECT_EQ(sweep.reclaimed, 1);
  EXPECT_EQ(Get(short_task.id).status, TaskStatus::kReady);
  EXPECT_EQ(Get(long_task.id).status, TaskStatus::kRunning);
  std::vector<LeaseStatus> beat = Beat("w", {{long_task.id, long_claim.lease.token}});
  EXPECT_TRUE(beat[0].extended);
  EXPECT_TRUE(Complete(long_claim.lease).ok());
}

TEST_P(LeaseTest, WrongTaskForTokenAndUnknownTask) {
  Task a = MustCreate("a", 1);
  MustCreate("b");
  Claim claim = MustClaim("w");
  ASSERT_EQ(claim.task.id, a.id);
  Lease wrong = claim.lease;
  wrong.task_id = "no-such-task";
  EXPECT_EQ(Complete(wrong).status().code(), absl::StatusCode::kNotFound);
  Lease other = claim.lease;
  other.token = "0123456789abcdef0123456789abcdef";
  ExpectLeaseLost(Complete(other), "not the task's lease");
  EXPECT_EQ(Get(a.id).status, TaskStatus::kRunning) << "refusals change nothing";
}

// Every write returns the task from memory and snapshots it into its event
// without reading the row back: all three must agree, field by field.
void ExpectSameTask(const Task& a, const Task& b, const std::string& where) {
  SCOPED_TRACE(where);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.board, b.board);
  EXPECT_EQ(a.title, b.title);
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.assignee, b.assignee);
  EXPECT_EQ(a.parent_ids, b.parent_ids);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.attempt, b.attempt);
  EXPECT_EQ(a.max_attempts, b.max_attempts);
  EXPECT_EQ(a.not_before, b.not_before);
  EXPECT_EQ(a.result, b.result);
  EXPECT_EQ(a.last_error, b.last_error);
  EXPECT_EQ(a.idempotency_key, b.idempotency_key);
  EXPECT_EQ(a.worker_id, b.worker_id);
  EXPECT_EQ(a.lease_expires_at, b.lease_expires_at);
}

TEST_P(LeaseTest, ReturnedTaskEqualsTheRowAndTheLatestSnapshot) {
  auto check = [&](const absl::StatusOr<Task>& returned, const std::string& step) {
    ASSERT_TRUE(returned.ok()) << step << ": " << returned.status();
    ExpectSameTask(*returned, Get(returned->id), step + " vs row");
    absl::StatusOr<std::vector<Event>> events = Await<std::vector<Event>>(
        [&](auto done) { store_->ReadEvents(0, 1000000, done); });
    ASSERT_TRUE(events.ok());
    const Event* latest = nullptr;
    for (const Event& e : *events) {
      if (e.task_id == returned->id) latest = &e;
    }
    ASSERT_NE(latest, nullptr);
    ExpectSameTask(*returned, *latest->task, step + " vs snapshot");
  };
  NewTask p;
  p.title = "parent \"quoted\" ü";
  p.labels = {"a", "b"};
  p.not_before = clock_.Now() - absl::Seconds(1);
  absl::StatusOr<Task> parent =
      Await<Task>([&](auto done) { store_->CreateTask(p, done); });
  check(parent, "create");
  NewTask c;
  c.title = "child";
  c.parent_ids = {parent->id};
  absl::StatusOr<Task> child =
      Await<Task>([&](auto done) { store_->CreateTask(c, done); });
  check(child, "create child");
  Task other = MustCreate("other");
  check(Await<Task>([&](auto done) { store_->LinkTasks(other.id, child->id, done); }),
        "link");
  check(Await<Task>([&](auto done) { store_->UnlinkTasks(other.id, child->id, done); }),
        "unlink");
  TaskUpdate u;
  u.task_id = parent->id;
  u.body = "new body";
  u.labels = std::vector<std::string>{"z"};
  check(Await<Task>([&](auto done) { store_->UpdateTask(u, done); }), "update");
  Claim claim = MustClaim("w", absl::Seconds(30));
  ASSERT_EQ(claim.task.id, parent->id);
  check(claim.task, "claim");
  check(Fail(claim.lease, true, "err"), "fail");
  clock_.Advance(absl::Seconds(5));
  claim = MustClaim("w");
  check(Complete(claim.lease, "done!"), "complete");
  check(Get(child->id), "promoted child");
  claim = MustClaim("w");
  TaskMove stop{claim.task.id, TaskStatus::kBlocked, 0, "halt"};
  check(Await<Task>([&](auto done) { store_->MoveTask(stop, done); }), "cancel by move");
}

INSTANTIATE_TEST_SUITE_P(Backends, LeaseTest, testing::AllBackends(),
                         testing::BackendName);

}  // namespace
}  // namespace kanban::storage
