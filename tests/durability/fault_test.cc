// I/O faults injected under the real Store through the power-loss VFS:
// disk full and write errors fail just the writes they hit; a failed fsync
// stops all writing until a restart (the page cache is not trusted after
// it), in FULL mode at a commit and in NORMAL mode at a checkpoint. Reads
// keep working throughout, and nothing acknowledged is ever lost.
#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/rules.h"
#include "storage/store.h"
#include "tests/durability/powerloss_vfs.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
// Test names and CTest listings show the mode, not its bytes.
void PrintTo(SyncMode mode, std::ostream* os) { *os << SyncModeName(mode); }
}  // namespace kanban::storage

namespace kanban::testing {
namespace {

using storage::Store;
using storage::SyncMode;
using storage::Task;
using ::testing::HasSubstr;

class FaultTest : public ::testing::TestWithParam<SyncMode> {
 protected:
  void SetUp() override {
    vfs_ = PowerLossVfs::Register("faults");
    vfs_->Reset();
    Open();
  }
  void TearDown() override {
    vfs_->ClearFaults();
    store_.reset();
  }

  void Open() {
    store_.reset();
    Store::Options options;
    options.path = dir_.File("kanban.db");
    options.vfs = vfs_->name();
    options.sweep_interval = absl::ZeroDuration();
    options.durability.mode = GetParam();
    options.durability.wal_autocheckpoint = GetParam() == SyncMode::kFull
                                                ? storage::kFullWalAutocheckpoint
                                                : storage::kDefaultWalAutocheckpoint;
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // A body large enough to need overflow pages, so the commit writes several.
  absl::StatusOr<Task> Create(const std::string& title, size_t body = 16 * 1024) {
    storage::NewTask t;
    t.title = title;
    t.body = std::string(body, 'b');
    return storage::Await<Task>([&](auto done) { store_->CreateTask(t, done); });
  }
  absl::StatusOr<Task> Get(const std::string& id) {
    return storage::Await<Task>([&](auto done) { store_->GetTask(id, done); });
  }
  absl::StatusOr<Task> Move(const std::string& id, storage::TaskStatus to) {
    storage::TaskMove m{id, to, 0, ""};
    return storage::Await<Task>([&](auto done) { store_->MoveTask(m, done); });
  }
  std::vector<std::string> Titles() {
    storage::TaskFilter filter;
    filter.page_size = storage::kMaxPageSize;
    absl::StatusOr<storage::TaskPage> page = storage::Await<storage::TaskPage>(
        [&](auto done) { store_->ListTasks(filter, done); });
    EXPECT_TRUE(page.ok()) << page.status();
    std::vector<std::string> titles;
    if (page.ok()) {
      for (const Task& t : page->tasks) titles.push_back(t.title);
    }
    return titles;
  }

  // Acknowledged writes, each a task id and the version acknowledged.
  void Ack(const absl::StatusOr<Task>& t) {
    ASSERT_TRUE(t.ok()) << t.status();
    acked_.emplace_back(t->id, t->version);
  }
  void ExpectAckedPresent() {
    for (const auto& [id, version] : acked_) {
      absl::StatusOr<Task> t = Get(id);
      ASSERT_TRUE(t.ok()) << id << ": " << t.status();
      EXPECT_GE(t->version, version) << id;
    }
  }
  // The refusal of a fenced store.
  static void ExpectRestartError(const absl::Status& s) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(absl::AsciiStrToLower(s.message()), HasSubstr("restart")) << s;
  }

  PowerLossVfs* vfs_ = nullptr;
  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::vector<std::pair<std::string, int64_t>> acked_;
};

TEST_P(FaultTest, DiskFullFailsWritesOnlyWhileItLasts) {
  for (int i = 0; i < 5; ++i) Ack(Create(absl::StrCat("kept-", i)));
  vfs_->FailWrites(SQLITE_FULL);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Task> t = Create(absl::StrCat("refused-", i));
    EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted) << t.status();
  }
  EXPECT_GT(vfs_->write_faults(), 0);
  // Reads go on.
  ExpectAckedPresent();
  EXPECT_EQ(Titles().size(), 5u);
  EXPECT_TRUE(store_->write_failure().ok()) << store_->write_failure();

  vfs_->ClearFaults();
  Ack(Create("after"));
  Ack(Move(acked_[0].first, storage::TaskStatus::kTodo));
  Open();  // Reopen: the same again from the files.
  ExpectAckedPresent();
  std::vector<std::string> titles = Titles();
  EXPECT_EQ(titles.size(), 6u);
  for (const std::string& title : titles)
    EXPECT_THAT(title, ::testing::Not(HasSubstr("refused")));
}

TEST_P(FaultTest, WriteErrorFailsWritesOnlyWhileItLasts) {
  for (int i = 0; i < 5; ++i) Ack(Create(absl::StrCat("kept-", i)));
  // Only the WAL, and only after one more write went through: the error
  // lands in the middle of a commit.
  vfs_->FailWrites(SQLITE_IOERR_WRITE, "-wal", /*after=*/1);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Task> t = Create(absl::StrCat("refused-", i));
    EXPECT_EQ(t.status().code(), absl::StatusCode::kUnavailable) << t.status();
  }
  EXPECT_GT(vfs_->write_faults(), 0);
  ExpectAckedPresent();
  EXPECT_EQ(Titles().size(), 5u);
  EXPECT_TRUE(store_->write_failure().ok()) << store_->write_failure();

  vfs_->ClearFaults();
  Ack(Create("after"));
  Open();
  ExpectAckedPresent();
  EXPECT_EQ(Titles().size(), 6u);
}

INSTANTIATE_TEST_SUITE_P(Modes, FaultTest,
                         ::testing::Values(SyncMode::kFull, SyncMode::kNormal),
                         [](const auto& info) {
                           return info.param == SyncMode::kFull ? "Full" : "Normal";
                         });

// After a failed fsync nothing is written until a restart, fault or not.
class SyncFaultTest : public FaultTest {
 protected:
  // Shared by both modes once the store is fenced.
  void ExpectFencedUntilRestart() {
    absl::Status failure = store_->write_failure();
    EXPECT_FALSE(failure.ok());
    ExpectRestartError(failure);
    ExpectRestartError(Create("fenced").status());
    vfs_->ClearFaults();
    // The fault is gone; the fence is not.
    ExpectRestartError(Create("fenced-after-clear").status());
    ExpectRestartError(Move(acked_[0].first, storage::TaskStatus::kTodo).status());
    EXPECT_FALSE(store_->write_failure().ok());
    ExpectAckedPresent();  // Reads still work.

    Open();  // The restart.
    EXPECT_TRUE(store_->write_failure().ok()) << store_->write_failure();
    ExpectAckedPresent();
    Ack(Create("after-restart"));
    ExpectAckedPresent();
  }
};

class FullSyncFaultTest : public SyncFaultTest {};
class NormalSyncFaultTest : public SyncFaultTest {};

TEST_P(FullSyncFaultTest, FailedCommitSyncFencesUntilRestart) {
  for (int i = 0; i < 5; ++i) Ack(Create(absl::StrCat("kept-", i)));
  vfs_->FailSyncs(SQLITE_IOERR_FSYNC);
  absl::StatusOr<Task> t = Create("unsynced");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnavailable) << t.status();
  EXPECT_GT(vfs_->sync_faults(), 0);
  ExpectFencedUntilRestart();
}

TEST_P(FullSyncFaultTest, FailedSyncThenPowerCutKeepsEveryAcknowledgedWrite) {
  for (int i = 0; i < 5; ++i) Ack(Create(absl::StrCat("kept-", i)));
  vfs_->FailSyncs(SQLITE_IOERR_FSYNC);
  EXPECT_FALSE(Create("unsynced").ok());
  EXPECT_FALSE(store_->write_failure().ok());
  vfs_->Cut();
  store_->Close();
  store_.reset();
  ASSERT_TRUE(vfs_->Restore(PowerLossVfs::CutMode::kDropUnsynced).ok());
  Open();
  ExpectAckedPresent();
  EXPECT_EQ(Titles().size(), 5u);
}

TEST_P(NormalSyncFaultTest, FailedCheckpointSyncFencesUntilRestart) {
  for (int i = 0; i < 5; ++i) Ack(Create(absl::StrCat("kept-", i)));
  vfs_->FailSyncs(SQLITE_IOERR_FSYNC);
  // No sync until the WAL holds wal_autocheckpoint pages: write past that.
  // The write whose commit ran the checkpoint may be acknowledged.
  int writes = 0;
  for (; writes < 3000 && store_->write_failure().ok(); ++writes) {
    absl::StatusOr<Task> t = Create(absl::StrCat("fill-", writes));
    if (!t.ok()) {
      // The batch that met the failed sync gets SQLite's I/O error.
      EXPECT_EQ(t.status().code(), absl::StatusCode::kUnavailable) << t.status();
      break;
    }
    acked_.emplace_back(t->id, t->version);
  }
  EXPECT_LT(writes, 3000) << "no checkpoint ran";
  EXPECT_GT(vfs_->sync_faults(), 0);
  ExpectFencedUntilRestart();
}

INSTANTIATE_TEST_SUITE_P(Full, FullSyncFaultTest, ::testing::Values(SyncMode::kFull),
                         [](const auto&) { return "Full"; });
INSTANTIATE_TEST_SUITE_P(Normal, NormalSyncFaultTest,
                         ::testing::Values(SyncMode::kNormal),
                         [](const auto&) { return "Normal"; });

}  // namespace
}  // namespace kanban::testing
