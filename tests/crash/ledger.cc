#include "tests/crash/ledger.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace kanban::crash {

void Ledger::AckTaskLocked(const kanban::v1::Task& task) {
  const TaskState state = FromProto(task);
  auto [it, inserted] = acked_[task.id()].emplace(task.version(), state);
  if (!inserted && it->second != state) {
    violations_.push_back(absl::StrCat(
        "task ", task.id(), " version ", task.version(),
        " was acknowledged twice with different fields: ", Diff(it->second, state)));
  }
  auto latest = latest_.find(task.id());
  if (latest == latest_.end()) {
    ids_.push_back(task.id());
    latest_.emplace(task.id(), task);
  } else if (latest->second.version() < task.version()) {
    latest->second = task;
  }
  counts_.touched.insert(task.id());
  ++counts_.acked;
  ++total_acked_;
}

void Ledger::AckTask(const kanban::v1::Task& task) {
  absl::MutexLock lock(&mu_);
  AckTaskLocked(task);
}

void Ledger::AckComment(const kanban::v1::Comment& comment) {
  absl::MutexLock lock(&mu_);
  comments_[comment.id()] =
      AckedComment{comment.task_id(), comment.author(), comment.body()};
  ++counts_.acked;
  ++total_acked_;
}

void Ledger::AckClaim(const kanban::v1::ClaimTaskResponse& claim) {
  absl::MutexLock lock(&mu_);
  AckTaskLocked(claim.task());
  leases_.push_back(HeldLease{claim.lease().task_id(), claim.lease().token()});
}

void Ledger::Rejected() {
  absl::MutexLock lock(&mu_);
  ++counts_.rejected;
}

void Ledger::Unacked() {
  absl::MutexLock lock(&mu_);
  ++counts_.unacked;
  ++total_unacked_;
}

void Ledger::UnackedCreate(const kanban::v1::CreateTaskRequest& request) {
  absl::MutexLock lock(&mu_);
  unacked_creates_.push_back(request);
}

void Ledger::Violation(const std::string& what) {
  absl::MutexLock lock(&mu_);
  violations_.push_back(what);
}

std::optional<kanban::v1::Task> Ledger::PickTask(std::mt19937_64& rng) {
  absl::MutexLock lock(&mu_);
  if (ids_.empty()) return std::nullopt;
  // Mostly the newest tasks, so that tasks get long version histories; now
  // and then any task, so old ones keep changing across cycles.
  size_t lo = 0;
  if (rng() % 4 != 0 && ids_.size() > 64) lo = ids_.size() - 64;
  const std::string& id = ids_[lo + rng() % (ids_.size() - lo)];
  return latest_.at(id);
}

std::optional<HeldLease> Ledger::TakeLease(std::mt19937_64& rng) {
  absl::MutexLock lock(&mu_);
  if (leases_.empty()) return std::nullopt;
  const size_t i = rng() % leases_.size();
  HeldLease lease = std::move(leases_[i]);
  leases_[i] = std::move(leases_.back());
  leases_.pop_back();
  return lease;
}

std::vector<kanban::v1::CreateTaskRequest> Ledger::TakeUnackedCreates() {
  absl::MutexLock lock(&mu_);
  return std::exchange(unacked_creates_, {});
}

CycleCounts Ledger::StartCycle() {
  absl::MutexLock lock(&mu_);
  return std::exchange(counts_, {});
}

}  // namespace kanban::crash
