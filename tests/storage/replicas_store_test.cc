// Several Stores on one PostgreSQL database, as several kanband replicas run
// them: every Store's hub gets every Store's events in one dense seq order,
// races between their writers (the same idempotency key, two parents of one
// child finished at once, overlapping sweeps, links that would close a cycle
// only together, claims) end as one writer would have ended them, and one
// sweeper leads at a time. PostgreSQL only: on SQLite one kanband owns the
// database (a second Store is refused its lock), so none of this can happen.
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "storage/clock.h"
#include "storage/store.h"
#include "tests/support/backends.h"

namespace kanban::storage {
namespace {

class ReplicasStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::PostgresServer().has_value()) GTEST_SKIP() << "no PostgreSQL for tests";
    absl::StatusOr<std::string> target = testing::NewPostgresDatabase();
    ASSERT_TRUE(target.ok()) << target.status();
    target_ = *target;
  }

  // A Store on the test's database. `on_commit` as Store::Options.
  std::unique_ptr<Store> Open(
      absl::Duration sweep_interval = absl::ZeroDuration(),
      std::function<void(const std::vector<Event>&)> on_commit = nullptr) {
    Store::Options options;
    options.path = target_;
    options.clock = &clock_;
    options.sweep_interval = sweep_interval;
    options.on_commit = std::move(on_commit);
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  static absl::StatusOr<Task> Create(Store& store, NewTask task) {
    return Await<Task>([&](auto done) { store.CreateTask(std::move(task), done); });
  }
  static absl::StatusOr<Task> Create(Store& store, const std::string& title) {
    NewTask task;
    task.title = title;
    return Create(store, std::move(task));
  }
  static std::optional<Claim> ClaimOne(Store& store, absl::Duration lease) {
    ClaimRequest request;
    request.worker_id = "w";
    request.lease_duration = lease;
    absl::StatusOr<ClaimResult> r =
        Await<ClaimResult>([&](auto done) { store.ClaimTask(request, done); });
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->claim : std::nullopt;
  }
  // Every event the hub holds, in its order.
  static std::vector<int64_t> HubSeqs(Store& store) {
    std::vector<EventHub::EventPtr> events;
    EXPECT_EQ(store.events()->Read(0, 1 << 20, &events), EventHub::ReadStatus::kOk);
    std::vector<int64_t> seqs;
    for (const auto& e : events) seqs.push_back(e->seq);
    return seqs;
  }
  static bool WaitFor(const std::function<bool()>& condition,
                      absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!condition()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

  std::string target_;
  FakeClock clock_{absl::FromUnixSeconds(1700000000)};
};

TEST_F(ReplicasStoreTest, EveryHubGetsEveryStoresEventsDenseAndInOrder) {
  std::atomic<int> b_saw{0};
  std::unique_ptr<Store> a = Open();
  std::unique_ptr<Store> b = Open(absl::ZeroDuration(), [&](const std::vector<Event>& e) {
    b_saw += static_cast<int>(e.size());
  });
  ASSERT_TRUE(a && b);
  constexpr int kPerWriter = 150;
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (Store* store : {a.get(), b.get(), a.get(), b.get()}) {
    writers.emplace_back([store, &failures] {
      for (int i = 0; i < kPerWriter; ++i) {
        if (!Create(*store, absl::StrCat("t", i)).ok()) ++failures;
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_EQ(failures, 0);
  constexpr int kTotal = 4 * kPerWriter;
  ASSERT_TRUE(WaitFor([&] {
    return a->events()->head() >= kTotal && b->events()->head() >= kTotal;
  })) << "heads "
      << a->events()->head() << " " << b->events()->head();
  std::vector<int64_t> want;
  for (int64_t s = 1; s <= kTotal; ++s) want.push_back(s);
  EXPECT_EQ(HubSeqs(*a), want);
  EXPECT_EQ(HubSeqs(*b), want);
  // B's listeners (the claim waiters, in kanband) heard A's commits too.
  EXPECT_EQ(b_saw, kTotal);
}

TEST_F(ReplicasStoreTest, TheSameIdempotencyKeyOnTwoStoresMakesOneTask) {
  std::unique_ptr<Store> a = Open();
  std::unique_ptr<Store> b = Open();
  ASSERT_TRUE(a && b);
  for (int i = 0; i < 30; ++i) {
    NewTask task;
    task.title = "once";
    task.idempotency_key = absl::StrCat("key-", i);
    absl::StatusOr<Task> from_a, from_b;
    std::thread ta([&] { from_a = Create(*a, task); });
    std::thread tb([&] { from_b = Create(*b, task); });
    ta.join();
    tb.join();
    ASSERT_TRUE(from_a.ok()) << from_a.status();
    ASSERT_TRUE(from_b.ok()) << from_b.status();
    EXPECT_EQ(from_a->id, from_b->id) << "key " << i;
  }
}

TEST_F(ReplicasStoreTest, ParentsFinishedOnTwoStoresAtOncePromoteTheChild) {
  std::unique_ptr<Store> a = Open();
  std::unique_ptr<Store> b = Open();
  ASSERT_TRUE(a && b);
  for (int round = 0; round < 15; ++round) {
    absl::StatusOr<Task> p1 = Create(*a, "p1");
    absl::StatusOr<Task> p2 = Create(*a, "p2");
    ASSERT_TRUE(p1.ok() && p2.ok());
    NewTask child;
    child.title = "child";
    child.parent_ids = {p1->id, p2->id};
    absl::StatusOr<Task> c = Create(*a, child);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_EQ(c->status, TaskStatus::kTodo);
    std::optional<Claim> c1 = ClaimOne(*a, absl::Minutes(1));
    std::optional<Claim> c2 = ClaimOne(*b, absl::Minutes(1));
    ASSERT_TRUE(c1 && c2);
    absl::StatusOr<Task> d1, d2;
    std::thread ta([&] {
      d1 = Await<Task>([&](auto done) {
        a->CompleteTask({c1->task.id, c1->lease.token}, "ok", done);
      });
    });
    std::thread tb([&] {
      d2 = Await<Task>([&](auto done) {
        b->CompleteTask({c2->task.id, c2->lease.token}, "ok", done);
      });
    });
    ta.join();
    tb.join();
    ASSERT_TRUE(d1.ok()) << d1.status();
    ASSERT_TRUE(d2.ok()) << d2.status();
    absl::StatusOr<Task> after = Await<Task>([&](auto done) { b->GetTask(c->id, done); });
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->status, TaskStatus::kReady) << "round " << round;
    // The child is claimable: take it off the board for the next round.
    std::optional<Claim> next = ClaimOne(*a, absl::Minutes(1));
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->task.id, c->id);
    ASSERT_TRUE(Await<Task>([&](auto done) {
                  a->CompleteTask({next->task.id, next->lease.token}, "ok", done);
                }).ok());
  }
}

TEST_F(ReplicasStoreTest, OverlappingSweepsOnTwoStoresReclaimEachLeaseOnce) {
  std::unique_ptr<Store> a = Open();
  std::unique_ptr<Store> b = Open();
  ASSERT_TRUE(a && b);
  constexpr int kTasks = 40;
  for (int i = 0; i < kTasks; ++i) ASSERT_TRUE(Create(*a, absl::StrCat("t", i)).ok());
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_TRUE(ClaimOne(i % 2 ? *a : *b, absl::Seconds(5)).has_value());
  }
  clock_.Advance(absl::Seconds(10));
  absl::StatusOr<SweepResult> ra, rb;
  std::thread ta([&] { ra = Await<SweepResult>([&](auto done) { a->Sweep(done); }); });
  std::thread tb([&] { rb = Await<SweepResult>([&](auto done) { b->Sweep(done); }); });
  ta.join();
  tb.join();
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(ra->reclaimed + rb->reclaimed, kTasks);
  // One "reclaimed" event per lease, whichever Store swept it.
  absl::StatusOr<std::vector<Event>> events =
      Await<std::vector<Event>>([&](auto done) { a->ReadEvents(0, 100000, done); });
  ASSERT_TRUE(events.ok());
  int reclaimed = 0;
  for (const Event& e : *events) reclaimed += e.kind == "reclaimed";
  EXPECT_EQ(reclaimed, kTasks);
}

TEST_F(ReplicasStoreTest, LinksOnTwoStoresNeverCloseACycleTogether) {
  std::unique_ptr<Store> a = Open();
  std::unique_ptr<Store> b = Open();
  ASSERT_TRUE(a && b);
  for (int round = 0; round < 10; ++round) {
    // v -> w and x -> u exist; u -> v and w -> x would each be fine alone,
    // and together close u -> v -> w -> x -> u.
    std::string u, v, w, x;
    for (std::string* id : {&u, &v, &w, &x}) {
      absl::StatusOr<Task> t = Create(*a, "node");
      ASSERT_TRUE(t.ok());
      *id = t->id;
    }
    ASSERT_TRUE(Await<Task>([&](auto done) { a->LinkTasks(v, w, done); }).ok());
    ASSERT_TRUE(Await<Task>([&](auto done) { a->LinkTasks(x, u, done); }).ok());
    absl::StatusOr<Task> first, second;
    std::thread ta([&] { first = Await<Task>([&](auto d) { a->LinkTasks(u, v, d); }); });
    std::thread tb([&] { second = Await<Task>([&](auto d) { b->LinkTasks(w, x, d); }); });
    ta.join();
    tb.join();
    EXPECT_NE(first.ok(), second.ok())
        << "round " << round << ": " << first.status() << " / " << second.status();
    const absl::Status& refused = first.ok() ? second.status() : first.status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  }
}

TEST_F(ReplicasStoreTest, ClaimsOnTwoStoresNeverShareATask) {
  std::unique_ptr<Store> a = Open();
  std::unique_ptr<Store> b = Open();
  ASSERT_TRUE(a && b);
  constexpr int kTasks = 200;
  for (int i = 0; i < kTasks; ++i) ASSERT_TRUE(Create(*a, absl::StrCat("t", i)).ok());
  absl::Mutex mu;
  std::vector<std::string> claimed;
  std::vector<std::thread> workers;
  for (Store* store : {a.get(), b.get(), a.get(), b.get()}) {
    workers.emplace_back([&, store] {
      while (std::optional<Claim> c = ClaimOne(*store, absl::Minutes(1))) {
        absl::MutexLock lock(&mu);
        claimed.push_back(c->task.id);
      }
    });
  }
  for (auto& t : workers) t.join();
  std::set<std::string> distinct(claimed.begin(), claimed.end());
  EXPECT_EQ(claimed.size(), static_cast<size_t>(kTasks));
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kTasks));
}

TEST_F(ReplicasStoreTest, OneStoreSweepsAtATimeAndAnotherTakesOver) {
  std::unique_ptr<Store> a = Open(absl::Milliseconds(20));
  std::unique_ptr<Store> b = Open(absl::Milliseconds(20));
  std::unique_ptr<Store> c = Open(absl::Milliseconds(20));
  ASSERT_TRUE(a && b && c);
  auto leaders = [&] { return a->sweeping() + b->sweeping() + c->sweeping(); };
  ASSERT_TRUE(WaitFor([&] { return leaders() == 1; }));
  for (int i = 0; i < 20; ++i) {
    EXPECT_LE(leaders(), 1);
    absl::SleepFor(absl::Milliseconds(10));
  }
  // The leader goes away (its session with it): one of the others leads.
  std::unique_ptr<Store>& leader = a->sweeping() ? a : b->sweeping() ? b : c;
  leader->Close();
  leader.reset();
  auto remaining = [&] {
    int n = 0;
    for (Store* s : {a.get(), b.get(), c.get()}) n += s != nullptr && s->sweeping();
    return n;
  };
  EXPECT_TRUE(WaitFor([&] { return remaining() == 1; }, absl::Seconds(2)));
}

}  // namespace
}  // namespace kanban::storage
