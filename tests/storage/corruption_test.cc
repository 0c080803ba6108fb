// Corruption, on real files damaged on purpose: found at open (quick_check,
// quarantine, restart loops that must not copy again), and found while
// running (the call gets DATA_LOSS, writing stops, healthy reads go on).
//
// On SQLite only: damaging the file, quick_check and quarantine are about the
// database file kanband owns; PostgreSQL's own storage is its operator's
// (amcheck), and its faults are tests/storage/postgres_faults_test.cc.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/sqlite/connection.h"
#include "storage/sqlite/quarantine.h"
#include "storage/store.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// Writes `tasks` tasks with bodies big enough for the tasks table to span
// many pages, then closes the store (which checkpoints everything into the
// database file). Returns the ids.
std::vector<std::string> Fill(const std::string& path, int tasks) {
  Store::Options options;
  options.path = path;
  options.sweep_interval = absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  std::vector<std::string> ids;
  for (int i = 0; i < tasks; ++i) {
    NewTask t;
    t.title = "task " + std::to_string(i);
    t.body = std::string(2000, 'a' + i % 26);
    absl::StatusOr<Task> task =
        Await<Task>([&](auto done) { (*store)->CreateTask(t, done); });
    EXPECT_TRUE(task.ok()) << task.status();
    if (task.ok()) ids.push_back(task->id);
  }
  return ids;
}

// Overwrites the b-tree page header of table `table`'s root page with bytes
// that are no page type: any read of that table then fails SQLITE_CORRUPT,
// while other tables stay readable.
void DamageTable(const std::string& path, const std::string& table) {
  int64_t root = 0, page_size = 0;
  {
    SqliteConnection::Options options;
    options.read_only = true;
    absl::StatusOr<std::unique_ptr<Connection>> db =
        SqliteConnection::Open(path, options);
    ASSERT_TRUE(db.ok()) << db.status();
    absl::StatusOr<int64_t> r = (*db)->QueryInt(
        "SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND name = '" + table +
        "'");
    ASSERT_TRUE(r.ok()) << r.status();
    absl::StatusOr<int64_t> p = (*db)->QueryInt("PRAGMA page_size");
    ASSERT_TRUE(p.ok()) << p.status();
    root = *r;
    page_size = *p;
  }
  ASSERT_FALSE(fs::exists(path + "-wal") && fs::file_size(path + "-wal") > 0)
      << "the damage must land in the database file, not be hidden by the WAL";
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  // Page 1 starts with the 100-byte file header; the table's root is not 1.
  file.seekp((root - 1) * page_size);
  std::string garbage(64, '\xEE');
  file.write(garbage.data(), garbage.size());
  ASSERT_TRUE(file.good());
}

TEST(QuarantineTest, CopiesOnceReusesIdenticalSetsAndKeepsTheNewest) {
  testing::TempDir dir;
  std::string db = dir.File("k.db");
  std::ofstream(db) << "one";
  std::ofstream(db + "-wal") << "wal";
  absl::Time t0 = absl::FromUnixSeconds(1800000000);

  absl::StatusOr<QuarantineSet> first = Quarantine(db, t0, 2);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->reused);
  EXPECT_EQ(first->dir, db + ".corrupt-20270115T080000Z");
  EXPECT_TRUE(fs::exists(first->dir + "/k.db"));
  EXPECT_TRUE(fs::exists(first->dir + "/k.db-wal"));

  // A restart loop on the same damaged file: no second copy.
  for (int i = 1; i <= 3; ++i) {
    absl::StatusOr<QuarantineSet> again = Quarantine(db, t0 + absl::Seconds(i), 2);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(again->reused);
    EXPECT_EQ(again->dir, first->dir);
  }
  EXPECT_THAT(ListQuarantineSets(db), SizeIs(1));

  // New damage makes new sets; only the newest `keep` stay.
  for (int i = 0; i < 3; ++i) {
    std::ofstream(db) << "changed " << i;
    ASSERT_TRUE(Quarantine(db, t0 + absl::Minutes(i + 1), 2).ok());
  }
  std::vector<std::string> sets = ListQuarantineSets(db);
  ASSERT_THAT(sets, SizeIs(2));
  EXPECT_EQ(sets.back(), db + ".corrupt-20270115T080300Z");
  std::ifstream kept(sets.back() + "/k.db");
  std::string content((std::istreambuf_iterator<char>(kept)), {});
  EXPECT_EQ(content, "changed 2");
}

TEST(CorruptionTest, OpenRefusesACorruptFileQuarantinesItOnceAndLeavesItAlone) {
  testing::TempDir dir;
  std::string db = dir.File("kanban.db");
  Fill(db, 200);
  DamageTable(db, "tasks");
  auto size_before = fs::file_size(db);

  Store::Options options;
  options.path = db;
  options.sweep_interval = absl::ZeroDuration();
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(store.status().message(), HasSubstr("is corrupt"));
    EXPECT_THAT(store.status().message(), HasSubstr("quick_check found"));
    EXPECT_THAT(store.status().message(), HasSubstr(".corrupt-"));
    EXPECT_THAT(store.status().message(), HasSubstr("--restore-from"));
    if (attempt > 0) {
      EXPECT_THAT(store.status().message(), HasSubstr("not copied again"));
    }
  }
  std::vector<std::string> sets = ListQuarantineSets(db);
  ASSERT_THAT(sets, SizeIs(1));
  EXPECT_EQ(fs::file_size(sets[0] + "/kanban.db"), size_before);
  EXPECT_EQ(fs::file_size(db), size_before) << "the damaged file must not be changed";

  // The check can be turned off; the damage then shows where it is read.
  options.check_at_open = false;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
}

TEST(CorruptionTest, CorruptionWhileRunningFailsTheCallStopsWritesAndKeepsHealthyReads) {
  testing::TempDir dir;
  std::string db = dir.File("kanban.db");
  std::vector<std::string> ids = Fill(db, 200);
  ASSERT_FALSE(ids.empty());
  DamageTable(db, "tasks");

  Store::Options options;
  options.path = db;
  options.sweep_interval = absl::ZeroDuration();
  options.check_at_open = false;  // As if the damage happened after start.
  int fenced_calls = 0;
  options.on_fenced = [&](const absl::Status&) { ++fenced_calls; };
  absl::StatusOr<std::unique_ptr<Store>> opened = Store::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store& store = **opened;
  EXPECT_TRUE(store.write_failure().ok());

  absl::StatusOr<Task> read =
      Await<Task>([&](auto done) { store.GetTask(ids[0], done); });
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();

  // Writing stops, with a message that says what to do.
  absl::Status failure = store.write_failure();
  EXPECT_EQ(failure.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(failure.message(), HasSubstr("corrupt"));
  EXPECT_THAT(failure.message(), HasSubstr("--restore-from"));
  Board board;
  board.name = "after";
  absl::StatusOr<Board> write =
      Await<Board>([&](auto done) { store.CreateBoard(board, done); });
  EXPECT_EQ(write.status().code(), absl::StatusCode::kUnavailable) << write.status();

  // Healthy data is still served; a second corrupt read does not fence again.
  absl::StatusOr<std::vector<Board>> boards =
      Await<std::vector<Board>>([&](auto done) { store.ListBoards(done); });
  ASSERT_TRUE(boards.ok()) << boards.status();
  EXPECT_EQ(boards->size(), 1u);
  read = Await<Task>([&](auto done) { store.GetTask(ids[1], done); });
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(fenced_calls, 1);

  // The fenced store does not checkpoint at close: the WAL is left as is.
  store.Close();
  EXPECT_TRUE(ListQuarantineSets(db).empty());
}

}  // namespace
}  // namespace kanban::storage
