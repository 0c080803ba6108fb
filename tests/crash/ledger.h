// What the crash harness's writers were told: every acknowledged task
// version, comment and lease, across all cycles, plus the requests whose
// answer never came. The checks compare the database against it.
//
// Thread-safe: writer threads record into it concurrently; the checks read
// it (through the const accessors) only after the writers have joined.
#ifndef KANBAN_TESTS_CRASH_LEDGER_H_
#define KANBAN_TESTS_CRASH_LEDGER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "kanban/v1/kanban.pb.h"
#include "tests/crash/task_state.h"

namespace kanban::crash {

struct AckedComment {
  std::string task_id;
  std::string author;
  std::string body;
};

struct HeldLease {
  std::string task_id;
  std::string token;
};

// Per-cycle counts, reset by StartCycle.
struct CycleCounts {
  int64_t acked = 0;              // Writes answered OK.
  int64_t rejected = 0;           // Writes refused as the API says they may be.
  int64_t unacked = 0;            // Writes whose call failed because kanband died.
  std::set<std::string> touched;  // Tasks with an acknowledged version.
};

class Ledger {
 public:
  // Records an acknowledged version of a task. A second acknowledgement of
  // the same version with other fields is itself a violation.
  void AckTask(const kanban::v1::Task& task) ABSL_LOCKS_EXCLUDED(mu_);
  void AckComment(const kanban::v1::Comment& comment) ABSL_LOCKS_EXCLUDED(mu_);
  // A claim: its task version, and the lease a later writer may finish.
  void AckClaim(const kanban::v1::ClaimTaskResponse& claim) ABSL_LOCKS_EXCLUDED(mu_);
  void Rejected() ABSL_LOCKS_EXCLUDED(mu_);
  void Unacked() ABSL_LOCKS_EXCLUDED(mu_);
  // A create whose answer never came; retried (same idempotency key) after
  // the restart, when it must succeed.
  void UnackedCreate(const kanban::v1::CreateTaskRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Violation(const std::string& what) ABSL_LOCKS_EXCLUDED(mu_);

  // The newest acknowledged version of a random known task, recent ones
  // more often; nullopt before the first acknowledged create.
  std::optional<kanban::v1::Task> PickTask(std::mt19937_64& rng) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes and returns a lease to finish, if any is held.
  std::optional<HeldLease> TakeLease(std::mt19937_64& rng) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<kanban::v1::CreateTaskRequest> TakeUnackedCreates()
      ABSL_LOCKS_EXCLUDED(mu_);

  // Starts a cycle's counts; returns the previous cycle's.
  CycleCounts StartCycle() ABSL_LOCKS_EXCLUDED(mu_);

  // For the checks, only while no writer runs (hence no locking: the
  // references outlive any lock).
  const std::map<std::string, std::map<int64_t, TaskState>>& acked_tasks() const
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return acked_;
  }
  const std::map<int64_t, AckedComment>& acked_comments() const
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return comments_;
  }
  const std::vector<kanban::v1::CreateTaskRequest>& unacked_creates() const
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return unacked_creates_;
  }
  const CycleCounts& counts() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return counts_; }
  const std::vector<std::string>& violations() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return violations_;
  }
  int64_t total_acked() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return total_acked_; }
  int64_t total_unacked() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return total_unacked_; }

 private:
  void AckTaskLocked(const kanban::v1::Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // task id -> version -> the fields acknowledged at that version.
  std::map<std::string, std::map<int64_t, TaskState>> acked_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, kanban::v1::Task> latest_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> ids_ ABSL_GUARDED_BY(mu_);  // In order of creation.
  std::map<int64_t, AckedComment> comments_ ABSL_GUARDED_BY(mu_);
  std::vector<HeldLease> leases_ ABSL_GUARDED_BY(mu_);
  std::vector<kanban::v1::CreateTaskRequest> unacked_creates_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> violations_ ABSL_GUARDED_BY(mu_);
  CycleCounts counts_ ABSL_GUARDED_BY(mu_);
  int64_t total_acked_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t total_unacked_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kanban::crash

#endif  // KANBAN_TESTS_CRASH_LEDGER_H_
