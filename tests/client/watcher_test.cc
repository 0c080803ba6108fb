// Tests of the resuming Watcher (client/cpp/watcher.h) against a real kanband:
// every test starts its own server on a fresh database, writes through the
// generated stub and checks that the events seen, across stops, reconnects
// and server restarts, are exactly seq 1..N, in order, once each.
#include "client/cpp/watcher.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::client::Watcher;
using ::kanban::client::WatchOptions;
using ::kanban::testing::Kanband;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;

// Long enough never to be hit by a passing test; a bound for a failing one.
constexpr absl::Duration kPatience = absl::Seconds(30);

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

// A channel that notices a restarted server quickly (gRPC's own reconnect
// backoff starts at 1 s and grows to 2 min).
std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

Kanband StartServer(const std::string& db, std::vector<std::string> args = {}) {
  return StartKanband(KANBAND_PATH, db, args, {"KANBAN_SYNCHRONOUS_MODE"});
}

// The seq of the newest event: the first bookmark of a from-now watch,
// asked again until it is at least `at_least` (kanband answers a write a
// moment before watchers see its event) or kPatience has passed. -1 (and a
// test failure) if the watch fails.
int64_t Head(const std::shared_ptr<grpc::Channel>& channel, int64_t at_least = 0) {
  absl::Time give_up = absl::Now() + kPatience;
  int64_t head = -1;
  do {
    if (head >= 0) absl::SleepFor(absl::Milliseconds(5));
    Watcher watcher(channel, WatchOptions{});
    absl::Status status = watcher.Run([](const v1::Event&) {},
                                      [&](int64_t seq) {
                                        head = seq;
                                        watcher.Stop();
                                      });
    if (!status.ok()) {
      ADD_FAILURE() << status;
      return -1;
    }
  } while (head < at_least && absl::Now() < give_up);
  EXPECT_GE(head, at_least);
  return head;
}

// Runs a Watcher on a thread of its own and keeps what it delivers.
class BackgroundWatch {
 public:
  BackgroundWatch(std::shared_ptr<grpc::Channel> channel, WatchOptions options)
      : watcher_(std::move(channel), std::move(options)) {
    thread_ = std::thread([this] {
      absl::Status status = watcher_.Run(
          [this](const v1::Event& event) {
            absl::MutexLock lock(&mu_);
            events_.push_back(event);
          },
          [this](int64_t seq) {
            absl::MutexLock lock(&mu_);
            bookmarks_.push_back(seq);
          });
      absl::MutexLock lock(&mu_);
      status_ = status;
      done_ = true;
    });
  }
  ~BackgroundWatch() { Stop().IgnoreError(); }

  // Waits until the watcher's position reaches `seq`; false on timeout or
  // if Run() returned first.
  bool WaitForPosition(int64_t seq, absl::Duration timeout = kPatience) {
    absl::Time deadline = absl::Now() + timeout;
    while (watcher_.position() < seq && absl::Now() < deadline && !done()) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    return watcher_.position() >= seq;
  }

  // Waits for the first bookmark; false on timeout or if Run() returned.
  bool WaitForBookmark(absl::Duration timeout = kPatience) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !bookmarks_.empty() || done_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return !bookmarks_.empty();
  }

  // Waits for Run() to return by itself; false on timeout.
  bool WaitForEnd(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&done_), timeout);
  }

  // Stops the watcher and returns what Run() returned.
  absl::Status Stop() {
    watcher_.Stop();
    if (thread_.joinable()) thread_.join();
    absl::MutexLock lock(&mu_);
    return status_;
  }

  bool done() const {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  std::vector<v1::Event> events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  std::vector<int64_t> bookmarks() const {
    absl::MutexLock lock(&mu_);
    return bookmarks_;
  }
  int64_t position() const { return watcher_.position(); }

 private:
  Watcher watcher_;
  mutable absl::Mutex mu_;
  std::vector<v1::Event> events_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> bookmarks_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

WatchOptions From(int64_t after_seq) {
  WatchOptions options;
  options.after_seq = after_seq;
  options.bookmark_interval = absl::Milliseconds(50);
  options.min_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  return options;
}

// "" if `events` are exactly seq first..last, in order; else what is wrong.
std::string CheckContiguous(const std::vector<v1::Event>& events, int64_t first,
                            int64_t last) {
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].seq() != first + static_cast<int64_t>(i)) {
      return absl::StrCat(
          "event #", i, " has seq ", events[i].seq(), ", expected ",
          first + static_cast<int64_t>(i),
          i > 0 ? absl::StrCat(" (previous ", events[i - 1].seq(), ")") : "");
    }
  }
  int64_t want = last - first + 1;
  if (static_cast<int64_t>(events.size()) != want) {
    return absl::StrCat("got ", events.size(), " events, expected ", want, " (seq ",
                        first, "..", last, ")");
  }
  return "";
}

// Titles of the tasks in the "created" events, in order.
std::vector<std::string> CreatedTitles(const std::vector<v1::Event>& events) {
  std::vector<std::string> titles;
  for (const v1::Event& event : events) {
    if (event.kind() == "created") titles.push_back(event.task().title());
  }
  return titles;
}

std::vector<std::string> Titles(const std::string& prefix, int n) {
  std::vector<std::string> titles;
  for (int i = 0; i < n; ++i) titles.push_back(absl::StrCat(prefix, i));
  return titles;
}

// Writes through the generated stub. A call that fails with UNAVAILABLE
// (the server restarting) is retried until kPatience runs out: creates are
// made idempotent by their key, and a retried move that already happened
// shows up as FAILED_PRECONDITION and counts as done.
class Client {
 public:
  explicit Client(std::shared_ptr<grpc::Channel> channel)
      : stub_(v1::KanbanService::NewStub(std::move(channel))) {}

  // Makes every later call give up at once (a failing test's way out).
  void Abort() { aborted_ = true; }

  v1::Task Create(const std::string& title, const std::string& board = "") {
    v1::CreateTaskRequest request;
    request.set_board(board);
    request.set_title(title);
    request.set_idempotency_key(title);
    v1::Task task;
    Retry("CreateTask " + title, [&](grpc::ClientContext* ctx) {
      return stub_->CreateTask(ctx, request, &task);
    });
    return task;
  }

  void Move(const std::string& id, v1::Status to) {
    v1::MoveTaskRequest request;
    request.set_task_id(id);
    request.set_to_status(to);
    v1::Task task;
    bool retried = false;
    Retry("MoveTask " + id, [&](grpc::ClientContext* ctx) {
      grpc::Status s = stub_->MoveTask(ctx, request, &task);
      if (retried && s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        return grpc::Status::OK;
      }
      retried = true;
      return s;
    });
  }

  void CreateBoard(const std::string& name) {
    v1::CreateBoardRequest request;
    request.set_name(name);
    v1::Board board;
    Retry("CreateBoard " + name, [&](grpc::ClientContext* ctx) {
      return stub_->CreateBoard(ctx, request, &board);
    });
  }

 private:
  template <typename Call>
  void Retry(const std::string& what, Call call) {
    absl::Time give_up = absl::Now() + kPatience;
    while (true) {
      grpc::ClientContext ctx;
      ctx.set_deadline(DeadlineIn(absl::Seconds(5)));
      grpc::Status s = call(&ctx);
      if (s.ok()) return;
      if (aborted_) return;
      // A call racing a server's shutdown can also end CANCELLED.
      bool transient = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                       s.error_code() == grpc::StatusCode::CANCELLED;
      if (!transient || absl::Now() > give_up) {
        ADD_FAILURE() << what << ": " << s.error_code() << " " << s.error_message();
        return;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  std::unique_ptr<v1::KanbanService::Stub> stub_;
  std::atomic<bool> aborted_{false};
};

class WatcherTest : public ::kanban::testing::BackendTest {
 protected:
  void SetUp() override {
    if (db().empty()) return;  // Skipped: no PostgreSQL.
    server_ = StartServer(db());
    ASSERT_TRUE(server_.ok());
    channel_ = Connect(server_.address);
    client_ = std::make_unique<Client>(channel_);
  }

  const std::string& db() { return Database(dir_.File("kanban.db")); }

  TempDir dir_;
  Kanband server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Client> client_;
};

INSTANTIATE_TEST_SUITE_P(Backends, WatcherTest, ::kanban::testing::AllBackends(),
                         ::kanban::testing::BackendName);

// Creates `tasks` tasks; every second one is moved READY -> TODO and every
// fourth back to READY. Returns the number of writes (one event each).
int WriteTasks(Client& client, int tasks, const std::string& prefix) {
  int writes = 0;
  for (int i = 0; i < tasks; ++i) {
    v1::Task task = client.Create(absl::StrCat(prefix, i));
    ++writes;
    if (i % 2 == 0) {
      client.Move(task.id(), v1::TODO);
      ++writes;
    }
    if (i % 4 == 0) {
      client.Move(task.id(), v1::READY);
      ++writes;
    }
  }
  return writes;
}

TEST_P(WatcherTest, StopAndResumeAtRandomPointsMissesAndRepeatsNothing) {
  constexpr int kTasks = 2000;
  std::atomic<bool> writing{true};
  int writes = 0;
  Client client(channel_);
  std::thread writer([&] {
    writes = WriteTasks(client, kTasks, "task-");
    writing = false;
  });

  absl::BitGen bitgen;
  std::vector<v1::Event> all;
  int64_t position = 0;
  int watchers = 0;
  while (writing) {
    BackgroundWatch watch(channel_, From(position));
    absl::SleepFor(absl::Milliseconds(absl::Uniform(bitgen, 0, 40)));
    absl::Status status = watch.Stop();
    if (!status.ok()) {
      ADD_FAILURE() << status;
      client.Abort();
      break;
    }
    std::vector<v1::Event> events = watch.events();
    all.insert(all.end(), events.begin(), events.end());
    EXPECT_GE(watch.position(), position);
    position = watch.position();
    ++watchers;
  }
  writer.join();
  if (HasFailure()) return;

  int64_t head = Head(channel_, writes);
  BackgroundWatch last(channel_, From(position));
  EXPECT_TRUE(last.WaitForPosition(head)) << "position " << last.position();
  ASSERT_TRUE(last.Stop().ok());
  std::vector<v1::Event> events = last.events();
  all.insert(all.end(), events.begin(), events.end());

  EXPECT_EQ(CheckContiguous(all, 1, head), "") << "after " << watchers << " watchers";
  EXPECT_EQ(CreatedTitles(all), Titles("task-", kTasks));
  EXPECT_GE(head, writes);
  EXPECT_GT(watchers, 10);
}

TEST_P(WatcherTest, FollowsTheFeedAcrossServerRestartsOnTheSamePort) {
  constexpr int kTasks = 600;
  const std::string port = server_.address.substr(server_.address.rfind(':') + 1);
  BackgroundWatch watch(channel_, From(0));
  std::atomic<bool> writing{true};
  Client client(channel_);
  std::thread writer([&] {
    for (int i = 0; i < kTasks; ++i) client.Create(absl::StrCat("task-", i));
    writing = false;
  });

  // SIGTERM ends the streams with UNAVAILABLE; the watcher reconnects to the
  // next server, which listens on the same port.
  int restarts = 0;
  while (writing && restarts < 4 && !HasFailure()) {
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_EQ(server_.process.Signal(SIGTERM), 0);
    EXPECT_EQ(server_.process.Wait(kPatience), 0) << server_.Log();
    server_ = StartServer(db(), {"--listen=127.0.0.1:" + port});
    ++restarts;
  }
  if (HasFailure()) client.Abort();
  writer.join();
  ASSERT_FALSE(HasFailure());

  int64_t head = Head(channel_, kTasks);
  EXPECT_TRUE(watch.WaitForPosition(head)) << "position " << watch.position();
  absl::Status status = watch.Stop();
  EXPECT_TRUE(status.ok()) << status;
  std::vector<v1::Event> events = watch.events();
  EXPECT_EQ(CheckContiguous(events, 1, head), "") << "after " << restarts << " restarts";
  EXPECT_EQ(CreatedTitles(events), Titles("task-", kTasks));
  EXPECT_GT(restarts, 0);
}

TEST_P(WatcherTest, ResumesOnARestartedServerWithExactlyTheMissedEvents) {
  for (const std::string& title : Titles("before-", 20)) client_->Create(title);
  int64_t position = -1;
  {
    BackgroundWatch watch(channel_, From(0));
    int64_t head = Head(channel_, 20);
    ASSERT_TRUE(watch.WaitForPosition(head));
    ASSERT_TRUE(watch.Stop().ok());
    EXPECT_EQ(CheckContiguous(watch.events(), 1, head), "");
    EXPECT_EQ(CreatedTitles(watch.events()), Titles("before-", 20));
    position = watch.position();
    EXPECT_EQ(position, head);
  }

  // Missed while no one watched, then the server goes away and comes back
  // on the same database (on another port) and more happens.
  for (const std::string& title : Titles("missed-", 15)) client_->Create(title);
  ASSERT_EQ(server_.process.Signal(SIGTERM), 0);
  ASSERT_EQ(server_.process.Wait(kPatience), 0) << server_.Log();
  server_ = StartServer(db());
  ASSERT_TRUE(server_.ok());
  channel_ = Connect(server_.address);
  client_ = std::make_unique<Client>(channel_);
  for (const std::string& title : Titles("after-", 10)) client_->Create(title);

  BackgroundWatch watch(channel_, From(position));
  int64_t head = Head(channel_, 45);
  ASSERT_TRUE(watch.WaitForPosition(head)) << "position " << watch.position();
  ASSERT_TRUE(watch.Stop().ok());
  std::vector<v1::Event> events = watch.events();
  EXPECT_EQ(CheckContiguous(events, position + 1, head), "");
  std::vector<std::string> want = Titles("missed-", 15);
  for (const std::string& title : Titles("after-", 10)) want.push_back(title);
  EXPECT_EQ(CreatedTitles(events), want);
}

TEST_P(WatcherTest, FromNowDeliversOnlyNewEvents) {
  for (const std::string& title : Titles("old-", 5)) client_->Create(title);
  int64_t before = Head(channel_, 5);
  BackgroundWatch watch(channel_, From(-1));
  ASSERT_TRUE(watch.WaitForBookmark());
  EXPECT_EQ(watch.bookmarks().front(), before);
  EXPECT_EQ(watch.position(), before);

  for (const std::string& title : Titles("new-", 3)) client_->Create(title);
  int64_t head = Head(channel_, before + 3);
  ASSERT_TRUE(watch.WaitForPosition(head));
  ASSERT_TRUE(watch.Stop().ok());
  EXPECT_EQ(CheckContiguous(watch.events(), before + 1, head), "");
  EXPECT_EQ(CreatedTitles(watch.events()), Titles("new-", 3));
}

TEST_P(WatcherTest, FromNowOnAnEmptyDatabaseStartsAtItsHead) {
  BackgroundWatch watch(channel_, From(-1));
  ASSERT_TRUE(watch.WaitForBookmark());
  EXPECT_GE(watch.position(), 0);
  int64_t start = watch.position();
  client_->Create("first");
  int64_t head = Head(channel_, start + 1);
  ASSERT_TRUE(watch.WaitForPosition(head));
  ASSERT_TRUE(watch.Stop().ok());
  EXPECT_EQ(CheckContiguous(watch.events(), start + 1, head), "");
  EXPECT_EQ(CreatedTitles(watch.events()), std::vector<std::string>{"first"});
}

TEST_P(WatcherTest, FiltersByKindTaskAndBoard) {
  client_->CreateBoard("other");
  v1::Task a = client_->Create("a");
  v1::Task b = client_->Create("b");
  v1::Task c = client_->Create("c");
  v1::Task d = client_->Create("d", "other");
  client_->Move(a.id(), v1::TODO);
  client_->Move(b.id(), v1::TODO);
  client_->Move(d.id(), v1::TODO);
  client_->Move(a.id(), v1::READY);
  int64_t head = Head(channel_, 9);  // board_created, 4 created, 4 moved.

  // Each watch runs until its bookmarks pass the head, then is stopped.
  auto watch = [&](WatchOptions options) {
    BackgroundWatch w(channel_, std::move(options));
    EXPECT_TRUE(w.WaitForPosition(head)) << "position " << w.position();
    absl::Status status = w.Stop();
    EXPECT_TRUE(status.ok()) << status;
    std::vector<std::string> seen;  // "task-title kind"
    int64_t last = 0;
    for (const v1::Event& event : w.events()) {
      EXPECT_GT(event.seq(), last);
      last = event.seq();
      seen.push_back(absl::StrCat(event.task().title(), " ", event.kind()));
    }
    return seen;
  };

  WatchOptions moved = From(0);
  moved.kinds = {"moved"};
  EXPECT_EQ(watch(moved),
            (std::vector<std::string>{"a moved", "b moved", "d moved", "a moved"}));

  WatchOptions tasks = From(0);
  tasks.task_ids = {a.id(), c.id()};
  EXPECT_EQ(watch(tasks),
            (std::vector<std::string>{"a created", "c created", "a moved", "a moved"}));

  WatchOptions board = From(0);
  board.board = "other";
  std::vector<std::string> on_other;
  for (const std::string& e : watch(board)) {
    if (e != " board_created") on_other.push_back(e);  // The board's own event.
  }
  EXPECT_EQ(on_other, (std::vector<std::string>{"d created", "d moved"}));

  WatchOptions both = From(0);
  both.kinds = {"created"};
  both.task_ids = {b.id(), d.id()};
  EXPECT_EQ(watch(both), (std::vector<std::string>{"b created", "d created"}));
}

// Whether this kanband has the retention flags (older builds do not).
bool HasRetentionFlags() {
  testing::RunResult r = testing::Run({KANBAND_PATH, "--helpfull"});
  return absl::StrContains(r.out + r.err, "event_retention_count");
}

// Retention keeps the newest 10 events. The parameter: whether the server
// is restarted after the sweep (its in-memory ring then starts empty) or the
// same server keeps serving.
class WatcherRetentionTest : public ::testing::TestWithParam<bool> {
 protected:
  Kanband Start() {
    return StartServer(dir_.File("kanban.db"),
                       {"--event_retention_count=10", "--sweep_interval=100ms"});
  }
  TempDir dir_;
};

TEST_P(WatcherRetentionTest, ResumePointOlderThanTheHistoryIsOutOfRange) {
  if (!HasRetentionFlags()) GTEST_SKIP() << "kanband has no --event_retention_count";
  Kanband server = Start();
  ASSERT_TRUE(server.ok());
  auto channel = Connect(server.address);
  {
    Client client(channel);
    for (const std::string& title : Titles("task-", 50)) client.Create(title);
  }
  const int64_t head = Head(channel, 50);
  absl::SleepFor(absl::Milliseconds(500));  // Several sweeps.
  if (GetParam()) {
    ASSERT_EQ(server.process.Signal(SIGTERM), 0);
    ASSERT_EQ(server.process.Wait(kPatience), 0) << server.Log();
    server = Start();
    ASSERT_TRUE(server.ok());
    channel = Connect(server.address);
  }

  // Retention runs on the sweeper's schedule: watch from 0 until it has.
  absl::Status status;
  absl::Time give_up = absl::Now() + absl::Seconds(5);
  int64_t first_seen = -1;
  while (absl::Now() < give_up) {
    BackgroundWatch watch(channel, From(0));
    if (watch.WaitForEnd(absl::Milliseconds(300))) {
      status = watch.Stop();
      break;
    }
    ASSERT_TRUE(watch.Stop().ok());
    if (!watch.events().empty()) first_seen = watch.events().front().seq();
  }
  ASSERT_EQ(status.code(), absl::StatusCode::kOutOfRange)
      << status << "; a watch from 0 started at seq " << first_seen << " of " << head;

  // The oldest seq, from the trailing metadata; the message names it too.
  auto stub = v1::KanbanService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(absl::Seconds(5)));
  v1::WatchEventsRequest request;
  request.set_after_seq(0);
  auto reader = stub->WatchEvents(&ctx, request);
  v1::WatchEventsResponse response;
  int responses = 0;
  while (reader->Read(&response)) ++responses;
  grpc::Status raw = reader->Finish();
  EXPECT_EQ(responses, 0);
  ASSERT_EQ(raw.error_code(), grpc::StatusCode::OUT_OF_RANGE) << raw.error_message();
  auto trailer = ctx.GetServerTrailingMetadata().find("kanban-oldest-seq");
  ASSERT_NE(trailer, ctx.GetServerTrailingMetadata().end());
  int64_t oldest = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::string_view(trailer->second.data(), trailer->second.size()), &oldest));
  EXPECT_EQ(oldest, head - 9);
  EXPECT_TRUE(absl::StrContains(status.message(), absl::StrCat(oldest))) << status;

  // Resuming just before the oldest seq still works, and gets all of it.
  BackgroundWatch watch(channel, From(oldest - 1));
  ASSERT_TRUE(watch.WaitForPosition(head)) << "position " << watch.position();
  ASSERT_TRUE(watch.Stop().ok());
  EXPECT_EQ(CheckContiguous(watch.events(), oldest, head), "");
}

INSTANTIATE_TEST_SUITE_P(SameServerOrRestarted, WatcherRetentionTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "AfterRestart" : "SameServer";
                         });

// A watcher too slow to take what the server sends is reset by the server
// after --watch_stall_timeout (it sees CANCELLED), and resumes from its
// position without a gap.
class WatcherStallTest : public ::kanban::testing::BackendTest {
 protected:
  void SetUp() override {
    const std::string& db = Database(dir_.File("kanban.db"));
    if (db.empty()) return;  // Skipped: no PostgreSQL.
    server_ = StartServer(db, {"--watch_stall_timeout=300ms"});
    ASSERT_TRUE(server_.ok());
    channel_ = Connect(server_.address);
    // 3000 events of 8 kB: more than the connection's flow-control windows.
    auto stub = v1::KanbanService::NewStub(channel_);
    const std::string body(8000, 'x');
    for (int i = 0; i < 3000; ++i) {
      v1::CreateTaskRequest request;
      request.set_title(absl::StrCat("task-", i));
      request.set_body(body);
      grpc::ClientContext ctx;
      v1::Task task;
      grpc::Status s = stub->CreateTask(&ctx, request, &task);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
    head_ = Head(channel_, 3000);
  }

  TempDir dir_;
  Kanband server_;
  std::shared_ptr<grpc::Channel> channel_;
  int64_t head_ = -1;
};

INSTANTIATE_TEST_SUITE_P(Backends, WatcherStallTest, ::kanban::testing::AllBackends(),
                         ::kanban::testing::BackendName);

TEST_P(WatcherStallTest, TheServerResetsAStalledStream) {
  auto stub = v1::KanbanService::NewStub(channel_);
  grpc::ClientContext ctx;
  v1::WatchEventsRequest request;
  request.set_after_seq(0);
  auto reader = stub->WatchEvents(&ctx, request);
  v1::WatchEventsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  absl::SleepFor(absl::Seconds(2));  // Take nothing for a while.
  int64_t last = 0;
  while (reader->Read(&response)) {
    if (response.events_size() > 0) last = response.events().rbegin()->seq();
  }
  grpc::Status status = reader->Finish();
  EXPECT_LT(last, head_);  // The stream was ended before it was done.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED)
      << status.error_code() << " " << status.error_message();
}

TEST_P(WatcherStallTest, AStalledWatcherResumesWithoutLoss) {
  Watcher watcher(channel_, From(0));
  std::vector<v1::Event> events;
  absl::Status status = watcher.Run(
      [&](const v1::Event& event) {
        if (events.empty()) absl::SleepFor(absl::Seconds(2));
        events.push_back(event);
      },
      [&](int64_t seq) {
        if (seq >= head_) watcher.Stop();
      });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(CheckContiguous(events, 1, head_), "");
}

TEST_P(WatcherTest, StopEndsAnIdleWatchPromptly) {
  WatchOptions options = From(-1);
  options.bookmark_interval = absl::ZeroDuration();
  BackgroundWatch watch(channel_, options);
  ASSERT_TRUE(watch.WaitForBookmark());
  absl::Time start = absl::Now();
  absl::Status status = watch.Stop();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST(WatcherWithoutServerTest, StopBeforeRunReturnsOkAtOnce) {
  Watcher watcher(Connect("127.0.0.1:1"), WatchOptions{});
  watcher.Stop();
  int calls = 0;
  absl::Status status =
      watcher.Run([&](const v1::Event&) { ++calls; }, [&](int64_t) { ++calls; });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(watcher.position(), -1);
}

TEST(WatcherWithoutServerTest, KeepsRetryingAnUnreachableServerUntilStopped) {
  TempDir dir;
  // A port that was just in use and now has no one listening.
  std::string address;
  {
    Kanband server = StartServer(dir.File("kanban.db"));
    ASSERT_TRUE(server.ok());
    address = server.address;
  }
  WatchOptions options = From(7);
  BackgroundWatch watch(Connect(address), options);
  EXPECT_FALSE(watch.WaitForEnd(absl::Seconds(1)));  // Still retrying.
  absl::Time start = absl::Now();
  absl::Status status = watch.Stop();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(watch.position(), 7);
  EXPECT_TRUE(watch.events().empty());
}

}  // namespace
}  // namespace kanban
