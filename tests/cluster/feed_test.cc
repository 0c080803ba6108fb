// The event feed across replicas: a watcher on any replica receives every
// event committed through any replica, in seq order, with no gap and no
// duplicate, and one whose replica is SIGKILLed resumes on another from its
// last seq and receives exactly the rest.
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/cluster/replicas.h"
#include "tests/support/backends.h"

namespace kanban {
namespace {

using ::kanban::testing::CheckDense;
using ::kanban::testing::CompareWithLog;
using ::kanban::testing::DatabaseEvents;
using ::kanban::testing::DatabaseHead;
using ::kanban::testing::FeedReader;
using ::kanban::testing::kPatience;
using ::kanban::testing::LoggedEvent;
using ::kanban::testing::Prepare;
using ::kanban::testing::Problems;
using ::kanban::testing::Replicas;

constexpr absl::Duration kCallTimeout = absl::Seconds(10);

v1::WatchEventsRequest After(int64_t seq) {
  v1::WatchEventsRequest request;
  request.set_after_seq(seq);
  request.mutable_bookmark_interval()->set_nanos(200 * 1000 * 1000);
  return request;
}

// Writes through one channel on a thread of its own: creates tasks (and,
// when `updates`, retitles each once) until `count` are made, `stop` is
// set or a call fails. Keeps the ids of the acknowledged creates.
class Writer {
 public:
  Writer(std::shared_ptr<grpc::Channel> channel, std::string name, int count,
         bool updates, const std::atomic<bool>& stop)
      : stub_(v1::KanbanService::NewStub(channel)), name_(std::move(name)) {
    thread_ = std::thread([this, count, updates, &stop] { Run(count, updates, stop); });
  }
  ~Writer() { Join(); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  const std::vector<std::string>& created() const { return created_; }
  const grpc::Status& failure() const { return failure_; }

 private:
  void Run(int count, bool updates, const std::atomic<bool>& stop) {
    for (int i = 0; i < count && !stop; ++i) {
      v1::CreateTaskRequest create;
      create.set_title(absl::StrCat(name_, "-", i));
      v1::Task task;
      grpc::ClientContext ctx;
      Prepare(ctx, kCallTimeout);
      failure_ = stub_->CreateTask(&ctx, create, &task);
      if (!failure_.ok()) return;
      created_.push_back(task.id());
      if (!updates) continue;
      v1::UpdateTaskRequest update;
      update.set_task_id(task.id());
      update.set_title(absl::StrCat(name_, "-", i, " (renamed)"));
      grpc::ClientContext update_ctx;
      Prepare(update_ctx, kCallTimeout);
      failure_ = stub_->UpdateTask(&update_ctx, update, &task);
      if (!failure_.ok()) return;
    }
  }

  std::unique_ptr<v1::KanbanService::Stub> stub_;
  const std::string name_;
  std::vector<std::string> created_;
  grpc::Status failure_;
  std::thread thread_;  // Last: started once everything above exists.
};

class ClusterFeedTest : public testing::ClusterTest {};

TEST_F(ClusterFeedTest, AWatcherOfAKilledReplicaResumesOnAnotherWithExactlyTheRest) {
  Replicas replicas(KANBAND_PATH, database_, 3, {"--sweep_interval=200ms"});
  ASSERT_TRUE(replicas.ok()) << replicas.Logs();
  std::atomic<bool> stop{false};
  auto first = std::make_unique<FeedReader>(replicas.Channel(0), After(0));
  // Writes through the doomed replica too, until it dies.
  Writer on_doomed(replicas.Channel(0), "a", 100000, true, stop);
  Writer b(replicas.Channel(1), "b", 500, true, stop);
  Writer c(replicas.Channel(2), "c", 500, true, stop);

  ASSERT_TRUE(first->WaitForPosition(300, kPatience))
      << "at " << first->Position() << "\n"
      << replicas.Logs();
  replicas.Kill(0);
  ASSERT_TRUE(first->WaitForDone(absl::Seconds(10)))
      << "the stream outlived its replica by 10 s";
  EXPECT_EQ(first->status().error_code(), grpc::StatusCode::UNAVAILABLE)
      << first->status().error_message();
  on_doomed.Join();
  EXPECT_FALSE(on_doomed.failure().ok()) << "the writer on the killed replica went on";

  // Resume on replica 1 while the others still write.
  const int64_t resume_at = first->Position();
  FeedReader second(replicas.Channel(1), After(resume_at));
  b.Join();
  c.Join();
  ASSERT_TRUE(b.failure().ok()) << b.failure().error_message();
  ASSERT_TRUE(c.failure().ok()) << c.failure().error_message();
  absl::StatusOr<int64_t> head = DatabaseHead(database_);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_TRUE(second.WaitForPosition(*head, absl::Seconds(15)))
      << "the resumed watcher reached " << second.Position() << " of " << *head << "\n"
      << replicas.Logs();

  std::vector<v1::Event> seen = first->Events();
  for (v1::Event& e : second.Events()) seen.push_back(std::move(e));
  EXPECT_EQ(CheckDense(seen, 1, *head), "") << "resumed after seq " << resume_at;
  absl::StatusOr<std::vector<LoggedEvent>> log = DatabaseEvents(database_);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), *head);
  EXPECT_EQ(CompareWithLog(seen, *log), "") << "resumed after seq " << resume_at;
  // A reader of the whole feed on the third replica agrees.
  std::vector<v1::Event> whole =
      testing::ReadWholeFeed(replicas.Channel(2), *head, absl::Seconds(15));
  EXPECT_EQ(CompareWithLog(whole, *log), "") << "the whole feed, read on r2";
  // Every acknowledged create is in the feed.
  std::set<std::string> in_log;
  for (const LoggedEvent& e : *log) {
    if (e.kind == "created") in_log.insert(e.task_id);
  }
  Problems missing;
  for (const Writer* w : {&on_doomed, &b, &c}) {
    for (const std::string& id : w->created()) {
      if (!in_log.count(id)) missing.Add(id + " was acknowledged but is not there");
    }
  }
  EXPECT_EQ(missing.count(), 0) << missing.Summary();
}

TEST_F(ClusterFeedTest, WatchersOnEveryReplicaSeeTwoReplicasWritesAsOneDenseFeed) {
  constexpr int kPerThread = 625;  // 2 replicas x 4 threads x 625 = 5,000 tasks.
  Replicas replicas(KANBAND_PATH, database_, 3, {"--sweep_interval=200ms"});
  ASSERT_TRUE(replicas.ok()) << replicas.Logs();
  std::vector<std::unique_ptr<FeedReader>> watchers;
  for (int i = 0; i < 3; ++i) {
    watchers.push_back(std::make_unique<FeedReader>(replicas.Channel(i), After(0)));
  }
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<Writer>> writers;
  for (int t = 0; t < 8; ++t) {
    const int replica = t % 2;
    writers.push_back(std::make_unique<Writer>(replicas.Channel(replica),
                                               absl::StrCat("w", t), kPerThread,
                                               /*updates=*/false, stop));
  }
  std::set<std::string> created;
  for (auto& w : writers) {
    w->Join();
    ASSERT_TRUE(w->failure().ok()) << w->failure().error_message();
    created.insert(w->created().begin(), w->created().end());
  }
  ASSERT_EQ(created.size(), 8u * kPerThread);
  absl::StatusOr<int64_t> head = DatabaseHead(database_);
  ASSERT_TRUE(head.ok()) << head.status();

  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(absl::StrCat("the watcher on ", Replicas::Id(i)));
    FeedReader& watcher = *watchers[i];
    EXPECT_TRUE(
        watcher.WaitForPosition(*head, i == 0 ? absl::Seconds(15) : absl::Seconds(5)))
        << "reached " << watcher.Position() << " of " << *head;
    std::vector<v1::Event> seen = watcher.Events();
    EXPECT_EQ(CheckDense(seen, 1, *head), "");
    std::set<std::string> created_seen;
    for (const v1::Event& e : seen) {
      if (e.kind() == "created") created_seen.insert(e.task_id());
    }
    Problems missing;
    for (const std::string& id : created) {
      if (!created_seen.count(id)) missing.Add(id + " was acknowledged but not seen");
    }
    EXPECT_EQ(missing.count(), 0) << missing.Summary();
    EXPECT_EQ(created_seen.size(), created.size());
    EXPECT_FALSE(watcher.Done()) << watcher.status().error_message();
  }
}

}  // namespace
}  // namespace kanban
