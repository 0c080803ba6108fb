#include "service/watch_reactor.h"

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/grpc_status.h"
#include "service/watch_registry.h"
#include "service/watch_wire.h"

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
      options_(options),
      connection_(std::hash<std::string>()(ctx->peer())) {
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

void WatchReactor::Take(const storage::Event& event, grpc::Slice encoded) {
  if (filter_.Matches(event)) {
    // Not cached: an event from the database, or one the cache skipped.
    if (encoded.size() == 0) encoded = EncodeEventField(event);
    response_bytes_ += encoded.size();
    slices_.push_back(std::move(encoded));
    ++response_events_;
  }
  last_txn_ = event.txn;
  pos_ = event.seq;
}

bool WatchReactor::Full(const storage::Event& next) const {
  return response_bytes_ >= options_.max_response_bytes && next.txn != last_txn_;
}

void WatchReactor::ClearResponse() {
  slices_.clear();
  // A catch-up may have grown it; an idle stream should not keep that.
  if (slices_.capacity() > 1024) slices_.shrink_to_fit();
  response_bytes_ = 0;
  response_events_ = 0;
}

WatchReactor::Action WatchReactor::StartWriteLocked() {
  grpc::Slice bookmark = EncodeBookmarkField(pos_);
  if (bookmark.size() > 0) slices_.push_back(std::move(bookmark));
  // References to the slices, not copies of their bytes.
  buffer_ = grpc::ByteBuffer(slices_.data(), slices_.size());
  buffer_events_ = response_events_;
  ClearResponse();
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
  const storage::EventHub* hub = store_->events();
  const WireCache& wire = registry_->wire();
  while (true) {
    // Only what the registry has encoded: so each event is encoded once,
    // and this stream is woken when there is more.
    const int64_t visible = wire.head();
    bool full = false;
    while (!full && pos_ < visible) {
      const int64_t before = pos_;
      std::vector<storage::EventHub::EventPtr> events;
      if (hub->Read(pos_, options_.read_chunk, &events) ==
          storage::EventHub::ReadStatus::kTooOld) {
        // Send what was taken (whole changes) first.
        if (response_events_ > 0) return StartWriteLocked();
        // Behind the ring: this watcher alone catches up from the database.
        reading_ = true;
        Action action;
        action.read_after = pos_;
        return action;
      }
      if (events.empty()) break;
      std::vector<grpc::Slice> encoded = wire.Lookup(events);
      for (size_t i = 0; i < events.size(); ++i) {
        // `visible` ends a publish, so this never cuts a change.
        if (events[i]->seq > visible) break;
        if (Full(*events[i])) {
          full = true;  // The rest is read again for the next response.
          break;
        }
        Take(*events[i], std::move(encoded[i]));
      }
      if (pos_ == before) break;  // Nothing visible came back.
    }
    if (response_events_ > 0) return StartWriteLocked();
    // Caught up. The first response always carries a bookmark; later ones
    // when an idle interval has passed.
    if (!first_sent_ || bookmark_due_) return StartWriteLocked();
    if (parked_) return {};
    if (registry_->Park(this, pos_)) {
      parked_ = true;
      return {};
    }
    // More became visible meanwhile: look again.
  }
}

void WatchReactor::Execute(const Action& action) {
  if (action.read_after.has_value()) {
    store_->ReadEvents(*action.read_after, options_.catch_up_batch,
                       [this](absl::StatusOr<std::vector<storage::Event>> events) {
                         OnCatchUp(std::move(events));
                       });
  }
  if (action.write) {
    // buffer_ is not touched again until OnWriteDone: writing_ is set.
    StartWrite(&buffer_);
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
        Take(event, grpc::Slice());
      }
      if (response_events_ > 0) {
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
    parked_ = false;  // The registry let go of it.
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
    if (ok) registry_->CountDelivered(buffer_events_);
    buffer_.Clear();  // Lets go of the slices now, not at the next write.
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
