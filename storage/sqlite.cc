#include "storage/sqlite.h"

#include <sqlite3.h>

#include <optional>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace kanban::storage {
namespace {

// The one table from SQLite result codes to status codes. Codes are chosen
// the way a client would branch: BUSY/LOCKED and I/O errors are transient
// (UNAVAILABLE), never corruption; only CORRUPT/NOTADB are DATA_LOSS.
absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_PROTOCOL:
      return absl::StatusCode::kUnavailable;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return absl::StatusCode::kAlreadyExists;
      }
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
      return absl::StatusCode::kInvalidArgument;
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_INTERRUPT:
    case SQLITE_ABORT:
      return absl::StatusCode::kAborted;
    default:
      return absl::StatusCode::kInternal;
  }
}

constexpr char kCodePayload[] = "kanban.storage/sqlite-rc";

}  // namespace

absl::Status SqliteError(int rc, sqlite3* db, absl::string_view sql) {
  std::string message = absl::StrCat("sqlite: ", sqlite3_errstr(rc));
  if (db != nullptr && sqlite3_extended_errcode(db) == rc) {
    absl::StrAppend(&message, ": ", sqlite3_errmsg(db));
  }
  if (rc != (rc & 0xff)) absl::StrAppend(&message, " [code ", rc, "]");
  if (!sql.empty()) absl::StrAppend(&message, " (in: ", sql, ")");
  absl::Status status(CodeFor(rc), message);
  status.SetPayload(kCodePayload, absl::Cord(absl::StrCat(rc)));
  return status;
}

int SqliteCode(const absl::Status& status) {
  auto payload = status.GetPayload(kCodePayload);
  int rc = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &rc)) return 0;
  return rc;
}

bool IsSyncFailure(const absl::Status& status) {
  int rc = SqliteCode(status);
  return rc == SQLITE_IOERR_FSYNC || rc == SQLITE_IOERR_DIR_FSYNC;
}

// ---- Statement -------------------------------------------------------------

Statement::Statement(sqlite3* db, sqlite3_stmt* stmt, bool owned, const char* sql)
    : db_(db), stmt_(stmt), owned_(owned), sql_(sql) {}

Statement::Statement(Statement&& other) noexcept { *this = std::move(other); }

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Release();
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
    owned_ = other.owned_;
    sql_ = other.sql_;
    bind_status_ = std::move(other.bind_status_);
  }
  return *this;
}

Statement::~Statement() { Release(); }

void Statement::Release() {
  if (stmt_ == nullptr) return;
  if (owned_) {
    sqlite3_finalize(stmt_);
  } else {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  stmt_ = nullptr;
}

void Statement::NoteBind(int rc) {
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(rc, db_, sql_);
}

Statement& Statement::BindInt(int index, int64_t value) {
  NoteBind(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::BindText(int index, absl::string_view value) {
  NoteBind(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC,
                               SQLITE_UTF8));
  return *this;
}

Statement& Statement::BindText(int index, std::string&& value) {
  NoteBind(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                               SQLITE_UTF8));
  return *this;
}

Statement& Statement::BindNull(int index) {
  NoteBind(sqlite3_bind_null(stmt_, index));
  return *this;
}

Statement& Statement::BindOptionalInt(int index, std::optional<int64_t> value) {
  return value.has_value() ? BindInt(index, *value) : BindNull(index);
}

absl::StatusOr<bool> Statement::Step() {
  KANBAN_RETURN_IF_ERROR(bind_status_);
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(rc, db_, sql_);
}

absl::Status Statement::Run() {
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return absl::OkStatus();
  }
}

int64_t Statement::ColumnInt(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::string Statement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text),
                     sqlite3_column_bytes(stmt_, column));
}

bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

// ---- Connection ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path,
                                                             const Options& options) {
  // Once per process, before SQLite initializes: no global allocation
  // statistics. Nothing here reads them, and keeping them takes a global
  // mutex on every allocation of every connection (too late if something
  // already initialized SQLite; then this changes nothing).
  static const int kConfigured = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)kConfigured;
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  flags |= options.read_only ? SQLITE_OPEN_READONLY
                             : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path.c_str(), &db, flags,
                           options.vfs.empty() ? nullptr : options.vfs.c_str());
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteError(rc, db, "");
    sqlite3_close_v2(db);
    return absl::Status(status.code(), absl::StrCat("cannot open database ", path, ": ",
                                                    status.message()));
  }
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<Connection>(new Connection(db, path));
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

absl::Status Connection::Exec(absl::string_view sql) {
  std::string text(sql);
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
  return absl::OkStatus();
}

absl::StatusOr<Statement> Connection::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc =
      sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
  return Statement(db_, stmt, /*owned=*/true, "");
}

absl::StatusOr<Statement> Connection::Cached(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
    it = cache_.emplace(sql, stmt).first;
  }
  return Statement(db_, it->second, /*owned=*/false, sql);
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

void Connection::SetTrace(std::function<void(absl::string_view sql)> trace) {
  trace_ = std::move(trace);
  if (!trace_) {
    sqlite3_trace_v2(db_, 0, nullptr, nullptr);
    return;
  }
  sqlite3_trace_v2(
      db_, SQLITE_TRACE_STMT,
      [](unsigned, void* self, void*, void* sql) {
        static_cast<Connection*>(self)->trace_(static_cast<const char*>(sql));
        return 0;
      },
      this);
}

int64_t Connection::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }

int Connection::Changes() const { return sqlite3_changes(db_); }

int64_t Connection::TotalChanges() const { return sqlite3_total_changes64(db_); }

void Connection::SetCheckpointHook(int pages) {
  checkpoint_pages_ = pages;
  sqlite3_wal_hook(
      db_,
      +[](void* arg, sqlite3*, const char*, int frames) {
        auto* self = static_cast<Connection*>(arg);
        if (self->checkpoint_pages_ > 0 && frames >= self->checkpoint_pages_) {
          self->checkpoint_due_ = true;
        }
        return SQLITE_OK;
      },
      this);
}

absl::Status Connection::RunDueCheckpoint() {
  if (!checkpoint_due_) return absl::OkStatus();
  checkpoint_due_ = false;
  int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                     nullptr);
  if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY) return absl::OkStatus();
  return SqliteError(rc, db_, "checkpoint");
}

void Connection::DisableCheckpointOnClose() {
  sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
}

bool Connection::InTransaction() const { return !sqlite3_get_autocommit(db_); }

// ---- Transaction / Savepoint -----------------------------------------------

// Transaction control runs once or twice per write: use cached statements
// rather than parsing the SQL every time.
absl::Status Connection::RunCached(const char* sql) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, Cached(sql));
  return stmt.Run();
}

absl::StatusOr<Transaction> Transaction::Begin(Connection& db) {
  KANBAN_RETURN_IF_ERROR(db.RunCached("BEGIN IMMEDIATE"));
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
