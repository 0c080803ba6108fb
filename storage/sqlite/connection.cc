#include "storage/sqlite/connection.h"

#include <sqlite3.h>

#include <optional>
#include <utility>

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

}  // namespace

absl::Status SqliteError(int rc, sqlite3* db, absl::string_view sql) {
  std::string message = absl::StrCat("sqlite: ", sqlite3_errstr(rc));
  if (db != nullptr && sqlite3_extended_errcode(db) == rc) {
    absl::StrAppend(&message, ": ", sqlite3_errmsg(db));
  }
  if (rc != (rc & 0xff)) absl::StrAppend(&message, " [code ", rc, "]");
  if (!sql.empty()) absl::StrAppend(&message, " (in: ", sql, ")");
  absl::Status status(CodeFor(rc), message);
  if (rc == SQLITE_IOERR_FSYNC || rc == SQLITE_IOERR_DIR_FSYNC) {
    status = MarkSyncFailure(std::move(status));
  }
  return status;
}

// ---- Statement -------------------------------------------------------------

namespace {

class SqliteStatement final : public StatementImpl {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, const char* sql)
      : db_(db), stmt_(stmt), sql_(sql) {}
  ~SqliteStatement() override { sqlite3_finalize(stmt_); }

  void BindInt(int index, int64_t value) override {
    NoteBind(sqlite3_bind_int64(stmt_, index, value));
  }
  void BindText(int index, absl::string_view value, bool copy) override {
    NoteBind(sqlite3_bind_text64(stmt_, index, value.data(), value.size(),
                                 copy ? SQLITE_TRANSIENT : SQLITE_STATIC, SQLITE_UTF8));
  }
  void BindNull(int index) override { NoteBind(sqlite3_bind_null(stmt_, index)); }

  absl::StatusOr<bool> Step() override {
    KANBAN_RETURN_IF_ERROR(bind_status_);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(rc, db_, sql_);
  }
  int64_t ColumnInt(int column) const override {
    return sqlite3_column_int64(stmt_, column);
  }
  std::string ColumnText(int column) const override {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    if (text == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(text),
                       sqlite3_column_bytes(stmt_, column));
  }
  bool ColumnIsNull(int column) const override {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
  }
  void Reset() override {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    bind_status_ = absl::OkStatus();
  }

 private:
  void NoteBind(int rc) {
    if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(rc, db_, sql_);
  }

  sqlite3* const db_;
  sqlite3_stmt* const stmt_;
  const char* const sql_;
};

}  // namespace

// ---- Connection ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<SqliteConnection>> SqliteConnection::Open(
    const std::string& path, const Options& options) {
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
  return std::unique_ptr<SqliteConnection>(new SqliteConnection(db, path));
}

SqliteConnection::~SqliteConnection() {
  cache_.clear();
  sqlite3_close_v2(db_);
}

absl::Status SqliteConnection::Exec(absl::string_view sql) {
  std::string text(sql);
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
  return absl::OkStatus();
}

absl::StatusOr<Statement> SqliteConnection::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc =
      sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
  return Statement(std::make_unique<SqliteStatement>(db_, stmt, ""));
}

absl::StatusOr<Statement> SqliteConnection::Cached(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
    it = cache_.emplace(sql, std::make_unique<SqliteStatement>(db_, stmt, sql)).first;
  }
  return Statement(it->second.get());
}

void SqliteConnection::SetTrace(std::function<void(absl::string_view sql)> trace) {
  trace_ = std::move(trace);
  if (!trace_) {
    sqlite3_trace_v2(db_, 0, nullptr, nullptr);
    return;
  }
  sqlite3_trace_v2(
      db_, SQLITE_TRACE_STMT,
      [](unsigned, void* self, void*, void* sql) {
        static_cast<SqliteConnection*>(self)->trace_(static_cast<const char*>(sql));
        return 0;
      },
      this);
}

int SqliteConnection::Changes() const { return sqlite3_changes(db_); }

int64_t SqliteConnection::TotalChanges() const { return sqlite3_total_changes64(db_); }

void SqliteConnection::SetCheckpointHook(int pages) {
  checkpoint_pages_ = pages;
  sqlite3_wal_hook(
      db_,
      +[](void* arg, sqlite3*, const char*, int frames) {
        auto* self = static_cast<SqliteConnection*>(arg);
        if (self->checkpoint_pages_ > 0 && frames >= self->checkpoint_pages_) {
          self->checkpoint_due_ = true;
        }
        return SQLITE_OK;
      },
      this);
}

absl::Status SqliteConnection::RunDueCheckpoint() {
  if (!checkpoint_due_) return absl::OkStatus();
  checkpoint_due_ = false;
  int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                     nullptr);
  if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY) return absl::OkStatus();
  return SqliteError(rc, db_, "checkpoint");
}

void SqliteConnection::DisableCheckpointOnClose() {
  sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
}

bool SqliteConnection::InTransaction() const { return !sqlite3_get_autocommit(db_); }

}  // namespace kanban::storage
