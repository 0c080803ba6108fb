#include "service/health_service.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kanban::service {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream: writes the status now, and again when it changes; one
// write in flight at a time; deletes itself in OnDone. Like the other
// reactors it decides under its lock and calls StartWrite/Finish outside it.
class HealthWatchReactor final : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  // What to do once the lock is released. A decision to write or finish
  // also keeps the reactor alive until it is carried out: nothing else can
  // finish it meanwhile.
  struct Action {
    bool write = false;
    std::optional<grpc::Status> finish;
  };

  HealthWatchReactor(HealthServiceImpl* service, std::string name)
      : service_(service), name_(std::move(name)) {}

  const std::string& name() const { return name_; }

  // Queues `status` for writing; `last` ends the stream after it. The caller
  // passes the result to Act.
  Action Push(HealthServiceImpl::ServingStatus status, bool last)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    pending_ = status;
    finish_after_ |= last;
    return Next();
  }

  void Act(const Action& action) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    // response_ is stable while writing_ is set.
    if (action.write) StartWrite(&response_);
    if (action.finish.has_value()) Finish(*action.finish);
  }

  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !finished_) {
        finished_ = true;
        action.finish = grpc::Status::OK;  // The peer is gone.
      } else {
        action = Next();
      }
    }
    Act(action);
  }

  void OnCancel() override ABSL_LOCKS_EXCLUDED(mu_) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      // With a write in flight, OnWriteDone(false) finishes the stream.
      if (writing_ || finished_) return;
      finished_ = true;
      action.finish = grpc::Status::CANCELLED;
    }
    Act(action);
  }

  void OnDone() override {
    service_->Unregister(this);
    delete this;
  }

 private:
  Action Next() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Action action;
    if (writing_ || finished_) return action;
    if (pending_.has_value()) {
      response_.set_status(*pending_);
      pending_.reset();
      writing_ = true;
      action.write = true;
    } else if (finish_after_) {
      finished_ = true;
      action.finish = grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down");
    }
    return action;
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
  return shutdown_ || !writable_ ? HealthCheckResponse::NOT_SERVING
                                 : HealthCheckResponse::SERVING;
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
  HealthWatchReactor::Action action;
  {
    absl::MutexLock lock(&mu_);
    watchers_.insert(watcher);
    action = watcher->Push(StatusOf(request->service()), /*last=*/shutdown_);
  }
  watcher->Act(action);
  return watcher;
}

void HealthServiceImpl::Shutdown() { Change(/*shutdown=*/true); }

void HealthServiceImpl::SetNotWritable() { Change(/*shutdown=*/false); }

void HealthServiceImpl::Change(bool shutdown) {
  std::vector<std::pair<HealthWatchReactor*, HealthWatchReactor::Action>> actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_ || (!shutdown && !writable_)) return;
    if (shutdown) {
      shutdown_ = true;
    } else {
      writable_ = false;
    }
    for (HealthWatchReactor* watcher : watchers_) {
      actions.emplace_back(watcher,
                           watcher->Push(StatusOf(watcher->name()), /*last=*/shutdown));
    }
  }
  // Outside mu_: a Finish may lead to OnDone, which takes mu_ to unregister.
  // Only a watcher given something to do is sure to be alive here.
  for (auto& [watcher, action] : actions) {
    if (action.write || action.finish.has_value()) watcher->Act(action);
  }
}

void HealthServiceImpl::Unregister(HealthWatchReactor* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

}  // namespace kanban::service
