#include "storage/reader_pool.h"

#include <pthread.h>

#include <utility>

#include "storage/status_macros.h"

namespace kanban::storage {

absl::StatusOr<std::unique_ptr<ReaderPool>> ReaderPool::Open(int threads,
                                                             const OpenConnection& open) {
  std::unique_ptr<ReaderPool> pool(new ReaderPool());
  for (int i = 0; i < std::max(threads, 1); ++i) {
    KANBAN_ASSIGN_OR_RETURN(std::unique_ptr<Connection> db, open());
    pool->connections_.push_back(std::move(db));
  }
  for (auto& db : pool->connections_) {
    Connection* raw = db.get();
    pool->threads_.emplace_back([p = pool.get(), raw] {
      pthread_setname_np(pthread_self(), "kanban-reader");
      p->Run(raw);
    });
  }
  return pool;
}

ReaderPool::~ReaderPool() { Close(); }

void ReaderPool::Submit(Job job) {
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      queue_.push_back(std::move(job));
      return;
    }
  }
  job(nullptr);
}

void ReaderPool::Close() {
  absl::MutexLock close_lock(&close_mu_);
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  connections_.clear();
}

void ReaderPool::Run(Connection* db) {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ReaderPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->closing_ || !p->queue_.empty();
          },
          this));
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    // A server connection that broke comes back here (at most every so
    // often); while it cannot, the job's own query fails UNAVAILABLE.
    (void)db->EnsureConnected();
    job(db);
  }
}

}  // namespace kanban::storage
