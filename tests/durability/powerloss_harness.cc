#include "tests/durability/powerloss_harness.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "storage/rules.h"
#include "storage/sqlite/connection.h"
#include "storage/store.h"

namespace kanban::testing {
namespace {

using storage::Store;
using storage::Task;
using storage::TaskStatus;

constexpr int kMaxProblems = 20;

// One write acknowledged before the cut.
struct Ack {
  std::string task_id;
  int64_t version = 0;
  int64_t wal_syncs = 0;  // WAL syncs seen when the answer came.
};

// A write's answer, and whether it came before the cut.
template <typename T>
struct Answer {
  absl::StatusOr<T> result = absl::UnknownError("no answer");
  bool before_cut = false;
  int64_t wal_syncs = 0;
};

// Like storage::Await, but looks at the power inside the callback: an answer
// given after the cut is one a real crash would never have sent.
template <typename T, typename Start>
Answer<T> AwaitAnswer(PowerLossVfs* vfs, Start start) {
  absl::Notification answered;
  Answer<T> answer;
  start(storage::Done<T>([&](absl::StatusOr<T> r) {
    answer.wal_syncs = vfs->wal_syncs();
    answer.before_cut = !vfs->cut();
    answer.result = std::move(r);
    answered.Notify();
  }));
  answered.WaitForNotification();
  return answer;
}

// State shared by one cycle's worker threads and its cutter.
struct Cycle {
  PowerLossVfs* vfs = nullptr;
  Store* store = nullptr;
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  std::vector<Ack> acks ABSL_GUARDED_BY(mu);
  std::vector<std::string> ids ABSL_GUARDED_BY(mu);  // Tasks to move or update.
  int64_t cut_target ABSL_GUARDED_BY(mu) = 0;

  template <typename T>
  void Record(const Answer<T>& answer, const std::string& id, int64_t version,
              bool new_id) {
    absl::MutexLock lock(&mu);
    if (answer.result.ok() && answer.before_cut) {
      acks.push_back(Ack{id, version, answer.wal_syncs});
      if (new_id) ids.push_back(id);
    }
  }
  std::string PickId(std::mt19937_64& rng) {
    absl::MutexLock lock(&mu);
    if (ids.empty()) return "";
    return ids[rng() % ids.size()];
  }
};

std::string Body(std::mt19937_64& rng) {
  std::string body(rng() % 3000, 'x');
  for (char& c : body) c = static_cast<char>('a' + rng() % 26);
  return body;
}

void WorkerLoop(Cycle& cycle, int thread, uint64_t seed) {
  std::mt19937_64 rng(seed);
  PowerLossVfs* vfs = cycle.vfs;
  Store* store = cycle.store;
  const std::string worker = absl::StrCat("w", thread);
  int n = 0;
  while (!cycle.stop.load() && !vfs->cut()) {
    int pick = static_cast<int>(rng() % 100);
    if (pick < 35) {
      storage::NewTask t;
      t.title = absl::StrCat("t", thread, "-", n++);
      t.body = Body(rng);
      auto a = AwaitAnswer<Task>(vfs, [&](auto done) { store->CreateTask(t, done); });
      if (a.result.ok()) cycle.Record(a, a.result->id, a.result->version, true);
    } else if (pick < 55) {
      std::string id = cycle.PickId(rng);
      if (id.empty()) continue;
      static constexpr TaskStatus kTargets[] = {TaskStatus::kTodo, TaskStatus::kReady,
                                                TaskStatus::kBlocked};
      storage::TaskMove m{id, kTargets[rng() % 3], 0, "shuffle"};
      auto a = AwaitAnswer<Task>(vfs, [&](auto done) { store->MoveTask(m, done); });
      if (a.result.ok()) cycle.Record(a, id, a.result->version, false);
    } else if (pick < 70) {
      std::string id = cycle.PickId(rng);
      if (id.empty()) continue;
      storage::TaskUpdate u;
      u.task_id = id;
      u.title = absl::StrCat("u", thread, "-", n++);
      auto a = AwaitAnswer<Task>(vfs, [&](auto done) { store->UpdateTask(u, done); });
      if (a.result.ok()) cycle.Record(a, id, a.result->version, false);
    } else {
      storage::ClaimRequest c;
      c.worker_id = worker;
      c.lease_duration = absl::Seconds(60);
      auto a = AwaitAnswer<storage::ClaimResult>(
          vfs, [&](auto done) { store->ClaimTask(c, done); });
      if (!a.result.ok() || !a.result->claim.has_value()) continue;
      const storage::Claim& claim = *a.result->claim;
      cycle.Record(a, claim.task.id, claim.task.version, false);
      if (rng() % 10 < 7) {
        storage::HeldLease lease{claim.task.id, claim.lease.token};
        auto done_answer = AwaitAnswer<Task>(
            vfs, [&](auto done) { store->CompleteTask(lease, "ok", done); });
        if (done_answer.result.ok()) {
          cycle.Record(done_answer, claim.task.id, done_answer.result->version, false);
        }
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& path,
                                                 const PowerCutOptions& options,
                                                 const std::string& vfs) {
  Store::Options o;
  o.path = path;
  o.vfs = vfs;
  o.sweep_interval = absl::ZeroDuration();  // No writes of its own.
  o.durability.mode = options.mode;
  o.durability.wal_autocheckpoint =
      options.wal_autocheckpoint > 0             ? options.wal_autocheckpoint
      : options.mode == storage::SyncMode::kFull ? storage::kFullWalAutocheckpoint
                                                 : storage::kDefaultWalAutocheckpoint;
  return Store::Open(std::move(o));
}

// What the reopened database holds, checked for integrity and for an event
// log that matches the tasks. Returns task id -> version.
std::map<std::string, int64_t> CheckDatabase(Store& store, const std::string& path,
                                             PowerCutResult& result) {
  auto problem = [&](std::string text) {
    if (result.problems.size() < kMaxProblems) result.problems.push_back(std::move(text));
  };
  std::map<std::string, int64_t> versions;

  storage::SqliteConnection::Options read_only;
  read_only.read_only = true;
  absl::StatusOr<std::unique_ptr<storage::Connection>> db =
      storage::SqliteConnection::Open(path, read_only);
  absl::StatusOr<std::string> integrity =
      db.ok() ? (*db)->QueryText("PRAGMA integrity_check") : db.status();
  if (!integrity.ok() || *integrity != "ok") {
    ++result.corruptions;
    problem(absl::StrCat("integrity_check: ",
                         integrity.ok() ? *integrity : integrity.status().ToString()));
  }

  storage::TaskFilter filter;
  filter.page_size = storage::kMaxPageSize;
  while (true) {
    absl::StatusOr<storage::TaskPage> page = storage::Await<storage::TaskPage>(
        [&](auto done) { store.ListTasks(filter, done); });
    if (!page.ok()) {
      ++result.corruptions;
      problem(absl::StrCat("ListTasks: ", page.status().ToString()));
      return versions;
    }
    for (const Task& t : page->tasks) versions[t.id] = t.version;
    if (page->next_page_token.empty()) break;
    filter.page_token = page->next_page_token;
  }

  std::map<std::string, int64_t> newest_snapshot;
  int64_t last_seq = 0;
  bool gap = false;
  while (true) {
    absl::StatusOr<std::vector<storage::Event>> events =
        storage::Await<std::vector<storage::Event>>(
            [&](auto done) { store.ReadEvents(last_seq, 5000, done); });
    if (!events.ok()) {
      ++result.corruptions;
      problem(absl::StrCat("ReadEvents: ", events.status().ToString()));
      return versions;
    }
    if (events->empty()) break;
    for (const storage::Event& e : *events) {
      if (e.seq != last_seq + 1 && !gap) {
        gap = true;
        ++result.inconsistencies;
        problem(absl::StrCat("event seq ", e.seq, " follows ", last_seq));
      }
      last_seq = e.seq;
      if (e.task.has_value()) newest_snapshot[e.task_id] = e.task->version;
    }
  }
  for (const auto& [id, version] : versions) {
    auto it = newest_snapshot.find(id);
    if (it == newest_snapshot.end() || it->second != version) {
      ++result.inconsistencies;
      problem(absl::StrCat("task ", id, " is at version ", version,
                           " but its newest event says ",
                           it == newest_snapshot.end() ? -1 : it->second));
      break;  // One is enough to show the log and the rows disagree.
    }
  }
  return versions;
}

}  // namespace

PowerCutResult RunPowerCuts(const PowerCutOptions& options) {
  PowerCutResult result;
  auto problem = [&](std::string text) {
    if (result.problems.size() < kMaxProblems) result.problems.push_back(std::move(text));
  };
  PowerLossVfs* vfs = PowerLossVfs::Register(options.vfs_name);
  std::mt19937_64 rng(options.seed);

  std::unique_ptr<Store> store;
  std::string dir, path;
  std::map<std::string, int64_t> expected;  // Durable before this cycle.
  int epoch = 0;
  for (int cut = 0; cut < options.cuts; ++cut) {
    if (cut % std::max(1, options.cuts_per_database) == 0 || store == nullptr) {
      // A fresh database, created and closed cleanly: the durable baseline.
      if (store != nullptr) store->Close();
      store.reset();
      if (!dir.empty()) std::filesystem::remove_all(dir);
      dir = absl::StrCat(options.dir, "/db", epoch++);
      std::filesystem::create_directories(dir);
      path = dir + "/kanban.db";
      expected.clear();
      absl::StatusOr<std::unique_ptr<Store>> created = OpenStore(path, options, "");
      if (!created.ok()) {
        problem(absl::StrCat("create: ", created.status().ToString()));
        ++result.corruptions;
        break;
      }
      (*created)->Close();
      created->reset();
      vfs->Reset();
      absl::StatusOr<std::unique_ptr<Store>> opened =
          OpenStore(path, options, options.vfs_name);
      if (!opened.ok()) {
        problem(absl::StrCat("open: ", opened.status().ToString()));
        ++result.corruptions;
        break;
      }
      store = *std::move(opened);
    }

    // ---- The workload, and the cut. ----
    Cycle cycle;
    cycle.vfs = vfs;
    cycle.store = store.get();
    {
      absl::MutexLock lock(&cycle.mu);
      for (const auto& [id, version] : expected) cycle.ids.push_back(id);
      int span = std::max(1, options.max_acks - options.min_acks + 1);
      if (cut % 2 == 0) {
        cycle.cut_target = options.min_acks + static_cast<int64_t>(rng() % span);
      } else {
        // The VFS cuts after a write; the cutter is only a backstop.
        vfs->CutAfterWrites(1 + static_cast<int64_t>(rng() % (4 * options.max_acks)));
        cycle.cut_target = 20 * static_cast<int64_t>(options.max_acks);
      }
    }
    std::vector<std::thread> workers;
    for (int t = 0; t < options.threads; ++t) {
      uint64_t seed = rng();
      workers.emplace_back([&cycle, t, seed] { WorkerLoop(cycle, t, seed); });
    }
    {
      absl::MutexLock lock(&cycle.mu);
      cycle.mu.AwaitWithTimeout(absl::Condition(
                                    +[](Cycle* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu) {
                                      return static_cast<int64_t>(c->acks.size()) >=
                                                 c->cut_target ||
                                             c->vfs->cut();
                                    },
                                    &cycle),
                                absl::Seconds(120));
    }
    // A no-op when the VFS cut already; else the cut lands while the
    // workers' writes are in flight.
    vfs->Cut();
    cycle.stop = true;
    for (std::thread& w : workers) w.join();
    const int64_t wal_syncs_at_cut = vfs->wal_syncs();
    result.max_wal_bytes = std::max(result.max_wal_bytes, vfs->max_wal_bytes());
    store->Close();
    store.reset();
    ++result.cuts;
    if (absl::Status s = vfs->Restore(options.cut_mode); !s.ok()) {
      problem(absl::StrCat("restore: ", s.ToString()));
      ++result.corruptions;
      continue;  // Next cycle starts a fresh database.
    }

    // ---- Reopen with the normal storage code, and check. ----
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::unique_ptr<Store>> reopened =
        OpenStore(path, options, options.vfs_name);
    result.reopen_ms_total += std::chrono::duration<double, std::milli>(
                                  std::chrono::steady_clock::now() - start)
                                  .count();
    if (!reopened.ok()) {
      ++result.corruptions;
      problem(absl::StrCat("cut ", cut, ": reopen: ", reopened.status().ToString()));
      continue;
    }
    store = *std::move(reopened);
    std::map<std::string, int64_t> recovered = CheckDatabase(*store, path, result);

    absl::MutexLock lock(&cycle.mu);
    result.acked += static_cast<int64_t>(cycle.acks.size());
    for (const Ack& ack : cycle.acks) {
      bool since_sync = ack.wal_syncs >= wal_syncs_at_cut;
      if (since_sync) ++result.acked_since_wal_sync;
      auto it = recovered.find(ack.task_id);
      if (it != recovered.end() && it->second >= ack.version) continue;
      ++result.lost;
      if (!since_sync) {
        ++result.lost_after_sync;
        problem(absl::StrCat("cut ", cut, ": task ", ack.task_id, " version ",
                             ack.version, " acked before a WAL sync, lost"));
      }
    }
    for (const auto& [id, version] : expected) {
      auto it = recovered.find(id);
      if (it == recovered.end() || it->second < version) {
        ++result.lost_after_sync;
        problem(absl::StrCat("cut ", cut, ": task ", id, " version ", version,
                             " from an earlier cycle lost"));
      }
    }
    expected = std::move(recovered);
  }
  if (store != nullptr) store->Close();
  store.reset();
  if (!dir.empty()) std::filesystem::remove_all(dir);
  return result;
}

}  // namespace kanban::testing
