#include "service/health_service.h"

#include <optional>
#include <string>

namespace kanban::service {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream: writes the status now, and again when it changes; one
// write in flight at a time; deletes itself in OnDone.
class HealthWatchReactor final : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  HealthWatchReactor(HealthServiceImpl* service, std::string name)
      : service_(service), name_(std::move(name)) {}

  const std::string& name() const { return name_; }

  // Queues `status` for writing; `last` ends the stream after it.
  void Push(HealthServiceImpl::ServingStatus status, bool last) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    pending_ = status;
    finish_after_ |= last;
    MaybeWrite();
  }

  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      Finish(grpc::Status::OK);  // The peer is gone.
      finished_ = true;
      return;
    }
    MaybeWrite();
  }

  void OnCancel() override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    // With a write in flight, OnWriteDone(false) finishes the stream.
    if (writing_ || finished_) return;
    finished_ = true;
    Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    service_->Unregister(this);
    delete this;
  }

 private:
  void MaybeWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (pending_.has_value()) {
      response_.set_status(*pending_);
      pending_.reset();
      writing_ = true;
      StartWrite(&response_);
    } else if (finish_after_) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    }
  }

  HealthServiceImpl* const service_;
  const std::string name_;
  absl::Mutex mu_;
  HealthCheckResponse response_ ABSL_GUARDED_BY(mu_);
  std::optional<HealthServiceImpl::ServingStatus> pending_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_after_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

HealthServiceImpl::ServingStatus HealthServiceImpl::StatusOf(const std::string& service) {
  if (!service.empty() && service != "kanban.v1.KanbanService") {
    return HealthCheckResponse::SERVICE_UNKNOWN;
  }
  return shutdown_ ? HealthCheckResponse::NOT_SERVING : HealthCheckResponse::SERVING;
}

grpc::ServerUnaryReactor* HealthServiceImpl::Check(grpc::CallbackServerContext* ctx,
                                                   const HealthCheckRequest* request,
                                                   HealthCheckResponse* response) {
  ServingStatus status;
  {
    absl::MutexLock lock(&mu_);
    status = StatusOf(request->service());
  }
  auto* reactor = ctx->DefaultReactor();
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     "service: unknown service \"" + request->service() + "\""));
  } else {
    response->set_status(status);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthServiceImpl::Watch(
    grpc::CallbackServerContext* ctx, const HealthCheckRequest* request) {
  auto* watcher = new HealthWatchReactor(this, request->service());
  absl::MutexLock lock(&mu_);
  watchers_.insert(watcher);
  watcher->Push(StatusOf(request->service()), /*last=*/shutdown_);
  return watcher;
}

void HealthServiceImpl::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return;
  shutdown_ = true;
  for (HealthWatchReactor* watcher : watchers_) {
    watcher->Push(StatusOf(watcher->name()), /*last=*/true);
  }
}

void HealthServiceImpl::Unregister(HealthWatchReactor* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

}  // namespace kanban::service
