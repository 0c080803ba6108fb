#include "storage/sqlite/schema.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "storage/status_macros.h"

namespace kanban::storage {
namespace {

// Migration i (0-based) takes the schema from version i to i+1. Append only;
// never edit a migration that has shipped. "$NOW" is replaced by the time of
// the migration in Unix microseconds.
const std::vector<const char*>& Migrations() {
  static const auto* migrations = new std::vector<const char*>{
      // 1: boards, tasks, dependencies, comments, the event log.
      R"sql(
CREATE TABLE boards (
  name        TEXT PRIMARY KEY,
  description TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL
);
INSERT INTO boards(name, description, created_at)
  VALUES ('default', 'The default board', $NOW);

CREATE TABLE tasks (
  pk               INTEGER PRIMARY KEY,
  id               TEXT NOT NULL UNIQUE,
  board            TEXT NOT NULL REFERENCES boards(name),
  title            TEXT NOT NULL,
  body             TEXT NOT NULL DEFAULT '',
  status           INTEGER NOT NULL,
  priority         INTEGER NOT NULL DEFAULT 0,
  labels           TEXT NOT NULL DEFAULT '[]',
  assignee         TEXT NOT NULL DEFAULT '',
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  version          INTEGER NOT NULL,
  attempt          INTEGER NOT NULL DEFAULT 0,
  max_attempts     INTEGER NOT NULL,
  not_before       INTEGER,
  result           TEXT NOT NULL DEFAULT '',
  last_error       TEXT NOT NULL DEFAULT '',
  idempotency_key  TEXT,
  idempotency_hash TEXT
);
CREATE UNIQUE INDEX tasks_idempotency ON tasks(board, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_board_order ON tasks(board, priority DESC, created_at, pk);
CREATE INDEX tasks_board_status ON tasks(board, status, priority DESC, created_at, pk);

CREATE TABLE task_links (
  parent_id TEXT NOT NULL REFERENCES tasks(id),
  child_id  TEXT NOT NULL REFERENCES tasks(id),
  PRIMARY KEY (parent_id, child_id)
) WITHOUT ROWID;
CREATE INDEX task_links_child ON task_links(child_id, parent_id);

CREATE TABLE comments (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id    TEXT NOT NULL REFERENCES tasks(id),
  author     TEXT NOT NULL,
  body       TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX comments_task ON comments(task_id, id);

-- AUTOINCREMENT: seq is a resume cursor and must never be reused, even after
-- retention deletes the newest rows' predecessors.
CREATE TABLE events (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  board   TEXT NOT NULL,
  task_id TEXT NOT NULL DEFAULT '',
  kind    TEXT NOT NULL,
  time    INTEGER NOT NULL,
  task    TEXT,
  reason  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_board ON events(board, seq);
)sql",
      // 2: leases (kept after they end, for a while, so a late call can be
      // told why its lease was lost) and workers.
      R"sql(
CREATE TABLE leases (
  token       TEXT PRIMARY KEY,
  task_id     TEXT NOT NULL REFERENCES tasks(id),
  worker_id   TEXT NOT NULL,
  attempt     INTEGER NOT NULL,
  duration_us INTEGER NOT NULL,
  acquired_at INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  ended_at    INTEGER,
  end_reason  TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE UNIQUE INDEX leases_active_task ON leases(task_id) WHERE ended_at IS NULL;
CREATE INDEX leases_active_expiry ON leases(expires_at) WHERE ended_at IS NULL;
CREATE INDEX leases_active_worker ON leases(worker_id) WHERE ended_at IS NULL;
CREATE INDEX leases_ended ON leases(ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE workers (
  worker_id  TEXT PRIMARY KEY,
  first_seen INTEGER NOT NULL,
  last_seen  INTEGER NOT NULL,
  last_board TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
)sql",
      // 3: events.txn groups the events one change wrote (the seq of its
      // first event; NULL means the event's own seq), so that readers never
      // split a change across responses.
      R"sql(
ALTER TABLE events ADD COLUMN txn INTEGER;
)sql",
      // 4: no reader filters events by board in SQL any more (watchers
      // filter the seq-ordered stream), and every write paid for the index.
      R"sql(
DROP INDEX events_board;
)sql",
      // 5: bearer tokens (only a hash of each secret), and the principal
      // (token name) that caused each event.
      R"sql(
ALTER TABLE events ADD COLUMN principal TEXT NOT NULL DEFAULT '';
CREATE TABLE tokens (
  name        TEXT PRIMARY KEY,
  role        INTEGER NOT NULL,
  boards      TEXT NOT NULL DEFAULT '[]',
  worker_id   TEXT NOT NULL DEFAULT '',
  secret_hash TEXT NOT NULL UNIQUE,
  created_at  INTEGER NOT NULL,
  created_by  TEXT NOT NULL DEFAULT '',
  revoked_at  INTEGER
) WITHOUT ROWID;
)sql",
  };
  return *migrations;
}

}  // namespace

int CurrentSchemaVersion() { return static_cast<int>(Migrations().size()); }

absl::StatusOr<int> Migrate(Connection& db, absl::Time now) {
  KANBAN_ASSIGN_OR_RETURN(int64_t found, db.QueryInt("PRAGMA user_version"));
  if (found > CurrentSchemaVersion()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database ", db.path(), " has schema version ", found,
        ", newer than this kanband understands (", CurrentSchemaVersion(), ")"));
  }
  for (int version = static_cast<int>(found); version < CurrentSchemaVersion();
       ++version) {
    KANBAN_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db));
    std::string sql = absl::StrReplaceAll(
        Migrations()[version], {{"$NOW", absl::StrCat(absl::ToUnixMicros(now))}});
    KANBAN_RETURN_IF_ERROR(db.Exec(sql));
    KANBAN_RETURN_IF_ERROR(db.Exec(absl::StrCat("PRAGMA user_version=", version + 1)));
    KANBAN_RETURN_IF_ERROR(txn.Commit());
  }
  return static_cast<int>(found);
}

}  // namespace kanban::storage
