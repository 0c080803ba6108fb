// WorkStreams: the open WorkerService.Work streams. Its thread ticks each
// stream (a stream silent for two heartbeat intervals is ended); Shutdown
// sends every stream a go-away. The bound on open streams keeps a flood of
// attaches from exhausting memory.
//
// It also knows which stream holds which task, so that a committed change
// that ends a stream's lease by other means (an operator's move, a sweep,
// a unary call) is pushed to that stream at once (OnCommit).
//
// And it keeps, for a resume grace, the assignments a broken stream sent
// but the worker never confirmed (Park): re-attaching with that stream's id
// takes them (Resume); past the grace they are released (the attempt does
// not count). Kept in memory: a restarted server has none, and the leases
// then run to their expiry.
#ifndef KANBAN_SERVICE_WORK_STREAMS_H_
#define KANBAN_SERVICE_WORK_STREAMS_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kanban/v1/kanban.pb.h"
#include "storage/store.h"
#include "storage/types.h"

namespace kanban::service {

class WorkReactor;

class WorkStreams {
 public:
  static constexpr size_t kDefaultMaxStreams = 10000;

  explicit WorkStreams(size_t max_streams = kDefaultMaxStreams,
                       absl::Duration tick = absl::Milliseconds(100));
  ~WorkStreams();  // Shutdown, then joins the thread.

  // Registers `stream` (taking a reference), or UNAVAILABLE once shut down,
  // RESOURCE_EXHAUSTED when max_streams are open. Thread-safe.
  absl::Status Add(WorkReactor* stream) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(WorkReactor* stream) ABSL_LOCKS_EXCLUDED(mu_);

  // A new stream id: unique in this process, not guessable across them.
  std::string NextId() ABSL_LOCKS_EXCLUDED(mu_);

  // `stream` holds a lease on `task_id` (Track) or no longer does (Untrack:
  // only if `stream` is the one tracked). Thread-safe; never calls streams.
  void Track(const std::string& task_id, WorkReactor* stream)
      ABSL_LOCKS_EXCLUDED(held_mu_);
  void Untrack(const std::string& task_id, WorkReactor* stream)
      ABSL_LOCKS_EXCLUDED(held_mu_);

  // From the Store's on_commit (the writer thread): hands each event that
  // may end a lease to the stream holding its task. Does not block.
  void OnCommit(const std::vector<storage::Event>& events) ABSL_LOCKS_EXCLUDED(held_mu_);

  // A broken stream's unconfirmed assignments.
  struct Parked {
    storage::Store* store = nullptr;  // Releases them past `until`.
    storage::Actor actor;             // The stream's, for the release.
    std::string worker_id;
    std::vector<v1::ClaimTaskResponse> assignments;
    absl::Time until;
  };
  // Keeps `parked` under `stream_id` until parked.until (dropped once shut
  // down: the leases then run to their expiry). Thread-safe.
  void Park(std::string stream_id, Parked parked) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes the assignments parked under `stream_id` for `worker_id` and
  // `principal`; nothing when there are none (never parked, past the grace,
  // already resumed, another worker). When the stream is still open (the
  // worker saw the break first), it is ended and its unconfirmed
  // assignments are taken from it. Thread-safe; may lock that stream.
  std::optional<std::vector<v1::ClaimTaskResponse>> Resume(const std::string& stream_id,
                                                           const std::string& worker_id,
                                                           const std::string& principal)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Sends every stream a go-away (they end with UNAVAILABLE once what they
  // have in flight is answered); later Adds fail. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Releases the parked assignments whose grace ended by `now`.
  void ReleaseExpired(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // The open streams, each with a reference the caller drops.
  std::vector<WorkReactor*> Snapshot() ABSL_LOCKS_EXCLUDED(mu_);

  const size_t max_streams_;
  const absl::Duration tick_;
  const uint64_t id_base_;

  absl::Mutex mu_;
  std::set<WorkReactor*> streams_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Parked> parked_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;

  // Taken after a stream's own lock (Track, Untrack), never before.
  absl::Mutex held_mu_;
  absl::flat_hash_map<std::string, WorkReactor*> held_ ABSL_GUARDED_BY(held_mu_);

  std::thread thread_;
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_WORK_STREAMS_H_
