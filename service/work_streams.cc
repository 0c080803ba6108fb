#include "service/work_streams.h"

#include <pthread.h>

#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/work_reactor.h"

namespace kanban::service {

WorkStreams::WorkStreams(size_t max_streams, absl::Duration tick)
    : max_streams_(max_streams), tick_(tick), id_base_(absl::BitGen()()) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kanban-streams");
    Loop();
  });
}

WorkStreams::~WorkStreams() {
  Shutdown();
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

absl::Status WorkStreams::Add(WorkReactor* stream) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return absl::UnavailableError("server shutting down");
  if (streams_.size() >= max_streams_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "worker streams: ", streams_.size(), " open (at most ", max_streams_, ")"));
  }
  stream->Ref();  // Dropped in Remove.
  streams_.insert(stream);
  return absl::OkStatus();
}

void WorkStreams::Remove(WorkReactor* stream) {
  bool removed;
  {
    absl::MutexLock lock(&mu_);
    removed = streams_.erase(stream) > 0;
  }
  if (removed) stream->Unref();
}

std::string WorkStreams::NextId() {
  absl::MutexLock lock(&mu_);
  return absl::StrFormat("ws-%016x-%d", id_base_, ++next_id_);
}

void WorkStreams::ReleaseExpired(absl::Time now) {
  // Under mu_, so that Shutdown (before the store closes) waits for these
  // calls to be queued. A queued call never calls back into this class.
  absl::MutexLock lock(&mu_);
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (it->second.until > now) {
      ++it;
      continue;
    }
    for (const v1::ClaimTaskResponse& assignment : it->second.assignments) {
      it->second.store->ReleaseTask(
          {assignment.task().id(), assignment.lease().token()},
          [](absl::StatusOr<storage::Task>) {}, it->second.actor);
    }
    parked_.erase(it++);
  }
}

std::vector<WorkReactor*> WorkStreams::Snapshot() {
  absl::MutexLock lock(&mu_);
  std::vector<WorkReactor*> streams(streams_.begin(), streams_.end());
  for (WorkReactor* stream : streams) stream->Ref();
  return streams;
}

void WorkStreams::Track(const std::string& task_id, WorkReactor* stream) {
  absl::MutexLock lock(&held_mu_);
  held_[task_id] = stream;
}

void WorkStreams::Untrack(const std::string& task_id, WorkReactor* stream) {
  absl::MutexLock lock(&held_mu_);
  auto it = held_.find(task_id);
  if (it != held_.end() && it->second == stream) held_.erase(it);
}

void WorkStreams::OnCommit(const std::vector<storage::Event>& events) {
  std::vector<std::pair<WorkReactor*, const storage::Event*>> found;
  {
    absl::MutexLock lock(&held_mu_);
    if (held_.empty()) return;
    for (const storage::Event& event : events) {
      // A lease ends only with the task leaving RUNNING or running again
      // under another attempt; the stream decides which.
      if (event.task_id.empty() || event.kind == "created" || event.kind == "commented") {
        continue;
      }
      auto it = held_.find(event.task_id);
      if (it == held_.end()) continue;
      it->second->Ref();
      found.emplace_back(it->second, &event);
    }
  }
  for (auto& [stream, event] : found) {
    stream->OnTaskChanged(*event);
    stream->Unref();
  }
}

void WorkStreams::Park(std::string stream_id, Parked parked) {
  absl::MutexLock lock(&mu_);
  if (shutdown_ || parked.assignments.empty()) return;
  parked_[std::move(stream_id)] = std::move(parked);
}

std::optional<std::vector<v1::ClaimTaskResponse>> WorkStreams::Resume(
    const std::string& stream_id, const std::string& worker_id,
    const std::string& principal) {
  WorkReactor* open = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = parked_.find(stream_id); it != parked_.end()) {
      if (it->second.worker_id != worker_id || it->second.actor.principal != principal) {
        return std::nullopt;
      }
      std::vector<v1::ClaimTaskResponse> assignments = std::move(it->second.assignments);
      parked_.erase(it);
      return assignments;
    }
    for (WorkReactor* stream : streams_) {
      if (stream->id() == stream_id) {
        open = stream;
        open->Ref();
        break;
      }
    }
  }
  if (open == nullptr) return std::nullopt;
  std::optional<std::vector<v1::ClaimTaskResponse>> taken =
      open->Detach(worker_id, principal);
  open->Unref();
  return taken;
}

void WorkStreams::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    parked_.clear();  // The leases run to their expiry.
  }
  for (WorkReactor* stream : Snapshot()) {
    stream->GoAway();
    stream->Unref();
  }
}

void WorkStreams::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), tick_);
      if (stop_) return;
    }
    const absl::Time now = absl::Now();
    ReleaseExpired(now);
    for (WorkReactor* stream : Snapshot()) {
      stream->OnTick(now);
      stream->Unref();
    }
  }
}

}  // namespace kanban::service
