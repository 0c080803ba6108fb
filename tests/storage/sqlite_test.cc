// The SQLite wrapper: statements, cached statements, transactions and
// savepoints on a real file, and the result-code mapping. (The PostgreSQL
// wrapper's counterpart runs through every Store test on that backend, and
// tests/storage/postgres_faults_test.cc.)
#include <sqlite3.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/sqlite/connection.h"
#include "tests/support/temp_dir.h"

namespace kanban::storage {
namespace {

SqliteConnection::Options ReadOnly() {
  SqliteConnection::Options options;
  options.read_only = true;
  return options;
}

using ::testing::HasSubstr;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = SqliteConnection::Open(dir_.File("s.db"), {});
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    ASSERT_TRUE(db_->Exec("CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER)").ok());
  }
  int64_t Count() { return *db_->QueryInt("SELECT count(*) FROM kv"); }

  testing::TempDir dir_;
  std::unique_ptr<Connection> db_;
};

TEST_F(SqliteTest, TransactionRollsBackUnlessCommitted) {
  {
    auto txn = Transaction::Begin(*db_);
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(db_->Exec("INSERT INTO kv VALUES ('a', 1)").ok());
  }
  EXPECT_EQ(Count(), 0);
  {
    auto txn = Transaction::Begin(*db_);
    ASSERT_TRUE(db_->Exec("INSERT INTO kv VALUES ('a', 1)").ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  EXPECT_EQ(Count(), 1);
  EXPECT_FALSE(db_->InTransaction());
}

TEST_F(SqliteTest, SavepointUndoesOnlyItsPart) {
  auto txn = Transaction::Begin(*db_);
  ASSERT_TRUE(db_->Exec("INSERT INTO kv VALUES ('kept', 1)").ok());
  {
    auto sp = Savepoint::Begin(*db_);
    ASSERT_TRUE(sp.ok());
    ASSERT_TRUE(db_->Exec("INSERT INTO kv VALUES ('undone', 2)").ok());
  }  // Destroyed without Release: rolled back.
  {
    auto sp = Savepoint::Begin(*db_);
    ASSERT_TRUE(db_->Exec("INSERT INTO kv VALUES ('released', 3)").ok());
    ASSERT_TRUE(sp->Release().ok());
  }
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(
      *db_->QueryText("SELECT group_concat(k, ',') FROM (SELECT k FROM kv ORDER BY k)"),
      "kept,released");
}

TEST_F(SqliteTest, CachedStatementsAreResetAndReused) {
  for (int i = 0; i < 3; ++i) {
    auto stmt = db_->Cached("INSERT INTO kv VALUES (?, ?)");
    ASSERT_TRUE(stmt.ok());
    stmt->BindText(1, "k" + std::to_string(i)).BindInt(2, i);
    ASSERT_TRUE(stmt->Run().ok());
  }
  auto select = db_->Cached("SELECT v FROM kv WHERE k = ?");
  select->BindText(1, "k2");
  ASSERT_TRUE(*select->Step());
  EXPECT_EQ(select->ColumnInt(0), 2);
  EXPECT_EQ(Count(), 3);
}

TEST_F(SqliteTest, ErrorCodesMapToStatusCodes) {
  ASSERT_TRUE(db_->Exec("INSERT INTO kv VALUES ('a', 1)").ok());
  absl::Status dup = db_->Exec("INSERT INTO kv VALUES ('a', 2)");
  EXPECT_EQ(dup.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(dup.message()), HasSubstr("UNIQUE"));
  EXPECT_EQ(db_->Exec("SELEKT 1").code(), absl::StatusCode::kInternal);
  EXPECT_EQ(db_->Prepare("SELECT * FROM missing").status().code(),
            absl::StatusCode::kInternal);

  // The table, checked one code at a time.
  EXPECT_EQ(SqliteError(SQLITE_BUSY, nullptr, "").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(SqliteError(SQLITE_LOCKED, nullptr, "").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(SqliteError(SQLITE_IOERR_FSYNC, nullptr, "").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(SqliteError(SQLITE_FULL, nullptr, "").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(SqliteError(SQLITE_CORRUPT, nullptr, "").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(SqliteError(SQLITE_NOTADB, nullptr, "").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(SqliteError(SQLITE_CONSTRAINT_FOREIGNKEY, nullptr, "").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(SqliteError(SQLITE_BUSY, nullptr, "SELECT 1").message()),
              HasSubstr("(in: SELECT 1)"));
}

TEST_F(SqliteTest, ReadOnlyConnectionCannotWrite) {
  auto ro = SqliteConnection::Open(dir_.File("s.db"), ReadOnly());
  ASSERT_TRUE(ro.ok());
  EXPECT_EQ((*ro)->Exec("INSERT INTO kv VALUES ('x', 1)").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SqliteTest, OpenFailureNamesThePath) {
  auto db = SqliteConnection::Open(dir_.File("no/such/dir/x.db"), {});
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(db.status().message()), HasSubstr("no/such/dir/x.db"));
}

}  // namespace
}  // namespace kanban::storage
