#include "client/cpp/worker.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "grpcpp/support/status.h"
#include "grpcpp/support/sync_stream.h"

namespace kanban::client {
namespace {

constexpr absl::Duration kDefaultLease = absl::Seconds(60);
constexpr char kLeaseLostPrefix[] = "lease lost: ";
// A stream says nothing while nothing is claimable, so an idle worker with
// exit_when_idle gives the server at least this long to push an assignment.
constexpr absl::Duration kMinStreamIdleWait = absl::Milliseconds(500);

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

// A Work stream that ends with one of these is opened again: INTERNAL and
// UNKNOWN are what a cut connection looks like, and CANCELLED that this
// worker did not ask for comes from a server that gave up on the stream.
bool IsStreamTransient(absl::StatusCode code) {
  return IsTransient(code) || code == absl::StatusCode::kInternal ||
         code == absl::StatusCode::kUnknown || code == absl::StatusCode::kCancelled;
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

// What a handler's outcome asks to report (see TaskHandler).
struct Verdict {
  WorkerEvent::Kind kind;  // kCompleted, kFailed or kReleased.
  std::string detail;      // kFailed: the error text.
  bool retry = false;      // kFailed: another attempt may succeed.
};

Verdict Judge(const absl::StatusOr<std::string>& outcome) {
  if (outcome.ok()) return {WorkerEvent::Kind::kCompleted, "", false};
  const absl::StatusCode code = outcome.status().code();
  if (code == absl::StatusCode::kCancelled)
    return {WorkerEvent::Kind::kReleased, "", false};
  return {WorkerEvent::Kind::kFailed, ErrorText(outcome.status()),
          code != absl::StatusCode::kInvalidArgument &&
              code != absl::StatusCode::kFailedPrecondition};
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

// ---- Worker streams -----------------------------------------------------------
//
// One StreamRun is Run() on WorkerService.Work. Run()'s thread makes every
// decision, does every write and emits every event; two threads feed it
// through mu_: each stream's I/O thread (opens the call, writes the attach,
// then reads until the stream ends; opening can block while the channel
// connects, so it is not Run()'s thread that waits) and the handler's
// thread. The window is one lease, so at most one task runs; one more can
// wait (pushed after the running one's lease was lost, before its handler
// returned) and is heartbeated meanwhile.
//
// A stream that ends with a transient code leaves the handler running;
// after retry_delay the next one attaches with resume_stream_id and the held
// leases as its heartbeat, then sends again a report whose result never came
// (same op_id). An assignment the worker will not run is released on the
// stream, or with ReleaseTask once the worker has closed its side. When the
// worker is done it closes its side as soon as nothing more needs sending,
// and reads until the server, having answered what was in flight, ends the
// stream. UNIMPLEMENTED before a stream gave anything, or a non-transient
// failure, ends streaming: the running task is finished with unary calls.

class Worker::StreamRun {
 public:
  StreamRun(Worker& worker, const TaskHandler& handler)
      : worker_(worker), options_(worker.options_), handler_(handler) {}
  StreamRun(const StreamRun&) = delete;
  StreamRun& operator=(const StreamRun&) = delete;
  ~StreamRun();

  // Works until the worker is done (Stop(), max_tasks, exit_when_idle) or a
  // stream fails with a non-transient code, whose status it returns. Sets
  // *fall_back (and returns OK) when the server has no worker streams.
  absl::Status Run(bool* fall_back);
  // Tasks whose handler was started.
  int processed() const { return processed_; }

  // Makes Run() look again at once (Stop() was called). Any thread.
  void Wake() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One Work call.
  struct Stream {
    grpc::ClientContext context;
    // Set by the I/O thread before it sets opened_; then Run()'s thread
    // writes on it (one writer, one reader, as gRPC allows).
    std::unique_ptr<grpc::ClientReaderWriter<v1::WorkRequest, v1::WorkResponse>> call;
    std::thread io;
    // Run()'s thread only.
    bool opened = false;    // The attach went out: Run()'s thread may write.
    bool writable = true;   // Not closed by the worker, no failed write, no go_away.
    bool attached = false;  // WorkAttached came.
    bool received = false;  // Anything came.
    absl::Duration interval;
    absl::Time next_heartbeat;
    absl::Time deadline;                    // For WorkAttached, then for the end.
    std::optional<absl::Status> cancelled;  // Why Run()'s thread cancelled it.
  };
  // The task whose handler runs or whose report is unanswered.
  struct Job {
    std::unique_ptr<TaskContext> context;
    std::thread thread;
    // Written by the handler's thread before it sets handler_done_.
    absl::StatusOr<std::string> outcome;
    bool finished = false;  // The handler returned and its thread was joined.
    std::optional<v1::WorkOutcome> report;
    Verdict verdict;
    bool report_sent = false;  // On the current stream.
    absl::Time resend_at = absl::InfinitePast();
  };

  bool Exiting() const;
  // No task running or waiting.
  bool Idle() const { return job_ == nullptr && waiting_.empty(); }
  // A stream is needed to send something: heartbeats for the running task's
  // lease (then its report), or a report whose answer never came.
  bool MustSend() const;
  std::vector<v1::HeldLease> HeldLeases() const;

  void Open();
  // Joins the I/O thread; the stream's status (the reason, when Run()'s
  // thread cancelled it).
  absl::Status EndStream();
  bool Write(const v1::WorkRequest& request);
  void CloseWrites();
  void Cancel(absl::Status why);

  void OnResponse(v1::WorkResponse& response);
  void OnAssignment(v1::ClaimTaskResponse assignment);
  void OnResult(const v1::WorkResult& result);
  void OnLeaseStatus(const v1::LeaseStatus& status);
  void OnHandlerDone();

  void Start(v1::ClaimTaskResponse assignment);
  void SendReport();
  void GiveBack(const v1::ClaimTaskResponse& assignment);
  void ReleaseWithCall(const v1::Task& task, const std::string& token);
  // Finishes the job with unary heartbeats and report, when streaming ends
  // under it; gives back what waits.
  void FinishWithUnaryCalls();

  // Waits for news from the other threads, or until `until`.
  void WaitUntil(absl::Time until) ABSL_LOCKS_EXCLUDED(mu_);
  bool HasNews() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !inbox_.empty() || read_done_ || handler_done_ || poked_;
  }

  // Constant after construction.
  Worker& worker_;
  const WorkerOptions& options_;
  const TaskHandler& handler_;

  // Run()'s thread only.
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<Job> job_;
  std::deque<v1::ClaimTaskResponse> waiting_;
  std::map<uint64_t, v1::ClaimTaskResponse> give_backs_;  // Releases in flight.
  std::string last_stream_id_;
  uint64_t next_op_id_ = 1;
  int processed_ = 0;
  bool idle_exit_ = false;
  absl::Time reopen_at_ = absl::InfinitePast();
  absl::Time idle_since_ = absl::Now();

  // Shared with the I/O and handler threads.
  mutable absl::Mutex mu_;
  std::deque<v1::WorkResponse> inbox_ ABSL_GUARDED_BY(mu_);
  bool opened_ ABSL_GUARDED_BY(mu_) = false;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool handler_done_ ABSL_GUARDED_BY(mu_) = false;
  bool poked_ ABSL_GUARDED_BY(mu_) = false;
};

// ---- Worker -----------------------------------------------------------------

Worker::Worker(std::shared_ptr<grpc::ChannelInterface> channel, WorkerOptions options)
    : channel_(channel),
      tasks_(v1::KanbanService::NewStub(channel)),
      heartbeats_(v1::HeartbeatService::NewStub(channel)),
      streams_(v1::WorkerService::NewStub(channel)),
      options_(std::move(options)) {}

bool Worker::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void Worker::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  if (claim_call_ != nullptr) claim_call_->TryCancel();
  if (stream_run_ != nullptr) stream_run_->Wake();
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
  bool unary = !options_.use_streams;
  int processed = 0;
  if (!unary) {
    StreamRun run(*this, handler);
    {
      absl::MutexLock lock(&mu_);
      stream_run_ = &run;
    }
    result = run.Run(&unary);
    processed = run.processed();
    absl::MutexLock lock(&mu_);
    stream_run_ = nullptr;
  }
  if (unary) result = RunUnary(handler, processed);
  absl::MutexLock lock(&mu_);
  running_ = false;
  return result;
}

absl::Status Worker::RunUnary(const TaskHandler& handler, int processed) {
  while (options_.max_tasks == 0 || processed < options_.max_tasks) {
    if (stopping()) break;
    absl::StatusOr<std::unique_ptr<TaskContext>> claimed = Claim();
    if (!claimed.ok()) {
      if (claimed.status().code() == absl::StatusCode::kCancelled && stopping()) break;
      if (!IsTransient(claimed.status().code())) return claimed.status();
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
  return absl::OkStatus();
}

v1::ClaimTaskRequest Worker::ClaimRequest() const {
  v1::ClaimTaskRequest request;
  request.set_board(options_.board);
  request.set_worker_id(options_.worker_id);
  if (options_.lease_duration > absl::ZeroDuration()) {
    *request.mutable_lease_duration() = ToProto(options_.lease_duration);
  }
  for (const std::string& label : options_.labels) request.add_labels(label);
  request.set_assignee(options_.assignee);
  return request;
}

absl::StatusOr<std::unique_ptr<TaskContext>> Worker::Claim() {
  v1::ClaimTaskRequest request = ClaimRequest();
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
  const Verdict verdict = Judge(outcome);
  // Each attempt builds a fresh call; only transient failures repeat it.
  std::function<grpc::Status(grpc::ClientContext*)> call;
  v1::Task response;
  if (verdict.kind == WorkerEvent::Kind::kCompleted) {
    v1::CompleteTaskRequest request;
    request.set_task_id(task.id());
    request.set_lease_token(token);
    request.set_result(*outcome);
    call = [this, request, &response](grpc::ClientContext* c) {
      return tasks_->CompleteTask(c, request, &response);
    };
  } else if (verdict.kind == WorkerEvent::Kind::kReleased) {
    v1::ReleaseTaskRequest request;
    request.set_task_id(task.id());
    request.set_lease_token(token);
    call = [this, request, &response](grpc::ClientContext* c) {
      return tasks_->ReleaseTask(c, request, &response);
    };
  } else {
    v1::FailTaskRequest request;
    request.set_task_id(task.id());
    request.set_lease_token(token);
    request.set_error(verdict.detail);
    request.set_retry(verdict.retry);
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
      Emit(verdict.kind, task, verdict.detail);
      return;
    }
    if (status.code() == absl::StatusCode::kFailedPrecondition) {
      context.Lose(LostReason(status.message()));
      continue;
    }
    Emit(WorkerEvent::Kind::kRpcError, task,
         absl::StrCat("reporting ", WorkerEventName(verdict.kind), ": ",
                      status.ToString()));
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

// ---- Worker::StreamRun --------------------------------------------------------

Worker::StreamRun::~StreamRun() {
  // Run() leaves neither behind; this is for safety only.
  if (stream_ != nullptr) {
    stream_->context.TryCancel();
    if (stream_->io.joinable()) stream_->io.join();
  }
  if (job_ != nullptr && job_->thread.joinable()) job_->thread.join();
}

void Worker::StreamRun::Wake() {
  absl::MutexLock lock(&mu_);
  poked_ = true;
}

absl::Status Worker::StreamRun::Run(bool* fall_back) {
  *fall_back = false;
  while (true) {
    // What the other threads brought.
    std::deque<v1::WorkResponse> responses;
    bool read_done = false;
    bool handler_done = false;
    {
      absl::MutexLock lock(&mu_);
      responses.swap(inbox_);
      read_done = read_done_;  // Then `responses` holds the stream's last ones.
      handler_done = handler_done_;
      handler_done_ = false;
      poked_ = false;
      if (stream_ != nullptr && opened_) stream_->opened = true;
    }
    if (handler_done) OnHandlerDone();
    for (v1::WorkResponse& response : responses) OnResponse(response);
    if (stream_ != nullptr && read_done) {
      const bool received = stream_->received;
      const absl::Status status = EndStream();
      if (status.code() == absl::StatusCode::kUnimplemented && !received) {
        FinishWithUnaryCalls();
        *fall_back = true;
        return absl::OkStatus();
      }
      if (!status.ok() && !IsStreamTransient(status.code())) {
        FinishWithUnaryCalls();
        return status;
      }
      if (!status.ok()) {
        if (!Exiting() || job_ != nullptr) {
          worker_.Emit(
              WorkerEvent::Kind::kRpcError,
              job_ != nullptr ? job_->context->task() : v1::Task::default_instance(),
              absl::StrCat("Work: ", status.ToString()));
        }
        reopen_at_ = absl::Now() + options_.retry_delay;
      }
    }

    // Decide, and write.
    const absl::Time now = absl::Now();
    if (job_ != nullptr && !job_->finished && now >= job_->context->lease_expires_at()) {
      // No heartbeat got through in time: the server reclaims the task.
      job_->context->Lose("expired");
    }
    if (job_ == nullptr && !waiting_.empty() && !Exiting()) {
      Start(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    if (Exiting()) {
      for (const v1::ClaimTaskResponse& assignment : waiting_) GiveBack(assignment);
      waiting_.clear();
    }
    const bool can_write = stream_ != nullptr && stream_->opened && stream_->writable;
    if (job_ != nullptr && job_->report.has_value() && !job_->report_sent) {
      // As the unary loop does: a report is not tried past its lease.
      if (now >= job_->context->lease_expires_at()) {
        job_.reset();
      } else if (can_write && now >= job_->resend_at) {
        SendReport();
      }
    }
    if (can_write && stream_->writable && now >= stream_->next_heartbeat) {
      // Also when idle: a stream silent for two intervals is ended.
      v1::WorkRequest beat;
      for (v1::HeldLease& held : HeldLeases()) *beat.add_heartbeat() = std::move(held);
      Write(beat);
      stream_->next_heartbeat = now + stream_->interval;
    }
    if (stream_ == nullptr || !stream_->attached || !Idle()) idle_since_ = now;
    const absl::Time idle_until =
        idle_since_ + std::max(options_.claim_wait, kMinStreamIdleWait);
    if (options_.exit_when_idle && now >= idle_until) idle_exit_ = true;
    const bool exiting = Exiting();
    if (exiting && stream_ != nullptr && stream_->writable && !MustSend()) {
      if (stream_->opened) {
        CloseWrites();
      } else {
        Cancel(absl::CancelledError("worker stopping"));
      }
    }
    if (stream_ != nullptr && !stream_->cancelled.has_value() &&
        now >= stream_->deadline) {
      if (stream_->attached) {
        Cancel(absl::DeadlineExceededError(
            "the stream did not end within rpc_timeout of closing it"));
      } else if (worker_.channel_->GetState(false) != GRPC_CHANNEL_READY) {
        Cancel(absl::UnavailableError("no connection to the server within rpc_timeout"));
      } else {
        Cancel(absl::DeadlineExceededError("no answer to the attach within rpc_timeout"));
      }
    }
    if (stream_ == nullptr) {
      if (exiting && job_ == nullptr) return absl::OkStatus();
      if ((!exiting || MustSend()) && now >= reopen_at_) Open();
    }

    // Wait for news or the next thing due.
    absl::Time until = absl::InfiniteFuture();
    const auto due = [&until](absl::Time t) { until = std::min(until, t); };
    if (stream_ == nullptr) {
      if (!exiting || MustSend()) due(reopen_at_);
    } else {
      if (!stream_->cancelled.has_value()) due(stream_->deadline);
      if (stream_->opened && stream_->writable) {
        due(stream_->next_heartbeat);
        if (MustSend() && job_->report.has_value()) due(job_->resend_at);
      }
      if (options_.exit_when_idle && !exiting && stream_->attached && Idle()) {
        due(idle_until);
      }
    }
    if (job_ != nullptr && !job_->context->cancelled() &&
        (!job_->finished || !job_->report_sent)) {
      due(job_->context->lease_expires_at());
    }
    WaitUntil(until);
  }
}

bool Worker::StreamRun::Exiting() const {
  return idle_exit_ || worker_.stopping() ||
         (options_.max_tasks > 0 && processed_ >= options_.max_tasks);
}

bool Worker::StreamRun::MustSend() const {
  if (job_ == nullptr) return false;
  if (job_->report.has_value()) return !job_->report_sent;
  // Heartbeats, then the report; a lost lease gets neither.
  return !job_->context->cancelled();
}

std::vector<v1::HeldLease> Worker::StreamRun::HeldLeases() const {
  std::vector<v1::HeldLease> held;
  const auto add = [&held](const std::string& task_id, const std::string& token) {
    held.emplace_back();
    held.back().set_task_id(task_id);
    held.back().set_lease_token(token);
  };
  if (job_ != nullptr && !job_->context->cancelled()) {
    add(job_->context->task().id(), job_->context->lease().token());
  }
  for (const v1::ClaimTaskResponse& assignment : waiting_) {
    add(assignment.task().id(), assignment.lease().token());
  }
  return held;
}

void Worker::StreamRun::Open() {
  stream_ = std::make_unique<Stream>();
  const absl::Time now = absl::Now();
  const absl::Duration lease = options_.lease_duration > absl::ZeroDuration()
                                   ? options_.lease_duration
                                   : kDefaultLease;
  stream_->interval = lease / 3;  // Until WorkAttached says.
  stream_->next_heartbeat = now + stream_->interval;
  stream_->deadline = now + options_.rpc_timeout;

  v1::WorkRequest attach;
  *attach.mutable_attach()->mutable_claim() = worker_.ClaimRequest();
  attach.mutable_attach()->set_max_outstanding(1);
  attach.mutable_attach()->set_resume_stream_id(last_stream_id_);
  // Leases held from before count in the window, and are extended.
  for (v1::HeldLease& held : HeldLeases()) *attach.add_heartbeat() = std::move(held);

  // The waiting call is what makes gRPC notice that a restarted server is
  // back (a fail-fast call in TRANSIENT_FAILURE fails at once, and nothing
  // else drives the reconnection but a backup poller every 5 s); the
  // attach deadline bounds the wait.
  stream_->context.set_wait_for_ready(true);
  Stream* stream = stream_.get();
  stream->io = std::thread([this, stream, attach = std::move(attach)] {
    auto call = worker_.streams_->Work(&stream->context);
    // A failed write shows as the end of the reads.
    call->Write(attach);
    grpc::ClientReaderWriter<v1::WorkRequest, v1::WorkResponse>* reader = call.get();
    {
      absl::MutexLock lock(&mu_);
      stream->call = std::move(call);
      opened_ = true;
      poked_ = true;  // Run()'s thread may have something to send.
    }
    v1::WorkResponse response;
    while (reader->Read(&response)) {
      absl::MutexLock lock(&mu_);
      inbox_.push_back(std::move(response));
      response.Clear();
    }
    absl::MutexLock lock(&mu_);
    read_done_ = true;
  });
}

absl::Status Worker::StreamRun::EndStream() {
  stream_->io.join();
  absl::Status status = ToAbsl(stream_->call->Finish());
  if (stream_->cancelled.has_value() && status.code() == absl::StatusCode::kCancelled) {
    status = *stream_->cancelled;
  }
  {
    absl::MutexLock lock(&mu_);
    opened_ = false;
    read_done_ = false;
  }
  stream_.reset();
  // Sent again on the next stream: its answer never came.
  if (job_ != nullptr) job_->report_sent = false;
  for (const auto& [op_id, assignment] : give_backs_) {
    ReleaseWithCall(assignment.task(), assignment.lease().token());
  }
  give_backs_.clear();
  return status;
}

bool Worker::StreamRun::Write(const v1::WorkRequest& request) {
  if (stream_->call->Write(request)) return true;
  stream_->writable = false;  // Broken: the reads end too.
  return false;
}

void Worker::StreamRun::CloseWrites() {
  stream_->writable = false;
  stream_->call->WritesDone();
  // The server answers what is in flight, then ends the stream.
  stream_->deadline = absl::Now() + options_.rpc_timeout;
}

void Worker::StreamRun::Cancel(absl::Status why) {
  stream_->cancelled = std::move(why);
  stream_->writable = false;
  stream_->context.TryCancel();
}

void Worker::StreamRun::OnResponse(v1::WorkResponse& response) {
  if (stream_ == nullptr) return;
  stream_->received = true;
  if (response.has_attached()) {
    const v1::WorkAttached& attached = response.attached();
    stream_->attached = true;
    stream_->deadline = absl::InfiniteFuture();
    last_stream_id_ = attached.stream_id();
    const absl::Duration interval = FromProto(attached.heartbeat_interval());
    if (interval > absl::ZeroDuration()) {
      stream_->interval = interval;
      stream_->next_heartbeat = std::min(stream_->next_heartbeat, absl::Now() + interval);
    }
  }
  // Results first: the assignment that replaces a settled task often comes
  // in the same message.
  for (const v1::WorkResult& result : response.results()) OnResult(result);
  for (const v1::LeaseStatus& status : response.leases()) OnLeaseStatus(status);
  for (v1::ClaimTaskResponse& assignment : *response.mutable_assignments()) {
    OnAssignment(std::move(assignment));
  }
  // The server is shutting down and reads no more; the stream ends next.
  if (response.go_away()) stream_->writable = false;
}

void Worker::StreamRun::OnAssignment(v1::ClaimTaskResponse assignment) {
  const std::string& token = assignment.lease().token();
  const bool known = (job_ != nullptr && job_->context->lease().token() == token) ||
                     std::any_of(waiting_.begin(), waiting_.end(),
                                 [&token](const v1::ClaimTaskResponse& waiting) {
                                   return waiting.lease().token() == token;
                                 });
  const bool wanted =
      !Exiting() && (job_ == nullptr || waiting_.empty()) &&
      (options_.max_tasks == 0 ||
       processed_ + static_cast<int>(waiting_.size()) < options_.max_tasks);
  if (!known && !wanted) {
    GiveBack(assignment);
    return;
  }
  // Confirms the delivery: a stream resumed after a break does not send it
  // again. (A known one came again because the first confirmation was lost.)
  if (stream_->opened && stream_->writable) {
    v1::WorkRequest received;
    received.add_received(token);
    Write(received);
  }
  if (!known) waiting_.push_back(std::move(assignment));
}

void Worker::StreamRun::OnResult(const v1::WorkResult& result) {
  if (auto it = give_backs_.find(result.op_id()); it != give_backs_.end()) {
    if (result.state() == v1::WorkResult::ERROR) {
      worker_.Emit(WorkerEvent::Kind::kRpcError, it->second.task(),
                   absl::StrCat("giving back an assignment: ",
                                absl::Status(static_cast<absl::StatusCode>(result.code()),
                                             result.message())
                                    .ToString()));
    }
    give_backs_.erase(it);
    return;
  }
  if (job_ == nullptr || !job_->report.has_value() ||
      result.op_id() != job_->report->op_id()) {
    return;  // Not (or no longer) asked.
  }
  const v1::Task& task = job_->context->task();
  if (result.state() == v1::WorkResult::DONE) {
    worker_.Emit(job_->verdict.kind, task, job_->verdict.detail);
    job_.reset();
    return;
  }
  if (result.state() == v1::WorkResult::LOST) {
    worker_.Emit(WorkerEvent::Kind::kLost, task, result.reason());
    job_.reset();
    return;
  }
  absl::Status status(static_cast<absl::StatusCode>(result.code()), result.message());
  if (result.state() != v1::WorkResult::ERROR || status.ok()) {
    status = absl::UnknownError(
        absl::StrCat("result in state ", result.state(), " with code ", result.code()));
  }
  worker_.Emit(WorkerEvent::Kind::kRpcError, task,
               absl::StrCat("reporting ", WorkerEventName(job_->verdict.kind), ": ",
                            status.ToString()));
  if (!IsTransient(status.code()) || absl::Now() >= job_->context->lease_expires_at()) {
    job_.reset();  // Given up; the lease expires.
    return;
  }
  job_->report_sent = false;
  job_->resend_at = absl::Now() + options_.retry_delay;
}

void Worker::StreamRun::OnLeaseStatus(const v1::LeaseStatus& status) {
  const bool extended = status.state() == v1::LeaseStatus::EXTENDED;
  if (job_ != nullptr && job_->context->lease().token() == status.lease_token()) {
    if (extended) {
      job_->context->Extend(FromProto(status.expires_at()));
    } else if (!job_->report.has_value()) {
      // Pushed by the server (an operator moved the task, ...) or a
      // heartbeat's answer. Once a report is out, its result says instead.
      job_->context->Lose(status.reason());
    }
    return;
  }
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (it->lease().token() != status.lease_token()) continue;
    if (extended) {
      *it->mutable_lease()->mutable_expires_at() = status.expires_at();
    } else {
      waiting_.erase(it);
    }
    return;
  }
}

void Worker::StreamRun::OnHandlerDone() {
  if (job_ == nullptr || job_->finished) return;
  job_->thread.join();
  job_->finished = true;
  TaskContext& context = *job_->context;
  if (context.cancelled()) {
    worker_.Emit(WorkerEvent::Kind::kLost, context.task(), context.cancel_reason());
    job_.reset();
    return;
  }
  job_->verdict = Judge(job_->outcome);
  v1::WorkOutcome& report = job_->report.emplace();
  report.set_op_id(next_op_id_++);
  report.set_task_id(context.task().id());
  report.set_lease_token(context.lease().token());
  switch (job_->verdict.kind) {
    case WorkerEvent::Kind::kCompleted:
      report.set_complete(*job_->outcome);
      break;
    case WorkerEvent::Kind::kFailed:
      report.mutable_fail()->set_error(job_->verdict.detail);
      report.mutable_fail()->set_retry(job_->verdict.retry);
      break;
    default:
      report.set_release(true);
      break;
  }
}

void Worker::StreamRun::Start(v1::ClaimTaskResponse assignment) {
  job_ = std::make_unique<Job>();
  job_->context.reset(new TaskContext(worker_, std::move(*assignment.mutable_task()),
                                      std::move(*assignment.mutable_lease())));
  ++processed_;
  worker_.Emit(WorkerEvent::Kind::kClaimed, job_->context->task(), "");
  Job* job = job_.get();
  job->thread = std::thread([this, job] {
    job->outcome = handler_(*job->context);
    {
      absl::MutexLock lock(&job->context->mu_);
      job->context->handler_done_ = true;
    }
    absl::MutexLock lock(&mu_);
    handler_done_ = true;
  });
}

void Worker::StreamRun::SendReport() {
  v1::WorkRequest request;
  *request.add_outcomes() = *job_->report;
  job_->report_sent = Write(request);
}

void Worker::StreamRun::GiveBack(const v1::ClaimTaskResponse& assignment) {
  if (stream_ != nullptr && stream_->opened && stream_->writable) {
    v1::WorkRequest request;
    v1::WorkOutcome* release = request.add_outcomes();
    release->set_op_id(next_op_id_++);
    release->set_task_id(assignment.task().id());
    release->set_lease_token(assignment.lease().token());
    release->set_release(true);
    if (Write(request)) {
      give_backs_[release->op_id()] = assignment;
      return;
    }
  }
  ReleaseWithCall(assignment.task(), assignment.lease().token());
}

void Worker::StreamRun::ReleaseWithCall(const v1::Task& task, const std::string& token) {
  v1::ReleaseTaskRequest request;
  request.set_task_id(task.id());
  request.set_lease_token(token);
  grpc::ClientContext call;
  SetTimeout(call, options_.rpc_timeout);
  v1::Task response;
  const absl::Status status =
      ToAbsl(worker_.tasks_->ReleaseTask(&call, request, &response));
  // FAILED_PRECONDITION: the lease is gone already, nothing to give back.
  if (!status.ok() && status.code() != absl::StatusCode::kFailedPrecondition) {
    worker_.Emit(
        WorkerEvent::Kind::kRpcError, task,
        absl::StrCat("ReleaseTask of an assignment not run: ", status.ToString()));
  }
}

void Worker::StreamRun::FinishWithUnaryCalls() {
  for (const v1::ClaimTaskResponse& assignment : waiting_) {
    ReleaseWithCall(assignment.task(), assignment.lease().token());
  }
  waiting_.clear();
  if (job_ == nullptr) return;
  TaskContext& context = *job_->context;
  if (!job_->finished) {
    worker_.HeartbeatUntilDone(context);
    job_->thread.join();
    job_->finished = true;
  }
  worker_.Report(context, job_->outcome);
  job_.reset();
}

void Worker::StreamRun::WaitUntil(absl::Time until) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(this, &StreamRun::HasNews), until);
}

}  // namespace kanban::client
