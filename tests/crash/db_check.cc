#include "tests/crash/db_check.h"

#include <sqlite3.h>

#include <functional>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "storage/sqlite/connection.h"

namespace kanban::crash {
namespace {

using storage::Connection;
using storage::Statement;

// Events that record a change without bumping the task's version: a comment,
// and the lease end that follows an operator's move of a RUNNING task (same
// version as that move). Every other task event is exactly one version bump
// (see storage/mutation_util.cc, ChangeStatus and AppendEvent).
// A cheap fingerprint of the event rows, to see that checked ones stay as
// they were without parsing their JSON again.
constexpr char kDigest[] =
    "COALESCE(sum(length(task) + length(kind) + length(task_id) + COALESCE(txn, 0)"
    " + time % 1000003), 0)";

bool BumpsVersion(const std::string& kind) {
  return kind != "commented" && kind != "lease_cancelled";
}

}  // namespace

class Checker {
 public:
  Checker(Connection& db, const Ledger& ledger, DbChecker& state, DbReport& report)
      : db_(db), ledger_(ledger), state_(state), report_(report) {}

  void Run() {
    CheckSqlite();
    CheckEventLog();
    CheckNewTaskEvents();
    CheckRows();
    CheckAcked();
    CheckComments();
    CheckRules();
    CountUnackedCreates();
    Advance();
  }

 private:
  void Fail(std::string what) { report_.violations.push_back(std::move(what)); }

  // Runs `sql`, calling `on_row` for each row; a failing query is itself a
  // violation (the file should always be readable).
  void Query(const std::string& sql, const std::function<void(Statement&)>& on_row,
             const std::function<void(Statement&)>& bind = nullptr) {
    absl::StatusOr<Statement> stmt = db_.Prepare(sql);
    if (!stmt.ok()) return Fail(absl::StrCat("query failed: ", stmt.status().ToString()));
    if (bind) bind(*stmt);
    while (true) {
      absl::StatusOr<bool> row = stmt->Step();
      if (!row.ok()) return Fail(absl::StrCat("query failed: ", row.status().ToString()));
      if (!*row) return;
      on_row(*stmt);
    }
  }

  void CheckSqlite() {
    std::vector<std::string> lines;
    Query("PRAGMA integrity_check",
          [&](Statement& s) { lines.push_back(s.ColumnText(0)); });
    if (lines.size() != 1 || lines[0] != "ok") {
      for (const std::string& line : lines) Fail(absl::StrCat("integrity_check: ", line));
    }
    Query("PRAGMA foreign_key_check", [&](Statement& s) {
      Fail(absl::StrCat("foreign_key_check: ", s.ColumnText(0), " rowid ", s.ColumnInt(1),
                        " refers to a missing ", s.ColumnText(2)));
    });
  }

  void CheckEventLog() {
    Query(
        "SELECT count(*), COALESCE(min(seq), 0), COALESCE(max(seq), 0),"
        " COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)"
        " FROM events",
        [&](Statement& s) {
          report_.events = s.ColumnInt(0);
          const int64_t lo = s.ColumnInt(1), hi = s.ColumnInt(2), last = s.ColumnInt(3);
          if (report_.events != hi || (hi > 0 && lo != 1)) {
            Fail(absl::StrCat("event seqs have holes: ", report_.events, " events, seq ",
                              lo, "..", hi));
          }
          if (last != hi) {
            Fail(absl::StrCat("sqlite_sequence says the last event seq is ", last,
                              ", the newest event is ", hi));
          }
        });
    if (state_.checked_seq_ > 0) {
      Query(
          absl::StrCat("SELECT count(*), ", kDigest, " FROM events WHERE seq <= ?"),
          [&](Statement& s) {
            if (s.ColumnInt(0) != state_.checked_count_ ||
                s.ColumnInt(1) != state_.checked_digest_) {
              Fail(absl::StrCat("events up to seq ", state_.checked_seq_,
                                " changed since they were checked: ", s.ColumnInt(0),
                                " events (was ", state_.checked_count_, "), digest ",
                                s.ColumnInt(1), " (was ", state_.checked_digest_, ")"));
            }
          },
          [&](Statement& s) { s.BindInt(1, state_.checked_seq_); });
    }
    // One change's events are consecutive and name its first event as txn.
    Query(
        "SELECT e.seq, e.txn FROM events e WHERE e.seq > ? AND e.txn IS NOT NULL AND"
        " NOT EXISTS (SELECT 1 FROM events p WHERE p.seq = e.seq - 1 AND"
        " COALESCE(p.txn, p.seq) = e.txn AND e.txn < e.seq) LIMIT 20",
        [&](Statement& s) {
          Fail(absl::StrCat("event ", s.ColumnInt(0), " claims change ", s.ColumnInt(1),
                            " but does not follow it"));
        },
        [&](Statement& s) { s.BindInt(1, state_.checked_seq_); });
  }

  // One pass over the task events written since the last check, in seq
  // order: each task's history starts with "created" at version 1 and goes
  // up one version per bumping event; each acknowledged version's event
  // shows the task exactly as acknowledged.
  void CheckNewTaskEvents() {
    const auto& acked = ledger_.acked_tasks();
    Query(
        absl::StrCat("SELECT e.seq, e.task_id, e.kind, ", SnapshotColumns(),
                     " FROM events e WHERE e.seq > ? AND e.task_id != '' ORDER BY e.seq"),
        [&](Statement& s) {
          const int64_t seq = s.ColumnInt(0);
          const std::string task_id = s.ColumnText(1);
          const std::string kind = s.ColumnText(2);
          TaskState snap = ReadTaskState(s, 3);
          auto [it, first] = state_.history_.try_emplace(task_id);
          DbChecker::TaskHistory& history = it->second;
          if (first && kind != "created") {
            Fail(absl::StrCat("task ", task_id, "'s first event ", seq, " is ", kind));
          }
          if (kind == "commented") ++history.commented;
          if (snap.id != task_id) {
            Fail(absl::StrCat("event ", seq, " of task ", task_id, " has a snapshot of ",
                              snap.id));
          }
          const int64_t want = BumpsVersion(kind) ? history.version + 1 : history.version;
          if (snap.version != want) {
            Fail(absl::StrCat("event ", seq, " (", kind, ") of task ", task_id,
                              " shows version ", snap.version, ", expected ", want));
          }
          history.version = snap.version;
          if (BumpsVersion(kind)) {
            state_.version_seq_[{task_id, snap.version}] = seq;
            auto a = acked.find(task_id);
            if (a != acked.end()) {
              auto v = a->second.find(snap.version);
              if (v != a->second.end()) CompareAcked(seq, snap, v->second);
            }
          }
          history.newest = std::move(snap);
        },
        [&](Statement& s) { s.BindInt(1, state_.checked_seq_); });
  }

  void CompareAcked(int64_t seq, const TaskState& snap, const TaskState& acked) {
    state_.matched_.emplace(snap.id, snap.version);
    if (acked != snap) {
      Fail(absl::StrCat("task ", snap.id, " version ", snap.version, ": event ", seq,
                        " differs from the acknowledged answer: ", Diff(snap, acked)));
    }
  }

  // An acknowledged version whose event was read by an earlier check (a
  // no-op update, or a retried create, answers with an older version).
  void CheckOldAckedVersion(const std::string& id, int64_t version,
                            const TaskState& acked) {
    auto seq = state_.version_seq_.find({id, version});
    if (seq == state_.version_seq_.end()) {
      Fail(absl::StrCat("acknowledged task ", id, " version ", version, " has no event"));
      return;
    }
    Query(
        absl::StrCat("SELECT ", SnapshotColumns(), " FROM events e WHERE e.seq = ?"),
        [&](Statement& s) { CompareAcked(seq->second, ReadTaskState(s, 0), acked); },
        [&](Statement& s) { s.BindInt(1, seq->second); });
    if (state_.matched_.count({id, version}) == 0) {
      Fail(absl::StrCat("event ", seq->second, " of task ", id, " version ", version,
                        " is gone"));
    }
  }

  // Each task row is what its newest event shows: no change is half there.
  void CheckRows() {
    Query(absl::StrCat("SELECT ", RowColumns(), " FROM tasks t"), [&](Statement& s) {
      TaskState row = ReadTaskState(s, 0);
      auto history = state_.history_.find(row.id);
      if (history == state_.history_.end()) {
        Fail(absl::StrCat("task ", row.id, " has no event"));
      } else if (history->second.newest != row) {
        Fail(absl::StrCat("task ", row.id, " differs from its newest event: ",
                          Diff(row, history->second.newest)));
      }
      report_.rows.emplace(row.id, std::move(row));
    });
    report_.tasks = static_cast<int64_t>(report_.rows.size());
    for (const auto& [id, history] : state_.history_) {
      if (report_.rows.count(id) == 0) Fail(absl::StrCat("events of missing task ", id));
    }
  }

  void CheckAcked() {
    for (const auto& [id, versions] : ledger_.acked_tasks()) {
      auto row = report_.rows.find(id);
      if (row == report_.rows.end()) {
        Fail(absl::StrCat("acknowledged task ", id, " is missing"));
        continue;
      }
      const auto& [newest, state] = *versions.rbegin();
      if (row->second.version < newest) {
        Fail(absl::StrCat("task ", id, " is at version ", row->second.version,
                          " but version ", newest, " was acknowledged"));
      } else if (row->second.version == newest && row->second != state) {
        Fail(absl::StrCat("task ", id, " differs from its acknowledged version ", newest,
                          ": ", Diff(row->second, state)));
      }
      for (const auto& [version, acked] : versions) {
        if (state_.matched_.count({id, version}) == 0) {
          CheckOldAckedVersion(id, version, acked);
        }
      }
    }
  }

  void CheckComments() {
    std::map<std::string, int64_t> per_task;
    std::map<int64_t, AckedComment> stored;
    Query("SELECT id, task_id, author, body FROM comments", [&](Statement& s) {
      stored[s.ColumnInt(0)] =
          AckedComment{s.ColumnText(1), s.ColumnText(2), s.ColumnText(3)};
      ++per_task[s.ColumnText(1)];
    });
    report_.comments = static_cast<int64_t>(stored.size());
    for (const auto& [id, history] : state_.history_) {
      auto it = per_task.find(id);
      const int64_t comments = it == per_task.end() ? 0 : it->second;
      if (comments != history.commented) {
        Fail(absl::StrCat("task ", id, " has ", comments, " comments but ",
                          history.commented, " \"commented\" events"));
      }
    }
    for (const auto& [id, want] : ledger_.acked_comments()) {
      auto it = stored.find(id);
      if (it == stored.end()) {
        Fail(absl::StrCat("acknowledged comment ", id, " on task ", want.task_id,
                          " is missing"));
      } else if (it->second.task_id != want.task_id || it->second.author != want.author ||
                 it->second.body != want.body) {
        Fail(absl::StrCat("comment ", id, " differs from what was acknowledged"));
      }
    }
  }

  // The board's own invariants, which a half-applied change would break.
  void CheckRules() {
    Query(
        "SELECT t.id, t.status FROM tasks t WHERE (t.status = 4) != EXISTS"
        " (SELECT 1 FROM leases l WHERE l.task_id = t.id AND l.ended_at IS NULL)"
        " LIMIT 20",
        [&](Statement& s) {
          Fail(absl::StrCat("task ", s.ColumnText(0), " has status ", s.ColumnInt(1),
                            " but ", s.ColumnInt(1) == 4 ? "no" : "an", " active lease"));
        });
    Query(
        "SELECT t.id FROM tasks t WHERE t.status = 3 AND EXISTS (SELECT 1 FROM"
        " task_links k JOIN tasks p ON p.id = k.parent_id WHERE k.child_id = t.id"
        " AND p.status NOT IN (7, 8)) LIMIT 20",
        [&](Statement& s) {
          Fail(absl::StrCat("task ", s.ColumnText(0),
                            " is READY with an unfinished parent"));
        });
  }

  void CountUnackedCreates() {
    for (const auto& request : ledger_.unacked_creates()) {
      Query(
          "SELECT count(*) FROM tasks WHERE idempotency_key = ?",
          [&](Statement& s) { report_.unacked_creates_applied += s.ColumnInt(0); },
          [&](Statement& s) { s.BindText(1, request.idempotency_key()); });
    }
  }

  // Remembers how far this check read, for the next one.
  void Advance() {
    Query(
        absl::StrCat("SELECT COALESCE(max(seq), 0), count(*), ", kDigest, " FROM events"),
        [&](Statement& s) {
          state_.checked_seq_ = s.ColumnInt(0);
          state_.checked_count_ = s.ColumnInt(1);
          state_.checked_digest_ = s.ColumnInt(2);
        });
  }

  Connection& db_;
  const Ledger& ledger_;
  DbChecker& state_;
  DbReport& report_;
};

DbReport DbChecker::Check(const std::string& db_path, const Ledger& ledger) {
  DbReport report;
  absl::StatusOr<std::unique_ptr<storage::SqliteConnection>> db =
      storage::SqliteConnection::Open(db_path, storage::SqliteConnection::Options{});
  if (!db.ok()) {
    report.violations.push_back(
        absl::StrCat("cannot open ", db_path, ": ", db.status().ToString()));
    return report;
  }
  // Closing the last connection would checkpoint the WAL; keep it, so the
  // restarted kanband recovers from the files exactly as the kill left them.
  (*db)->DisableCheckpointOnClose();
  Checker(**db, ledger, *this, report).Run();
  return report;
}

}  // namespace kanban::crash
