// Store against real SQLite files: the board's rules, nothing written on
// error, group-committed concurrent writers, and reopening.
#include "storage/store.h"

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/rules.h"
#include "storage/sqlite/connection.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class StoreTest : public ::testing::TestWithParam<testing::Backend> {
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
    options.on_commit = [this](const std::vector<Event>& events) {
      absl::MutexLock lock(&events_mu_);
      published_.insert(published_.end(), events.begin(), events.end());
    };
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  absl::StatusOr<Task> Create(NewTask t) {
    return Await<Task>([&](auto done) { store_->CreateTask(t, done); });
  }
  absl::StatusOr<Task> Create(const std::string& title, int priority = 0,
                              std::vector<std::string> parents = {}) {
    NewTask t;
    t.title = title;
    t.priority = priority;
    t.parent_ids = std::move(parents);
    return Create(t);
  }
  absl::StatusOr<Task> Get(const std::string& id) {
    return Await<Task>([&](auto done) { store_->GetTask(id, done); });
  }
  absl::StatusOr<Task> Move(const std::string& id, TaskStatus to, int64_t version = 0) {
    TaskMove m{id, to, version, ""};
    return Await<Task>([&](auto done) { store_->MoveTask(m, done); });
  }
  absl::StatusOr<Task> Link(const std::string& parent, const std::string& child) {
    return Await<Task>([&](auto done) { store_->LinkTasks(parent, child, done); });
  }
  absl::StatusOr<Task> Unlink(const std::string& parent, const std::string& child) {
    return Await<Task>([&](auto done) { store_->UnlinkTasks(parent, child, done); });
  }
  absl::StatusOr<TaskPage> List(TaskFilter f = {}) {
    return Await<TaskPage>([&](auto done) { store_->ListTasks(f, done); });
  }
  std::vector<Event> Events(int64_t after = 0) {
    absl::StatusOr<std::vector<Event>> events = Await<std::vector<Event>>(
        [&](auto done) { store_->ReadEvents(after, 1000000, done); });
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<Event>();
  }
  std::vector<std::string> Titles(const TaskPage& page) {
    std::vector<std::string> titles;
    for (const Task& t : page.tasks) titles.push_back(t.title);
    return titles;
  }

  testing::TempDir dir_;
  std::string target_;  // The database: a file in dir_, or a PostgreSQL schema.
  FakeClock clock_{absl::FromUnixSeconds(1800000000)};
  absl::Mutex events_mu_;
  std::vector<Event> published_ ABSL_GUARDED_BY(events_mu_);
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, CreateTaskIsReadyWithDefaults) {
  absl::StatusOr<Task> task = Create("write the report", 5);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->id.size(), 26u);
  EXPECT_EQ(task->board, "default");
  EXPECT_EQ(task->status, TaskStatus::kReady);
  EXPECT_EQ(task->version, 1);
  EXPECT_EQ(task->max_attempts, kDefaultMaxAttempts);
  EXPECT_EQ(task->created_at, clock_.Now());
  EXPECT_EQ(task->priority, 5);

  absl::StatusOr<Task> read = Get(task->id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->title, "write the report");
  EXPECT_EQ(read->version, 1);
  EXPECT_EQ(read->created_at, task->created_at);
}

TEST_P(StoreTest, FieldsRoundTripIncludingAwkwardText) {
  NewTask t;
  t.title = "quote \" backslash \\ tab\t and ünïcödé ✓";
  t.body = "line1\nline2\r\n\x01end";
  t.labels = {"gpu", "lang:c++", "emoji-🚀", "quote\"d"};
  t.assignee = "worker-7";
  t.not_before = absl::FromUnixMicros(1800000123456789);
  t.max_attempts = 7;
  absl::StatusOr<Task> created = Create(t);
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<Task> read = Get(created->id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->title, t.title);
  EXPECT_EQ(read->body, t.body);
  EXPECT_EQ(read->labels, t.labels);
  EXPECT_EQ(read->assignee, "worker-7");
  EXPECT_EQ(read->not_before, t.not_before);
  EXPECT_EQ(read->max_attempts, 7);

  // The event snapshot carries the same values.
  std::vector<Event> events = Events();
  ASSERT_EQ(events.size(), 1u);
  ASSERT_TRUE(events[0].task.has_value());
  EXPECT_EQ(events[0].kind, "created");
  EXPECT_EQ(events[0].task->title, t.title);
  EXPECT_EQ(events[0].task->labels, t.labels);
  EXPECT_EQ(events[0].task->body, t.body);
  EXPECT_EQ(events[0].task->not_before, t.not_before);
}

TEST_P(StoreTest, TriageOnlyWhenAsked) {
  NewTask t;
  t.title = "look at this";
  t.initial_status = TaskStatus::kTriage;
  absl::StatusOr<Task> task = Create(t);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->status, TaskStatus::kTriage);

  t.initial_status = TaskStatus::kDone;
  absl::StatusOr<Task> bad = Create(t);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("initial_status"));
}

TEST_P(StoreTest, InvalidInputWritesNothing) {
  ASSERT_TRUE(Create("keep me").ok());
  const size_t events_before = Events().size();
  struct Case {
    std::function<void(NewTask&)> mutate;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](NewTask& t) { t.title = ""; }, "title"},
      {[](NewTask& t) { t.title = "   "; }, "title"},
      {[](NewTask& t) { t.title = std::string(501, 'x'); }, "title"},
      {[](NewTask& t) { t.body = std::string(64 * 1024 + 1, 'x'); }, "body"},
      {[](NewTask& t) { t.labels = std::vector<std::string>(33, "x"); }, "labels"},
      {[](NewTask& t) { t.labels = {std::string(65, 'l')}; }, "labels[0]"},
      {[](NewTask& t) {
         t.labels = {"a", "a"};
       },
       "labels[1]"},
      {[](NewTask& t) { t.board = "Not-Valid"; }, "board"},
      {[](NewTask& t) { t.max_attempts = -1; }, "max_attempts"},
      {[](NewTask& t) {
         t.parent_ids = {"x", "x"};
       },
       "parent_ids[1]"},
      {[](NewTask& t) { t.body = std::string("nul\0inside", 11); }, "body"},
      {[](NewTask& t) { t.title = std::string("nul\0", 4); }, "title"},
      {[](NewTask& t) { t.assignee = std::string("a\0", 2); }, "assignee"},
  };
  for (const Case& c : cases) {
    NewTask t;
    t.title = "ok";
    c.mutate(t);
    absl::StatusOr<Task> r = Create(t);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(r.status().message()), ::testing::StartsWith(c.field + ":"));
  }
  // Rule violations found inside the writer roll back too.
  NewTask unknown_board;
  unknown_board.title = "x";
  unknown_board.board = "nope";
  EXPECT_EQ(Create(unknown_board).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Create("orphan", 0, {"no-such-parent"}).status().code(),
            absl::StatusCode::kNotFound);

  absl::StatusOr<TaskPage> page = List();
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Titles(*page), ElementsAre("keep me"));
  EXPECT_EQ(Events().size(), events_before);
}

TEST_P(StoreTest, LimitsAreInclusiveAndCountCharacters) {
  NewTask t;
  t.title = std::string(500, 'x');
  EXPECT_TRUE(Create(t).ok());
  t.title.clear();
  for (int i = 0; i < 500; ++i) t.title += "é";  // 1000 bytes, 500 characters.
  EXPECT_TRUE(Create(t).ok());
  t.title = "labels";
  t.labels.clear();
  for (int i = 0; i < 32; ++i) t.labels.push_back("l" + std::to_string(i));
  t.body = std::string(64 * 1024, 'b');
  EXPECT_TRUE(Create(t).ok());
}

TEST_P(StoreTest, IdempotencyKey) {
  NewTask t;
  t.title = "once";
  t.idempotency_key = "req-1";
  absl::StatusOr<Task> first = Create(t);
  ASSERT_TRUE(first.ok());
  const size_t events = Events().size();

  absl::StatusOr<Task> again = Create(t);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(again->version, first->version);
  EXPECT_EQ(Events().size(), events) << "a retry must write nothing";

  t.title = "different";
  absl::StatusOr<Task> clash = Create(t);
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(clash.status().message()), HasSubstr(first->id));

  ASSERT_TRUE(Await<Board>([&](auto done) {
                store_->CreateBoard(Board{"other", "", {}}, done);
              }).ok());
  t.title = "once";
  t.board = "other";
  absl::StatusOr<Task> other_board = Create(t);
  ASSERT_TRUE(other_board.ok());
  EXPECT_NE(other_board->id, first->id);
}

TEST_P(StoreTest, UpdateChecksVersionAndBumpsIt) {
  absl::StatusOr<Task> task = Create("v");
  ASSERT_TRUE(task.ok());
  clock_.Advance(absl::Seconds(5));
  TaskUpdate u;
  u.task_id = task->id;
  u.title = "v2";
  u.labels = std::vector<std::string>{"x"};
  u.expected_version = 1;
  absl::StatusOr<Task> updated =
      Await<Task>([&](auto done) { store_->UpdateTask(u, done); });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->title, "v2");
  EXPECT_EQ(updated->version, 2);
  EXPECT_EQ(updated->updated_at, clock_.Now());
  EXPECT_EQ(updated->created_at, task->created_at);

  absl::StatusOr<Task> stale =
      Await<Task>([&](auto done) { store_->UpdateTask(u, done); });
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(stale.status().message()), HasSubstr("current version 2"));

  // The same values again: no new version, no event.
  const size_t events = Events().size();
  u.expected_version = 0;
  absl::StatusOr<Task> same =
      Await<Task>([&](auto done) { store_->UpdateTask(u, done); });
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->version, 2);
  EXPECT_EQ(Events().size(), events);
}

TEST_P(StoreTest, ManualMovesFollowTheTable) {
  absl::StatusOr<Task> task = Create("m");
  ASSERT_TRUE(task.ok());
  for (TaskStatus to : {TaskStatus::kBlocked, TaskStatus::kReady, TaskStatus::kDone,
                        TaskStatus::kReady, TaskStatus::kArchived}) {
    absl::StatusOr<Task> moved = Move(task->id, to);
    ASSERT_TRUE(moved.ok()) << moved.status();
    EXPECT_EQ(moved->status, to);
  }
  absl::StatusOr<Task> final_move = Move(task->id, TaskStatus::kReady);
  EXPECT_EQ(final_move.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(final_move.status().message()),
              HasSubstr("from ARCHIVED to READY"));

  absl::StatusOr<Task> other = Create("r");
  ASSERT_TRUE(other.ok());
  absl::StatusOr<Task> running = Move(other->id, TaskStatus::kRunning);
  EXPECT_EQ(running.status().code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<Task> stale = Move(other->id, TaskStatus::kBlocked, /*version=*/7);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Get(other->id)->status, TaskStatus::kReady)
      << "a refused move changes nothing";
}

TEST_P(StoreTest, FinishingParentsPromotesChildrenInTheSameCommit) {
  absl::StatusOr<Task> a = Create("a");
  absl::StatusOr<Task> b = Create("b");
  ASSERT_TRUE(a.ok() && b.ok());
  absl::StatusOr<Task> child = Create("child", 0, {a->id, b->id});
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(child->status, TaskStatus::kTodo);
  std::vector<std::string> parents = {a->id, b->id};
  std::sort(parents.begin(), parents.end());
  EXPECT_EQ(child->parent_ids, parents);

  ASSERT_TRUE(Move(a->id, TaskStatus::kDone).ok());
  EXPECT_EQ(Get(child->id)->status, TaskStatus::kTodo) << "b is unfinished";
  // A move to READY with an unfinished parent is refused from TODO.
  EXPECT_EQ(Move(child->id, TaskStatus::kReady).status().code(),
            absl::StatusCode::kFailedPrecondition);

  const int64_t last_seq = Events().back().seq;
  ASSERT_TRUE(Move(b->id, TaskStatus::kArchived).ok());
  absl::StatusOr<Task> promoted = Get(child->id);
  EXPECT_EQ(promoted->status, TaskStatus::kReady);
  std::vector<Event> events = Events(last_seq);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, "moved");
  EXPECT_EQ(events[1].kind, "promoted");
  EXPECT_EQ(events[1].task_id, child->id);
  EXPECT_EQ(events[1].task->status, TaskStatus::kReady);

  // Reopening a finished parent sends the READY child back to TODO.
  ASSERT_TRUE(Move(a->id, TaskStatus::kReady).ok());
  EXPECT_EQ(Get(child->id)->status, TaskStatus::kTodo);
  EXPECT_EQ(Events().back().kind, "demoted");
}

TEST_P(StoreTest, MoveToReadyWithUnfinishedParentGoesToTodo) {
  absl::StatusOr<Task> parent = Create("p");
  ASSERT_TRUE(parent.ok());
  absl::StatusOr<Task> child = Create("c", 0, {parent->id});
  ASSERT_TRUE(Move(child->id, TaskStatus::kBlocked).ok());
  absl::StatusOr<Task> moved = Move(child->id, TaskStatus::kReady);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->status, TaskStatus::kTodo);
}

TEST_P(StoreTest, LinkingRefusesCyclesAndCrossBoardLinks) {
  absl::StatusOr<Task> a = Create("a");
  absl::StatusOr<Task> b = Create("b");
  absl::StatusOr<Task> c = Create("c");
  ASSERT_TRUE(Link(a->id, b->id).ok());
  ASSERT_TRUE(Link(b->id, c->id).ok());
  absl::StatusOr<Task> cycle = Link(c->id, a->id);
  EXPECT_EQ(cycle.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(cycle.status().message()), HasSubstr("cycle"));
  EXPECT_EQ(Link(a->id, a->id).status().code(), absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(Await<Board>([&](auto done) {
                store_->CreateBoard(Board{"elsewhere", "", {}}, done);
              }).ok());
  NewTask t;
  t.title = "far";
  t.board = "elsewhere";
  absl::StatusOr<Task> far = Create(t);
  ASSERT_TRUE(far.ok());
  EXPECT_EQ(Link(a->id, far->id).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Create("x", 0, {far->id}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Link("missing", a->id).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, LinkAndUnlinkMoveTheChild) {
  absl::StatusOr<Task> parent = Create("p");
  absl::StatusOr<Task> child = Create("c");
  ASSERT_EQ(child->status, TaskStatus::kReady);
  absl::StatusOr<Task> linked = Link(parent->id, child->id);
  ASSERT_TRUE(linked.ok()) << linked.status();
  EXPECT_EQ(linked->status, TaskStatus::kTodo);
  EXPECT_THAT(linked->parent_ids, ElementsAre(parent->id));
  // Linking again is a no-op, not an error.
  absl::StatusOr<Task> again = Link(parent->id, child->id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->version, linked->version);

  absl::StatusOr<Task> unlinked = Unlink(parent->id, child->id);
  ASSERT_TRUE(unlinked.ok()) << unlinked.status();
  EXPECT_EQ(unlinked->status, TaskStatus::kReady);
  EXPECT_THAT(unlinked->parent_ids, IsEmpty());
  EXPECT_EQ(Unlink(parent->id, child->id).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, CommentsAreKeptInOrder) {
  absl::StatusOr<Task> task = Create("talk");
  for (const char* body : {"first", "second"}) {
    absl::StatusOr<Comment> c = Await<Comment>([&](auto done) {
      store_->AddComment(NewComment{task->id, "ann", body}, done);
    });
    ASSERT_TRUE(c.ok()) << c.status();
  }
  absl::StatusOr<std::vector<Comment>> comments = Await<std::vector<Comment>>(
      [&](auto done) { store_->ListComments(task->id, done); });
  ASSERT_TRUE(comments.ok());
  ASSERT_EQ(comments->size(), 2u);
  EXPECT_EQ((*comments)[0].body, "first");
  EXPECT_EQ((*comments)[1].author, "ann");
  EXPECT_EQ(Get(task->id)->version, 1) << "comments do not change the task";
  EXPECT_EQ(Await<Comment>([&](auto done) {
              store_->AddComment(NewComment{"nope", "ann", "x"}, done);
            })
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, ListOrdersByPriorityThenAgeAndPages) {
  for (auto [title, priority] :
       std::vector<std::pair<std::string, int>>{{"low-old", 0},
                                                {"high-old", 9},
                                                {"mid", 5},
                                                {"high-new", 9},
                                                {"low-new", 0}}) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(Create(title, priority).ok());
  }
  const std::vector<std::string> expected = {"high-old", "high-new", "mid", "low-old",
                                             "low-new"};
  absl::StatusOr<TaskPage> all = List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(Titles(*all), expected);
  EXPECT_TRUE(all->next_page_token.empty());

  std::vector<std::string> paged;
  TaskFilter f;
  f.page_size = 2;
  int pages = 0;
  do {
    absl::StatusOr<TaskPage> page = List(f);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const std::string& t : Titles(*page)) paged.push_back(t);
    f.page_token = page->next_page_token;
    ++pages;
  } while (!f.page_token.empty() && pages < 10);
  EXPECT_EQ(paged, expected);
  EXPECT_EQ(pages, 3);

  f = {};
  f.page_token = "garbage";
  EXPECT_EQ(List(f).status().code(), absl::StatusCode::kInvalidArgument);
  // A well-formed token whose priority no int32 holds (negating INT64_MIN
  // was undefined behaviour; found while writing fuzz_requests).
  f.page_token = absl::WebSafeBase64Escape("1:-9223372036854775808:0:0");
  EXPECT_EQ(List(f).status().code(), absl::StatusCode::kInvalidArgument);
  f = {};
  f.page_size = kMaxPageSize + 1;
  EXPECT_EQ(List(f).status().code(), absl::StatusCode::kInvalidArgument);
  f = {};
  f.board = "missing";
  EXPECT_EQ(List(f).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, ListFilters) {
  NewTask t;
  t.title = "gpu-job";
  t.labels = {"gpu", "big"};
  t.assignee = "alice";
  ASSERT_TRUE(Create(t).ok());
  absl::StatusOr<Task> blocked = Create("stuck");
  ASSERT_TRUE(Move(blocked->id, TaskStatus::kBlocked).ok());

  TaskFilter f;
  f.label = "gpu";
  EXPECT_THAT(Titles(*List(f)), ElementsAre("gpu-job"));
  f = {};
  f.label = "gp";  // Whole labels only.
  EXPECT_THAT(Titles(*List(f)), IsEmpty());
  f = {};
  f.assignee = "alice";
  EXPECT_THAT(Titles(*List(f)), ElementsAre("gpu-job"));
  f = {};
  f.statuses = {TaskStatus::kBlocked, TaskStatus::kDone};
  EXPECT_THAT(Titles(*List(f)), ElementsAre("stuck"));
  f = {};
  f.board = "default";
  EXPECT_EQ(List(f)->tasks.size(), 2u);
}

TEST_P(StoreTest, BoardsDefaultAndDuplicates) {
  absl::StatusOr<std::vector<Board>> boards =
      Await<std::vector<Board>>([&](auto done) { store_->ListBoards(done); });
  ASSERT_TRUE(boards.ok());
  ASSERT_EQ(boards->size(), 1u);
  EXPECT_EQ((*boards)[0].name, "default");
  Board b{"ops", "operations", {}};
  ASSERT_TRUE(Await<Board>([&](auto done) { store_->CreateBoard(b, done); }).ok());
  EXPECT_EQ(
      Await<Board>([&](auto done) { store_->CreateBoard(b, done); }).status().code(),
      absl::StatusCode::kAlreadyExists);
  b.name = "Ops!";
  EXPECT_EQ(
      Await<Board>([&](auto done) { store_->CreateBoard(b, done); }).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// Many threads writing at once: every acknowledged task is present, events
// are gap-free, and the writer really batched (fewer commits than writes).
TEST_P(StoreTest, ConcurrentWritersAreAllDurableAndSeqIsGapFree) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 150;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < kPerThread; ++j) {
        NewTask t;
        t.title = "t" + std::to_string(i) + "-" + std::to_string(j);
        // One in ten fails inside the writer (unknown parent): it must not
        // take the rest of its batch down with it.
        if (j % 10 == 0) t.parent_ids = {"missing-parent"};
        absl::StatusOr<Task> r = Create(t);
        if (r.ok()) {
          ids[i].push_back(r->id);
        } else if (r.status().code() != absl::StatusCode::kNotFound) {
          failures++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);

  std::set<std::string> acked;
  for (auto& v : ids) acked.insert(v.begin(), v.end());
  EXPECT_EQ(acked.size(), static_cast<size_t>(kThreads * kPerThread * 9 / 10));

  Reopen();  // What was acknowledged is on disk, not just in memory.
  std::set<std::string> listed;
  TaskFilter f;
  f.page_size = kMaxPageSize;
  do {
    absl::StatusOr<TaskPage> page = List(f);
    ASSERT_TRUE(page.ok());
    for (const Task& t : page->tasks) listed.insert(t.id);
    f.page_token = page->next_page_token;
  } while (!f.page_token.empty());
  EXPECT_EQ(listed, acked);

  std::vector<Event> events = Events();
  ASSERT_EQ(events.size(), acked.size());
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].seq, static_cast<int64_t>(i + 1)) << "gap or reorder";
  }
}

TEST_P(StoreTest, PublishesCommittedEventsInOrder) {
  absl::StatusOr<Task> parent = Create("p");
  absl::StatusOr<Task> child = Create("c", 0, {parent->id});
  ASSERT_TRUE(Move(parent->id, TaskStatus::kDone).ok());
  ASSERT_FALSE(Create("", 0).ok());  // Rejected before the writer.
  ASSERT_FALSE(Move(child->id, TaskStatus::kRunning).ok());  // Rolled back.
  absl::MutexLock lock(&events_mu_);
  std::vector<std::string> kinds;
  for (size_t i = 0; i < published_.size(); ++i) {
    EXPECT_EQ(published_[i].seq, static_cast<int64_t>(i + 1));
    kinds.push_back(published_[i].kind);
  }
  EXPECT_THAT(kinds, ElementsAre("created", "created", "moved", "promoted"));
}

TEST_P(StoreTest, DataSurvivesReopen) {
  absl::StatusOr<Task> task = Create("persist");
  ASSERT_TRUE(Move(task->id, TaskStatus::kBlocked).ok());
  store_->Close();
  // Calls after Close are refused, not lost silently.
  EXPECT_EQ(Create("late").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Get(task->id).status().code(), absl::StatusCode::kUnavailable);
  Reopen();
  absl::StatusOr<Task> read = Get(task->id);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->status, TaskStatus::kBlocked);
  EXPECT_EQ(read->version, 2);
  EXPECT_EQ(Events().size(), 2u);
}

TEST_P(StoreTest, OneStorePerDatabaseFile) {
  if (GetParam() != testing::Backend::kSqlite) GTEST_SKIP() << testing::kSqliteOnly;
  Store::Options options;
  options.path = target_;
  absl::StatusOr<std::unique_ptr<Store>> second = Store::Open(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("in use by another kanband"));
  ASSERT_TRUE(Create("still mine").ok()) << "the refused open must not disturb the owner";
  store_.reset();
  second = Store::Open(options);
  ASSERT_TRUE(second.ok()) << second.status();
}

TEST_P(StoreTest, RefusesADatabaseFromTheFuture) {
  if (GetParam() != testing::Backend::kSqlite) GTEST_SKIP() << testing::kSqliteOnly;
  store_.reset();
  {
    absl::StatusOr<std::unique_ptr<Connection>> db =
        SqliteConnection::Open(dir_.File("kanban.db"), {});
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA user_version=999").ok());
  }
  Store::Options options;
  options.path = target_;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("999"));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, testing::AllBackends(),
                         testing::BackendName);

}  // namespace
}  // namespace kanban::storage
