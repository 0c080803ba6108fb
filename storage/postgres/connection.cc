#include "storage/postgres/connection.h"

#include <libpq-fe.h>

#include <algorithm>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/status_macros.h"

namespace kanban::storage {
namespace {

constexpr char kSqlStatePayload[] = "kanban.storage/sqlstate";

// libpq's parameters are $1, $2...; the shared SQL writes ? or ?N (as
// SQLite does). Renumbers outside string literals; returns the count.
std::string ToDollarParams(absl::string_view sql, int* count) {
  std::string out;
  out.reserve(sql.size() + 16);
  int next = 0, highest = 0;
  bool quoted = false;
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (c == '\'') quoted = !quoted;
    if (quoted || c != '?') {
      out.push_back(c);
      continue;
    }
    size_t j = i + 1;
    while (j < sql.size() && sql[j] >= '0' && sql[j] <= '9') ++j;
    int n = 0;
    if (j > i + 1) {
      (void)absl::SimpleAtoi(sql.substr(i + 1, j - i - 1), &n);
    } else {
      n = ++next;
    }
    highest = std::max(highest, n);
    absl::StrAppend(&out, "$", n);
    i = j - 1;
  }
  *count = highest;
  return out;
}

class PgStatement final : public StatementImpl {
 public:
  // `name` empty: a one-off statement, sent with its text each time.
  PgStatement(PgConnection* db, std::string name, std::string text, int params,
              const char* sql)
      : db_(db),
        name_(std::move(name)),
        text_(std::move(text)),
        sql_(sql),
        values_(params),
        is_null_(params, true) {}
  ~PgStatement() override { Clear(); }

  void BindInt(int index, int64_t value) override { Set(index, absl::StrCat(value)); }
  void BindText(int index, absl::string_view value, bool /*copy*/) override {
    // libpq wants NUL-terminated values: always a copy.
    Set(index, std::string(value));
  }
  void BindNull(int index) override {
    if (!CheckIndex(index)) return;
    Clear();
    is_null_[index - 1] = true;
  }

  absl::StatusOr<bool> Step() override {
    KANBAN_RETURN_IF_ERROR(bind_status_);
    if (result_ == nullptr) KANBAN_RETURN_IF_ERROR(Execute());
    ++row_;
    return row_ < PQntuples(result_);
  }
  int64_t ColumnInt(int column) const override {
    int64_t value = 0;
    (void)absl::SimpleAtoi(PQgetvalue(result_, row_, column), &value);
    return value;
  }
  std::string ColumnText(int column) const override {
    return std::string(PQgetvalue(result_, row_, column),
                       PQgetlength(result_, row_, column));
  }
  bool ColumnIsNull(int column) const override {
    return PQgetisnull(result_, row_, column) != 0;
  }
  void Reset() override {
    Clear();
    std::fill(is_null_.begin(), is_null_.end(), true);
    bind_status_ = absl::OkStatus();
  }

 private:
  bool CheckIndex(int index) {
    if (index >= 1 && index <= static_cast<int>(values_.size())) return true;
    if (bind_status_.ok()) {
      bind_status_ = absl::InternalError(
          absl::StrCat("postgresql: no parameter ", index, " (in: ", sql_, ")"));
    }
    return false;
  }
  // Binding starts the next execution, as sqlite3_step does after the
  // last row: a statement is reused row after row without a Reset.
  void Set(int index, std::string value) {
    if (!CheckIndex(index)) return;
    Clear();
    values_[index - 1] = std::move(value);
    is_null_[index - 1] = false;
  }
  void Clear() {
    if (result_ != nullptr) PQclear(result_);
    result_ = nullptr;
    row_ = -1;
  }

  absl::Status Execute() {
    std::vector<const char*> params(values_.size());
    for (size_t i = 0; i < values_.size(); ++i) {
      params[i] = is_null_[i] ? nullptr : values_[i].c_str();
    }
    const int n = static_cast<int>(params.size());
    PGconn* conn = db_->handle();
    if (!name_.empty() && prepared_session_ != db_->session()) {
      PGresult* prepared = PQprepare(conn, name_.c_str(), text_.c_str(), n, nullptr);
      const bool ok = PQresultStatus(prepared) == PGRES_COMMAND_OK;
      absl::Status status = ok ? absl::OkStatus() : db_->Error(prepared, sql_);
      PQclear(prepared);
      KANBAN_RETURN_IF_ERROR(status);
      prepared_session_ = db_->session();
    }
    result_ = name_.empty() ? PQexecParams(conn, text_.c_str(), n, nullptr, params.data(),
                                           nullptr, nullptr, 0)
                            : PQexecPrepared(conn, name_.c_str(), n, params.data(),
                                             nullptr, nullptr, 0);
    const ExecStatusType status = PQresultStatus(result_);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      db_->NoteResult(result_);
      return absl::OkStatus();
    }
    absl::Status error = db_->Error(result_, sql_);
    Clear();
    return error;
  }

  PgConnection* const db_;
  const std::string name_;
  const std::string text_;
  const char* const sql_;
  std::vector<std::string> values_;
  std::vector<bool> is_null_;
  int64_t prepared_session_ = -1;
  PGresult* result_ = nullptr;
  int row_ = -1;
};

std::string Describe(absl::string_view target) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(std::string(target).c_str(), &error);
  if (options == nullptr) {
    if (error != nullptr) PQfreemem(error);
    return "postgresql://(unparsable connection string)";
  }
  std::string user, host, port, dbname;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const absl::string_view key = o->keyword;
    if (key == "user") user = o->val;
    if (key == "host" || (key == "hostaddr" && host.empty())) host = o->val;
    if (key == "port") port = o->val;
    if (key == "dbname") dbname = o->val;
  }
  PQconninfoFree(options);
  return absl::StrCat("postgresql://", user, user.empty() ? "" : "@",
                      host.empty() ? "localhost" : host, port.empty() ? "" : ":", port,
                      "/", dbname);
}

}  // namespace

bool IsPostgresTarget(absl::string_view target) {
  if (absl::StartsWith(target, "postgresql://") ||
      absl::StartsWith(target, "postgres://")) {
    return true;
  }
  return absl::StrContains(target, "host=") || absl::StrContains(target, "dbname=");
}

std::string RedactPostgresTarget(absl::string_view target) { return Describe(target); }

absl::StatusCode PgStatusCode(absl::string_view state) {
  if (state.size() != 5) return absl::StatusCode::kUnavailable;  // No server answer.
  if (state == "23505") return absl::StatusCode::kAlreadyExists;
  if (state == "40001" || state == "40P01") return absl::StatusCode::kAborted;
  if (state == "53300") return absl::StatusCode::kUnavailable;  // Too many connections.
  if (state == "XX001" || state == "XX002") return absl::StatusCode::kDataLoss;
  const absl::string_view cls = state.substr(0, 2);
  if (cls == "23") return absl::StatusCode::kFailedPrecondition;
  if (cls == "08" || cls == "57") return absl::StatusCode::kUnavailable;
  if (cls == "53") return absl::StatusCode::kResourceExhausted;
  if (cls == "22") return absl::StatusCode::kInvalidArgument;
  return absl::StatusCode::kInternal;
}

std::string PgSqlState(const absl::Status& status) {
  auto payload = status.GetPayload(kSqlStatePayload);
  return payload.has_value() ? std::string(*payload) : std::string();
}

PgConnection::PgConnection(PGconn* conn, Options options)
    : conn_(conn),
      options_(std::move(options)),
      description_(Describe(options_.target)) {}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Open(Options options) {
  const std::string timeout = absl::StrCat(options.connect_timeout_s);
  // The target comes last, so that what it says wins over these defaults.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), "kanband", options.target.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("postgresql: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL at ",
                                               Describe(options.target), ": ", message));
  }
  // The server's NOTICEs ("relation ... already exists, skipping") are not
  // for kanband's users: libpq would print them on stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  std::unique_ptr<PgConnection> db(new PgConnection(conn, std::move(options)));
  KANBAN_RETURN_IF_ERROR(db->StartSession());
  return db;
}

PgConnection::~PgConnection() {
  cache_.clear();
  PQfinish(conn_);
}

absl::Status PgConnection::StartSession() {
  ++session_;
  for (const std::string& sql : options_.session_sql) KANBAN_RETURN_IF_ERROR(Exec(sql));
  return absl::OkStatus();
}

absl::Status PgConnection::Error(const PGresult* result, absl::string_view sql) const {
  const char* state =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string message = primary != nullptr ? primary : PQerrorMessage(conn_);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  const bool lost = PQstatus(conn_) != CONNECTION_OK;
  absl::StatusCode code =
      lost ? absl::StatusCode::kUnavailable : PgStatusCode(state != nullptr ? state : "");
  std::string text = absl::StrCat("postgresql: ", message);
  if (state != nullptr) absl::StrAppend(&text, " [SQLSTATE ", state, "]");
  if (lost) {
    absl::StrAppend(&text, " (connection to ", description_, " lost");
    // Whether a COMMIT whose answer never came took effect cannot be known.
    if (sql == "COMMIT") {
      absl::StrAppend(&text,
                      "; commit outcome unknown; retry with the same idempotency_key");
    }
    absl::StrAppend(&text, ")");
  }
  if (!sql.empty()) absl::StrAppend(&text, " (in: ", sql, ")");
  absl::Status status(code, text);
  if (state != nullptr) {
    status.SetPayload(kSqlStatePayload, absl::Cord(state));
    const absl::string_view s(state);
    if (s == "40001" || s == "40P01" || s == "23505") status = MarkWriteConflict(status);
  }
  return status;
}

absl::Status PgConnection::Exec(absl::string_view sql) {
  PGresult* result = PQexec(conn_, std::string(sql).c_str());
  const ExecStatusType status = PQresultStatus(result);
  const bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
  if (ok) NoteResult(result);
  absl::Status out = ok ? absl::OkStatus() : Error(result, sql);
  PQclear(result);
  return out;
}

absl::StatusOr<Statement> PgConnection::Prepare(absl::string_view sql) {
  int params = 0;
  std::string text = ToDollarParams(sql, &params);
  return Statement(std::make_unique<PgStatement>(this, "", std::move(text), params, ""));
}

absl::StatusOr<Statement> PgConnection::Cached(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    int params = 0;
    std::string text = ToDollarParams(sql, &params);
    it = cache_
             .emplace(sql, std::make_unique<PgStatement>(
                               this, absl::StrCat("k", next_statement_++),
                               std::move(text), params, sql))
             .first;
  }
  return Statement(it->second.get());
}

void PgConnection::NoteResult(const PGresult* result) {
  // Only INSERT, UPDATE and DELETE change rows (RETURNING or not).
  const absl::string_view command = PQcmdStatus(const_cast<PGresult*>(result));
  if (!absl::StartsWith(command, "INSERT") && !absl::StartsWith(command, "UPDATE") &&
      !absl::StartsWith(command, "DELETE")) {
    return;
  }
  int rows = 0;
  (void)absl::SimpleAtoi(PQcmdTuples(const_cast<PGresult*>(result)), &rows);
  changes_ = rows;
  total_changes_ += rows;
}

bool PgConnection::InTransaction() const {
  const PGTransactionStatusType status = PQtransactionStatus(conn_);
  return status == PQTRANS_INTRANS || status == PQTRANS_INERROR;
}

bool PgConnection::TransactionFailed() const {
  return PQtransactionStatus(conn_) == PQTRANS_INERROR;
}

absl::Status PgConnection::EnsureConnected() {
  // An idle connection learns that the server went away only by reading:
  // a non-blocking read here sees the closed socket (or the server's
  // termination message) before a statement fails on it.
  if (PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE) {
    (void)PQconsumeInput(conn_);
  }
  if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  const absl::Time now = absl::Now();
  if (now < next_reconnect_) {
    return absl::UnavailableError(
        absl::StrCat("postgresql: reconnecting to ", description_));
  }
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    next_reconnect_ = now + reconnect_backoff_;
    reconnect_backoff_ = std::min(reconnect_backoff_ * 2, absl::Seconds(2));
    return absl::UnavailableError(absl::StrCat(
        "postgresql: cannot reconnect to ", description_, ": ", PQerrorMessage(conn_)));
  }
  reconnect_backoff_ = absl::Milliseconds(100);
  next_reconnect_ = absl::InfinitePast();
  return StartSession();
}

int PgConnection::socket() const { return PQsocket(conn_); }

absl::StatusOr<int> PgConnection::TakeNotifications() {
  if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("postgresql: connection to ", description_, " lost"));
  }
  const int self = PQbackendPID(conn_);
  int count = 0;
  while (PGnotify* note = PQnotifies(conn_)) {
    if (note->be_pid != self) ++count;
    PQfreemem(note);
  }
  return count;
}

std::string PgConnection::ServerVersion() const {
  const int v = PQserverVersion(conn_);
  return absl::StrCat(v / 10000, ".", v % 10000);
}

}  // namespace kanban::storage
