#include "tests/fuzz/store_fixture.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kanban::fuzz {
namespace {

using storage::Await;

// Fixture tasks stay nameable; later ones share the remaining slots.
constexpr size_t kMaxTasks = 32;
constexpr size_t kMaxLeases = 16;

template <typename T>
T Must(absl::StatusOr<T> result, absl::string_view what) {
  if (!result.ok()) Fail(what, result.status());
  return *std::move(result);
}

// The N of "#N": its leading decimal digits (wrapping), 0 when there are none.
size_t Reference(absl::string_view ref) {
  size_t n = 0;
  for (char c : ref.substr(1)) {
    if (c < '0' || c > '9') break;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  return n;
}

bool IsReference(absl::string_view s) { return !s.empty() && s[0] == '#'; }

std::string Time(const std::optional<absl::Time>& t) {
  return t.has_value() ? absl::StrCat(absl::ToUnixMicros(*t)) : "none";
}

}  // namespace

void Fail(absl::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "\n*** fuzz invariant violated: %.*s%s%s\n",
               static_cast<int>(what.size()), what.data(), status.ok() ? "" : ": ",
               status.ok() ? "" : status.ToString().c_str());
  std::abort();
}

std::string Describe(const storage::Task& t) {
  return absl::StrCat(
      "id=", t.id, "\nboard=", t.board, "\ntitle=", t.title, "\nbody=", t.body,
      "\nstatus=", static_cast<int>(t.status), "\npriority=", t.priority,
      "\nlabels=", absl::StrJoin(t.labels, "|"), "\nassignee=", t.assignee,
      "\nparent_ids=", absl::StrJoin(t.parent_ids, "|"),
      "\ncreated_at=", absl::ToUnixMicros(t.created_at),
      "\nupdated_at=", absl::ToUnixMicros(t.updated_at), "\nversion=", t.version,
      "\nattempt=", t.attempt, "\nmax_attempts=", t.max_attempts,
      "\nnot_before=", Time(t.not_before), "\nresult=", t.result,
      "\nlast_error=", t.last_error, "\nidempotency_key=", t.idempotency_key,
      "\nworker_id=", t.worker_id, "\nlease_expires_at=", Time(t.lease_expires_at), "\n");
}

StoreFixture::StoreFixture() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/kanban-fuzz-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) Fail(absl::StrCat("mkdtemp ", pattern));
  dir_ = pattern;
  Open();
}

StoreFixture::~StoreFixture() {
  store_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void StoreFixture::Reset() {
  store_.reset();
  std::error_code error;
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) {
    std::filesystem::remove(absl::StrCat(dir_, "/kanban.db", suffix), error);
  }
  clock_.Set(start_);
  Open();
}

void StoreFixture::Open() {
  storage::Store::Options options;
  options.path = absl::StrCat(dir_, "/kanban.db");
  options.clock = &clock_;
  options.sweep_interval = absl::ZeroDuration();  // Sweeps are requests here.
  options.check_at_open = false;                  // The file is always new.
  store_ = Must(storage::Store::Open(std::move(options)), "fixture: open");
  tasks_.clear();
  leases_.clear();
  next_task_ = next_lease_ = 0;
  last_seq_ = 0;
  BuildFixture();
  (void)NewEvents();
}

void StoreFixture::BuildFixture() {
  storage::Store& s = *store_;
  auto create = [&](std::string title, auto&& customize) {
    storage::NewTask t;
    t.title = std::move(title);
    customize(t);
    storage::Task task =
        Must(Await<storage::Task>([&](auto done) { s.CreateTask(t, done); }),
             "fixture: create");
    RememberTask(task.id);
    return task.id;
  };
  auto claim = [&](std::string worker, std::string label) {
    storage::ClaimRequest r;
    r.worker_id = std::move(worker);
    r.labels = {std::move(label)};
    storage::ClaimResult result =
        Must(Await<storage::ClaimResult>([&](auto done) { s.ClaimTask(r, done); }),
             "fixture: claim");
    if (!result.claim.has_value()) Fail("fixture: nothing to claim");
    RememberLease(result.claim->lease);
    return result.claim->lease;
  };
  auto none = [](storage::NewTask&) {};

  Must(Await<storage::Board>([&](auto done) {
         s.CreateBoard({"b1", "second", {}}, done);
       }),
       "fixture: board");
  // #0 READY, #1 TODO (child of #0), #2 TRIAGE.
  const std::string a = create("a", none);
  create("b", [&](storage::NewTask& t) { t.parent_ids = {a}; });
  create("c",
         [](storage::NewTask& t) { t.initial_status = storage::TaskStatus::kTriage; });
  // #3 RUNNING under lease #0 (worker w1), #4 DONE (lease #1, worker w2).
  const std::string d = create("d", [](storage::NewTask& t) {
    t.priority = 100;
    t.labels = {"x"};
  });
  claim("w1", "x");
  create("e", [](storage::NewTask& t) {
    t.priority = 99;
    t.labels = {"y"};
    t.max_attempts = 1;
  });
  storage::Lease done_lease = claim("w2", "y");
  Must(Await<storage::Task>([&](auto done) {
         s.CompleteTask({done_lease.task_id, done_lease.token}, "ok", done);
       }),
       "fixture: complete");
  // #5 ARCHIVED, #6 READY on board b1, #7 TODO waiting for the running #3.
  const std::string f = create("f", none);
  Must(Await<storage::Task>([&](auto done) {
         s.MoveTask({f, storage::TaskStatus::kArchived, 0, "fixture"}, done);
       }),
       "fixture: archive");
  create("g", [](storage::NewTask& t) { t.board = "b1"; });
  create("h", [&](storage::NewTask& t) { t.parent_ids = {d}; });
  Must(Await<storage::Comment>([&](auto done) {
         s.AddComment({a, "me", "hello"}, done);
       }),
       "fixture: comment");
}

void StoreFixture::ResolveTaskId(std::string* id) const {
  if (!IsReference(*id) || tasks_.empty()) return;
  *id = tasks_[Reference(*id) % tasks_.size()];
}

void StoreFixture::ResolveLease(std::string* task_id, std::string* token) const {
  if (IsReference(*token) && !leases_.empty()) {
    const storage::Lease& lease = leases_[Reference(*token) % leases_.size()];
    *token = lease.token;
    if (*task_id == "#") *task_id = lease.task_id;
  }
  ResolveTaskId(task_id);
}

void StoreFixture::ResolveWorkerId(std::string* worker_id) const {
  if (!IsReference(*worker_id) || leases_.empty()) return;
  *worker_id = leases_[Reference(*worker_id) % leases_.size()].worker_id;
}

void StoreFixture::RememberTask(const std::string& id) {
  if (tasks_.size() < kMaxTasks) {
    tasks_.push_back(id);
  } else {
    // The first eight are the fixture's.
    tasks_[8 + next_task_++ % (kMaxTasks - 8)] = id;
  }
}

void StoreFixture::RememberLease(const storage::Lease& lease) {
  if (leases_.size() < kMaxLeases) {
    leases_.push_back(lease);
  } else {
    leases_[2 + next_lease_++ % (kMaxLeases - 2)] = lease;
  }
}

std::vector<storage::Event> StoreFixture::NewEvents() {
  std::vector<storage::Event> events =
      Must(Await<std::vector<storage::Event>>(
               [&](auto done) { store_->ReadEvents(last_seq_, 1 << 20, done); }),
           "ReadEvents");
  for (const storage::Event& e : events) {
    // Seqs have no gaps (retention only deletes events read already).
    if (e.seq != last_seq_ + 1)
      Fail(absl::StrCat("event seq ", e.seq, " after ", last_seq_));
    last_seq_ = e.seq;
  }
  return events;
}

}  // namespace kanban::fuzz
