// The EventHub ring, and the event log's retention and group-preserving
// reads on a real database.
#include "storage/event_hub.h"

#include <limits>

#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
namespace {

// Events seq first..last; `group` consecutive events share a txn.
std::vector<Event> MakeEvents(int64_t first, int64_t last, int group = 1) {
  std::vector<Event> events;
  for (int64_t seq = first; seq <= last; ++seq) {
    Event e;
    e.seq = seq;
    e.txn = seq - (seq - first) % group;
    e.kind = "created";
    events.push_back(e);
  }
  return events;
}

std::vector<int64_t> Seqs(const std::vector<EventHub::EventPtr>& events) {
  std::vector<int64_t> seqs;
  for (const auto& e : events) seqs.push_back(e->seq);
  return seqs;
}

TEST(EventHubTest, ReadsAfterAPositionAndReportsWhatLeftTheRing) {
  EventHub hub(/*capacity=*/5, /*head=*/10);
  std::vector<EventHub::EventPtr> out;
  EXPECT_EQ(hub.Read(10, 100, &out), EventHub::ReadStatus::kOk);
  EXPECT_TRUE(out.empty()) << "nothing after the head";
  EXPECT_EQ(hub.Read(3, 100, &out), EventHub::ReadStatus::kTooOld)
      << "events 4..10 were committed before the hub started";

  int notified = 0;
  hub.SetListener([&] { ++notified; });
  hub.Publish(MakeEvents(11, 14));
  hub.Publish(MakeEvents(15, 17));
  EXPECT_EQ(notified, 2);
  EXPECT_EQ(hub.head(), 17);
  // Capacity 5: 13..17 are kept.
  EXPECT_EQ(hub.Read(11, 100, &out), EventHub::ReadStatus::kTooOld);
  out.clear();
  EXPECT_EQ(hub.Read(12, 100, &out), EventHub::ReadStatus::kOk);
  EXPECT_EQ(Seqs(out), (std::vector<int64_t>{13, 14, 15, 16, 17}));
  out.clear();
  EXPECT_EQ(hub.Read(15, 100, &out), EventHub::ReadStatus::kOk);
  EXPECT_EQ(Seqs(out), (std::vector<int64_t>{16, 17}));
  // A client's after_seq may be as large as an int64 goes (found by
  // fuzz_requests: `after + 1` overflowed).
  out.clear();
  EXPECT_EQ(hub.Read(std::numeric_limits<int64_t>::max(), 100, &out),
            EventHub::ReadStatus::kOk);
  EXPECT_TRUE(out.empty());
}

TEST(EventHubTest, NeverCutsAChangeAndKeepsTheNewestCommitWhole) {
  EventHub hub(/*capacity=*/2, /*head=*/0);
  hub.Publish(MakeEvents(1, 6, /*group=*/3));  // Changes 1-3 and 4-6.
  std::vector<EventHub::EventPtr> out;
  // Larger than capacity, but one commit is never evicted from itself.
  EXPECT_EQ(hub.Read(0, 1, &out), EventHub::ReadStatus::kOk);
  EXPECT_EQ(Seqs(out), (std::vector<int64_t>{1, 2, 3})) << "max 1, but a change is whole";
  out.clear();
  EXPECT_EQ(hub.Read(3, 2, &out), EventHub::ReadStatus::kOk);
  EXPECT_EQ(Seqs(out), (std::vector<int64_t>{4, 5, 6}));
  hub.Publish(MakeEvents(7, 7));
  out.clear();
  EXPECT_EQ(hub.Read(0, 100, &out), EventHub::ReadStatus::kTooOld);
}

TEST(EventHubTest, ForgetsWhatRetentionDeleted) {
  EventHub hub(/*capacity=*/100, /*head=*/0);
  hub.Publish(MakeEvents(1, 10));
  hub.ForgetBefore(6);
  std::vector<EventHub::EventPtr> out;
  EXPECT_EQ(hub.Read(3, 100, &out), EventHub::ReadStatus::kTooOld)
      << "4 and 5 are gone from the database: the ring must not serve them";
  EXPECT_EQ(hub.Read(5, 100, &out), EventHub::ReadStatus::kOk);
  EXPECT_EQ(Seqs(out), (std::vector<int64_t>{6, 7, 8, 9, 10}));
}

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Store::Options options;
    options.path = dir_.File("kanban.db");
    options.clock = &clock_;
    options.sweep_interval = absl::ZeroDuration();
    options.event_retention = absl::Hours(1);
    options.event_retention_count = 4;
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  Task Create(const std::string& title, std::vector<std::string> parents = {}) {
    NewTask t;
    t.title = title;
    t.parent_ids = std::move(parents);
    absl::StatusOr<Task> task =
        Await<Task>([&](auto done) { store_->CreateTask(t, done); });
    EXPECT_TRUE(task.ok()) << task.status();
    return *task;
  }
  std::vector<Event> Read(int64_t after, int limit) {
    absl::StatusOr<std::vector<Event>> events = Await<std::vector<Event>>(
        [&](auto done) { store_->ReadEvents(after, limit, done); });
    EXPECT_TRUE(events.ok()) << events.status();
    return *events;
  }
  int64_t Oldest() {
    return *Await<int64_t>([&](auto done) { store_->OldestEventSeq(done); });
  }
  SweepResult Sweep() {
    return *Await<SweepResult>([&](auto done) { store_->Sweep(done); });
  }

  testing::TempDir dir_;
  FakeClock clock_{absl::FromUnixSeconds(1800000000)};
  std::unique_ptr<Store> store_;
};

TEST_F(EventLogTest, ReadsCompleteAChangeCutByTheLimit) {
  Task parent = Create("p");  // seq 1
  Create("a", {parent.id});   // seq 2
  Create("b", {parent.id});   // seq 3
  TaskMove done{parent.id, TaskStatus::kDone, 0, ""};
  ASSERT_TRUE(Await<Task>([&](auto d) { store_->MoveTask(done, d); }).ok());
  // seq 4 moved, 5 and 6 promoted: one change.
  std::vector<Event> events = Read(3, 1);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kind, "moved");
  EXPECT_EQ(events[2].kind, "promoted");
  for (const Event& e : events) EXPECT_EQ(e.txn, 4);
  EXPECT_EQ(Read(0, 1)[0].txn, 1);
}

TEST_F(EventLogTest, RetentionKeepsTheNewestAndNeverHalfAChange) {
  EXPECT_EQ(Oldest(), 1);
  Task parent = Create("p");                             // 1
  for (int i = 0; i < 3; ++i) Create("c", {parent.id});  // 2..4
  TaskMove done{parent.id, TaskStatus::kDone, 0, ""};
  ASSERT_TRUE(Await<Task>([&](auto d) { store_->MoveTask(done, d); }).ok());  // 5..8
  Create("last");                                                             // 9
  // Keep the newest 4 = 6..9; but 6 is inside the change 5..8, which stays
  // whole: only 1..4 go.
  EXPECT_EQ(Sweep().events_deleted, 4);
  EXPECT_EQ(Oldest(), 5);
  EXPECT_EQ(Read(0, 100).front().seq, 5);
  EXPECT_EQ(Sweep().events_deleted, 0) << "stable";
  // Age: two hours later everything so far is older than the 1 h limit.
  clock_.Advance(absl::Hours(2));
  Create("newer");  // 10
  Sweep();
  EXPECT_EQ(Oldest(), 10);
  // Sequence numbers continue after deletions; never reused.
  Create("newest");
  EXPECT_EQ(Read(0, 100).back().seq, 11);
}

}  // namespace
}  // namespace kanban::storage
