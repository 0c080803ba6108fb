// A worker for the kanban task board: takes one task at a time, runs a
// handler on it while heartbeats keep its lease alive, and reports the
// handler's outcome. By default all of that travels on one
// WorkerService.Work stream (the server pushes assignments); against a
// server without worker streams, or with use_streams = false, it uses the
// unary calls (ClaimTask, Heartbeat, CompleteTask, FailTask, ReleaseTask).
//
//   kanban::client::WorkerOptions options;
//   options.worker_id = kanban::client::DefaultWorkerId();
//   kanban::client::Worker worker(channel, options);
//   absl::Status status = worker.Run([](kanban::client::TaskContext& task)
//                                        -> absl::StatusOr<std::string> {
//     if (task.cancelled()) return absl::CancelledError("lease lost");
//     return "result";
//   });
#ifndef KANBAN_CLIENT_CPP_WORKER_H_
#define KANBAN_CLIENT_CPP_WORKER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "kanban/v1/kanban.grpc.pb.h"

namespace kanban::client {

// What a worker reports as it goes; see WorkerOptions::on_event.
struct WorkerEvent {
  enum class Kind {
    kClaimed,    // A task was claimed (or assigned on the stream); the
                 // handler is about to run.
    kCompleted,  // The server accepted the handler's result: DONE.
    kFailed,     // The server accepted the handler's error; detail is the error.
    kReleased,   // The task was given back (the handler returned CANCELLED).
    kLost,       // The lease was lost; nothing was reported. detail is the reason
                 // (cancelled, expired, reclaimed, ...).
    kRpcError,   // A call failed or the stream broke and will be retried, or a
                 // report could not be delivered (the lease then expires).
                 // detail is the status, after "ClaimTask: ", "Work: ", ...
  };
  Kind kind = Kind::kClaimed;
  std::string task_id;  // Empty for a kRpcError of ClaimTask or of an idle stream.
  std::string title;
  int attempt = 0;     // The task's attempt number under this lease.
  std::string detail;  // Empty for kClaimed, kCompleted and kReleased.
};

// "claimed", "completed", ...: the lowercase name of `kind`.
const char* WorkerEventName(WorkerEvent::Kind kind);

struct WorkerOptions {
  // Board to claim from. Default: "" (the server's "default" board).
  std::string board;

  // Names this worker in leases, heartbeats and ListWorkers. Required;
  // DefaultWorkerId() gives "hostname-pid".
  std::string worker_id;

  // Claim only tasks that carry all of these labels. Default: no filter.
  std::vector<std::string> labels;

  // Claim tasks assigned to this name as well as unassigned ones.
  // Default: "" (unassigned tasks only).
  std::string assignee;

  // Lease asked for on each claim; the server accepts 1 s to 1 h. Heartbeats
  // renew it every third of the granted duration. Default: 60 s; zero asks
  // for the server's default.
  absl::Duration lease_duration = absl::Seconds(60);

  // How long one ClaimTask waits on the server for a claimable task before
  // answering "nothing"; the server allows at most 30 s. After an empty
  // claim shorter than retry_delay the worker pauses for the difference, so
  // it never asks more often than once per retry_delay. On a stream, how
  // long an idle worker with exit_when_idle waits for an assignment: at
  // least 0.5 s, since a stream says nothing when nothing is claimable.
  // Default: 30 s.
  absl::Duration claim_wait = absl::Seconds(30);

  // Deadline of each call, added to claim_wait for ClaimTask. On a stream:
  // how long the answer to the attach may take, and the stream's end once
  // the worker has closed its side. Default: 10 s.
  absl::Duration rpc_timeout = absl::Seconds(10);

  // Pause before trying again after a call failed, or a stream broke, with a
  // transient code (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
  // ABORTED; for a stream also INTERNAL, UNKNOWN and CANCELLED, which is
  // what a cut connection looks like). Default: 1 s.
  absl::Duration retry_delay = absl::Seconds(1);

  // Run() returns after this many claimed tasks. Default: 0, no limit.
  int max_tasks = 0;

  // Run() returns when a claim's wait ends with nothing to claim.
  // Default: false, keep claiming until Stop().
  bool exit_when_idle = false;

  // Take tasks from a WorkerService.Work stream: assignments are pushed,
  // heartbeats and reports travel on it, and a running handler survives a
  // break (the next stream resumes the old one). When the server answers
  // UNIMPLEMENTED (no worker streams) before the stream gave anything,
  // Run() uses the unary calls instead, as it does with false.
  // Default: true.
  bool use_streams = true;

  // Called for every WorkerEvent, on the thread that called Run() and never
  // concurrently; may call Stop(). Default: none.
  std::function<void(const WorkerEvent&)> on_event;
};

// "hostname-pid" for this process, e.g. "build-7-4711".
std::string DefaultWorkerId();

class Worker;

// One claimed task, as the handler sees it. Owned by the Worker and valid
// only during the handler call. Thread-safe: heartbeats update it from the
// worker's thread while the handler reads it.
class TaskContext {
 public:
  TaskContext(const TaskContext&) = delete;
  TaskContext& operator=(const TaskContext&) = delete;

  // The task and its lease as ClaimTask returned them (status RUNNING). The
  // lease's expires_at is not updated; see lease_expires_at().
  const v1::Task& task() const { return task_; }
  const v1::Lease& lease() const { return lease_; }

  // When the lease runs out unless the next heartbeat extends it.
  absl::Time lease_expires_at() const ABSL_LOCKS_EXCLUDED(mu_);

  // True once the lease is lost: an operator cancelled it, it expired or was
  // reclaimed. On a stream the server says so at once; otherwise the next
  // heartbeat (every third of the lease) finds out. The handler should stop
  // soon; whatever it returns afterwards is dropped, because the server
  // would refuse it.
  bool cancelled() const ABSL_LOCKS_EXCLUDED(mu_);

  // Why the lease was lost ("cancelled", "expired", ...); "" while held.
  std::string cancel_reason() const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until cancelled() or `timeout` passes; returns cancelled(). A
  // handler that sleeps should sleep here.
  bool WaitForCancel(absl::Duration timeout) const ABSL_LOCKS_EXCLUDED(mu_);

  // True once Worker::Stop() was called. The worker still reports what the
  // handler returns (Stop drains); a handler that would rather not finish
  // returns CANCELLED, which gives the task back with ReleaseTask.
  bool stopping() const;

 private:
  friend class Worker;
  TaskContext(const Worker& worker, v1::Task task, v1::Lease lease);

  // Marks the lease lost (the first reason wins).
  void Lose(std::string reason) ABSL_LOCKS_EXCLUDED(mu_);
  void Extend(absl::Time expires_at) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const Worker& worker_;
  const v1::Task task_;
  const v1::Lease lease_;

  // Shared by the handler's thread and the worker's thread.
  mutable absl::Mutex mu_;
  absl::Time expires_at_ ABSL_GUARDED_BY(mu_);
  std::string lost_reason_ ABSL_GUARDED_BY(mu_);
  bool handler_done_ ABSL_GUARDED_BY(mu_) = false;
};

// Does the work for one task. What it returns decides the report:
//   OK(result)            CompleteTask(result): DONE.
//   CANCELLED             ReleaseTask: READY at once, the attempt not counted.
//   INVALID_ARGUMENT or   FailTask(retry = false): BLOCKED, since another
//   FAILED_PRECONDITION   attempt would fail the same way.
//   any other error       FailTask(retry = true): READY after a backoff while
//                         attempts are left, else BLOCKED.
// The error's message becomes the task's last_error. Nothing is reported
// once the lease is lost. The handler runs on a thread of its own, must not
// throw, and should watch cancelled().
using TaskHandler = std::function<absl::StatusOr<std::string>(TaskContext&)>;

// Takes tasks and runs a handler on each, one task at a time: take a task,
// run the handler on its own thread while Run()'s thread heartbeats, then
// report. On a stream (WorkerOptions::use_streams) the window is one lease:
// the server pushes the next assignment once the report committed. A stream
// broken by a transient code (a server restart, a cut connection) leaves the
// running handler alone; after retry_delay the worker attaches again,
// naming the old stream and the lease it holds, and sends again a report
// whose answer never came (the server answers DONE if the first one
// committed). Thread-safe: Stop() and stopping() may be called from any
// thread (but not from a signal handler); Run() from one thread at a time.
// Must outlive any Run() call.
class Worker {
 public:
  // `channel` must reach a kanband; the worker shares ownership of it.
  Worker(std::shared_ptr<grpc::ChannelInterface> channel, WorkerOptions options);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Processes tasks until Stop(), max_tasks, or (with exit_when_idle) an
  // empty claim; returns OK then. Transient call failures and stream breaks
  // are retried after retry_delay. Returns INVALID_ARGUMENT for bad options,
  // FAILED_PRECONDITION if Run() is already running, and the server's status
  // when ClaimTask or the stream fails with a non-transient code (NOT_FOUND
  // board, INVALID_ARGUMENT, PERMISSION_DENIED, ...); a task running then is
  // finished first, with unary heartbeats and report.
  absl::Status Run(const TaskHandler& handler) ABSL_LOCKS_EXCLUDED(mu_);

  // Asks Run() to return: claims nothing new and cancels a claim that is
  // waiting (closes an idle stream), but lets a running handler finish and
  // reports its outcome. Returns at once; sticky (a later Run() returns OK
  // at once).
  //
  // The server gives back a task it claimed for a call that was cancelled,
  // but a cancel that crosses the answer on the wire leaves that task RUNNING
  // until its lease expires and the server reclaims it.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  bool stopping() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Run() on a Work stream; defined in worker.cc.
  class StreamRun;

  // The unary loop: claims until Stop(), an empty claim with exit_when_idle,
  // or max_tasks, counting `processed` tasks as done already.
  absl::Status RunUnary(const TaskHandler& handler, int processed);
  // board, worker_id, labels, assignee and lease_duration from the options.
  v1::ClaimTaskRequest ClaimRequest() const;
  // Result of one claim: a task, nullptr when nothing was claimable, or an
  // error (CANCELLED when Stop() cut the wait short).
  absl::StatusOr<std::unique_ptr<TaskContext>> Claim() ABSL_LOCKS_EXCLUDED(mu_);
  // Runs the handler on its own thread and reports; never fails (problems
  // become events).
  void Process(TaskContext& context, const TaskHandler& handler);
  // Heartbeats until the handler is done, marking `context` lost when the
  // server says so or the lease runs out.
  void HeartbeatUntilDone(TaskContext& context);
  void Report(TaskContext& context, const absl::StatusOr<std::string>& outcome);
  // Sleeps `delay` unless Stop() comes first; returns stopping().
  bool SleepUnlessStopped(absl::Duration delay) ABSL_LOCKS_EXCLUDED(mu_);
  void Emit(WorkerEvent::Kind kind, const v1::Task& task, std::string detail) const;

  // Constant after construction.
  const std::shared_ptr<grpc::ChannelInterface> channel_;
  const std::unique_ptr<v1::KanbanService::Stub> tasks_;
  const std::unique_ptr<v1::HeartbeatService::Stub> heartbeats_;
  const std::unique_ptr<v1::WorkerService::Stub> streams_;
  const WorkerOptions options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  // The ClaimTask call in flight, cancelled by Stop(); owned by Claim().
  grpc::ClientContext* claim_call_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The stream loop running, woken by Stop(); owned by Run().
  StreamRun* stream_run_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_CPP_WORKER_H_
