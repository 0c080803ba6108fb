// WatchEvents end to end: start positions, bookmarks, filters, resume
// exactness, slow and stalled watchers, retention, restarts and shutdown, on
// a real server at 127.0.0.1:0 over a real SQLite file, through the generated
// sync stubs. Reading the stream is the signal every test waits on; each call
// carries a deadline so that a broken server fails a test instead of hanging
// the binary.
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/server.h"
#include "storage/store.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

using ::grpc::StatusCode;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;
using Stub = v1::KanbanService::Stub;
using SteadyClock = std::chrono::steady_clock;

// Only keeps a broken server from hanging the binary; never fires otherwise.
constexpr auto kCallTimeout = std::chrono::seconds(20);
// "Promptly": far below every timeout that could otherwise end the wait
// (the server's 10 s shutdown grace, kCallTimeout).
constexpr absl::Duration kPrompt = absl::Seconds(5);
// gRPC's default limit on a message a client accepts.
constexpr size_t kClientMaxMessageBytes = 4 * 1024 * 1024;

std::chrono::system_clock::time_point Deadline(
    std::chrono::system_clock::duration timeout = kCallTimeout) {
  return std::chrono::system_clock::now() + timeout;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat("code ", static_cast<int>(s.error_code()), ": ", s.error_message());
}

absl::Duration Since(SteadyClock::time_point start) {
  return absl::FromChrono(SteadyClock::now() - start);
}

// first..last inclusive.
std::vector<int64_t> Range(int64_t first, int64_t last) {
  std::vector<int64_t> seqs;
  for (int64_t s = first; s <= last; ++s) seqs.push_back(s);
  return seqs;
}

std::vector<int64_t> Seqs(const std::vector<v1::Event>& events) {
  std::vector<int64_t> seqs;
  for (const v1::Event& e : events) seqs.push_back(e.seq());
  return seqs;
}

v1::WatchEventsRequest AfterSeq(int64_t seq) {
  v1::WatchEventsRequest r;
  r.set_after_seq(seq);
  return r;
}

v1::WatchEventsRequest FromNow() {
  v1::WatchEventsRequest r;
  r.set_from_now(true);
  return r;
}

void SetBookmarkInterval(absl::Duration d, v1::WatchEventsRequest* r) {
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  r->mutable_bookmark_interval()->set_seconds(nanos / 1000000000);
  r->mutable_bookmark_interval()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

// One WatchEvents call through the sync API. The destructor cancels a call
// still open and collects its status.
class Watch {
 public:
  Watch(Stub* stub, const v1::WatchEventsRequest& request,
        std::chrono::system_clock::time_point deadline = Deadline()) {
    ctx_.set_deadline(deadline);
    reader_ = stub->WatchEvents(&ctx_, request);
  }
  ~Watch() {
    if (!finished_) Cancel();
  }
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  // False once the stream has ended (then call Finish).
  bool Read(v1::WatchEventsResponse* response) { return reader_->Read(response); }

  // Reads responses until one has bookmark_seq >= `seq`, appending their
  // events to `events` (and the responses to `responses` when given), and
  // checks that seqs increase across the stream. False if the stream ended
  // first.
  bool ReadThrough(int64_t seq, std::vector<v1::Event>* events,
                   std::vector<v1::WatchEventsResponse>* responses = nullptr) {
    v1::WatchEventsResponse r;
    while (reader_->Read(&r)) {
      for (const v1::Event& e : r.events()) {
        EXPECT_GT(e.seq(), last_seq_)
            << "out of order or repeated: " << e.ShortDebugString();
        last_seq_ = e.seq();
        events->push_back(e);
      }
      EXPECT_GE(r.bookmark_seq(), last_seq_) << "bookmark behind the events it carries";
      if (responses != nullptr) responses->push_back(r);
      if (r.bookmark_seq() >= seq) return true;
    }
    return false;
  }

  // Waits for the server to end the stream (discarding what is still
  // unread) and returns its status.
  grpc::Status Finish() {
    v1::WatchEventsResponse ignored;
    while (reader_->Read(&ignored)) {
    }
    finished_ = true;
    return reader_->Finish();
  }

  // Disconnects: cancels, discards what is unread, returns the status.
  grpc::Status Cancel() {
    ctx_.TryCancel();
    return Finish();
  }

  grpc::ClientContext& context() { return ctx_; }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader_;
  int64_t last_seq_ = 0;
  bool finished_ = false;
};

class WatchFixture : public testing::BackendTest {
 protected:
  void SetUp() override {
    if (Database(dir_.File("kanban.db")).empty()) return;
    ASSERT_NO_FATAL_FAILURE(StartServer(BaseOptions()));
  }

  void TearDown() override { StopServer(); }

  Server::Options BaseOptions() {
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.store.path = Database(dir_.File("kanban.db"));
    return options;
  }

  // Replaces a running server; the database file stays.
  void StartServer(Server::Options options) {
    StopServer();
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = NewStub();
  }

  void StopServer() {
    stub_.reset();
    if (server_) server_->Shutdown();
    server_.reset();
  }

  // A stub on its own connection (so that an unread stream cannot hold up
  // another's); `unlimited` lifts the client's 4 MB limit on received
  // messages.
  std::unique_ptr<Stub> NewStub(bool unlimited = false) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (unlimited) args.SetMaxReceiveMessageSize(-1);
    return v1::KanbanService::NewStub(
        grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server_->port()),
                                  grpc::InsecureChannelCredentials(), args));
  }

  int64_t Head() { return server_->store().events()->head(); }

  // Waits (by watching) until event `seq` has been published to watchers,
  // then returns the head. A write is answered before its events reach
  // watchers, so this comes between a write and a check of what "now" is.
  int64_t AwaitPublished(int64_t seq) {
    Watch watch(stub_.get(), AfterSeq(seq - 1));
    std::vector<v1::Event> events;
    EXPECT_TRUE(watch.ReadThrough(seq, &events)) << Describe(watch.Finish());
    return Head();
  }

  v1::Task Create(const std::string& title, const std::string& board = "",
                  const std::string& body = "",
                  const std::vector<std::string>& parents = {}) {
    v1::CreateTaskRequest r;
    r.set_title(title);
    r.set_board(board);
    r.set_body(body);
    for (const std::string& p : parents) r.add_parent_ids(p);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::Task task;
    grpc::Status s = stub_->CreateTask(&ctx, r, &task);
    EXPECT_TRUE(s.ok()) << Describe(s) << " for CreateTask " << title;
    return task;
  }

  v1::Task Move(const std::string& id, v1::Status to) {
    v1::MoveTaskRequest r;
    r.set_task_id(id);
    r.set_to_status(to);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::Task task;
    grpc::Status s = stub_->MoveTask(&ctx, r, &task);
    EXPECT_TRUE(s.ok()) << Describe(s) << " for MoveTask " << id;
    return task;
  }

  void CreateBoard(const std::string& name) {
    v1::CreateBoardRequest r;
    r.set_name(name);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::Board board;
    grpc::Status s = stub_->CreateBoard(&ctx, r, &board);
    EXPECT_TRUE(s.ok()) << Describe(s) << " for CreateBoard " << name;
  }

  // The oldest event seq the database still keeps.
  int64_t OldestSeq() {
    absl::StatusOr<int64_t> oldest = storage::Await<int64_t>(
        [&](auto done) { server_->store().OldestEventSeq(done); });
    EXPECT_TRUE(oldest.ok()) << oldest.status();
    return oldest.value_or(-1);
  }

  kanban::testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Stub> stub_;
};

using WatchStartTest = WatchFixture;
using WatchBookmarkTest = WatchFixture;
using WatchResumeTest = WatchFixture;
using WatchFlowTest = WatchFixture;
using WatchLifecycleTest = WatchFixture;
using WatchInputTest = WatchFixture;

// ---- Start positions ----------------------------------------------------------

TEST_P(WatchStartTest, FromNowStartsWithBookmarkAtHeadThenLiveEventsInOrder) {
  for (int i = 0; i < 3; ++i) Create(absl::StrCat("before ", i));
  ASSERT_EQ(AwaitPublished(3), 3);

  Watch watch(stub_.get(), FromNow());
  v1::WatchEventsResponse first;
  ASSERT_TRUE(watch.Read(&first)) << watch.Finish().error_message();
  EXPECT_THAT(first.events(), IsEmpty());
  EXPECT_EQ(first.bookmark_seq(), 3);

  const v1::Task a = Create("after a");
  const v1::Task b = Create("after b");
  std::vector<v1::Event> events;
  ASSERT_TRUE(watch.ReadThrough(5, &events));
  EXPECT_THAT(Seqs(events), ElementsAre(4, 5));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind(), "created");
  EXPECT_EQ(events[0].task_id(), a.id());
  EXPECT_EQ(events[0].task().title(), "after a");
  EXPECT_EQ(events[0].board(), "default");
  EXPECT_EQ(events[1].task_id(), b.id());
}

TEST_P(WatchStartTest, AfterSeqZeroDeliversAllHistoryThenLiveEvents) {
  for (int i = 0; i < 5; ++i) Create(absl::StrCat("t", i));

  Watch watch(stub_.get(), AfterSeq(0));
  std::vector<v1::Event> events;
  ASSERT_TRUE(watch.ReadThrough(5, &events));
  EXPECT_THAT(Seqs(events), ElementsAreArray(Range(1, 5)));

  Create("live");
  ASSERT_TRUE(watch.ReadThrough(6, &events));
  EXPECT_THAT(Seqs(events), ElementsAreArray(Range(1, 6)));
  EXPECT_EQ(events.back().task().title(), "live");
}

TEST_P(WatchStartTest, AfterSeqNDeliversExactlyTheLaterEvents) {
  for (int i = 0; i < 5; ++i) Create(absl::StrCat("t", i));

  Watch watch(stub_.get(), AfterSeq(3));
  std::vector<v1::Event> events;
  std::vector<v1::WatchEventsResponse> responses;
  ASSERT_TRUE(watch.ReadThrough(5, &events, &responses));
  EXPECT_THAT(Seqs(events), ElementsAre(4, 5));
  EXPECT_EQ(responses.back().bookmark_seq(), 5);

  // Caught up at the head: nothing (not even seq 5 again) before the next.
  Create("live");
  ASSERT_TRUE(watch.ReadThrough(6, &events));
  EXPECT_THAT(Seqs(events), ElementsAre(4, 5, 6));
}

TEST_P(WatchStartTest, EventsOfOneChangeArriveInOneResponse) {
  const v1::Task parent = Create("parent");
  const v1::Task c1 = Create("child 1", "", "", {parent.id()});
  const v1::Task c2 = Create("child 2", "", "", {parent.id()});
  ASSERT_EQ(c1.status(), v1::TODO);
  ASSERT_EQ(c2.status(), v1::TODO);
  v1::ClaimTaskRequest claim;
  claim.set_worker_id("w1");
  v1::ClaimTaskResponse claimed;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    grpc::Status s = stub_->ClaimTask(&ctx, claim, &claimed);
    ASSERT_TRUE(s.ok()) << Describe(s);
    ASSERT_EQ(claimed.task().id(), parent.id());
  }
  ASSERT_EQ(AwaitPublished(4), 4);  // 3 created, 1 claimed.

  Watch live(stub_.get(), FromNow());
  v1::WatchEventsResponse first;
  ASSERT_TRUE(live.Read(&first));
  ASSERT_EQ(first.bookmark_seq(), 4);

  v1::CompleteTaskRequest complete;
  complete.set_task_id(parent.id());
  complete.set_lease_token(claimed.lease().token());
  complete.set_result("done");
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::Task done;
    grpc::Status s = stub_->CompleteTask(&ctx, complete, &done);
    ASSERT_TRUE(s.ok()) << Describe(s);
  }

  // Live, and replayed from history: the three events share one response.
  Watch replay(stub_.get(), AfterSeq(4));
  for (Watch* watch : {&live, &replay}) {
    std::vector<v1::Event> events;
    std::vector<v1::WatchEventsResponse> responses;
    ASSERT_TRUE(watch->ReadThrough(7, &events, &responses));
    std::vector<const v1::WatchEventsResponse*> with_events;
    for (const auto& r : responses) {
      if (r.events_size() > 0) with_events.push_back(&r);
    }
    ASSERT_EQ(with_events.size(), 1u) << "the change was split across responses";
    const v1::WatchEventsResponse& r = *with_events[0];
    ASSERT_EQ(r.events_size(), 3);
    EXPECT_EQ(r.events(0).seq(), 5);
    EXPECT_EQ(r.events(1).seq(), 6);
    EXPECT_EQ(r.events(2).seq(), 7);
    EXPECT_EQ(r.events(0).kind(), "completed");
    EXPECT_EQ(r.events(0).task_id(), parent.id());
    EXPECT_EQ(r.events(1).kind(), "promoted");
    EXPECT_EQ(r.events(2).kind(), "promoted");
    EXPECT_THAT((std::vector<std::string>{r.events(1).task_id(), r.events(2).task_id()}),
                UnorderedElementsAre(c1.id(), c2.id()));
    EXPECT_EQ(r.events(1).task().status(), v1::READY);
    EXPECT_EQ(r.bookmark_seq(), 7);
  }
}

// ---- Filters ----------------------------------------------------------------

class WatchFilterEvents : public WatchFixture {
 protected:
  // 1 board_created(other), 2 created A (default), 3 created B (other),
  // 4 created C (default), 5 moved B, 6 moved A.
  void SetUp() override {
    WatchFixture::SetUp();
    CreateBoard("other");
    a_ = Create("A");
    b_ = Create("B", "other");
    c_ = Create("C");
    Move(b_.id(), v1::BLOCKED);
    Move(a_.id(), v1::BLOCKED);
    ASSERT_EQ(AwaitPublished(6), 6);
  }

  std::vector<int64_t> Filtered(v1::WatchEventsRequest request) {
    request.set_after_seq(0);
    Watch watch(stub_.get(), request);
    std::vector<v1::Event> events;
    std::vector<v1::WatchEventsResponse> responses;
    EXPECT_TRUE(watch.ReadThrough(6, &events, &responses));
    if (!responses.empty()) {
      EXPECT_EQ(responses.back().bookmark_seq(), 6);
    }
    return Seqs(events);
  }

  v1::Task a_, b_, c_;
};

TEST_P(WatchFilterEvents, ByBoard) {
  v1::WatchEventsRequest r;
  r.set_board("other");
  EXPECT_THAT(Filtered(r), ElementsAre(1, 3, 5));
  r.set_board("default");
  EXPECT_THAT(Filtered(r), ElementsAre(2, 4, 6));
}

TEST_P(WatchFilterEvents, ByTaskIds) {
  v1::WatchEventsRequest r;
  r.add_task_ids(a_.id());
  EXPECT_THAT(Filtered(r), ElementsAre(2, 6));
  r.add_task_ids(c_.id());
  EXPECT_THAT(Filtered(r), ElementsAre(2, 4, 6));
}

TEST_P(WatchFilterEvents, ByKinds) {
  v1::WatchEventsRequest r;
  r.add_kinds("moved");
  EXPECT_THAT(Filtered(r), ElementsAre(5, 6));
  r.add_kinds("board_created");
  EXPECT_THAT(Filtered(r), ElementsAre(1, 5, 6));
}

TEST_P(WatchFilterEvents, CombinedFiltersAllApply) {
  v1::WatchEventsRequest r;
  r.set_board("default");
  r.add_kinds("created");
  EXPECT_THAT(Filtered(r), ElementsAre(2, 4));
}

TEST_P(WatchFilterEvents, IdleFilteredStreamBookmarkReachesHead) {
  v1::WatchEventsRequest r = FromNow();
  r.set_board("other");
  SetBookmarkInterval(absl::Milliseconds(200), &r);
  Watch watch(stub_.get(), r);
  v1::WatchEventsResponse first;
  ASSERT_TRUE(watch.Read(&first));
  EXPECT_EQ(first.bookmark_seq(), 6);

  Create("D");  // 7, filtered out.
  Create("E");  // 8, filtered out.
  std::vector<v1::Event> events;
  ASSERT_TRUE(watch.ReadThrough(8, &events));
  EXPECT_THAT(events, IsEmpty());
}

// ---- Bookmarks ----------------------------------------------------------------

TEST_P(WatchBookmarkTest, IdleStreamGetsBookmarksEveryInterval) {
  Create("a");
  Create("b");
  v1::WatchEventsRequest r = FromNow();
  SetBookmarkInterval(absl::Milliseconds(200), &r);
  Watch watch(stub_.get(), r);

  v1::WatchEventsResponse response;
  ASSERT_TRUE(watch.Read(&response));
  EXPECT_EQ(response.bookmark_seq(), 2);
  SteadyClock::time_point last = SteadyClock::now();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(watch.Read(&response)) << "bookmark " << i;
    const absl::Duration gap = Since(last);
    last = SteadyClock::now();
    EXPECT_THAT(response.events(), IsEmpty());
    EXPECT_EQ(response.bookmark_seq(), 2);
    // Not more often than asked (with slack for scheduling), nor much later.
    EXPECT_GE(gap, absl::Milliseconds(150)) << "bookmark " << i;
    EXPECT_LT(gap, kPrompt) << "bookmark " << i;
  }
}

TEST_P(WatchBookmarkTest, ZeroIntervalSendsOnlyTheFirstBookmark) {
  Create("a");
  v1::WatchEventsRequest r = FromNow();
  SetBookmarkInterval(absl::ZeroDuration(), &r);
  // The only timed wait in this file: "nothing arrives" has no signal. 600
  // ms spans several registry ticks (100 ms).
  Watch watch(stub_.get(), r, Deadline(std::chrono::milliseconds(600)));
  v1::WatchEventsResponse response;
  ASSERT_TRUE(watch.Read(&response));
  EXPECT_EQ(response.bookmark_seq(), 1);
  EXPECT_FALSE(watch.Read(&response)) << "unexpected " << response.ShortDebugString();
  const grpc::Status s = watch.Finish();
  EXPECT_EQ(s.error_code(), StatusCode::DEADLINE_EXCEEDED) << Describe(s);
}

// ---- Resume exactness -----------------------------------------------------------

TEST_P(WatchResumeTest, RandomDisconnectsLoseAndRepeatNothing) {
  constexpr int kPairs = 2500;  // Each a create and a move: 5,000 events.
  constexpr int64_t kTotal = 2 * kPairs;
  std::thread writer([&] {
    for (int i = 0; i < kPairs; ++i) {
      const v1::Task t = Create(absl::StrCat("t", i));
      Move(t.id(), v1::BLOCKED);
    }
  });

  std::mt19937 rng(20240611);
  std::vector<int64_t> received;
  int64_t cursor = 0;  // The last seq (or bookmark) processed.
  int streams = 0;
  const SteadyClock::time_point start = SteadyClock::now();
  // In a lambda so that a failed ASSERT still joins the writer.
  auto watch_all = [&] {
    while (cursor < kTotal && Since(start) < absl::Seconds(60)) {
      ++streams;
      Watch watch(stub_.get(), AfterSeq(cursor));
      int responses_left = std::uniform_int_distribution<int>(1, 6)(rng);
      int64_t last_in_stream = cursor;
      v1::WatchEventsResponse r;
      while (responses_left-- > 0 && cursor < kTotal) {
        ASSERT_TRUE(watch.Read(&r)) << Describe(watch.Finish());
        // Now and then drop the connection part-way through a response:
        // only a prefix of its events counts as processed.
        int take = r.events_size();
        if (take > 0 && std::uniform_int_distribution<int>(0, 3)(rng) == 0) {
          take = std::uniform_int_distribution<int>(0, take - 1)(rng);
          responses_left = 0;
        }
        for (int i = 0; i < take; ++i) {
          const int64_t seq = r.events(i).seq();
          ASSERT_GT(seq, last_in_stream) << "out of order within stream " << streams;
          last_in_stream = seq;
          received.push_back(seq);
          cursor = seq;
        }
        if (take == r.events_size()) {
          ASSERT_GE(r.bookmark_seq(), last_in_stream);
          cursor = r.bookmark_seq();
        }
      }
      const grpc::Status s = watch.Cancel();
      EXPECT_EQ(s.error_code(), StatusCode::CANCELLED) << Describe(s);
    }
  };
  watch_all();
  writer.join();
  EXPECT_EQ(Head(), kTotal);
  EXPECT_GT(streams, 10);
  ASSERT_EQ(cursor, kTotal)
      << "did not catch up within 60 s (a guard against a hang, not a speed target)";
  EXPECT_EQ(received, Range(1, kTotal));
}

TEST_P(WatchResumeTest, ResumeAfterServerRestartGetsExactlyTheMissedEvents) {
  for (int i = 0; i < 5; ++i) Create(absl::StrCat("t", i));
  int64_t cursor = 0;
  {
    Watch watch(stub_.get(), AfterSeq(0));
    std::vector<v1::Event> events;
    ASSERT_TRUE(watch.ReadThrough(5, &events));
    cursor = events.back().seq();
    watch.Cancel();
  }
  ASSERT_EQ(cursor, 5);
  std::vector<std::string> missed;
  for (int i = 0; i < 3; ++i) missed.push_back(Create(absl::StrCat("missed ", i)).id());

  ASSERT_NO_FATAL_FAILURE(StartServer(BaseOptions()));  // Same database file.
  Watch watch(stub_.get(), AfterSeq(cursor));
  std::vector<v1::Event> events;
  ASSERT_TRUE(watch.ReadThrough(8, &events));
  EXPECT_THAT(Seqs(events), ElementsAre(6, 7, 8));
  std::vector<std::string> ids;
  for (const v1::Event& e : events) ids.push_back(e.task_id());
  EXPECT_EQ(ids, missed);

  Create("after restart");
  ASSERT_TRUE(watch.ReadThrough(9, &events));
  EXPECT_THAT(Seqs(events), ElementsAre(6, 7, 8, 9));
}

// ---- Slow and stalled watchers -----------------------------------------------

TEST_P(WatchFlowTest, SlowWatcherCatchesUpFromDatabaseWhileOthersKeepUp) {
  Server::Options options = BaseOptions();
  options.store.event_ring = 16;
  ASSERT_NO_FATAL_FAILURE(StartServer(options));
  constexpr int64_t kTotal = 2000;

  // Opened, then not read until every event is written.
  Watch slow(stub_.get(), AfterSeq(0));

  absl::Notification fast_done;
  SteadyClock::time_point fast_done_at;
  std::vector<v1::Event> fast_events;
  bool fast_ok = false;
  std::thread fast([&] {
    Watch watch(stub_.get(), AfterSeq(0));
    fast_ok = watch.ReadThrough(kTotal, &fast_events);
    fast_done_at = SteadyClock::now();
    fast_done.Notify();
  });

  for (int64_t i = 0; i < kTotal; ++i) Create(absl::StrCat("t", i));
  const SteadyClock::time_point written_at = SteadyClock::now();

  const bool fast_in_time = fast_done.WaitForNotificationWithTimeout(absl::Seconds(15));
  fast.join();  // Bounded by the call's deadline.
  ASSERT_TRUE(fast_in_time);
  ASSERT_TRUE(fast_ok);
  EXPECT_EQ(Seqs(fast_events), Range(1, kTotal));
  EXPECT_EQ(Head(), kTotal);
  EXPECT_LT(absl::FromChrono(fast_done_at - written_at), kPrompt);

  std::vector<v1::Event> slow_events;
  ASSERT_TRUE(slow.ReadThrough(kTotal, &slow_events));
  EXPECT_EQ(Seqs(slow_events), Range(1, kTotal));
  EXPECT_EQ(slow_events.back().task().title(), absl::StrCat("t", kTotal - 1));
}

// A backlog of large events must still reach a client that keeps gRPC's
// default 4 MB receive limit: responses have to be split by size, not only
// by event count.
TEST_P(WatchFlowTest, LargeBacklogFitsTheClientsDefaultMessageLimit) {
  constexpr int kTasks = 100;  // About 6 MB of bodies in all.
  const std::string body(60 * 1024, 'x');
  for (int i = 0; i < kTasks; ++i) Create(absl::StrCat("big ", i), "", body);

  Watch watch(stub_.get(), AfterSeq(0));
  std::vector<v1::Event> events;
  std::vector<v1::WatchEventsResponse> responses;
  const bool ok = watch.ReadThrough(kTasks, &events, &responses);
  if (!ok) {
    const grpc::Status s = watch.Finish();
    ADD_FAILURE() << "stream ended after " << events.size() << " events: " << Describe(s);
  }
  EXPECT_EQ(Seqs(events), Range(1, kTasks));
  for (const auto& r : responses) EXPECT_LE(r.ByteSizeLong(), kClientMaxMessageBytes);
}

TEST_P(WatchFlowTest, StalledWatcherIsEndedOthersAreNot) {
  Server::Options options = BaseOptions();
  options.store.event_ring = 16;
  options.watch_stall_timeout = absl::Milliseconds(500);
  ASSERT_NO_FATAL_FAILURE(StartServer(options));
  constexpr int64_t kTotal = 150;  // About 9 MB: more than flow control buffers.
  const std::string body(60 * 1024, 'x');

  // Both watchers accept any message size, so that only the stall (not the
  // size of a batch; see LargeBacklogFitsTheClientsDefaultMessageLimit) can
  // end them.
  std::unique_ptr<Stub> stalled_stub = NewStub(/*unlimited=*/true);
  std::unique_ptr<Stub> good_stub = NewStub(/*unlimited=*/true);
  Watch stalled(stalled_stub.get(), AfterSeq(0));

  absl::Notification good_done;
  std::vector<v1::Event> good_events;
  bool good_ok = false;
  Watch good(good_stub.get(), AfterSeq(0));
  std::thread reader([&] {
    good_ok = good.ReadThrough(kTotal, &good_events);
    good_done.Notify();
  });

  for (int64_t i = 0; i < kTotal; ++i) Create(absl::StrCat("big ", i), "", body);
  const bool good_in_time = good_done.WaitForNotificationWithTimeout(absl::Seconds(15));
  reader.join();  // Bounded by the call's deadline.
  ASSERT_TRUE(good_in_time);
  ASSERT_TRUE(good_ok) << Describe(good.Finish());
  EXPECT_EQ(Seqs(good_events), Range(1, kTotal));

  // A stream that is not read gives no signal through the sync API, so give
  // the server well over its stall timeout (plus a 100 ms tick) to act.
  absl::SleepFor(absl::Milliseconds(1500));

  // The good watcher is still open and the server still serves.
  const v1::Task after = Create("after the stall");
  ASSERT_TRUE(good.ReadThrough(kTotal + 1, &good_events)) << Describe(good.Finish());
  EXPECT_EQ(good_events.back().task_id(), after.id());
  {
    Watch fresh(stub_.get(), AfterSeq(kTotal));
    std::vector<v1::Event> events;
    ASSERT_TRUE(fresh.ReadThrough(kTotal + 1, &events));
    EXPECT_THAT(Seqs(events), ElementsAre(kTotal + 1));
  }

  // The stalled watcher reads now: what arrived before the server ended it
  // (in order, from seq 1), then the end of the stream, well before it
  // could catch up to the new event. gRPC reports a stream the server
  // cancels as CANCELLED: the RESOURCE_EXHAUSTED the server finishes with
  // after its TryCancel never reaches the client.
  std::vector<v1::Event> stalled_events;
  const SteadyClock::time_point read_start = SteadyClock::now();
  EXPECT_FALSE(stalled.ReadThrough(kTotal + 1, &stalled_events))
      << "the stalled watcher was never ended";
  const grpc::Status s = stalled.Finish();
  EXPECT_LT(Since(read_start), kPrompt);
  EXPECT_THAT(s.error_code(),
              AnyOf(StatusCode::CANCELLED, StatusCode::RESOURCE_EXHAUSTED))
      << Describe(s);
  EXPECT_EQ(s.error_code(), StatusCode::CANCELLED)
      << "documented outcome; " << Describe(s);
  EXPECT_EQ(Seqs(stalled_events), Range(1, static_cast<int64_t>(stalled_events.size())));
  EXPECT_LT(stalled_events.size(), static_cast<size_t>(kTotal));
}

// ---- Retention ------------------------------------------------------------------

class WatchRetention : public WatchFixture {
 protected:
  // Keeps the newest 10 events and sweeps every 50 ms; writes 100 events and
  // waits until the sweeper has deleted 1..90.
  void StartAndTrim(size_t ring) {
    Server::Options options = BaseOptions();
    options.store.event_retention_count = 10;
    options.store.sweep_interval = absl::Milliseconds(50);
    options.store.event_ring = ring;
    ASSERT_NO_FATAL_FAILURE(StartServer(options));
    for (int i = 0; i < 100; ++i) Create(absl::StrCat("t", i));
    const absl::Time give_up = absl::Now() + kPrompt;
    while (OldestSeq() != 91 && absl::Now() < give_up)
      absl::SleepFor(absl::Milliseconds(20));
    ASSERT_EQ(OldestSeq(), 91);
  }

  // A watch from `after` must end OUT_OF_RANGE naming seq 91, having sent
  // no events.
  void ExpectOutOfRange(int64_t after) {
    Watch watch(stub_.get(), AfterSeq(after));
    std::vector<v1::Event> events;
    grpc::Status s;
    if (watch.ReadThrough(100, &events)) {
      s = watch.Cancel();
      ADD_FAILURE() << "after_seq " << after << ": served " << events.size()
                    << " events from seq " << events.front().seq()
                    << " although retention deleted 1..90";
    } else {
      s = watch.Finish();
    }
    EXPECT_THAT(Seqs(events), IsEmpty());
    EXPECT_EQ(s.error_code(), StatusCode::OUT_OF_RANGE) << Describe(s);
    EXPECT_THAT(s.error_message(), HasSubstr("oldest available is 91")) << Describe(s);
    const auto& trailers = watch.context().GetServerTrailingMetadata();
    auto it = trailers.find("kanban-oldest-seq");
    ASSERT_NE(it, trailers.end()) << "no kanban-oldest-seq trailer";
    EXPECT_EQ(std::string(it->second.data(), it->second.size()), "91");
  }

  // Watching from just before the oldest kept event works.
  void ExpectResumeFromOldestWorks() {
    Watch watch(stub_.get(), AfterSeq(90));
    std::vector<v1::Event> events;
    ASSERT_TRUE(watch.ReadThrough(100, &events)) << Describe(watch.Finish());
    EXPECT_EQ(Seqs(events), Range(91, 100));
  }
};

TEST_P(WatchRetention, OutOfRangeWhenCatchingUpFromDatabase) {
  ASSERT_NO_FATAL_FAILURE(StartAndTrim(/*ring=*/16));
  ExpectOutOfRange(0);
  ExpectOutOfRange(50);
  ExpectResumeFromOldestWorks();
}

// The same with the default ring, which still holds the deleted events in
// memory: the contract ("OUT_OF_RANGE when events after it were already
// deleted by retention") does not depend on the ring.
TEST_P(WatchRetention, OutOfRangeEvenWhileTheRingStillHoldsDeletedEvents) {
  ASSERT_NO_FATAL_FAILURE(StartAndTrim(/*ring=*/65536));
  ExpectOutOfRange(0);
  ExpectOutOfRange(89);
  ExpectResumeFromOldestWorks();
}

// ---- Lifecycle ----------------------------------------------------------------

TEST_P(WatchLifecycleTest, ServerShutdownEndsOpenStreamWithUnavailable) {
  Watch watch(stub_.get(), FromNow());
  v1::WatchEventsResponse first;
  ASSERT_TRUE(watch.Read(&first));

  const SteadyClock::time_point start = SteadyClock::now();
  std::thread stopper([&] { server_->Shutdown(); });
  std::vector<v1::Event> events;
  EXPECT_FALSE(watch.ReadThrough(1, &events));
  const grpc::Status s = watch.Finish();
  const absl::Duration took = Since(start);
  stopper.join();
  EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << Describe(s);
  EXPECT_LT(took, kPrompt);
  EXPECT_THAT(events, IsEmpty());
}

// ---- Bad input --------------------------------------------------------------------

TEST_P(WatchInputTest, BadBoardIsInvalidArgument) {
  v1::WatchEventsRequest r = FromNow();
  r.set_board("Bad Board");
  Watch watch(stub_.get(), r);
  const grpc::Status s = watch.Finish();
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), StartsWith("board:")) << Describe(s);
  EXPECT_THAT(s.error_message(), HasSubstr("Bad Board")) << Describe(s);
}

TEST_P(WatchInputTest, NegativeAfterSeqIsInvalidArgument) {
  Watch watch(stub_.get(), AfterSeq(-1));
  const grpc::Status s = watch.Finish();
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), StartsWith("after_seq:")) << Describe(s);
}

TEST_P(WatchInputTest, NegativeBookmarkIntervalIsInvalidArgument) {
  v1::WatchEventsRequest r = FromNow();
  r.mutable_bookmark_interval()->set_seconds(-1);
  Watch watch(stub_.get(), r);
  const grpc::Status s = watch.Finish();
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << Describe(s);
  EXPECT_THAT(s.error_message(), StartsWith("bookmark_interval:")) << Describe(s);
}

INSTANTIATE_TEST_SUITE_P(Backends, WatchStartTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, WatchBookmarkTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, WatchResumeTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, WatchFlowTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, WatchLifecycleTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, WatchInputTest, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, WatchFilterEvents, testing::AllBackends(),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, WatchRetention, testing::AllBackends(),
                         testing::BackendName);

}  // namespace
}  // namespace kanban::service
