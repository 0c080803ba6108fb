// `kanband migrate`'s copy, SQLite into a real PostgreSQL: every row and
// every event seq kept, an occupied target or a held file refused.
#include "storage/migrate.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Store> MustOpen(const std::string& path) {
  Store::Options options;
  options.path = path;
  options.sweep_interval = absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// Everything a reader can see of a board, as text, so that two stores can
// be compared whole.
std::string Snapshot(Store& store) {
  std::string out;
  auto tasks = Await<TaskPage>([&](auto done) {
    TaskFilter all;
    all.page_size = 1000;
    store.ListTasks(all, done);
  });
  EXPECT_TRUE(tasks.ok()) << tasks.status();
  for (const Task& t : tasks->tasks) {
    absl::StrAppend(&out, "task ", t.id, " ", t.board, " ", t.title, " ", t.body, " ",
                    static_cast<int>(t.status), " p", t.priority, " v", t.version, " a",
                    t.attempt, "/", t.max_attempts, " [", absl::StrJoin(t.labels, ","),
                    "] <", absl::StrJoin(t.parent_ids, ","), "> ", t.assignee, " ",
                    t.worker_id, " ", absl::ToUnixMicros(t.created_at), " ",
                    absl::ToUnixMicros(t.updated_at), " ", t.result, " ",
                    t.idempotency_key, "\n");
    auto comments =
        Await<std::vector<Comment>>([&](auto done) { store.ListComments(t.id, done); });
    for (const Comment& c : *comments) {
      absl::StrAppend(&out, "  comment ", c.id, " ", c.author, " ", c.body, "\n");
    }
  }
  auto events =
      Await<std::vector<Event>>([&](auto done) { store.ReadEvents(0, 100000, done); });
  EXPECT_TRUE(events.ok()) << events.status();
  for (const Event& e : *events) {
    absl::StrAppend(&out, "event ", e.seq, " txn ", e.txn, " ", e.kind, " ", e.task_id,
                    " ", e.board, " ", e.reason, " ", e.principal, " v",
                    e.task.has_value() ? e.task->version : -1, "\n");
  }
  auto tokens =
      Await<std::vector<TokenRecord>>([&](auto done) { store.ListTokens(true, done); });
  for (const TokenRecord& t : *tokens) {
    absl::StrAppend(&out, "token ", t.name, " ", t.secret_hash, " ", t.worker_id, "\n");
  }
  auto workers =
      Await<std::vector<Worker>>([&](auto done) { store.ListWorkers("", done); });
  for (const Worker& w : *workers) {
    absl::StrAppend(&out, "worker ", w.worker_id, " [", absl::StrJoin(w.task_ids, ","),
                    "]\n");
  }
  return out;
}

class MigrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::PostgresServer().has_value()) GTEST_SKIP() << "no PostgreSQL for tests";
    std::unique_ptr<Store> store = MustOpen(sqlite_);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(Await<Board>([&](auto done) {
                  store->CreateBoard(Board{"ops", "Ops", {}}, done);
                }).ok());
    NewTask parent;
    parent.board = "ops";
    parent.title = "parent";
    parent.labels = {"gpu", "x"};
    parent.idempotency_key = "k1";
    auto p = Await<Task>([&](auto done) { store->CreateTask(parent, done); });
    ASSERT_TRUE(p.ok()) << p.status();
    NewTask child;
    child.board = "ops";
    child.title = "child \"quoted\" \xc3\xa9";
    child.parent_ids = {p->id};
    ASSERT_TRUE(Await<Task>([&](auto done) { store->CreateTask(child, done); }).ok());
    ASSERT_TRUE(Await<Comment>([&](auto done) {
                  store->AddComment(NewComment{p->id, "ann", "looks good"}, done);
                }).ok());
    ClaimRequest claim;
    claim.board = "ops";
    claim.worker_id = "w1";
    auto claimed = Await<ClaimResult>([&](auto done) { store->ClaimTask(claim, done); });
    ASSERT_TRUE(claimed.ok() && claimed->claim.has_value());
    TokenRecord token;
    token.name = "ci";
    token.role = Role::kProducer;
    token.secret_hash = std::string(64, 'a');
    ASSERT_TRUE(
        Await<TokenRecord>([&](auto done) { store->CreateToken(token, done); }).ok());
    before_ = Snapshot(*store);
    store->Close();
  }

  testing::TempDir dir_;
  const std::string sqlite_ = dir_.File("kanban.db");
  std::string before_;
};

TEST_F(MigrateTest, CopiesEveryRowAndKeepsEverySeq) {
  absl::StatusOr<std::string> target = testing::NewPostgresDatabase();
  ASSERT_TRUE(target.ok()) << target.status();
  absl::StatusOr<CopyReport> report = CopySqliteToPostgres(sqlite_, *target, absl::Now());
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GT(report->last_event_seq, 0);

  std::unique_ptr<Store> moved = MustOpen(*target);
  ASSERT_NE(moved, nullptr);
  EXPECT_EQ(moved->durability().backend, "postgresql");
  EXPECT_EQ(Snapshot(*moved), before_);
  // The feed goes on from the next seq, and new keys do not collide.
  NewTask next;
  next.title = "after the move";
  auto created = Await<Task>([&](auto done) { moved->CreateTask(next, done); });
  ASSERT_TRUE(created.ok()) << created.status();
  auto events = Await<std::vector<Event>>(
      [&](auto done) { moved->ReadEvents(report->last_event_seq, 10, done); });
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(events->front().seq, report->last_event_seq + 1);
  auto comment = Await<Comment>([&](auto done) {
    moved->AddComment(NewComment{created->id, "bob", "second"}, done);
  });
  ASSERT_TRUE(comment.ok()) << comment.status();
  EXPECT_EQ(comment->id, 2);
}

TEST_F(MigrateTest, RefusesATargetThatHoldsABoard) {
  absl::StatusOr<std::string> target = testing::NewPostgresDatabase();
  ASSERT_TRUE(target.ok()) << target.status();
  absl::StatusOr<CopyReport> first = CopySqliteToPostgres(sqlite_, *target, absl::Now());
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<CopyReport> again = CopySqliteToPostgres(sqlite_, *target, absl::Now());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("empty database"));
  std::unique_ptr<Store> moved = MustOpen(*target);
  ASSERT_NE(moved, nullptr);
  EXPECT_EQ(Snapshot(*moved), before_) << "a refused copy must change nothing";
}

TEST_F(MigrateTest, RefusesAFileAKanbandHolds) {
  std::unique_ptr<Store> serving = MustOpen(sqlite_);
  ASSERT_NE(serving, nullptr);
  absl::StatusOr<std::string> target = testing::NewPostgresDatabase();
  ASSERT_TRUE(target.ok()) << target.status();
  absl::StatusOr<CopyReport> copy = CopySqliteToPostgres(sqlite_, *target, absl::Now());
  EXPECT_EQ(copy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(copy.status().message()), HasSubstr("in use"));
}

}  // namespace
}  // namespace kanban::storage
