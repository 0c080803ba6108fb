#include "client/cpp/worker.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "grpcpp/support/status.h"

namespace kanban::client {
namespace {

constexpr absl::Duration kDefaultLease = absl::Seconds(60);
constexpr char kLeaseLostPrefix[] = "lease lost: ";

// grpc::StatusCode and absl::StatusCode share their numbering.
absl::Status ToAbsl(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

bool IsTransient(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable ||
         code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kResourceExhausted ||
         code == absl::StatusCode::kAborted;
}

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration proto;
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  proto.set_seconds(seconds);
  proto.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
  return proto;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// gRPC 1.51 takes only system_clock deadlines.
void SetTimeout(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// "lease lost: cancelled" -> "cancelled"; any other text is kept whole.
std::string LostReason(absl::string_view message) {
  absl::ConsumePrefix(&message, kLeaseLostPrefix);
  return std::string(message);
}

// The text FailTask records for a handler's error.
std::string ErrorText(const absl::Status& status) {
  if (!status.message().empty()) return std::string(status.message());
  return absl::StatusCodeToString(status.code());
}

}  // namespace

const char* WorkerEventName(WorkerEvent::Kind kind) {
  switch (kind) {
    case WorkerEvent::Kind::kClaimed:
      return "claimed";
    case WorkerEvent::Kind::kCompleted:
      return "completed";
    case WorkerEvent::Kind::kFailed:
      return "failed";
    case WorkerEvent::Kind::kReleased:
      return "released";
    case WorkerEvent::Kind::kLost:
      return "lost";
    case WorkerEvent::Kind::kRpcError:
      return "error";
  }
  return "unknown";
}

std::string DefaultWorkerId() {
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    return absl::StrCat("worker-", getpid());
  }
  return absl::StrCat(host, "-", getpid());
}

// ---- TaskContext ------------------------------------------------------------

TaskContext::TaskContext(const Worker& worker, v1::Task task, v1::Lease lease)
    : worker_(worker),
      task_(std::move(task)),
      lease_(std::move(lease)),
      expires_at_(FromProto(lease_.expires_at())) {}

absl::Time TaskContext::lease_expires_at() const {
  absl::MutexLock lock(&mu_);
  return expires_at_;
}

bool TaskContext::cancelled() const {
  absl::MutexLock lock(&mu_);
  return !lost_reason_.empty();
}

std::string TaskContext::cancel_reason() const {
  absl::MutexLock lock(&mu_);
  return lost_reason_;
}

bool TaskContext::WaitForCancel(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto lost = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !lost_reason_.empty(); };
  return mu_.AwaitWithTimeout(absl::Condition(&lost), timeout);
}

bool TaskContext::stopping() const { return worker_.stopping(); }

void TaskContext::Lose(std::string reason) {
  absl::MutexLock lock(&mu_);
  if (!lost_reason_.empty()) return;
  lost_reason_ = reason.empty() ? "unknown" : std::move(reason);
}

void TaskContext::Extend(absl::Time expires_at) {
  absl::MutexLock lock(&mu_);
  expires_at_ = expires_at;
}

// ---- Worker -----------------------------------------------------------------

Worker::Worker(std::shared_ptr<grpc::ChannelInterface> channel, WorkerOptions options)
    : tasks_(v1::KanbanService::NewStub(channel)),
      heartbeats_(v1::HeartbeatService::NewStub(channel)),
      options_(std::move(options)) {}

bool Worker::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void Worker::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  if (claim_call_ != nullptr) claim_call_->TryCancel();
}

absl::Status Worker::Run(const TaskHandler& handler) {
  if (options_.worker_id.empty()) {
    return absl::InvalidArgumentError("WorkerOptions.worker_id is required");
  }
  if (options_.lease_duration < absl::ZeroDuration() ||
      options_.claim_wait < absl::ZeroDuration() ||
      options_.rpc_timeout <= absl::ZeroDuration() ||
      options_.retry_delay < absl::ZeroDuration() || options_.max_tasks < 0) {
    return absl::InvalidArgumentError(
        "WorkerOptions: durations and max_tasks must not be negative, rpc_timeout "
        "must be positive");
  }
  {
    absl::MutexLock lock(&mu_);
    if (running_) return absl::FailedPreconditionError("Worker::Run is already running");
    running_ = true;
  }
  absl::Status result;
  for (int processed = 0; options_.max_tasks == 0 || processed < options_.max_tasks;) {
    if (stopping()) break;
    absl::StatusOr<std::unique_ptr<TaskContext>> claimed = Claim();
    if (!claimed.ok()) {
      if (claimed.status().code() == absl::StatusCode::kCancelled && stopping()) break;
      if (!IsTransient(claimed.status().code())) {
        result = claimed.status();
        break;
      }
      Emit(WorkerEvent::Kind::kRpcError, v1::Task::default_instance(),
           absl::StrCat("ClaimTask: ", claimed.status().ToString()));
      SleepUnlessStopped(options_.retry_delay);
      continue;
    }
    if (*claimed == nullptr) {
      if (options_.exit_when_idle) break;
      // A short claim_wait must not turn into a busy poll of the server.
      if (options_.claim_wait < options_.retry_delay) {
        SleepUnlessStopped(options_.retry_delay - options_.claim_wait);
      }
      continue;
    }
    ++processed;
    Process(**claimed, handler);
  }
  absl::MutexLock lock(&mu_);
  running_ = false;
  return result;
}

absl::StatusOr<std::unique_ptr<TaskContext>> Worker::Claim() {
  v1::ClaimTaskRequest request;
  request.set_board(options_.board);
  request.set_worker_id(options_.worker_id);
  if (options_.lease_duration > absl::ZeroDuration()) {
    *request.mutable_lease_duration() = ToProto(options_.lease_duration);
  }
  for (const std::string& label : options_.labels) request.add_labels(label);
  request.set_assignee(options_.assignee);
  *request.mutable_wait() = ToProto(options_.claim_wait);

  grpc::ClientContext call;
  SetTimeout(call, options_.claim_wait + options_.rpc_timeout);
  {
    // Registered under the lock that Stop() takes, so a Stop() either comes
    // before (and this claim never starts) or sees the call and cancels it.
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("worker stopping");
    claim_call_ = &call;
  }
  v1::ClaimTaskResponse response;
  grpc::Status status = tasks_->ClaimTask(&call, request, &response);
  {
    absl::MutexLock lock(&mu_);
    claim_call_ = nullptr;
  }
  if (!status.ok()) return ToAbsl(status);
  if (!response.has_task()) return nullptr;
  std::unique_ptr<TaskContext> context(new TaskContext(
      *this, std::move(*response.mutable_task()), std::move(*response.mutable_lease())));
  return context;
}

void Worker::Process(TaskContext& context, const TaskHandler& handler) {
  Emit(WorkerEvent::Kind::kClaimed, context.task(), "");
  absl::StatusOr<std::string> outcome;
  std::thread handler_thread([&] {
    outcome = handler(context);
    absl::MutexLock lock(&context.mu_);
    context.handler_done_ = true;
  });
  HeartbeatUntilDone(context);
  handler_thread.join();
  Report(context, outcome);
}

void Worker::HeartbeatUntilDone(TaskContext& context) {
  absl::Duration lease = FromProto(context.lease().duration());
  if (lease <= absl::ZeroDuration()) lease = options_.lease_duration;
  if (lease <= absl::ZeroDuration()) lease = kDefaultLease;
  const absl::Duration interval = lease / 3;

  v1::HeartbeatRequest request;
  request.set_worker_id(options_.worker_id);
  v1::HeldLease* held = request.add_leases();
  held->set_task_id(context.task().id());
  held->set_lease_token(context.lease().token());

  auto done = [&context]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(context.mu_) {
    return context.handler_done_;
  };
  while (true) {
    {
      absl::MutexLock lock(&context.mu_);
      if (context.mu_.AwaitWithTimeout(absl::Condition(&done), interval)) return;
      // A lost lease needs no more heartbeats; only the handler's end.
      if (!context.lost_reason_.empty()) {
        context.mu_.Await(absl::Condition(&done));
        return;
      }
    }
    const absl::Time expires_at = context.lease_expires_at();
    grpc::ClientContext call;
    // A heartbeat answered after the lease ran out would be no use.
    SetTimeout(call, std::max(std::min(options_.rpc_timeout, expires_at - absl::Now()),
                              absl::Milliseconds(1)));
    v1::HeartbeatResponse response;
    grpc::Status status = heartbeats_->Heartbeat(&call, request, &response);
    if (status.ok() && response.leases_size() == 1) {
      const v1::LeaseStatus& lease_status = response.leases(0);
      if (lease_status.state() == v1::LeaseStatus::EXTENDED) {
        context.Extend(FromProto(lease_status.expires_at()));
      } else {
        context.Lose(lease_status.reason());
      }
      continue;
    }
    Emit(WorkerEvent::Kind::kRpcError, context.task(),
         status.ok() ? absl::StrCat("Heartbeat: ", response.leases_size(),
                                    " lease statuses for 1 lease")
                     : absl::StrCat("Heartbeat: ", ToAbsl(status).ToString()));
    // Without a heartbeat the server reclaims the task once the lease ends;
    // the handler should not keep working past that.
    if (absl::Now() >= expires_at) context.Lose("expired");
  }
}

void Worker::Report(TaskContext& context, const absl::StatusOr<std::string>& outcome) {
  const v1::Task& task = context.task();
  const std::string& token = context.lease().token();
  WorkerEvent::Kind kind;
  std::string detail;
  // Each attempt builds a fresh call; only transient failures repeat it.
  std::function<grpc::Status(grpc::ClientContext*)> call;
  v1::Task response;
  if (outcome.ok()) {
    kind = WorkerEvent::Kind::kCompleted;
    v1::CompleteTaskRequest request;
    request.set_task_id(task.id());
    request.set_lease_token(token);
    request.set_result(*outcome);
    call = [this, request, &response](grpc::ClientContext* c) {
      return tasks_->CompleteTask(c, request, &response);
    };
  } else if (outcome.status().code() == absl::StatusCode::kCancelled) {
    kind = WorkerEvent::Kind::kReleased;
    v1::ReleaseTaskRequest request;
    request.set_task_id(task.id());
    request.set_lease_token(token);
    call = [this, request, &response](grpc::ClientContext* c) {
      return tasks_->ReleaseTask(c, request, &response);
    };
  } else {
    kind = WorkerEvent::Kind::kFailed;
    const absl::StatusCode code = outcome.status().code();
    detail = ErrorText(outcome.status());
    v1::FailTaskRequest request;
    request.set_task_id(task.id());
    request.set_lease_token(token);
    request.set_error(detail);
    request.set_retry(code != absl::StatusCode::kInvalidArgument &&
                      code != absl::StatusCode::kFailedPrecondition);
    call = [this, request, &response](grpc::ClientContext* c) {
      return tasks_->FailTask(c, request, &response);
    };
  }

  while (true) {
    if (context.cancelled()) {
      Emit(WorkerEvent::Kind::kLost, task, context.cancel_reason());
      return;
    }
    grpc::ClientContext rpc;
    SetTimeout(rpc, options_.rpc_timeout);
    absl::Status status = ToAbsl(call(&rpc));
    if (status.ok()) {
      Emit(kind, task, detail);
      return;
    }
    if (status.code() == absl::StatusCode::kFailedPrecondition) {
      context.Lose(LostReason(status.message()));
      continue;
    }
    Emit(WorkerEvent::Kind::kRpcError, task,
         absl::StrCat("reporting ", WorkerEventName(kind), ": ", status.ToString()));
    // Stop retrying once the lease is over: the server would refuse anyway.
    // Stop() does not cut this short, so a draining worker still reports.
    if (!IsTransient(status.code()) || absl::Now() >= context.lease_expires_at()) {
      return;
    }
    absl::SleepFor(options_.retry_delay);
  }
}

bool Worker::SleepUnlessStopped(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), delay);
  return stopping_;
}

void Worker::Emit(WorkerEvent::Kind kind, const v1::Task& task,
                  std::string detail) const {
  if (!options_.on_event) return;
  WorkerEvent event{kind, task.id(), task.title(), task.attempt(), std::move(detail)};
  options_.on_event(event);
}

}  // namespace kanban::client
