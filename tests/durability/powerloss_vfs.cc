#include "tests/durability/powerloss_vfs.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kanban::testing {
namespace {

// What lands of the last write in CutMode::kTearLast: half a sector.
constexpr size_t kTornBytes = 256;

// Reads a whole file; false if it does not exist.
bool ReadWholeFile(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

bool WriteWholeFile(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  // No fsync: the machine itself never loses power; only the simulated
  // disk does, and this is its new content.
  bool ok = done == data.size();
  return ::close(fd) == 0 && ok;
}

// Writes the first `limit` bytes of `data` at `offset`, growing the image
// with zeros to the write's full end (a torn append still moved the size).
void ApplyWrite(std::string& image, int64_t offset, const std::string& data,
                size_t limit) {
  size_t end = static_cast<size_t>(offset) + data.size();
  if (image.size() < end) image.resize(end, '\0');
  std::memcpy(&image[static_cast<size_t>(offset)], data.data(),
              std::min(limit, data.size()));
}

}  // namespace

// SQLite allocates szOsFile bytes per open file; ours holds this struct,
// constructed in place, followed by the wrapped VFS's own file object.
struct PowerLossFile {
  sqlite3_file base;  // Must be first: SQLite sees this.
  PowerLossVfs* vfs;
  sqlite3_file* real;
  std::string path;  // Empty for temp files.
  bool tracked;
  bool wal;
};

// The C entry points SQLite calls; they reach PowerLossVfs's privates.
struct VfsGlue {
  static PowerLossVfs* Owner(sqlite3_vfs* vfs) {
    return static_cast<PowerLossVfs*>(vfs->pAppData);
  }
  static PowerLossFile* File(sqlite3_file* f) {
    return reinterpret_cast<PowerLossFile*>(f);
  }

  // ---- sqlite3_io_methods ----
  static int Close(sqlite3_file* f) {
    PowerLossFile* p = File(f);
    int rc =
        p->real->pMethods != nullptr ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
    p->~PowerLossFile();
    return rc;
  }
  static int Read(sqlite3_file* f, void* buf, int amount, sqlite3_int64 offset) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xRead(p->real, buf, amount, offset);
  }
  static int Write(sqlite3_file* f, const void* buf, int amount, sqlite3_int64 offset) {
    PowerLossFile* p = File(f);
    PowerLossVfs* v = p->vfs;
    const char* name = p->path.empty() ? nullptr : p->path.c_str();
    if (!p->tracked) {
      if (int rc = v->CheckFault(v->write_fault_, name); rc != 0) {
        v->write_faults_++;
        return rc;
      }
      return p->real->pMethods->xWrite(p->real, buf, amount, offset);
    }
    absl::MutexLock lock(&v->mu_);
    if (v->cut_.load()) return SQLITE_OK;
    if (int rc = v->CheckFault(v->write_fault_, name); rc != 0) {
      v->write_faults_++;
      return rc;
    }
    int rc = p->real->pMethods->xWrite(p->real, buf, amount, offset);
    if (rc != SQLITE_OK) return rc;
    v->files_[p->path].unsynced.push_back(
        {v->next_seq_++, offset,
         std::string(static_cast<const char*>(buf), static_cast<size_t>(amount)), false});
    v->writes_++;
    if (p->wal) {
      int64_t end = offset + amount;
      int64_t seen = v->max_wal_bytes_.load();
      while (end > seen && !v->max_wal_bytes_.compare_exchange_weak(seen, end)) {
      }
    }
    if (v->cut_after_writes_ > 0 && --v->cut_after_writes_ == 0) v->cut_.store(true);
    return SQLITE_OK;
  }
  static int Truncate(sqlite3_file* f, sqlite3_int64 size) {
    PowerLossFile* p = File(f);
    if (!p->tracked) return p->real->pMethods->xTruncate(p->real, size);
    PowerLossVfs* v = p->vfs;
    absl::MutexLock lock(&v->mu_);
    if (v->cut_.load()) return SQLITE_OK;
    int rc = p->real->pMethods->xTruncate(p->real, size);
    if (rc == SQLITE_OK) {
      v->files_[p->path].unsynced.push_back({v->next_seq_++, size, std::string(), true});
    }
    return rc;
  }
  static int Sync(sqlite3_file* f, int flags) {
    PowerLossFile* p = File(f);
    PowerLossVfs* v = p->vfs;
    const char* name = p->path.empty() ? nullptr : p->path.c_str();
    if (!p->tracked) {
      if (int rc = v->CheckFault(v->sync_fault_, name); rc != 0) {
        v->sync_faults_++;
        return rc;
      }
      return p->real->pMethods->xSync(p->real, flags);
    }
    absl::MutexLock lock(&v->mu_);
    if (v->cut_.load()) return SQLITE_OK;
    if (int rc = v->CheckFault(v->sync_fault_, name); rc != 0) {
      v->sync_faults_++;
      return rc;
    }
    int rc = p->real->pMethods->xSync(p->real, flags);
    if (rc != SQLITE_OK) return rc;
    PowerLossVfs::FileState& state = v->files_[p->path];
    for (const PowerLossVfs::Op& op : state.unsynced) {
      if (op.truncate) {
        state.durable.resize(static_cast<size_t>(op.offset), '\0');
      } else {
        ApplyWrite(state.durable, op.offset, op.data, op.data.size());
      }
    }
    state.unsynced.clear();
    state.durable_exists = true;
    v->syncs_++;
    if (p->wal) v->wal_syncs_++;
    return SQLITE_OK;
  }
  static int FileSize(sqlite3_file* f, sqlite3_int64* size) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xFileSize(p->real, size);
  }
  static int Lock(sqlite3_file* f, int level) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xLock(p->real, level);
  }
  static int Unlock(sqlite3_file* f, int level) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xUnlock(p->real, level);
  }
  static int CheckReservedLock(sqlite3_file* f, int* out) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xCheckReservedLock(p->real, out);
  }
  static int FileControl(sqlite3_file* f, int op, void* arg) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xFileControl(p->real, op, arg);
  }
  static int SectorSize(sqlite3_file* f) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xSectorSize(p->real);
  }
  static int DeviceCharacteristics(sqlite3_file* f) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xDeviceCharacteristics(p->real);
  }
  // The -shm goes straight to the real file: it is not durable state.
  static int ShmMap(sqlite3_file* f, int region, int size, int extend,
                    void volatile** out) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xShmMap(p->real, region, size, extend, out);
  }
  static int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xShmLock(p->real, offset, n, flags);
  }
  static void ShmBarrier(sqlite3_file* f) {
    PowerLossFile* p = File(f);
    p->real->pMethods->xShmBarrier(p->real);
  }
  static int ShmUnmap(sqlite3_file* f, int delete_flag) {
    PowerLossFile* p = File(f);
    return p->real->pMethods->xShmUnmap(p->real, delete_flag);
  }

  // Version 2: no xFetch/xUnfetch, so SQLite never memory-maps the database
  // and every page it writes goes through xWrite, where the cut can see it.
  static constexpr sqlite3_io_methods kMethods = {2,
                                                  Close,
                                                  Read,
                                                  Write,
                                                  Truncate,
                                                  Sync,
                                                  FileSize,
                                                  Lock,
                                                  Unlock,
                                                  CheckReservedLock,
                                                  FileControl,
                                                  SectorSize,
                                                  DeviceCharacteristics,
                                                  ShmMap,
                                                  ShmLock,
                                                  ShmBarrier,
                                                  ShmUnmap,
                                                  nullptr,
                                                  nullptr};

  // ---- sqlite3_vfs ----
  static int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* f, int flags,
                  int* out_flags) {
    PowerLossVfs* v = Owner(vfs);
    auto* p = new (f) PowerLossFile;
    p->base.pMethods = nullptr;
    p->vfs = v;
    p->real = reinterpret_cast<sqlite3_file*>(p + 1);
    p->real->pMethods = nullptr;
    p->path = name != nullptr ? name : "";
    constexpr int kDurable =
        SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL;
    p->tracked = name != nullptr && (flags & kDurable) != 0;
    p->wal = (flags & SQLITE_OPEN_WAL) != 0;
    // Before the real open, which may create the file.
    if (p->tracked) v->Track(p->path, (flags & SQLITE_OPEN_MAIN_DB) != 0);
    int rc = v->base_->xOpen(v->base_, name, p->real, flags, out_flags);
    if (rc != SQLITE_OK || p->real->pMethods == nullptr) {
      // SQLite calls xClose only when pMethods is set.
      p->~PowerLossFile();
      return rc;
    }
    p->base.pMethods = &kMethods;
    return SQLITE_OK;
  }
  static int Delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
    PowerLossVfs* v = Owner(vfs);
    absl::MutexLock lock(&v->mu_);
    if (v->cut_.load()) return SQLITE_OK;
    int rc = v->base_->xDelete(v->base_, name, sync_dir);
    if (rc == SQLITE_OK || rc == SQLITE_IOERR_DELETE_NOENT) {
      auto it = v->files_.find(name);
      if (it != v->files_.end()) {
        it->second.durable_exists = false;
        it->second.durable.clear();
        it->second.unsynced.clear();
      }
    }
    return rc;
  }
  static sqlite3_vfs* Base(sqlite3_vfs* vfs) { return Owner(vfs)->base_; }
  static int Access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
    return Base(vfs)->xAccess(Base(vfs), name, flags, out);
  }
  static int FullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
    return Base(vfs)->xFullPathname(Base(vfs), name, n, out);
  }
  static void* DlOpen(sqlite3_vfs* vfs, const char* name) {
    return Base(vfs)->xDlOpen(Base(vfs), name);
  }
  static void DlError(sqlite3_vfs* vfs, int n, char* out) {
    Base(vfs)->xDlError(Base(vfs), n, out);
  }
  static void (*DlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
    return Base(vfs)->xDlSym(Base(vfs), handle, symbol);
  }
  static void DlClose(sqlite3_vfs* vfs, void* handle) {
    Base(vfs)->xDlClose(Base(vfs), handle);
  }
  static int Randomness(sqlite3_vfs* vfs, int n, char* out) {
    return Base(vfs)->xRandomness(Base(vfs), n, out);
  }
  static int Sleep(sqlite3_vfs* vfs, int micros) {
    return Base(vfs)->xSleep(Base(vfs), micros);
  }
  static int CurrentTime(sqlite3_vfs* vfs, double* out) {
    return Base(vfs)->xCurrentTime(Base(vfs), out);
  }
  static int GetLastError(sqlite3_vfs* vfs, int n, char* out) {
    return Base(vfs)->xGetLastError(Base(vfs), n, out);
  }
  static int CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
    return Base(vfs)->xCurrentTimeInt64(Base(vfs), out);
  }
  static int SetSystemCall(sqlite3_vfs* vfs, const char* name, sqlite3_syscall_ptr call) {
    return Base(vfs)->xSetSystemCall(Base(vfs), name, call);
  }
  static sqlite3_syscall_ptr GetSystemCall(sqlite3_vfs* vfs, const char* name) {
    return Base(vfs)->xGetSystemCall(Base(vfs), name);
  }
  static const char* NextSystemCall(sqlite3_vfs* vfs, const char* name) {
    return Base(vfs)->xNextSystemCall(Base(vfs), name);
  }
};

constexpr sqlite3_io_methods VfsGlue::kMethods;

PowerLossVfs::PowerLossVfs(std::string name) : name_(std::move(name)) {}

PowerLossVfs* PowerLossVfs::Register(const std::string& name) {
  static absl::Mutex registry_mu(absl::kConstInit);
  static auto* registry = new std::map<std::string, PowerLossVfs*>();
  absl::MutexLock lock(&registry_mu);
  auto it = registry->find(name);
  if (it != registry->end()) return it->second;

  sqlite3_initialize();
  auto* self = new PowerLossVfs(name);
  self->base_ = sqlite3_vfs_find(nullptr);
  auto* vfs = new sqlite3_vfs();
  sqlite3_vfs* base = self->base_;
  // Versions 1 to 3 of sqlite3_vfs; 3.40's unix VFS is version 3.
  vfs->iVersion = std::min(base->iVersion, 3);
  size_t file_size = sizeof(PowerLossFile);
  file_size = (file_size + 7) & ~size_t{7};  // Keep the real file aligned.
  vfs->szOsFile = static_cast<int>(file_size + static_cast<size_t>(base->szOsFile));
  vfs->mxPathname = base->mxPathname;
  vfs->zName = self->name_.c_str();
  vfs->pAppData = self;
  vfs->xOpen = VfsGlue::Open;
  vfs->xDelete = VfsGlue::Delete;
  vfs->xAccess = VfsGlue::Access;
  vfs->xFullPathname = VfsGlue::FullPathname;
  vfs->xDlOpen = VfsGlue::DlOpen;
  vfs->xDlError = VfsGlue::DlError;
  vfs->xDlSym = VfsGlue::DlSym;
  vfs->xDlClose = VfsGlue::DlClose;
  vfs->xRandomness = VfsGlue::Randomness;
  vfs->xSleep = VfsGlue::Sleep;
  vfs->xCurrentTime = VfsGlue::CurrentTime;
  vfs->xGetLastError = VfsGlue::GetLastError;
  if (vfs->iVersion >= 2) vfs->xCurrentTimeInt64 = VfsGlue::CurrentTimeInt64;
  if (vfs->iVersion >= 3) {
    vfs->xSetSystemCall = VfsGlue::SetSystemCall;
    vfs->xGetSystemCall = VfsGlue::GetSystemCall;
    vfs->xNextSystemCall = VfsGlue::NextSystemCall;
  }
  self->vfs_ = vfs;
  sqlite3_vfs_register(vfs, /*makeDflt=*/0);
  (*registry)[name] = self;
  return self;
}

void PowerLossVfs::Track(const std::string& path, bool main_db) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = files_.try_emplace(path);
  if (main_db) it->second.main_db = true;
  if (!inserted) return;
  // First sight of this file: what is on disk now counts as durable.
  it->second.durable_exists = ReadWholeFile(path, &it->second.durable);
}

int PowerLossVfs::CheckFault(Fault& fault, const char* path) {
  int rc = fault.rc.load();
  if (rc == 0) return 0;
  {
    absl::MutexLock lock(&fault_mu_);
    if (!fault.suffix.empty() &&
        (path == nullptr || !absl::EndsWith(path, fault.suffix))) {
      return 0;
    }
  }
  int64_t pass = fault.pass.load();
  while (pass > 0) {
    if (fault.pass.compare_exchange_weak(pass, pass - 1)) return 0;
  }
  return rc;
}

void PowerLossVfs::FailWrites(int rc, const std::string& suffix, int64_t after) {
  absl::MutexLock lock(&fault_mu_);
  write_fault_.suffix = suffix;
  write_fault_.pass.store(after);
  write_fault_.rc.store(rc);
}

void PowerLossVfs::FailSyncs(int rc, const std::string& suffix, int64_t after) {
  absl::MutexLock lock(&fault_mu_);
  sync_fault_.suffix = suffix;
  sync_fault_.pass.store(after);
  sync_fault_.rc.store(rc);
}

void PowerLossVfs::ClearFaults() {
  FailWrites(0);
  FailSyncs(0);
}

void PowerLossVfs::Cut() {
  absl::MutexLock lock(&mu_);
  cut_.store(true);
}

void PowerLossVfs::CutAfterWrites(int64_t n) {
  absl::MutexLock lock(&mu_);
  cut_after_writes_ = n;
}

int64_t PowerLossVfs::UnsyncedBytes() const {
  absl::MutexLock lock(&mu_);
  int64_t bytes = 0;
  for (const auto& [path, state] : files_) {
    for (const Op& op : state.unsynced) bytes += static_cast<int64_t>(op.data.size());
  }
  return bytes;
}

absl::Status PowerLossVfs::Restore(CutMode mode) {
  absl::MutexLock lock(&mu_);
  // The globally last unsynced write, torn in kTearLast.
  int64_t torn_seq = -1;
  if (mode == CutMode::kTearLast) {
    for (const auto& [path, state] : files_) {
      if (!state.unsynced.empty() && !state.unsynced.back().truncate) {
        torn_seq = std::max(torn_seq, state.unsynced.back().seq);
      }
    }
  }
  absl::Status status;
  for (auto& [path, state] : files_) {
    if (state.main_db) ::unlink((path + "-shm").c_str());
    if (!state.durable_exists) {
      // Never synced: its directory entry never reached the disk.
      if (::unlink(path.c_str()) != 0 && errno != ENOENT && status.ok()) {
        status =
            absl::InternalError(absl::StrCat("unlink ", path, ": ", strerror(errno)));
      }
      continue;
    }
    std::string image = std::move(state.durable);
    if (mode == CutMode::kTearLast) {
      for (const Op& op : state.unsynced) {
        if (op.truncate) {
          image.resize(static_cast<size_t>(op.offset), '\0');
        } else {
          ApplyWrite(image, op.offset, op.data,
                     op.seq == torn_seq ? kTornBytes : op.data.size());
        }
      }
    }
    if (!WriteWholeFile(path, image) && status.ok()) {
      status = absl::InternalError(absl::StrCat("rewrite ", path, ": ", strerror(errno)));
    }
  }
  files_.clear();
  cut_after_writes_ = 0;
  writes_ = syncs_ = wal_syncs_ = write_faults_ = sync_faults_ = 0;
  max_wal_bytes_ = 0;
  cut_.store(false);
  return status;
}

void PowerLossVfs::Reset() {
  {
    absl::MutexLock lock(&mu_);
    files_.clear();
    cut_after_writes_ = 0;
    writes_ = syncs_ = wal_syncs_ = write_faults_ = sync_faults_ = 0;
    max_wal_bytes_ = 0;
    cut_.store(false);
  }
  ClearFaults();
}

}  // namespace kanban::testing
