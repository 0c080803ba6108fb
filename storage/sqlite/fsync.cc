#include "storage/sqlite/fsync.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace kanban::storage {

absl::Status SyncPath(const std::string& path) {
  const std::string target = path.empty() ? "." : path;
  int fd = open(target.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open ", target, ": ", strerror(errno)));
  }
  int rc = fsync(fd);
  int error = errno;
  close(fd);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("fsync ", target, ": ", strerror(error)));
  }
  return absl::OkStatus();
}

absl::Status SyncParent(const std::string& path) {
  return SyncPath(std::filesystem::path(path).parent_path().string());
}

}  // namespace kanban::storage
