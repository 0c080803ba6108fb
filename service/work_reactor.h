// One WorkerService.Work stream: a worker process's leases under a window.
//
// After the attach, the stream claims (through the Store, several claims in
// flight, so group commit puts them in one transaction) while it holds
// fewer leases than its window, and parks in ClaimWaiters when nothing is
// claimable, exactly as a waiting ClaimTask does. Outcomes and heartbeats
// read from the stream go to the Store at once (reads never wait for their
// answers); each is answered after its commit. Whatever is ready to send is
// gathered into one WorkResponse, so results and the assignments that
// replace the settled tasks travel together, with one write in flight.
//
// Decisions are made under the reactor's lock and carried out (Store calls,
// StartWrite, Finish) outside it, as in WatchReactor.
#ifndef KANBAN_SERVICE_WORK_REACTOR_H_
#define KANBAN_SERVICE_WORK_REACTOR_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kanban/v1/kanban.pb.h"
#include "service/claim_waiters.h"
#include "storage/store.h"

namespace kanban::service {

class WorkStreams;

class WorkReactor final
    : public grpc::ServerBidiReactor<v1::WorkRequest, v1::WorkResponse> {
 public:
  // Most claims one stream has in flight at once.
  static constexpr int kMaxClaimsInFlight = 16;
  static constexpr int kMaxOutstanding = 1000;

  // Everything passed must outlive the call. The reactor deletes itself
  // when the last reference goes (gRPC's is dropped in OnDone).
  WorkReactor(grpc::CallbackServerContext* ctx, storage::Store* store,
              ClaimWaiters* waiters, WorkStreams* streams, storage::Actor actor,
              std::string stream_id);

  // Registers with `streams` and reads the attach.
  void Start() ABSL_LOCKS_EXCLUDED(mu_);

  // The stream id sent in WorkAttached. Constant.
  const std::string& id() const { return stream_id_; }

  // Another stream of `worker_id` and `principal` resumes this one, which
  // the worker saw break first: ends this stream (ABORTED) and hands over
  // the assignments it sent and the worker never confirmed. Nothing when
  // this stream belongs to another worker.
  std::optional<std::vector<v1::ClaimTaskResponse>> Detach(const std::string& worker_id,
                                                           const std::string& principal)
      ABSL_LOCKS_EXCLUDED(mu_);

  // From WorkStreams' thread: ends a stream silent for two heartbeat
  // intervals.
  void OnTick(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // The server is shutting down: send go_away, then end with UNAVAILABLE.
  void GoAway() ABSL_LOCKS_EXCLUDED(mu_);
  // From WorkStreams::OnCommit: a committed change to a task this stream
  // holds. When it ended the lease (and not through an outcome of this
  // stream), the stream is told at once: LOST in `leases`.
  void OnTaskChanged(const storage::Event& event) ABSL_LOCKS_EXCLUDED(mu_);

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void OnReadDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnCancel() override ABSL_LOCKS_EXCLUDED(mu_);
  void OnDone() override;

 private:
  // What was decided under mu_; Execute carries it out without it.
  struct Action {
    bool read = false;
    bool write = false;
    int claims = 0;  // Claims to start.
    std::optional<grpc::Status> finish;
    std::vector<storage::Lease> give_back;          // Claimed but never sent.
    std::vector<storage::Lease> give_back_awaited;  // Likewise; ops in flight.
    std::optional<storage::Task> offer;             // A wake-up this stream did not use.
    bool cancel = false;                            // Cancel the call (silent worker).
    int unrefs = 0;                                 // References to drop, last.
  };
  // One outcome or heartbeat read from the stream, for the Store.
  struct Op {
    v1::WorkOutcome outcome;
    std::vector<storage::HeldLease> heartbeat;
    bool is_heartbeat = false;
  };
  // A lease this stream counts in its window.
  struct Held {
    storage::Lease lease;
    // The assignment as sent, until the worker confirms it (for a resume).
    std::optional<v1::ClaimTaskResponse> unconfirmed;
    // Pushed revocations: for leases this stream was given. A lease listed
    // with the attach (held from before) is only counted; its heartbeats
    // report its loss.
    bool tracked = true;
  };

  // The attach: validates it, takes over a resumed stream's assignments and
  // the leases listed with it (a heartbeat op in `ops`), and answers with
  // WorkAttached.
  absl::Status AttachLocked(v1::WorkRequest& request, std::vector<Op>* ops)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The outcomes, heartbeat and confirmations of a later message: ops for
  // the Store, or the first invalid field (then nothing is carried out).
  absl::Status ReadLocked(v1::WorkRequest& request, std::vector<Op>* ops)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The worker has the assignment with lease `token`.
  void ConfirmLocked(const std::string& token) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the assignments sent and not confirmed out of held_.
  std::vector<v1::ClaimTaskResponse> TakeUnconfirmedLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Claims to start now, and a write or finish if due.
  void PlanLocked(Action* action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the stream with `status`: at once when `drain` is false (what is
  // unsent is given back), else after the ops in flight are answered.
  void FinishSoonLocked(grpc::Status status, bool drain)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Execute(Action action, std::vector<Op> ops = {}) ABSL_LOCKS_EXCLUDED(mu_);
  void Claim(std::optional<storage::Task> trigger) ABSL_LOCKS_EXCLUDED(mu_);
  void OnClaim(absl::StatusOr<storage::ClaimResult> result,
               std::optional<storage::Task> trigger) ABSL_LOCKS_EXCLUDED(mu_);
  void OnWake(const storage::Task* trigger) ABSL_LOCKS_EXCLUDED(mu_);
  void RunOp(Op op) ABSL_LOCKS_EXCLUDED(mu_);
  // `settled_as`: the lease end reason this outcome leaves ("completed",
  // ...); a lease already ended so was ended by this outcome's first try.
  void OnOutcome(uint64_t op_id, const storage::HeldLease& held,
                 absl::string_view settled_as, absl::StatusOr<storage::Task> task)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Answers op `op_id` DONE with the task as it is now (an outcome sent
  // again after its first try committed).
  // `replacing`: not a release (see replacing_).
  void AnswerAgain(uint64_t op_id, const storage::HeldLease& held, bool replacing)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Adds `result` to the outbox and forgets the op.
  void AnswerLocked(v1::WorkResult result, const storage::HeldLease& held, bool settled,
                    bool replacing) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnHeartbeat(absl::StatusOr<std::vector<storage::LeaseStatus>> statuses)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the lease on `task_id` if it is the one with `token`.
  void DropLocked(const std::string& task_id, const std::string& token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::CallbackServerContext* const ctx_;
  storage::Store* const store_;
  ClaimWaiters* const waiters_;
  WorkStreams* const streams_;
  const storage::Actor actor_;
  const std::string stream_id_;

  std::atomic<int> refs_{1};

  v1::WorkRequest in_;  // Read into; touched only between StartRead and OnReadDone.

  absl::Mutex mu_;
  bool attached_ ABSL_GUARDED_BY(mu_) = false;
  storage::ClaimRequest claim_ ABSL_GUARDED_BY(mu_);
  int window_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration interval_ ABSL_GUARDED_BY(mu_);
  absl::Time last_heard_ ABSL_GUARDED_BY(mu_);
  // The leases this stream was given and has not yet seen settled or lost
  // (each tracked in streams_), and its outcomes in flight by task.
  std::map<std::string, Held> held_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> unconfirmed_ ABSL_GUARDED_BY(mu_);  // Token -> task.
  std::map<std::string, int> settling_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> replacing_ ABSL_GUARDED_BY(mu_);  // Completes, fails.
  int claims_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int ops_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<uint64_t> waiter_ ABSL_GUARDED_BY(mu_);  // Parked in ClaimWaiters.
  // What goes out next, and the assignments in it (given back if it never does).
  v1::WorkResponse outbox_ ABSL_GUARDED_BY(mu_);
  std::vector<storage::Lease> outbox_leases_ ABSL_GUARDED_BY(mu_);
  v1::WorkResponse out_ ABSL_GUARDED_BY(mu_);  // Being written.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);  // Due.
  bool drain_ ABSL_GUARDED_BY(mu_) = true;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called.
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_WORK_REACTOR_H_
