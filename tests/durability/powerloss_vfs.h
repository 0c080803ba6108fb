// A test-only SQLite VFS that wraps the default one and can (1) simulate a
// power cut: every write that was not followed by a sync of its file is lost,
// or the last one lands torn, and (2) inject faults: xWrite failing with
// SQLITE_FULL or SQLITE_IOERR_WRITE, xSync failing with SQLITE_IOERR_FSYNC.
//
// The durable-state model (what a disk without a battery keeps):
// - Tracked files are the main database, its -wal and a rollback -journal
//   (anything SQLite opens by name except temp files). The -shm is not
//   durable state: it is rebuilt from the WAL, and Restore deletes it.
// - A file's durable image is its content at its last successful xSync
//   (size and truncations included). A file that existed when first opened
//   through the VFS (after Register or Restore) counts as synced as it was.
// - A file created through the VFS and never synced does not survive a cut
//   (no directory entry reached the disk): Restore deletes it. The unix VFS
//   syncs the directory on the first sync of a new WAL or journal, so one
//   sync is what makes a new file's name durable too.
// - xDelete is durable at once (ext4 and xfs journal an unlink promptly; a
//   lost unlink of a fully checkpointed WAL would only replay pages the
//   database already holds).
//
// Thread-safety: every method is thread-safe. Faults and counters are
// atomics; tracked-file state is under one mutex, which every write, sync,
// truncate and delete of a tracked file takes, so a cut is ordered with
// respect to each of them: an operation either finished before the cut or
// is dropped.
#ifndef KANBAN_TESTS_DURABILITY_POWERLOSS_VFS_H_
#define KANBAN_TESTS_DURABILITY_POWERLOSS_VFS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

struct sqlite3_vfs;

namespace kanban::testing {

class PowerLossVfs {
 public:
  // How the unsynced writes fare at a cut.
  enum class CutMode {
    // Every write since the file's last sync is lost.
    kDropUnsynced,
    // The disk wrote in order and the power failed in the middle of the
    // last write: every unsynced write before it landed; of the last one
    // (across all files) only the first 256 bytes are new (half a 512-byte
    // sector for a page-aligned write); the rest of its range keeps the old
    // bytes (zeros past the old end of file).
    kTearLast,
  };

  // Registers (once per name; later calls return the same object) a VFS
  // named `name` that wraps SQLite's default VFS. It is not made the
  // default: pass the name to sqlite3_open_v2 (Store::Options::vfs). The
  // object lives for the rest of the process.
  static PowerLossVfs* Register(const std::string& name);

  const std::string& name() const { return name_; }

  // ---- Power ----------------------------------------------------------------
  // Cuts the power now: from here on every write, sync, truncate and delete
  // through this VFS is dropped and reports success, so that closing the
  // database (checkpoint, WAL delete) cannot change the simulated disk.
  void Cut() ABSL_LOCKS_EXCLUDED(mu_);
  // Cuts the power right after the `n`th write (n >= 1) from now to a
  // tracked file: that write is the last one before the cut. 0 disarms.
  void CutAfterWrites(int64_t n) ABSL_LOCKS_EXCLUDED(mu_);
  bool cut() const { return cut_.load(); }
  // Bytes written to tracked files and not synced yet (at a cut: the bytes
  // the cut loses in kDropUnsynced).
  int64_t UnsyncedBytes() const ABSL_LOCKS_EXCLUDED(mu_);

  // After a cut, with every connection through this VFS closed: rewrites
  // each tracked file to its durable image (see CutMode), deletes files that
  // never became durable and every tracked database's -shm, then forgets
  // all state and turns the power back on. The files on disk are then the
  // new durable baseline. Errors: INTERNAL naming a file that could not be
  // rewritten.
  absl::Status Restore(CutMode mode) ABSL_LOCKS_EXCLUDED(mu_);
  // Without a cut: forgets all state (the files as they are become the
  // durable baseline), powers on, clears faults and counters. Call only
  // while no connection through this VFS is open.
  void Reset() ABSL_LOCKS_EXCLUDED(mu_);

  // ---- Faults ---------------------------------------------------------------
  // From now on xWrite (FailWrites) or xSync (FailSyncs) returns `rc`
  // instead of doing anything, for files whose name ends with `suffix`
  // (empty: every file), once `after` more matching calls have passed.
  // rc 0 clears the fault.
  void FailWrites(int rc, const std::string& suffix = "", int64_t after = 0)
      ABSL_LOCKS_EXCLUDED(fault_mu_);
  void FailSyncs(int rc, const std::string& suffix = "", int64_t after = 0)
      ABSL_LOCKS_EXCLUDED(fault_mu_);
  void ClearFaults() ABSL_LOCKS_EXCLUDED(fault_mu_);

  // ---- Counters (since Register or the last Reset/Restore) -----------------
  // Successful xWrites and xSyncs of tracked files.
  int64_t writes() const { return writes_.load(); }
  int64_t syncs() const { return syncs_.load(); }
  // Successful xSyncs of "-wal" files: each makes every commit before it
  // durable.
  int64_t wal_syncs() const { return wal_syncs_.load(); }
  int64_t write_faults() const { return write_faults_.load(); }  // Injected.
  int64_t sync_faults() const { return sync_faults_.load(); }    // Injected.
  // The largest size any "-wal" file reached.
  int64_t max_wal_bytes() const { return max_wal_bytes_.load(); }

 private:
  struct Fault {
    std::atomic<int> rc{0};
    std::atomic<int64_t> pass{0};  // Matching calls still let through.
    std::string suffix;            // Guarded by fault_mu_.
  };
  struct Op {
    int64_t seq;     // Global order of unsynced operations.
    int64_t offset;  // Write: where; truncate: the new size.
    std::string data;
    bool truncate;
  };
  struct FileState {
    bool durable_exists = false;
    std::string durable;  // Content as of the last sync.
    std::vector<Op> unsynced;
    bool main_db = false;  // Its -shm is deleted at Restore.
  };
  // The per-open-file object SQLite allocates for us (defined in the .cc).
  friend struct PowerLossFile;
  friend struct VfsGlue;

  explicit PowerLossVfs(std::string name);

  // Hooks for the glue in the .cc. Each returns a SQLite result code.
  void Track(const std::string& path, bool main_db) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns the fault code for a call on `path`, or 0 to go ahead.
  int CheckFault(Fault& fault, const char* path) ABSL_LOCKS_EXCLUDED(fault_mu_);

  const std::string name_;
  sqlite3_vfs* base_ = nullptr;  // The wrapped default VFS.
  sqlite3_vfs* vfs_ = nullptr;   // Ours, registered with SQLite.

  std::atomic<bool> cut_{false};
  std::atomic<int64_t> writes_{0}, syncs_{0}, wal_syncs_{0};
  std::atomic<int64_t> write_faults_{0}, sync_faults_{0};
  std::atomic<int64_t> max_wal_bytes_{0};

  absl::Mutex fault_mu_;
  Fault write_fault_, sync_fault_;

  mutable absl::Mutex mu_;
  std::map<std::string, FileState> files_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t cut_after_writes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kanban::testing

#endif  // KANBAN_TESTS_DURABILITY_POWERLOSS_VFS_H_
