#include "service/claim_waiters.h"

#include <algorithm>

#include "storage/rules.h"

namespace kanban::service {
namespace {

std::string BoardOf(const storage::ClaimRequest& filter) {
  return filter.board.empty() ? std::string(storage::kDefaultBoard) : filter.board;
}

}  // namespace

ClaimWaiters::ClaimWaiters() {
  timer_ = std::thread([this] { TimerLoop(); });
}

ClaimWaiters::~ClaimWaiters() {
  Shutdown();
  timer_.join();
}

bool ClaimWaiters::Matches(const storage::ClaimRequest& filter,
                           const storage::Task& task) {
  if (!task.assignee.empty() && task.assignee != filter.assignee) return false;
  return std::all_of(
      filter.labels.begin(), filter.labels.end(), [&](const std::string& l) {
        return std::find(task.labels.begin(), task.labels.end(), l) != task.labels.end();
      });
}

std::optional<uint64_t> ClaimWaiters::Add(const storage::ClaimRequest& filter,
                                          int64_t observed_seq, absl::Time wake_at,
                                          Wake wake) {
  const std::string board = BoardOf(filter);
  absl::MutexLock lock(&mu_);
  if (shutdown_) return std::nullopt;
  auto seen = ready_seq_.find(board);
  if (seen != ready_seq_.end() && seen->second > observed_seq) return std::nullopt;
  uint64_t id = next_id_++;
  waiters_.emplace(id, Waiter{filter, wake_at, std::move(wake)});
  by_board_[board].push_back(id);
  by_time_.emplace(wake_at, id);
  return id;
}

bool ClaimWaiters::Remove(uint64_t id) {
  absl::MutexLock lock(&mu_);
  return TakeLocked(id) != nullptr;
}

ClaimWaiters::Wake ClaimWaiters::TakeLocked(uint64_t id) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return nullptr;
  Wake wake = std::move(it->second.wake);
  const std::string board = BoardOf(it->second.filter);
  by_time_.erase({it->second.wake_at, id});
  auto& ids = by_board_[board];
  ids.remove(id);
  if (ids.empty()) by_board_.erase(board);
  waiters_.erase(it);
  return wake;
}

void ClaimWaiters::Reschedule(uint64_t id, absl::Time wake_at) {
  Waiter& waiter = waiters_.at(id);
  if (wake_at >= waiter.wake_at) return;
  by_time_.erase({waiter.wake_at, id});
  waiter.wake_at = wake_at;
  by_time_.emplace(wake_at, id);
}

void ClaimWaiters::DispatchLocked(
    const storage::Task& task, absl::Time now,
    std::vector<std::pair<Wake, const storage::Task*>>* wakes) {
  auto board = by_board_.find(task.board);
  if (board == by_board_.end()) return;
  std::vector<uint64_t> matching;
  for (uint64_t id : board->second) {
    if (Matches(waiters_.at(id).filter, task)) matching.push_back(id);
  }
  if (matching.empty()) return;
  if (task.not_before.has_value() && *task.not_before > now) {
    // Claimable later: make sure everyone who could take it is awake then.
    // (The store's clock differs from real time only in tests, which do not
    // mix fake clocks with waiting claims.)
    for (uint64_t id : matching) Reschedule(id, *task.not_before);
  } else {
    wakes->emplace_back(TakeLocked(matching.front()), &task);  // The oldest.
  }
}

void ClaimWaiters::OnCommit(const std::vector<storage::Event>& events) {
  std::vector<std::pair<Wake, const storage::Task*>> wakes;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    for (const storage::Event& event : events) {
      if (!event.task.has_value() || event.task->status != storage::TaskStatus::kReady) {
        continue;
      }
      const storage::Task& task = *event.task;
      ready_seq_[task.board] = std::max(ready_seq_[task.board], event.seq);
      DispatchLocked(task, now, &wakes);
    }
  }
  // `events` outlives the calls, so the trigger pointers stay valid.
  for (auto& [wake, trigger] : wakes) wake(trigger);
}

void ClaimWaiters::Offer(const storage::Task& task) {
  std::vector<std::pair<Wake, const storage::Task*>> wakes;
  {
    absl::MutexLock lock(&mu_);
    DispatchLocked(task, absl::Now(), &wakes);
  }
  for (auto& [wake, trigger] : wakes) wake(trigger);
}

void ClaimWaiters::Shutdown() {
  std::vector<Wake> wakes;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    while (!waiters_.empty()) wakes.push_back(TakeLocked(waiters_.begin()->first));
  }
  for (Wake& wake : wakes) wake(nullptr);
}

bool ClaimWaiters::shut_down() const {
  absl::MutexLock lock(&mu_);
  return shutdown_;
}

size_t ClaimWaiters::size() const {
  absl::MutexLock lock(&mu_);
  return waiters_.size();
}

void ClaimWaiters::TimerLoop() {
  absl::MutexLock lock(&mu_);
  while (!shutdown_) {
    const absl::Time sleep_until =
        by_time_.empty() ? absl::InfiniteFuture() : by_time_.begin()->first;
    // Wake early if shut down or if an earlier waiter arrived.
    struct Args {
      ClaimWaiters* self;
      absl::Time sleep_until;
    } args{this, sleep_until};
    mu_.AwaitWithDeadline(
        absl::Condition(
            +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
              return a->self->shutdown_ ||
                     (!a->self->by_time_.empty() &&
                      a->self->by_time_.begin()->first < a->sleep_until);
            },
            &args),
        sleep_until);
    std::vector<Wake> due;
    const absl::Time now = absl::Now();
    while (!by_time_.empty() && by_time_.begin()->first <= now) {
      due.push_back(TakeLocked(by_time_.begin()->second));
    }
    if (due.empty()) continue;
    mu_.Unlock();
    for (Wake& wake : due) wake(nullptr);
    mu_.Lock();
  }
}

}  // namespace kanban::service
