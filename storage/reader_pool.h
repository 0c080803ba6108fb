// A small pool of read-only connections, each used by its own thread. WAL
// readers never block the writer and are never blocked by it, and no read
// runs on a caller's (for example a gRPC reaction's) thread.
#ifndef KANBAN_STORAGE_READER_POOL_H_
#define KANBAN_STORAGE_READER_POOL_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/db.h"

namespace kanban::storage {

class ReaderPool {
 public:
  // Called on a reader thread with its connection, or with nullptr when the
  // pool is closed (the job must then answer its caller with an error).
  using Job = std::function<void(Connection*)>;

  // Opens a connection for a reader (read-only where the backend allows).
  using OpenConnection = std::function<absl::StatusOr<std::unique_ptr<Connection>>()>;
  // Opens `threads` connections with `open` and starts a thread for each.
  static absl::StatusOr<std::unique_ptr<ReaderPool>> Open(int threads,
                                                          const OpenConnection& open);
  ~ReaderPool();  // Closes.

  // Queues a job. Thread-safe.
  void Submit(Job job) ABSL_LOCKS_EXCLUDED(mu_);

  // Runs the jobs already queued, then stops the threads. Idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ReaderPool() = default;
  void Run(Connection* db) ABSL_LOCKS_EXCLUDED(mu_);

  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<std::thread> threads_;
  absl::Mutex close_mu_;

  absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_READER_POOL_H_
