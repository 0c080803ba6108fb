// The PostgreSQL backend against a server that goes away: killed under
// load (pg_ctl stop -m immediate) and restarted, unreachable at start, and
// two Stores migrating one fresh database at once. Each test that kills a
// server starts its own (tests/support/postgres_server.sh), never the
// suite's shared one.
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/postgres/connection.h"
#include "storage/store.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A private server for a test that kills it.
class OwnServer {
 public:
  explicit OwnServer(const std::string& state) : state_(state) {
    ok_ = Run("start") == 0;
  }
  ~OwnServer() { Run("stop"); }
  bool ok() const { return ok_; }
  int Run(const std::string& command) {
    return std::system(absl::StrCat(KANBAN_SOURCE_DIR,
                                    "/tests/support/postgres_server.sh ", command, " ",
                                    state_, " >/dev/null")
                           .c_str());
  }
  std::string target() const {
    std::ifstream in(state_ + "/target");
    std::string line;
    std::getline(in, line);
    return line;
  }

 private:
  const std::string state_;
  bool ok_ = false;
};

TEST(PostgresFaultTest, ServerKilledUnderLoadLosesNoAcknowledgedWrite) {
  if (!testing::PostgresServer().has_value()) GTEST_SKIP() << "no PostgreSQL for tests";
  testing::TempDir dir;
  OwnServer server(dir.File("pg"));
  ASSERT_TRUE(server.ok());
  Store::Options options;
  options.path = server.target();
  options.sweep_interval = absl::ZeroDuration();
  // FULL: synchronous_commit=on, so an acknowledged write survives the kill.
  options.durability.mode = SyncMode::kFull;
  options.durability.source = "--synchronous";
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();

  absl::Mutex mu;
  std::vector<std::string> acknowledged;
  std::set<std::string> errors;
  std::atomic<bool> resumed{false};
  std::atomic<int> after_resume{0};
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  std::vector<std::thread> writers;
  for (int w = 0; w < 8; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; absl::Now() < deadline; ++i) {
        if (resumed && after_resume.load() >= 80) return;
        NewTask task;
        task.title = absl::StrCat("w", w, "-", i);
        absl::StatusOr<Task> created =
            Await<Task>([&](auto done) { (*store)->CreateTask(task, done); });
        absl::MutexLock lock(&mu);
        if (created.ok()) {
          acknowledged.push_back(created->id);
          if (resumed) ++after_resume;
        } else {
          EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable)
              << created.status();
          errors.insert(std::string(created.status().message()).substr(0, 60));
          absl::SleepFor(absl::Milliseconds(20));
        }
      }
    });
  }
  while (absl::Now() < deadline) {
    {
      absl::MutexLock lock(&mu);
      if (acknowledged.size() >= 200) break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(server.Run("crash"), 0);
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_EQ(server.Run("resume"), 0);
  resumed = true;
  for (auto& t : writers) t.join();

  EXPECT_GE(after_resume.load(), 80)
      << "writes must resume after the server returns, without a restart";
  EXPECT_FALSE(errors.empty()) << "the kill must have been noticed";
  // Every acknowledged task is there, and the feed has no gap.
  for (const std::string& id : acknowledged) {
    absl::StatusOr<Task> got =
        Await<Task>([&](auto done) { (*store)->GetTask(id, done); });
    ASSERT_TRUE(got.ok()) << id << ": " << got.status();
  }
  absl::StatusOr<std::vector<Event>> events = Await<std::vector<Event>>(
      [&](auto done) { (*store)->ReadEvents(0, 1000000, done); });
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_GE(events->size(), acknowledged.size());
  for (size_t i = 0; i < events->size(); ++i) {
    ASSERT_EQ((*events)[i].seq, static_cast<int64_t>(i) + 1) << "a gap in the feed";
  }
  (*store)->Close();
}

TEST(PostgresFaultTest, UnreachableAtStartNamesTheServerButNotThePassword) {
  // Port 1: nothing listens there, so the connection is refused at once.
  const std::string target =
      "postgresql://kanban:sekrit-pw@127.0.0.1:1/nosuchdb?connect_timeout=5";
  Store::Options options;
  options.path = target;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  const std::string message(store.status().message());
  EXPECT_THAT(message, HasSubstr("127.0.0.1:1/nosuchdb"));
  EXPECT_THAT(message, Not(HasSubstr("sekrit-pw")));
  EXPECT_EQ(RedactPostgresTarget(target), "postgresql://kanban@127.0.0.1:1/nosuchdb");
  EXPECT_EQ(RedactPostgresTarget("host=db.example port=5433 dbname=k user=u password=p"),
            "postgresql://u@db.example:5433/k");
}

TEST(PostgresFaultTest, TwoStoresStartingAtOnceMigrateOnce) {
  absl::StatusOr<std::string> target = testing::NewPostgresDatabase();
  if (!testing::PostgresServer().has_value()) GTEST_SKIP() << "no PostgreSQL for tests";
  ASSERT_TRUE(target.ok()) << target.status();
  std::vector<absl::StatusOr<std::unique_ptr<Store>>> stores(4);
  std::vector<std::thread> openers;
  for (auto& slot : stores) {
    openers.emplace_back([&slot, &target] {
      Store::Options options;
      options.path = *target;
      options.sweep_interval = absl::ZeroDuration();
      slot = Store::Open(options);
    });
  }
  for (auto& t : openers) t.join();
  for (auto& s : stores) ASSERT_TRUE(s.ok()) << s.status();
  // Migrated once: one version row, one default board.
  PgConnection::Options options;
  options.target = *target;
  auto db = PgConnection::Open(options);
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(*(*db)->QueryInt("SELECT count(*) FROM kanban_schema"), 1);
  EXPECT_EQ(*(*db)->QueryInt("SELECT count(*) FROM boards WHERE name = 'default'"), 1);
}

}  // namespace
}  // namespace kanban::storage
