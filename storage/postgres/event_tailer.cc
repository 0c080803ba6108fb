#include "storage/postgres/event_tailer.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "storage/status_macros.h"
#include "storage/task_sql.h"

namespace kanban::storage::postgres {

std::string EventsChannel(absl::string_view schema) {
  return absl::StrCat("\"kanban_events/",
                      absl::StrReplaceAll(schema.substr(0, 40), {{"\"", "\"\""}}), "\"");
}

absl::StatusOr<std::unique_ptr<EventTailer>> EventTailer::Start(Options options) {
  std::string channel = EventsChannel(options.schema);
  PgConnection::Options conn;
  conn.target = options.target;
  // Listening is part of the session, so a reconnect listens again.
  conn.session_sql.push_back(absl::StrCat("LISTEN ", channel));
  KANBAN_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> db, PgConnection::Open(conn));
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    return absl::InternalError(absl::StrCat("eventfd: errno ", errno));
  }
  std::unique_ptr<EventTailer> tailer(
      new EventTailer(std::move(options), std::move(db), std::move(channel), wake_fd));
  tailer->thread_ = std::thread([t = tailer.get()] {
    pthread_setname_np(pthread_self(), "kanban-tailer");
    t->Run();
  });
  return tailer;
}

EventTailer::EventTailer(Options options, std::unique_ptr<PgConnection> db,
                         std::string channel, int wake_fd)
    : options_(std::move(options)),
      db_(std::move(db)),
      channel_(std::move(channel)),
      wake_fd_(wake_fd) {}

EventTailer::~EventTailer() {
  Stop();
  close(wake_fd_);
}

void EventTailer::Committed(std::vector<Event> events) {
  if (events.empty()) return;
  if (publish_mu_.TryLock()) {
    bool published = false;
    {
      absl::MutexLock lock(&mu_);
      published = local_.empty() && events.front().seq == options_.hub->head() + 1;
      if (published) notify_ = true;
    }
    if (published) Publish(std::move(events));
    publish_mu_.Unlock();
    if (!published) {
      absl::MutexLock lock(&mu_);
      local_.push_back(std::move(events));
    }
  } else {
    absl::MutexLock lock(&mu_);
    local_.push_back(std::move(events));
  }
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void EventTailer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

bool EventTailer::Wait(absl::Time poll_at) {
  {
    absl::MutexLock lock(&mu_);
    if (!local_.empty() || notify_) return true;
    if (stopping_) return false;
  }
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {db_->socket(), POLLIN, 0}};
  const int nfds = fds[1].fd >= 0 ? 2 : 1;
  const absl::Duration left = poll_at - absl::Now();
  const int timeout_ms =
      left <= absl::ZeroDuration()
          ? 0
          : static_cast<int>(absl::ToInt64Milliseconds(left + absl::Milliseconds(1)));
  (void)poll(fds, nfds, timeout_ms);
  uint64_t drained = 0;
  (void)!read(wake_fd_, &drained, sizeof(drained));
  absl::MutexLock lock(&mu_);
  return !stopping_ || !local_.empty() || notify_;
}

void EventTailer::Run() {
  absl::Time poll_at = absl::Now();
  absl::Time retention_at = absl::Now();
  while (Wait(poll_at)) {
    bool announce = PublishLocal();
    {
      absl::MutexLock lock(&mu_);
      announce = std::exchange(notify_, false) || announce;
    }
    if (announce) Notify();
    // Another replica's commits: announced, or found by the poll.
    bool look = absl::Now() >= poll_at;
    if (db_->EnsureConnected().ok()) {
      absl::StatusOr<int> notified = db_->TakeNotifications();
      if (notified.ok() && *notified > 0) look = true;
    }
    if (look) {
      // On failure the next poll tries again.
      absl::StatusOr<int64_t> upto = sql::LastEventSeq(*db_);
      if (upto.ok() && *upto > options_.hub->head()) {
        absl::MutexLock publishing(&publish_mu_);
        (void)CatchUp(*upto);
      }
      poll_at = absl::Now() + options_.poll_interval;
    }
    if (absl::Now() >= retention_at) {
      absl::StatusOr<int64_t> oldest = sql::OldestEventSeq(*db_);
      if (oldest.ok()) options_.hub->ForgetBefore(*oldest);
      retention_at = absl::Now() + options_.retention_interval;
    }
  }
  // Stopping: whatever the writer handed over is published (a reader of
  // the hub waiting for its own commit must not hang), announced or not.
  PublishLocal();
}

bool EventTailer::PublishLocal() {
  absl::MutexLock publishing(&publish_mu_);
  bool published = false;
  while (true) {
    std::vector<Event> events;
    {
      absl::MutexLock lock(&mu_);
      if (local_.empty()) return published;
      events = std::move(local_.front());
      local_.pop_front();
    }
    // Announced either way: these are this kanband's commits.
    published = true;
    if (events.front().seq > options_.hub->head() + 1) {
      // Another replica committed in between: its events come first. (A
      // failed read leaves these to the next poll, from the table.)
      if (!CatchUp(events.front().seq - 1).ok()) continue;
    }
    // What the table already gave (a read returns whole changes, and may
    // run into this commit's) is not published twice.
    const int64_t head = options_.hub->head();
    if (events.back().seq <= head) continue;
    events.erase(events.begin(),
                 std::find_if(events.begin(), events.end(),
                              [head](const Event& e) { return e.seq > head; }));
    if (events.front().seq != head + 1) {
      // A gap the read did not fill (retention?): the table decides.
      (void)CatchUp(events.back().seq);
      continue;
    }
    Publish(std::move(events));
  }
}

absl::Status EventTailer::CatchUp(int64_t upto) {
  while (options_.hub->head() < upto) {
    KANBAN_ASSIGN_OR_RETURN(
        std::vector<Event> events,
        sql::ReadEventsAfter(*db_, options_.hub->head(), options_.read_limit));
    if (events.empty()) break;  // Retention ran past the head: nothing to add.
    if (events.front().seq > options_.hub->head() + 1) {
      // Retention deleted events this replica never read: the ring starts
      // again after the gap (older positions then read the database, which
      // answers OUT_OF_RANGE).
      options_.hub->ForgetBefore(events.front().seq);
    }
    Publish(std::move(events));
  }
  return absl::OkStatus();
}

void EventTailer::Publish(std::vector<Event> events) {
  if (options_.on_events) options_.on_events(events);
  options_.hub->Publish(std::move(events));
}

void EventTailer::Notify() {
  // Autocommit: the NOTIFY's transaction is this one statement.
  (void)db_->Exec(absl::StrCat("NOTIFY ", channel_));
}

}  // namespace kanban::storage::postgres
