// ClaimWaiters on its own: who is woken by which committed event, the
// missed-wake guard, the timer, and shutdown.
#include "service/claim_waiters.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace kanban::service {
namespace {

storage::ClaimRequest Filter(std::vector<std::string> labels = {},
                             std::string assignee = "", std::string board = "") {
  storage::ClaimRequest r;
  r.board = std::move(board);
  r.worker_id = "w";
  r.labels = std::move(labels);
  r.assignee = std::move(assignee);
  return r;
}

storage::Event ReadyEvent(int64_t seq, std::vector<std::string> labels = {},
                          std::string assignee = "", std::string board = "default") {
  storage::Event e;
  e.seq = seq;
  e.board = board;
  e.kind = "created";
  storage::Task t;
  t.board = board;
  t.status = storage::TaskStatus::kReady;
  t.labels = std::move(labels);
  t.assignee = std::move(assignee);
  e.task = t;
  return e;
}

const absl::Time kLater = absl::Now() + absl::Hours(1);

TEST(ClaimWaitersTest, OneMatchingWaiterPerReadyTaskOldestFirst) {
  ClaimWaiters waiters;
  std::atomic<int> woke_gpu{0}, woke_any1{0}, woke_any2{0};
  ASSERT_TRUE(
      waiters.Add(Filter({"gpu"}), 0, kLater, [&](const storage::Task*) { woke_gpu++; })
          .has_value());
  ASSERT_TRUE(waiters.Add(Filter(), 0, kLater, [&](const storage::Task*) { woke_any1++; })
                  .has_value());
  ASSERT_TRUE(waiters.Add(Filter(), 0, kLater, [&](const storage::Task*) { woke_any2++; })
                  .has_value());

  // A plain task: the gpu waiter cannot take it; the oldest plain one wakes.
  waiters.OnCommit({ReadyEvent(1)});
  EXPECT_EQ(woke_gpu.load(), 0);
  EXPECT_EQ(woke_any1.load(), 1);
  EXPECT_EQ(woke_any2.load(), 0);
  // A gpu task: the gpu waiter is the oldest that matches.
  waiters.OnCommit({ReadyEvent(2, {"gpu", "big"})});
  EXPECT_EQ(woke_gpu.load(), 1);
  EXPECT_EQ(woke_any2.load(), 0);
  EXPECT_EQ(waiters.size(), 1u);
}

TEST(ClaimWaitersTest, WokenWaitersLearnTheTriggerAndOfferPassesItOn) {
  ClaimWaiters waiters;
  std::vector<std::string> seen;
  absl::Mutex mu;
  auto record = [&](const std::string& who) {
    return [&, who](const storage::Task* trigger) {
      absl::MutexLock lock(&mu);
      seen.push_back(who + ":" + (trigger ? trigger->title : "timer"));
    };
  };
  ASSERT_TRUE(waiters.Add(Filter(), 0, kLater, record("a")).has_value());
  ASSERT_TRUE(waiters.Add(Filter(), 0, kLater, record("b")).has_value());
  storage::Event plain = ReadyEvent(1);
  plain.task->title = "plain";
  waiters.OnCommit({plain});
  // "a" took some other task instead: the plain one goes to "b".
  waiters.Offer(*plain.task);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"a:plain", "b:plain"}));
}

TEST(ClaimWaitersTest, EventsThatLeaveNothingReadyWakeNobody) {
  ClaimWaiters waiters;
  std::atomic<int> woke{0};
  ASSERT_TRUE(waiters.Add(Filter(), 0, kLater, [&](const storage::Task*) { woke++; })
                  .has_value());
  storage::Event running = ReadyEvent(1);
  running.task->status = storage::TaskStatus::kRunning;
  storage::Event board_event;
  board_event.seq = 2;
  board_event.board = "default";
  waiters.OnCommit({running, board_event, ReadyEvent(3, {}, "", "other")});
  storage::Event assigned = ReadyEvent(4, {}, "alice");
  waiters.OnCommit({assigned});
  EXPECT_EQ(woke.load(), 0);
  EXPECT_EQ(waiters.size(), 1u);
}

TEST(ClaimWaitersTest, AReadyEventNewerThanTheClaimMeansClaimAgain) {
  ClaimWaiters waiters;
  waiters.OnCommit({ReadyEvent(10)});
  // The claim looked at seq 9: task 10 may be claimable, so no waiting.
  EXPECT_FALSE(waiters.Add(Filter(), 9, kLater, [](const storage::Task*) {}).has_value());
  EXPECT_TRUE(waiters.Add(Filter(), 10, kLater, [](const storage::Task*) {}).has_value());
  // Other boards are tracked apart.
  EXPECT_TRUE(waiters.Add(Filter({}, "", "other"), 0, kLater, [](const storage::Task*) {})
                  .has_value());
}

TEST(ClaimWaitersTest, RemovedWaitersAreNeverWoken) {
  ClaimWaiters waiters;
  std::atomic<int> woke{0};
  std::optional<uint64_t> id =
      waiters.Add(Filter(), 0, kLater, [&](const storage::Task*) { woke++; });
  ASSERT_TRUE(id.has_value());
  EXPECT_TRUE(waiters.Remove(*id));
  EXPECT_FALSE(waiters.Remove(*id));
  waiters.OnCommit({ReadyEvent(1)});
  waiters.Shutdown();
  EXPECT_EQ(woke.load(), 0);
}

TEST(ClaimWaitersTest, TimerWakesAtWakeTime) {
  ClaimWaiters waiters;
  absl::Notification early, late;
  absl::Time start = absl::Now();
  ASSERT_TRUE(waiters.Add(Filter(), 0, start + absl::Milliseconds(400),
                          [&](const storage::Task*) { late.Notify(); }));
  // Added after, due before: the timer must not oversleep it.
  ASSERT_TRUE(waiters.Add(Filter(), 0, start + absl::Milliseconds(100),
                          [&](const storage::Task*) { early.Notify(); }));
  ASSERT_TRUE(early.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
  EXPECT_FALSE(late.HasBeenNotified());
  ASSERT_TRUE(late.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(400));
}

TEST(ClaimWaitersTest, FutureNotBeforeReschedulesMatchingWaiters) {
  ClaimWaiters waiters;
  absl::Notification woke;
  absl::Time start = absl::Now();
  ASSERT_TRUE(
      waiters.Add(Filter(), 0, kLater, [&](const storage::Task*) { woke.Notify(); }));
  storage::Event later = ReadyEvent(1);
  later.task->not_before = start + absl::Milliseconds(200);
  waiters.OnCommit({later});
  EXPECT_FALSE(woke.HasBeenNotified()) << "not claimable yet";
  ASSERT_TRUE(woke.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
}

TEST(ClaimWaitersTest, ShutdownWakesEveryoneAndRefusesNewWaiters) {
  ClaimWaiters waiters;
  std::atomic<int> woke{0};
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(waiters.Add(Filter(), 0, kLater, [&](const storage::Task*) { woke++; })
                    .has_value());
  }
  waiters.Shutdown();
  EXPECT_EQ(woke.load(), 5);
  EXPECT_TRUE(waiters.shut_down());
  EXPECT_FALSE(waiters.Add(Filter(), 0, kLater, [](const storage::Task*) {}).has_value());
}

}  // namespace
}  // namespace kanban::service
