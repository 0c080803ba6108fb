// An exclusive advisory lock (flock) on "<database>.lock", held for as long
// as a Store is open, so that a second kanband on the same file refuses to
// start instead of becoming a second writer. The lock dies with the process,
// so a crashed kanband never leaves a stale lock behind.
#ifndef KANBAN_STORAGE_SQLITE_FILE_LOCK_H_
#define KANBAN_STORAGE_SQLITE_FILE_LOCK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace kanban::storage {

class FileLock {
 public:
  // Takes the lock on `path` (created if missing) without waiting.
  // FAILED_PRECONDITION naming the holder's pid when another process (or
  // another Store in this process) holds it.
  static absl::StatusOr<std::unique_ptr<FileLock>> Acquire(const std::string& path);
  ~FileLock();  // Releases the lock.
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  const int fd_;
};

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_SQLITE_FILE_LOCK_H_
