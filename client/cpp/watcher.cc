#include "client/cpp/watcher.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/support/sync_stream.h"

namespace kanban::client {
namespace {

absl::Status FromGrpc(const grpc::Status& status) {
  // grpc::StatusCode and absl::StatusCode share their numbering.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

// Codes after which the same request from the same position can succeed.
// gRPC reports dropped connections as UNAVAILABLE, and some stream resets
// as INTERNAL; a CANCELLED we did not ask for comes from the server (it
// resets stalled watchers, and cancels calls a shutdown's grace period
// outlived). OK means the server ended a stream that is meant to be endless.
bool Retryable(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kCancelled:
      return true;
    default:
      return false;
  }
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    out->Clear();  // Zero: the server sends no bookmarks.
    return;
  }
  absl::Duration rest;
  out->set_seconds(absl::IDivDuration(d, absl::Seconds(1), &rest));
  out->set_nanos(static_cast<int32_t>(rest / absl::Nanoseconds(1)));
}

}  // namespace

Watcher::Watcher(std::shared_ptr<grpc::Channel> channel, WatchOptions options)
    : stub_(v1::KanbanService::NewStub(std::move(channel))),
      options_(std::move(options)),
      position_(std::max<int64_t>(options_.after_seq, -1)) {}

Watcher::~Watcher() = default;

absl::Status Watcher::Run(std::function<void(const v1::Event&)> on_event,
                          std::function<void(int64_t)> on_bookmark) {
  absl::BitGen bitgen;
  // A zero backoff would spin against a server that is down.
  const absl::Duration min_backoff =
      std::max(options_.min_backoff, absl::Milliseconds(1));
  absl::Duration backoff = min_backoff;
  while (true) {
    StreamEnd end = Follow(on_event, on_bookmark);
    if (end.stopped) return absl::OkStatus();
    if (!end.retry) return end.status;
    // A stream that delivered something was healthy: the next failure in a
    // row starts the backoff over.
    if (end.received) backoff = min_backoff;
    absl::Duration delay = backoff * absl::Uniform(bitgen, 0.5, 1.0);
    backoff = std::max(min_backoff, std::min(backoff * 2, options_.max_backoff));
    if (!SleepUnlessStopped(delay)) return absl::OkStatus();
  }
}

Watcher::StreamEnd Watcher::Follow(const std::function<void(const v1::Event&)>& on_event,
                                   const std::function<void(int64_t)>& on_bookmark) {
  StreamEnd end;
  grpc::ClientContext ctx;
  v1::WatchEventsRequest request;
  if (!BeginStream(&ctx, &request)) {
    end.stopped = true;
    return end;
  }
  int64_t position = request.has_after_seq() ? request.after_seq() : -1;
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader =
      stub_->WatchEvents(&ctx, request);
  v1::WatchEventsResponse response;
  bool first = true;
  while (!end.stopped && end.status.ok() && reader->Read(&response)) {
    end.received = true;
    for (const v1::Event& event : response.events()) {
      if (position >= 0 && event.seq() <= position) {
        end.status = absl::InternalError(
            absl::StrCat("WatchEvents sent seq ", event.seq(), " after ", position));
        break;
      }
      on_event(event);
      position = event.seq();
      if (!Advance(position)) {
        end.stopped = true;
        break;
      }
    }
    if (end.stopped || !end.status.ok()) break;
    // The first response always carries a bookmark, even a 0 (an empty
    // database); it fixes where a from-now watch starts.
    if (response.bookmark_seq() > 0 || first) {
      position = std::max(position, response.bookmark_seq());
      // Every event up to the bookmark has been delivered already, so the
      // position moves before the callback sees it.
      if (!Advance(position)) {
        end.stopped = true;
      } else if (on_bookmark) {
        on_bookmark(position);
        end.stopped = stopped();
      }
    }
    first = false;
  }
  if (end.stopped || !end.status.ok()) {
    ctx.TryCancel();
    while (reader->Read(&response)) {
    }
  }
  grpc::Status status = reader->Finish();
  {
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;  // `ctx` dies with this frame.
    end.stopped = end.stopped || stopped_;
  }
  if (end.status.ok()) {  // Not a broken seq order: how the server ended it.
    end.status = FromGrpc(status);
    end.retry = Retryable(end.status.code());
  }
  return end;
}

bool Watcher::BeginStream(grpc::ClientContext* ctx, v1::WatchEventsRequest* request) {
  request->set_board(options_.board);
  for (const std::string& id : options_.task_ids) request->add_task_ids(id);
  for (const std::string& kind : options_.kinds) request->add_kinds(kind);
  SetDuration(options_.bookmark_interval, request->mutable_bookmark_interval());
  absl::MutexLock lock(&mu_);
  if (stopped_) return false;
  if (position_ < 0) {
    request->set_from_now(true);
  } else {
    request->set_after_seq(position_);
  }
  stream_ = ctx;
  return true;
}

bool Watcher::Advance(int64_t seq) {
  absl::MutexLock lock(&mu_);
  position_ = std::max(position_, seq);
  return !stopped_;
}

bool Watcher::SleepUnlessStopped(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopped_), delay);
  return !stopped_;
}

void Watcher::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  // Safe under mu_: Follow() clears stream_ under mu_ before the context dies.
  if (stream_ != nullptr) stream_->TryCancel();
}

bool Watcher::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

int64_t Watcher::position() const {
  absl::MutexLock lock(&mu_);
  return position_;
}

}  // namespace kanban::client
