#include "storage/db.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace kanban::storage {
namespace {
constexpr char kSyncFailurePayload[] = "kanban.storage/sync-failure";
constexpr char kWriteConflictPayload[] = "kanban.storage/write-conflict";
}  // namespace

absl::Status MarkWriteConflict(absl::Status status) {
  status.SetPayload(kWriteConflictPayload, absl::Cord("1"));
  return status;
}

bool IsWriteConflict(const absl::Status& status) {
  return status.GetPayload(kWriteConflictPayload).has_value();
}

absl::Status ClearWriteConflict(absl::Status status) {
  status.ErasePayload(kWriteConflictPayload);
  return status;
}

absl::Status MarkSyncFailure(absl::Status status) {
  status.SetPayload(kSyncFailurePayload, absl::Cord("1"));
  return status;
}

bool IsSyncFailure(const absl::Status& status) {
  return status.GetPayload(kSyncFailurePayload).has_value();
}

// ---- Statement -------------------------------------------------------------

Statement::Statement(std::unique_ptr<StatementImpl> owned)
    : impl_(owned.release()), owned_(true) {}

Statement::Statement(Statement&& other) noexcept { *this = std::move(other); }

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Release();
    impl_ = std::exchange(other.impl_, nullptr);
    owned_ = other.owned_;
  }
  return *this;
}

Statement::~Statement() { Release(); }

void Statement::Release() {
  if (impl_ == nullptr) return;
  if (owned_) {
    delete impl_;
  } else {
    impl_->Reset();
  }
  impl_ = nullptr;
}

absl::Status Statement::Run() {
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return absl::OkStatus();
  }
}

// ---- Connection ------------------------------------------------------------

absl::Status Connection::RunCached(const char* sql) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, Cached(sql));
  return stmt.Run();
}

absl::StatusOr<int64_t> Connection::QueryInt(absl::string_view sql) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, Prepare(sql));
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no row from: ", sql));
  return stmt.ColumnInt(0);
}

absl::StatusOr<std::string> Connection::QueryText(absl::string_view sql) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, Prepare(sql));
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no row from: ", sql));
  return stmt.ColumnText(0);
}

// ---- Transaction / Savepoint -----------------------------------------------

// Transaction control runs once or twice per write: cached statements
// rather than parsing the SQL every time.
absl::StatusOr<Transaction> Transaction::Begin(Connection& db) {
  KANBAN_RETURN_IF_ERROR(db.RunCached(db.BeginSql()));
  return Transaction(&db);
}

Transaction::Transaction(Transaction&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)) {}

Transaction& Transaction::operator=(Transaction&& other) noexcept {
  if (this != &other) {
    (void)Rollback();
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

Transaction::~Transaction() { (void)Rollback(); }

absl::Status Transaction::Commit() {
  if (db_ == nullptr) return absl::FailedPreconditionError("transaction ended");
  absl::Status status = db_->RunCached("COMMIT");
  // A failed COMMIT leaves the transaction open (e.g. SQLITE_BUSY) or already
  // rolled back (I/O error); either way the destructor's ROLLBACK settles it.
  if (status.ok()) db_ = nullptr;
  return status;
}

absl::Status Transaction::Rollback() {
  if (db_ == nullptr) return absl::OkStatus();
  Connection* db = std::exchange(db_, nullptr);
  if (!db->InTransaction()) return absl::OkStatus();
  return db->RunCached("ROLLBACK");
}

absl::StatusOr<Savepoint> Savepoint::Begin(Connection& db) {
  KANBAN_RETURN_IF_ERROR(db.RunCached("SAVEPOINT mutation"));
  return Savepoint(&db);
}

Savepoint::Savepoint(Savepoint&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)) {}

Savepoint::~Savepoint() { (void)Rollback(); }

absl::Status Savepoint::Release() {
  if (db_ == nullptr) return absl::FailedPreconditionError("savepoint ended");
  Connection* db = std::exchange(db_, nullptr);
  return db->RunCached("RELEASE mutation");
}

absl::Status Savepoint::Rollback() {
  if (db_ == nullptr) return absl::OkStatus();
  Connection* db = std::exchange(db_, nullptr);
  KANBAN_RETURN_IF_ERROR(db->RunCached("ROLLBACK TO mutation"));
  return db->RunCached("RELEASE mutation");
}

}  // namespace kanban::storage
