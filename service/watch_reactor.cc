#include "service/watch_reactor.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/convert.h"
#include "service/grpc_status.h"
#include "service/watch_registry.h"

namespace kanban::service {

bool WatchFilter::Matches(const storage::Event& event) const {
  if (!board.empty() && event.board != board) return false;
  if (!boards.empty() &&
      std::find(boards.begin(), boards.end(), event.board) == boards.end()) {
    return false;
  }
  if (!task_ids.empty() && task_ids.count(event.task_id) == 0) return false;
  return kinds.empty() || kinds.count(event.kind) > 0;
}

WatchReactor::WatchReactor(grpc::CallbackServerContext* ctx, storage::Store* store,
                           WatchRegistry* registry, WatchFilter filter,
                           std::optional<int64_t> after_seq, Options options)
    : ctx_(ctx),
      store_(store),
      registry_(registry),
      filter_(std::move(filter)),
      options_(options) {
  absl::MutexLock lock(&mu_);
  pos_ = after_seq.has_value() ? *after_seq : store_->events()->head();
  last_sent_ = absl::Now();
}

void WatchReactor::Start() {
  // Shutting down, or too many streams open.
  if (absl::Status added = registry_->Add(this); !added.ok()) {
    Finish(ToGrpcStatus(added));
    return;
  }
  Action action;
  {
    absl::MutexLock lock(&mu_);
    action = Plan();
  }
  Execute(action);
}

void WatchReactor::Take(const storage::Event& event) {
  if (filter_.Matches(event)) {
    v1::Event* added = response_.add_events();
    ToProto(event, added);
    response_bytes_ += added->ByteSizeLong();
  }
  last_txn_ = event.txn;
  pos_ = event.seq;
}

bool WatchReactor::Full(const storage::Event& next) const {
  return (response_bytes_ >= options_.max_response_bytes ||
          static_cast<size_t>(response_.events_size()) >=
              options_.max_events_per_response) &&
         next.txn != last_txn_;
}

void WatchReactor::ClearResponse() {
  response_.Clear();
  response_bytes_ = 0;
}

WatchReactor::Action WatchReactor::StartWriteLocked() {
  response_.set_bookmark_seq(pos_);
  writing_ = true;
  first_sent_ = true;
  bookmark_due_ = false;
  write_started_ = absl::Now();
  Action action;
  action.write = true;
  return action;
}

WatchReactor::Action WatchReactor::FinishLocked(grpc::Status status) {
  finished_ = true;
  Action action;
  action.finish = std::move(status);
  action.oldest_seq = pending_oldest_;
  return action;
}

WatchReactor::Action WatchReactor::Plan() {
  if (finished_ || writing_ || reading_) return {};
  if (finish_pending_.has_value()) return FinishLocked(*finish_pending_);
  ClearResponse();
  while (true) {
    std::vector<storage::EventHub::EventPtr> events;
    if (store_->events()->Read(pos_, options_.max_events_per_response, &events) ==
        storage::EventHub::ReadStatus::kTooOld) {
      // Behind the ring: this watcher alone catches up from the database.
      reading_ = true;
      Action action;
      action.read_after = pos_;
      return action;
    }
    if (events.empty()) break;
    for (const auto& event : events) {
      if (Full(*event)) break;  // The rest is read again for the next response.
      Take(*event);
    }
    if (response_.events_size() > 0) return StartWriteLocked();
  }
  // Caught up. The first response always carries a bookmark; later ones when
  // an idle interval has passed.
  if (!first_sent_ || bookmark_due_) return StartWriteLocked();
  return {};
}

void WatchReactor::Execute(const Action& action) {
  if (action.read_after.has_value()) {
    store_->ReadEvents(*action.read_after, options_.catch_up_batch,
                       [this](absl::StatusOr<std::vector<storage::Event>> events) {
                         OnCatchUp(std::move(events));
                       });
  }
  if (action.write) {
    // response_ is not touched again until OnWriteDone: writing_ is set.
    StartWrite(&response_);
  }
  if (action.cancel) ctx_->TryCancel();
  if (action.finish.has_value()) {
    if (action.oldest_seq.has_value()) {
      ctx_->AddTrailingMetadata("kanban-oldest-seq", absl::StrCat(*action.oldest_seq));
    }
    Finish(*action.finish);
  }
}

void WatchReactor::OnCatchUp(absl::StatusOr<std::vector<storage::Event>> events) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    reading_ = false;
    if (!events.ok()) {
      finish_pending_ = ToGrpcStatus(events.status());
    } else if (!events->empty() && events->front().seq > pos_ + 1) {
      // Seqs have no gaps except where retention deleted the oldest events.
      pending_oldest_ = events->front().seq;
      finish_pending_ = grpc::Status(
          grpc::StatusCode::OUT_OF_RANGE,
          absl::StrCat("events after seq ", pos_,
                       " were deleted by retention; the "
                       "oldest available is ",
                       events->front().seq,
                       ": list the tasks again and watch from a newer position"));
    } else if (events->empty() && store_->events()->head() > pos_) {
      // Nothing in the database after pos_, yet newer events were
      // published: every event after pos_ was deleted.
      pending_oldest_ = store_->events()->head() + 1;
      finish_pending_ = grpc::Status(
          grpc::StatusCode::OUT_OF_RANGE,
          absl::StrCat("events after seq ", pos_, " were deleted by retention"));
    } else {
      ClearResponse();
      for (const storage::Event& event : *events) {
        if (Full(event)) break;  // The rest is read again later.
        Take(event);
      }
      if (response_.events_size() > 0) {
        action = StartWriteLocked();
      }
    }
    if (!action.write) action = Plan();
  }
  Execute(action);
}

void WatchReactor::OnNotify() {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    action = Plan();
  }
  Execute(action);
}

void WatchReactor::OnTick(absl::Time now) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (writing_) {
      if (now - write_started_ > options_.stall_timeout && !finish_pending_.has_value()) {
        // The client has not taken a response for too long. Nothing is
        // dropped: it resumes from its last bookmark.
        finish_pending_ = grpc::Status(
            grpc::StatusCode::RESOURCE_EXHAUSTED,
            absl::StrCat("watcher made no progress for ",
                         absl::FormatDuration(options_.stall_timeout),
                         "; resume with after_seq = your last bookmark_seq"));
        action.cancel = true;
      }
    } else if (options_.bookmark_interval > absl::ZeroDuration() &&
               now - last_sent_ >= options_.bookmark_interval) {
      bookmark_due_ = true;
      action = Plan();
    }
  }
  Execute(action);
}

void WatchReactor::End(grpc::Status status) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    if (!finish_pending_.has_value()) finish_pending_ = std::move(status);
    action = Plan();
  }
  Execute(action);
}

void WatchReactor::OnWriteDone(bool ok) {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    last_sent_ = absl::Now();
    // response_ still holds what was written (metrics).
    if (ok) registry_->CountDelivered(response_.events_size());
    if (!ok && !finish_pending_.has_value()) {
      finish_pending_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
    }
    action = Plan();
  }
  Execute(action);
}

void WatchReactor::OnCancel() {
  Action action;
  {
    absl::MutexLock lock(&mu_);
    if (!finish_pending_.has_value()) finish_pending_ = grpc::Status::CANCELLED;
    action = Plan();  // Finishes now unless a write or read is in flight.
  }
  Execute(action);
}

void WatchReactor::OnDone() {
  registry_->Remove(this);
  Unref();  // gRPC's reference.
}

}  // namespace kanban::service
