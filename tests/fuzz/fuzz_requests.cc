// libFuzzer target: the first byte picks a request type, the rest is parsed
// as that kanban.v1 request (inputs that do not parse are skipped). Each
// request goes the way kanband sends it: "#" references resolved to fixture
// tasks and leases (see store_fixture.h), converted by FromProto, validated by
// storage's rules, and applied to a real Store on a temporary SQLite file.
// The answers are checked against invariants that hold for any input;
// a violation aborts, so libFuzzer saves the input.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "kanban/v1/kanban.pb.h"
#include "service/convert.h"
#include "storage/rules.h"
#include "storage/store.h"
#include "tests/fuzz/request_ops.h"
#include "tests/fuzz/store_fixture.h"

namespace kanban::fuzz {
namespace {

using storage::Await;
using storage::Event;
using storage::Task;
using storage::TaskStatus;

// Inputs between fresh databases (bounds the file's growth in long runs).
constexpr int kResetEvery = 4096;
// The most a "tick" moves the clock: past lease expiry, backoff and the
// 7-day event retention, without ever reaching the year 9999.
constexpr absl::Duration kMaxTick = absl::Hours(24 * 8);

StoreFixture& Fixture() {
  static StoreFixture fixture;
  return fixture;
}

// ---- Invariants ------------------------------------------------------------

// KANBAN_FUZZ_VERBOSE=1 prints each request's answer (for checking seeds).
bool Verbose() {
  static const bool verbose = std::getenv("KANBAN_FUZZ_VERBOSE") != nullptr;
  return verbose;
}

// Validation errors are INVALID_ARGUMENT and name the field: "field: problem".
void CheckValidationError(const absl::Status& s, absl::string_view what) {
  if (Verbose()) {
    std::fprintf(stderr, "%.*s: rejected: %s\n", static_cast<int>(what.size()),
                 what.data(), s.ToString().c_str());
  }
  if (s.code() != absl::StatusCode::kInvalidArgument || s.message().empty() ||
      !absl::StrContains(s.message(), ": ")) {
    Fail(absl::StrCat(what, ": validation error is not INVALID_ARGUMENT naming a field"),
         s);
  }
}

// What the store may answer a request that passed validation: the codes a
// client branches on, never INTERNAL, UNKNOWN, DATA_LOSS or UNAVAILABLE.
void CheckStoreError(const absl::Status& s, absl::string_view what) {
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      if (s.message().empty()) Fail(absl::StrCat(what, ": error without a message"), s);
      return;
    case absl::StatusCode::kInvalidArgument:  // Page tokens, self-links.
      return CheckValidationError(s, what);
    default:
      Fail(absl::StrCat(what, ": unexpected status from the store"), s);
  }
}

// Runs `call` (which answers through a Done<T>) and checks the answer: when
// `valid` (the rules applied here) is an error, the store must answer exactly
// that error; otherwise only what CheckStoreError allows. Returns the answer,
// or nullopt for an (allowed) error.
template <typename T, typename Call>
std::optional<T> Apply(absl::string_view what, const absl::Status& valid, Call call) {
  absl::StatusOr<T> result = Await<T>(call);
  if (Verbose()) {
    std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(what.size()), what.data(),
                 result.status().ToString().c_str());
  }
  if (!valid.ok()) {
    CheckValidationError(valid, what);
    if (result.status() != valid) {
      Fail(absl::StrCat(what, ": store disagrees with validation (", valid.ToString(),
                        ")"),
           result.status());
    }
    return std::nullopt;
  }
  if (!result.ok()) {
    CheckStoreError(result.status(), what);
    return std::nullopt;
  }
  return *std::move(result);
}

void CheckSame(const Task& got, const Task& want, absl::string_view what) {
  const std::string g = Describe(got);
  const std::string w = Describe(want);
  if (g != w) Fail(absl::StrCat(what, ":\n--- got\n", g, "--- want\n", w));
}

// What kanband answers with `task`: converts, and times convert back exactly.
void CheckToProto(const Task& task) {
  v1::Task proto;
  service::ToProto(task, &proto);
  absl::StatusOr<absl::Time> updated = service::TimeFromProto(proto.updated_at(), "t");
  std::optional<absl::Time> not_before;
  if (proto.has_not_before()) {
    absl::StatusOr<absl::Time> t = service::TimeFromProto(proto.not_before(), "t");
    if (!t.ok()) Fail("not_before does not convert back", t.status());
    not_before = *t;
  }
  if (proto.id() != task.id ||
      static_cast<int>(proto.status()) != static_cast<int>(task.status) ||
      !updated.ok() || *updated != task.updated_at || not_before != task.not_before) {
    Fail(absl::StrCat("ToProto(Task) lost something:\n", Describe(task)));
  }
}

// Events are contiguous (StoreFixture::NewEvents checks seqs), well formed,
// and a task event's snapshot is of that task.
void CheckEvents(const std::vector<Event>& events) {
  for (const Event& e : events) {
    v1::Event proto;
    service::ToProto(e, &proto);
    if (proto.seq() != e.seq || proto.kind() != e.kind) Fail("ToProto(Event)");
    if (!storage::IsEventKind(e.kind)) Fail(absl::StrCat("event kind ", e.kind));
    if (e.txn <= 0 || e.txn > e.seq) Fail(absl::StrCat("event txn ", e.txn));
    if (e.task_id.empty() != !e.task.has_value()) Fail("event snapshot presence");
    if (e.task.has_value() && (e.task->id != e.task_id || e.task->board != e.board)) {
      Fail(absl::StrCat("event ", e.seq, " snapshot is of another task"));
    }
  }
}

// A task a write returned: it reads back equal, and the last event this write
// made for it (if any) holds the same snapshot.
void CheckStored(const Task& task, const std::vector<Event>& events,
                 absl::string_view what) {
  absl::StatusOr<Task> stored =
      Await<Task>([&](auto done) { Fixture().store().GetTask(task.id, done); });
  if (!stored.ok())
    Fail(absl::StrCat(what, ": written task does not read back"), stored.status());
  CheckSame(*stored, task, absl::StrCat(what, ": read back"));
  CheckToProto(task);
  for (auto e = events.rbegin(); e != events.rend(); ++e) {
    if (e->task_id != task.id) continue;
    CheckSame(*e->task, task, absl::StrCat(what, ": event ", e->kind, " snapshot"));
    break;
  }
}

bool HasEvent(const std::vector<Event>& events, const std::string& task_id,
              absl::string_view kind) {
  return std::any_of(events.begin(), events.end(), [&](const Event& e) {
    return e.task_id == task_id && e.kind == kind;
  });
}

// ListTasks order: priority descending, then oldest first.
bool Before(const Task& a, const Task& b) {
  if (a.priority != b.priority) return a.priority > b.priority;
  return a.created_at <= b.created_at;
}

void CheckPage(const storage::TaskFilter& filter, const storage::TaskPage& page) {
  const int32_t limit =
      filter.page_size > 0 ? filter.page_size : storage::kDefaultPageSize;
  if (static_cast<int32_t>(page.tasks.size()) > limit) Fail("page larger than asked");
  if (!page.next_page_token.empty() && static_cast<int32_t>(page.tasks.size()) != limit) {
    Fail("a short page with a next_page_token");
  }
  for (size_t i = 0; i < page.tasks.size(); ++i) {
    const Task& t = page.tasks[i];
    bool match =
        (filter.board.empty() || t.board == filter.board) &&
        (filter.statuses.empty() ||
         std::count(filter.statuses.begin(), filter.statuses.end(), t.status) > 0) &&
        (filter.assignee.empty() || t.assignee == filter.assignee) &&
        (filter.label.empty() ||
         std::count(t.labels.begin(), t.labels.end(), filter.label) > 0);
    if (!match) Fail(absl::StrCat("ListTasks returned ", t.id, " against its filter"));
    if (i > 0 && !Before(page.tasks[i - 1], t)) Fail("ListTasks out of order");
  }
  v1::ListTasksResponse proto;
  service::ToProto(page, &proto);
  if (proto.tasks_size() != static_cast<int>(page.tasks.size()))
    Fail("ToProto(TaskPage)");
}

// ---- Requests --------------------------------------------------------------

void CreateBoard(const v1::CreateBoardRequest& r) {
  storage::Board board = service::FromProto(r);
  auto created = Apply<storage::Board>(
      "CreateBoard", storage::ValidateNewBoard(board),
      [&](auto done) { Fixture().store().CreateBoard(board, done); });
  CheckEvents(Fixture().NewEvents());
  if (!created) return;
  if (created->name != board.name || created->description != board.description) {
    Fail("CreateBoard answered another board");
  }
  absl::StatusOr<std::vector<storage::Board>> boards = Await<std::vector<storage::Board>>(
      [&](auto done) { Fixture().store().ListBoards(done); });
  if (!boards.ok()) Fail("ListBoards", boards.status());
  if (std::none_of(boards->begin(), boards->end(), [&](const storage::Board& b) {
        return b.name == board.name && b.description == board.description;
      })) {
    Fail("created board not listed");
  }
}

void CreateTask(v1::CreateTaskRequest r) {
  for (std::string& id : *r.mutable_parent_ids()) Fixture().ResolveTaskId(&id);
  absl::StatusOr<storage::NewTask> task = service::FromProto(r);
  if (!task.ok()) return CheckValidationError(task.status(), "CreateTask FromProto");
  auto created =
      Apply<Task>("CreateTask", storage::ValidateNewTask(*task),
                  [&](auto done) { Fixture().store().CreateTask(*task, done); });
  std::vector<Event> events = Fixture().NewEvents();
  CheckEvents(events);
  if (!created) return;
  Fixture().RememberTask(created->id);
  CheckStored(*created, events, "CreateTask");
  if (!HasEvent(events, created->id, "created")) return;  // An idempotent replay.
  std::vector<std::string> parents = task->parent_ids;
  std::sort(parents.begin(), parents.end());
  const bool same =
      created->board == (task->board.empty() ? "default" : task->board) &&
      created->title == task->title && created->body == task->body &&
      created->priority == task->priority && created->labels == task->labels &&
      created->assignee == task->assignee && created->parent_ids == parents &&
      created->not_before == task->not_before &&
      created->idempotency_key == task->idempotency_key && created->version == 1 &&
      created->max_attempts ==
          (task->max_attempts == 0 ? storage::kDefaultMaxAttempts : task->max_attempts);
  if (!same) Fail("CreateTask stored something else than asked");
}

void GetTask(v1::GetTaskRequest r) {
  Fixture().ResolveTaskId(r.mutable_task_id());
  auto task =
      Apply<Task>("GetTask", storage::ValidateTaskId(r.task_id(), "task_id"),
                  [&](auto done) { Fixture().store().GetTask(r.task_id(), done); });
  if (task && task->id != r.task_id()) Fail("GetTask answered another task");
}

void ListTasks(v1::ListTasksRequest r) {
  // "#text": a page token made of that text, so the token parser is reached.
  if (absl::StartsWith(r.page_token(), "#")) {
    r.set_page_token(absl::WebSafeBase64Escape(r.page_token().substr(1)));
  }
  absl::StatusOr<storage::TaskFilter> filter = service::FromProto(r);
  if (!filter.ok()) return CheckValidationError(filter.status(), "ListTasks FromProto");
  storage::Store& store = Fixture().store();
  auto page =
      Apply<storage::TaskPage>("ListTasks", storage::ValidateTaskFilter(*filter),
                               [&](auto done) { store.ListTasks(*filter, done); });
  if (!page) return;
  CheckPage(*filter, *page);
  if (page->next_page_token.empty()) return;
  // The next page continues where this one ended.
  storage::TaskFilter next = *filter;
  next.page_token = page->next_page_token;
  absl::StatusOr<storage::TaskPage> more =
      Await<storage::TaskPage>([&](auto done) { store.ListTasks(next, done); });
  if (!more.ok()) Fail("ListTasks with its own next_page_token", more.status());
  CheckPage(next, *more);
  if (!more->tasks.empty() && !Before(page->tasks.back(), more->tasks.front())) {
    Fail("ListTasks pages overlap or go back");
  }
}

void UpdateTask(v1::UpdateTaskRequest r) {
  Fixture().ResolveTaskId(r.mutable_task_id());
  absl::StatusOr<storage::TaskUpdate> update = service::FromProto(r);
  if (!update.ok()) return CheckValidationError(update.status(), "UpdateTask FromProto");
  auto task =
      Apply<Task>("UpdateTask", storage::ValidateTaskUpdate(*update),
                  [&](auto done) { Fixture().store().UpdateTask(*update, done); });
  std::vector<Event> events = Fixture().NewEvents();
  CheckEvents(events);
  if (!task) return;
  CheckStored(*task, events, "UpdateTask");
  if ((update->title && task->title != *update->title) ||
      (update->body && task->body != *update->body) ||
      (update->priority && task->priority != *update->priority) ||
      (update->assignee && task->assignee != *update->assignee) ||
      (update->labels && task->labels != *update->labels)) {
    Fail("UpdateTask did not apply the update");
  }
}

void MoveTask(v1::MoveTaskRequest r) {
  Fixture().ResolveTaskId(r.mutable_task_id());
  absl::StatusOr<storage::TaskMove> move = service::FromProto(r);
  if (!move.ok()) return CheckValidationError(move.status(), "MoveTask FromProto");
  auto task = Apply<Task>("MoveTask", storage::ValidateTaskMove(*move),
                          [&](auto done) { Fixture().store().MoveTask(*move, done); });
  std::vector<Event> events = Fixture().NewEvents();
  CheckEvents(events);
  if (!task) return;
  CheckStored(*task, events, "MoveTask");
  const bool waits =
      move->to_status == TaskStatus::kReady && task->status == TaskStatus::kTodo;
  if (task->status != move->to_status && !waits) Fail("MoveTask ended elsewhere");
  if (!task->worker_id.empty() || task->lease_expires_at.has_value()) {
    Fail("a moved task still has a lease");
  }
}

void LinkOrUnlink(bool link, std::string parent, std::string child) {
  Fixture().ResolveTaskId(&parent);
  Fixture().ResolveTaskId(&child);
  absl::Status valid = storage::ValidateTaskId(parent, "parent_id");
  if (valid.ok()) valid = storage::ValidateTaskId(child, "child_id");
  storage::Store& store = Fixture().store();
  auto task = Apply<Task>(link ? "LinkTasks" : "UnlinkTasks", valid, [&](auto done) {
    link ? store.LinkTasks(parent, child, done) : store.UnlinkTasks(parent, child, done);
  });
  std::vector<Event> events = Fixture().NewEvents();
  CheckEvents(events);
  if (!task) return;
  CheckStored(*task, events, link ? "LinkTasks" : "UnlinkTasks");
  bool has = std::count(task->parent_ids.begin(), task->parent_ids.end(), parent) > 0;
  if (task->id != child || has != link) Fail("Link/UnlinkTasks: wrong parents");
}

void AddComment(v1::AddCommentRequest r) {
  Fixture().ResolveTaskId(r.mutable_task_id());
  storage::NewComment comment = service::FromProto(r);
  storage::Store& store = Fixture().store();
  auto added =
      Apply<storage::Comment>("AddComment", storage::ValidateNewComment(comment),
                              [&](auto done) { store.AddComment(comment, done); });
  CheckEvents(Fixture().NewEvents());
  if (!added) return;
  absl::StatusOr<std::vector<storage::Comment>> comments =
      Await<std::vector<storage::Comment>>(
          [&](auto done) { store.ListComments(comment.task_id, done); });
  if (!comments.ok()) Fail("ListComments after AddComment", comments.status());
  if (comments->empty() || comments->back().id != added->id ||
      comments->back().body != comment.body ||
      comments->back().author != comment.author) {
    Fail("the new comment is not the last one listed");
  }
}

void ListComments(v1::ListCommentsRequest r) {
  Fixture().ResolveTaskId(r.mutable_task_id());
  auto comments = Apply<std::vector<storage::Comment>>(
      "ListComments", storage::ValidateTaskId(r.task_id(), "task_id"),
      [&](auto done) { Fixture().store().ListComments(r.task_id(), done); });
  if (!comments) return;
  for (size_t i = 0; i < comments->size(); ++i) {
    if ((*comments)[i].task_id != r.task_id() ||
        (i > 0 && (*comments)[i - 1].id >= (*comments)[i].id)) {
      Fail("ListComments: another task's comment, or out of order");
    }
  }
}

void ClaimTask(const v1::ClaimTaskRequest& r) {
  absl::StatusOr<storage::ClaimRequest> claim = service::FromProto(r);
  if (!claim.ok()) return CheckValidationError(claim.status(), "ClaimTask FromProto");
  // The service checks `wait` itself (a claim here never waits).
  absl::StatusOr<absl::Duration> wait = service::DurationFromProto(r.wait(), "wait");
  if (!wait.ok()) return CheckValidationError(wait.status(), "ClaimTask wait");
  auto result = Apply<storage::ClaimResult>(
      "ClaimTask", storage::ValidateClaimRequest(*claim),
      [&](auto done) { Fixture().store().ClaimTask(*claim, done); });
  std::vector<Event> events = Fixture().NewEvents();
  CheckEvents(events);
  if (!result || !result->claim.has_value()) return;
  const Task& task = result->claim->task;
  const storage::Lease& lease = result->claim->lease;
  v1::ClaimTaskResponse proto;
  service::ToProto(*result, &proto);
  absl::StatusOr<absl::Duration> duration =
      service::DurationFromProto(proto.lease().duration(), "duration");
  if (!duration.ok() || *duration != lease.duration) Fail("ToProto(Lease) duration");
  Fixture().RememberLease(lease);
  CheckStored(task, events, "ClaimTask");
  const absl::Time now = Fixture().clock().Now();
  bool ok = task.status == TaskStatus::kRunning && task.worker_id == claim->worker_id &&
            lease.task_id == task.id && lease.worker_id == claim->worker_id &&
            lease.expires_at > now && task.lease_expires_at == lease.expires_at &&
            task.board == (claim->board.empty() ? "default" : claim->board) &&
            (task.assignee.empty() || task.assignee == claim->assignee) &&
            (!task.not_before.has_value() || *task.not_before <= now) &&
            lease.attempt == task.attempt;
  for (const std::string& label : claim->labels) {
    ok = ok && std::count(task.labels.begin(), task.labels.end(), label) > 0;
  }
  if (!ok)
    Fail(absl::StrCat("ClaimTask claimed a task it should not have:\n", Describe(task)));
}

// Complete, fail or release: what each request shares.
template <typename Request, typename Call>
void EndLease(absl::string_view what, Request r, absl::string_view text,
              absl::string_view text_field, TaskStatus want_status, Call call) {
  storage::HeldLease held{r.task_id(), r.lease_token()};
  Fixture().ResolveLease(&held.task_id, &held.token);
  absl::Status valid = storage::ValidateHeldLease(held, "");
  if (valid.ok() && !text_field.empty())
    valid = storage::ValidateOutcomeText(text, text_field);
  auto task = Apply<Task>(what, valid, [&](auto done) { call(held, done); });
  std::vector<Event> events = Fixture().NewEvents();
  CheckEvents(events);
  if (!task) return;
  CheckStored(*task, events, what);
  if (task->id != held.task_id || !task->worker_id.empty() ||
      (want_status != TaskStatus::kUnspecified && task->status != want_status) ||
      task->status == TaskStatus::kRunning) {
    Fail(absl::StrCat(what, ": task not taken off its lease:\n", Describe(*task)));
  }
}

void Heartbeat(v1::HeartbeatRequest r) {
  Fixture().ResolveWorkerId(r.mutable_worker_id());
  for (v1::HeldLease& l : *r.mutable_leases()) {
    Fixture().ResolveLease(l.mutable_task_id(), l.mutable_lease_token());
  }
  std::vector<storage::HeldLease> leases = service::FromProto(r.leases());
  absl::Status valid = storage::ValidateWorkerId(r.worker_id(), "worker_id");
  if (valid.ok() && static_cast<int>(leases.size()) > storage::kMaxHeartbeatLeases) {
    valid = absl::InvalidArgumentError(
        absl::StrCat("leases: at most ", storage::kMaxHeartbeatLeases, " per heartbeat"));
  }
  for (size_t i = 0; valid.ok() && i < leases.size(); ++i) {
    valid = storage::ValidateHeldLease(leases[i], absl::StrCat("leases[", i, "]"));
  }
  auto statuses = Apply<std::vector<storage::LeaseStatus>>(
      "Heartbeat", valid,
      [&](auto done) { Fixture().store().Heartbeat(r.worker_id(), leases, done); });
  CheckEvents(Fixture().NewEvents());
  if (!statuses) return;
  if (statuses->size() != leases.size()) Fail("Heartbeat: one answer per lease");
  v1::HeartbeatResponse proto;
  service::ToProto(*statuses, &proto);
  for (size_t i = 0; i < leases.size(); ++i) {
    const storage::LeaseStatus& s = (*statuses)[i];
    if (s.task_id != leases[i].task_id || s.token != leases[i].token ||
        s.extended != s.reason.empty() ||
        (s.extended && s.expires_at <= Fixture().clock().Now())) {
      Fail(absl::StrCat("Heartbeat: bad answer for leases[", i, "]"));
    }
  }
}

void ListWorkers(const v1::ListWorkersRequest& r) {
  absl::Status valid = absl::OkStatus();
  if (!r.board().empty()) valid = storage::ValidateBoardName(r.board(), "board");
  auto workers = Apply<std::vector<storage::Worker>>(
      "ListWorkers", valid,
      [&](auto done) { Fixture().store().ListWorkers(r.board(), done); });
  if (!workers) return;
  v1::ListWorkersResponse proto;
  service::ToProto(*workers, &proto);
  if (proto.workers_size() != static_cast<int>(workers->size())) Fail("ToProto(workers)");
}

// WatchEvents as kanband checks it (service/kanban_service.cc), then what a
// watcher would get: the ring's events must be the database's.
void WatchEvents(v1::WatchEventsRequest r) {
  for (std::string& id : *r.mutable_task_ids()) Fixture().ResolveTaskId(&id);
  absl::Status valid = absl::OkStatus();
  if (!r.board().empty()) valid = storage::ValidateBoardName(r.board(), "board");
  for (int i = 0; valid.ok() && i < r.task_ids_size(); ++i) {
    valid = storage::ValidateTaskId(r.task_ids(i), absl::StrCat("task_ids[", i, "]"));
  }
  if (valid.ok() && r.has_bookmark_interval()) {
    valid =
        service::DurationFromProto(r.bookmark_interval(), "bookmark_interval").status();
  }
  if (valid.ok() && r.start_case() == v1::WatchEventsRequest::kAfterSeq &&
      r.after_seq() < 0) {
    valid = absl::InvalidArgumentError("after_seq: must not be negative");
  }
  if (!valid.ok()) return CheckValidationError(valid, "WatchEvents");

  storage::Store& store = Fixture().store();
  int64_t after = 0;  // No start given: the whole retained history.
  if (r.start_case() == v1::WatchEventsRequest::kAfterSeq) after = r.after_seq();
  if (r.start_case() == v1::WatchEventsRequest::kFromNow) after = store.events()->head();
  std::vector<storage::EventHub::EventPtr> ring;
  if (store.events()->Read(after, 64, &ring) != storage::EventHub::ReadStatus::kOk)
    return;
  absl::StatusOr<std::vector<Event>> stored = Await<std::vector<Event>>([&](auto done) {
    store.ReadEvents(after, static_cast<int>(ring.size()) + 1, done);
  });
  if (!stored.ok()) Fail("ReadEvents", stored.status());
  CheckEvents(*stored);
  for (size_t i = 0; i < ring.size(); ++i) {
    const Event& a = *ring[i];
    if (i >= stored->size() || a.seq != (*stored)[i].seq || a.kind != (*stored)[i].kind ||
        a.task_id != (*stored)[i].task_id || a.txn != (*stored)[i].txn ||
        a.task.has_value() != (*stored)[i].task.has_value()) {
      Fail(absl::StrCat("the event ring and the database differ at seq ", a.seq));
    }
    if (a.task.has_value())
      CheckSame(*(*stored)[i].task, *a.task, "event snapshot vs ring");
  }
}

// Not a request: moves the fake clock by a (parsed) Duration, then sweeps,
// reaching lease expiry, reclaiming, giving up and event retention.
void Tick(const google::protobuf::Duration& d) {
  absl::StatusOr<absl::Duration> advance = service::DurationFromProto(d, "tick");
  if (!advance.ok()) return CheckValidationError(advance.status(), "tick");
  Fixture().clock().Advance(std::min(*advance, kMaxTick));
  absl::StatusOr<storage::SweepResult> swept =
      Await<storage::SweepResult>([&](auto done) { Fixture().store().Sweep(done); });
  if (!swept.ok()) Fail("Sweep", swept.status());
  std::vector<Event> events = Fixture().NewEvents();
  CheckEvents(events);
  const auto count = [&](absl::string_view kind) {
    return std::count_if(events.begin(), events.end(),
                         [&](const Event& e) { return e.kind == kind; });
  };
  if (count("reclaimed") != swept->reclaimed || count("gave_up") != swept->gave_up) {
    Fail("Sweep's counts differ from its events");
  }
}

// Parses the bytes as `Request` and hands it on; inputs that are not such a
// message are skipped.
template <typename Request, typename Handler>
void ParseThen(const uint8_t* data, size_t size, Handler handler) {
  Request request;
  if (request.ParseFromArray(data, static_cast<int>(size))) handler(request);
}

void Run(Op op, const uint8_t* data, size_t size) {
  storage::Store& store = Fixture().store();
  switch (op) {
    case kCreateBoard:
      return ParseThen<v1::CreateBoardRequest>(data, size, CreateBoard);
    case kCreateTask:
      return ParseThen<v1::CreateTaskRequest>(data, size, CreateTask);
    case kGetTask:
      return ParseThen<v1::GetTaskRequest>(data, size, GetTask);
    case kListTasks:
      return ParseThen<v1::ListTasksRequest>(data, size, ListTasks);
    case kUpdateTask:
      return ParseThen<v1::UpdateTaskRequest>(data, size, UpdateTask);
    case kMoveTask:
      return ParseThen<v1::MoveTaskRequest>(data, size, MoveTask);
    case kLinkTasks:
      return ParseThen<v1::LinkTasksRequest>(data, size, [](const auto& r) {
        LinkOrUnlink(true, r.parent_id(), r.child_id());
      });
    case kUnlinkTasks:
      return ParseThen<v1::UnlinkTasksRequest>(data, size, [](const auto& r) {
        LinkOrUnlink(false, r.parent_id(), r.child_id());
      });
    case kAddComment:
      return ParseThen<v1::AddCommentRequest>(data, size, AddComment);
    case kListComments:
      return ParseThen<v1::ListCommentsRequest>(data, size, ListComments);
    case kClaimTask:
      return ParseThen<v1::ClaimTaskRequest>(data, size, ClaimTask);
    case kCompleteTask:
      return ParseThen<v1::CompleteTaskRequest>(data, size, [&](const auto& r) {
        EndLease("CompleteTask", r, r.result(), "result", TaskStatus::kDone,
                 [&](storage::HeldLease held, auto done) {
                   store.CompleteTask(held, r.result(), done);
                 });
      });
    case kFailTask:
      return ParseThen<v1::FailTaskRequest>(data, size, [&](const auto& r) {
        EndLease("FailTask", r, r.error(), "error", TaskStatus::kUnspecified,
                 [&](storage::HeldLease held, auto done) {
                   store.FailTask(held, r.error(), r.retry(), done);
                 });
      });
    case kReleaseTask:
      return ParseThen<v1::ReleaseTaskRequest>(data, size, [&](const auto& r) {
        EndLease(
            "ReleaseTask", r, "", "", TaskStatus::kUnspecified,
            [&](storage::HeldLease held, auto done) { store.ReleaseTask(held, done); });
      });
    case kHeartbeat:
      return ParseThen<v1::HeartbeatRequest>(data, size, Heartbeat);
    case kListWorkers:
      return ParseThen<v1::ListWorkersRequest>(data, size, ListWorkers);
    case kWatchEvents:
      return ParseThen<v1::WatchEventsRequest>(data, size, WatchEvents);
    case kTick:
      return ParseThen<google::protobuf::Duration>(data, size, Tick);
    case kOpCount:
      break;
  }
}

}  // namespace
}  // namespace kanban::fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // Invalid UTF-8 in a string field fails the parse, as it does in kanband;
  // protobuf would also log each one.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kanban::fuzz;
  static int inputs = 0;
  if (++inputs % kResetEvery == 0) Fixture().Reset();
  if (size == 0) return 0;
  Run(static_cast<Op>(data[0] % kOpCount), data + 1, size - 1);
  if (absl::Status s = Fixture().store().write_failure(); !s.ok()) {
    Fail("the store stopped accepting writes", s);
  }
  return 0;
}
