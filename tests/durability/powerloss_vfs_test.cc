// The power-loss VFS itself: what a cut keeps, byte for byte, and that the
// fault knobs fire where and when asked. Drives the VFS through its SQLite
// entry points (a VFS is a SQLite object; this is the one test that talks
// to it in SQLite's terms), then through storage::Connection.
#include "tests/durability/powerloss_vfs.h"

#include <sqlite3.h>

#include <fstream>
#include <iterator>
#include <memory>

#include "gtest/gtest.h"
#include "storage/sqlite/connection.h"
#include "tests/support/temp_dir.h"

namespace kanban::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
bool Exists(const std::string& path) { return std::ifstream(path).good(); }

// One file opened through the VFS, closed on destruction.
class VfsFile {
 public:
  VfsFile(PowerLossVfs* v, const std::string& path, int type) {
    vfs_ = sqlite3_vfs_find(v->name().c_str());
    file_.reset(static_cast<sqlite3_file*>(::operator new(vfs_->szOsFile)));
    int out = 0;
    rc_ = vfs_->xOpen(vfs_, path.c_str(), file_.get(),
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | type, &out);
  }
  ~VfsFile() {
    if (rc_ == SQLITE_OK) file_->pMethods->xClose(file_.get());
  }
  int open_rc() const { return rc_; }
  int Write(const std::string& data, int64_t offset) {
    return file_->pMethods->xWrite(file_.get(), data.data(),
                                   static_cast<int>(data.size()), offset);
  }
  int Sync() { return file_->pMethods->xSync(file_.get(), SQLITE_SYNC_NORMAL); }
  int Truncate(int64_t size) { return file_->pMethods->xTruncate(file_.get(), size); }

 private:
  struct Free {
    void operator()(sqlite3_file* f) const { ::operator delete(f); }
  };
  sqlite3_vfs* vfs_;
  std::unique_ptr<sqlite3_file, Free> file_;
  int rc_ = SQLITE_ERROR;
};

class PowerLossVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vfs_ = PowerLossVfs::Register("powerloss-unit");
    vfs_->Reset();
  }
  PowerLossVfs* vfs_;
  TempDir dir_;
};

TEST_F(PowerLossVfsTest, CutDropsEveryUnsyncedWriteAndTruncate) {
  std::string path = dir_.File("a.db");
  {
    VfsFile f(vfs_, path, SQLITE_OPEN_MAIN_DB);
    ASSERT_EQ(f.open_rc(), SQLITE_OK);
    ASSERT_EQ(f.Write(std::string(1024, 'a'), 0), SQLITE_OK);
    ASSERT_EQ(f.Sync(), SQLITE_OK);
    ASSERT_EQ(f.Write(std::string(512, 'b'), 512), SQLITE_OK);
    ASSERT_EQ(f.Write(std::string(100, 'c'), 1024), SQLITE_OK);
    ASSERT_EQ(f.Truncate(256), SQLITE_OK);
    EXPECT_EQ(vfs_->UnsyncedBytes(), 612);
    vfs_->Cut();
    // Dropped, yet reported as done.
    EXPECT_EQ(f.Write(std::string(10, 'd'), 0), SQLITE_OK);
    EXPECT_EQ(f.Sync(), SQLITE_OK);
    EXPECT_EQ(ReadFile(path).size(), 256u);  // The real file moved on.
  }
  ASSERT_TRUE(vfs_->Restore(PowerLossVfs::CutMode::kDropUnsynced).ok());
  EXPECT_EQ(ReadFile(path), std::string(1024, 'a'));
  EXPECT_FALSE(vfs_->cut());
}

TEST_F(PowerLossVfsTest, TearLastKeepsEarlierWritesAndHalfASectorOfTheLast) {
  std::string path = dir_.File("b.db");
  {
    VfsFile f(vfs_, path, SQLITE_OPEN_MAIN_DB);
    ASSERT_EQ(f.Write(std::string(1024, 'a'), 0), SQLITE_OK);
    ASSERT_EQ(f.Sync(), SQLITE_OK);
    ASSERT_EQ(f.Write(std::string(512, 'b'), 0), SQLITE_OK);
    ASSERT_EQ(f.Write(std::string(1024, 'c'), 512), SQLITE_OK);  // Grows the file.
    vfs_->Cut();
  }
  ASSERT_TRUE(vfs_->Restore(PowerLossVfs::CutMode::kTearLast).ok());
  std::string expected = std::string(512, 'b') + std::string(256, 'c') +
                         std::string(256, 'a') + std::string(512, '\0');
  EXPECT_EQ(ReadFile(path), expected);
}

TEST_F(PowerLossVfsTest, FileNeverSyncedDisappearsAndShmIsDropped) {
  std::string db = dir_.File("c.db");
  std::string wal = db + "-wal";
  {
    VfsFile main(vfs_, db, SQLITE_OPEN_MAIN_DB);
    ASSERT_EQ(main.Write("x", 0), SQLITE_OK);
    ASSERT_EQ(main.Sync(), SQLITE_OK);
    VfsFile log(vfs_, wal, SQLITE_OPEN_WAL);
    ASSERT_EQ(log.Write(std::string(4096, 'w'), 0), SQLITE_OK);
    std::ofstream(db + "-shm") << "stale";
    vfs_->Cut();
  }
  ASSERT_TRUE(Exists(wal));
  ASSERT_TRUE(vfs_->Restore(PowerLossVfs::CutMode::kTearLast).ok());
  EXPECT_FALSE(Exists(wal));
  EXPECT_FALSE(Exists(db + "-shm"));
  EXPECT_EQ(ReadFile(db), "x");
}

TEST_F(PowerLossVfsTest, FileThatExistedBeforeCountsAsDurable) {
  std::string path = dir_.File("d.db");
  std::ofstream(path) << "before";
  {
    VfsFile f(vfs_, path, SQLITE_OPEN_MAIN_DB);
    ASSERT_EQ(f.Write("AFTER!", 0), SQLITE_OK);
    vfs_->Cut();
  }
  ASSERT_TRUE(vfs_->Restore(PowerLossVfs::CutMode::kDropUnsynced).ok());
  EXPECT_EQ(ReadFile(path), "before");
}

TEST_F(PowerLossVfsTest, CutAfterWritesStopsRightAfterTheNthWrite) {
  std::string path = dir_.File("e.db");
  VfsFile f(vfs_, path, SQLITE_OPEN_MAIN_DB);
  vfs_->CutAfterWrites(2);
  ASSERT_EQ(f.Write("1", 0), SQLITE_OK);
  EXPECT_FALSE(vfs_->cut());
  ASSERT_EQ(f.Write("2", 1), SQLITE_OK);
  EXPECT_TRUE(vfs_->cut());
  ASSERT_EQ(f.Write("3", 2), SQLITE_OK);
  EXPECT_EQ(vfs_->writes(), 2);
  EXPECT_EQ(ReadFile(path), "12");
}

TEST_F(PowerLossVfsTest, FaultsMatchSuffixAndStartAfterN) {
  std::string db = dir_.File("f.db");
  VfsFile main(vfs_, db, SQLITE_OPEN_MAIN_DB);
  VfsFile log(vfs_, db + "-wal", SQLITE_OPEN_WAL);
  vfs_->FailWrites(SQLITE_FULL, "-wal", /*after=*/1);
  EXPECT_EQ(log.Write("a", 0), SQLITE_OK);  // The one let through.
  EXPECT_EQ(log.Write("b", 1), SQLITE_FULL);
  EXPECT_EQ(main.Write("c", 0), SQLITE_OK);  // Other suffix.
  vfs_->FailSyncs(SQLITE_IOERR_FSYNC);
  EXPECT_EQ(main.Sync(), SQLITE_IOERR_FSYNC);
  EXPECT_EQ(log.Sync(), SQLITE_IOERR_FSYNC);
  EXPECT_EQ(vfs_->write_faults(), 1);
  EXPECT_EQ(vfs_->sync_faults(), 2);
  EXPECT_EQ(vfs_->syncs(), 0);
  vfs_->ClearFaults();
  EXPECT_EQ(log.Write("b", 1), SQLITE_OK);
  EXPECT_EQ(log.Sync(), SQLITE_OK);
  EXPECT_EQ(vfs_->wal_syncs(), 1);
  EXPECT_EQ(vfs_->max_wal_bytes(), 2);
}

// Through SQLite proper: a commit in synchronous=OFF never reaches the disk,
// one in synchronous=FULL does.
absl::StatusOr<int64_t> CommitThenCut(PowerLossVfs* vfs, const std::string& path,
                                      const char* synchronous) {
  {
    auto setup = storage::SqliteConnection::Open(path, {});
    if (!setup.ok()) return setup.status();
    if (auto s = (*setup)->Exec("PRAGMA journal_mode=WAL; CREATE TABLE t(x)"); !s.ok()) {
      return s;
    }
  }
  vfs->Reset();
  {
    storage::SqliteConnection::Options options;
    options.vfs = vfs->name();
    auto db = storage::SqliteConnection::Open(path, options);
    if (!db.ok()) return db.status();
    if (auto s = (*db)->Exec(std::string("PRAGMA synchronous=") + synchronous +
                             "; INSERT INTO t VALUES (1)");
        !s.ok()) {
      return s;
    }
    vfs->Cut();
  }  // The close's checkpoint is dropped.
  if (auto s = vfs->Restore(PowerLossVfs::CutMode::kDropUnsynced); !s.ok()) return s;
  auto db = storage::SqliteConnection::Open(path, {});
  if (!db.ok()) return db.status();
  return (*db)->QueryInt("SELECT count(*) FROM t");
}

TEST_F(PowerLossVfsTest, SqliteCommitSurvivesOnlyWhenSynced) {
  absl::StatusOr<int64_t> off = CommitThenCut(vfs_, dir_.File("off.db"), "OFF");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(*off, 0);
  absl::StatusOr<int64_t> full = CommitThenCut(vfs_, dir_.File("full.db"), "FULL");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(*full, 1);
}

}  // namespace
}  // namespace kanban::testing
