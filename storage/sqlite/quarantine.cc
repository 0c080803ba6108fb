#include "storage/sqlite/quarantine.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/sqlite/fsync.h"

namespace kanban::storage {
namespace fs = std::filesystem;
namespace {

constexpr const char* kSuffixes[] = {"", "-wal", "-shm"};

std::string SetPrefix(const std::string& db_path) {
  return fs::path(db_path).filename().string() + ".corrupt-";
}

bool SameContent(const fs::path& a, const fs::path& b) {
  std::error_code error;
  bool a_exists = fs::exists(a, error);
  bool b_exists = fs::exists(b, error);
  if (a_exists != b_exists) return false;
  if (!a_exists) return true;
  if (fs::file_size(a, error) != fs::file_size(b, error) || error) return false;
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  return std::equal(std::istreambuf_iterator<char>(fa), std::istreambuf_iterator<char>(),
                    std::istreambuf_iterator<char>(fb));
}

// The -shm is a cache SQLite rebuilds; a set is "the same" when the database
// and its WAL are.
bool SameAsSet(const std::string& db_path, const fs::path& set) {
  std::string name = fs::path(db_path).filename().string();
  return SameContent(db_path, set / name) &&
         SameContent(db_path + "-wal", set / (name + "-wal"));
}

}  // namespace

std::vector<std::string> ListQuarantineSets(const std::string& db_path) {
  std::vector<std::string> sets;
  fs::path dir = fs::path(db_path).parent_path();
  if (dir.empty()) dir = ".";
  std::string prefix = SetPrefix(db_path);
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, prefix) && !absl::EndsWith(name, ".tmp") &&
        entry.is_directory(error)) {
      sets.push_back(entry.path().string());
    }
  }
  // The timestamp in the name sorts oldest first.
  std::sort(sets.begin(), sets.end());
  return sets;
}

absl::StatusOr<QuarantineSet> Quarantine(const std::string& db_path, absl::Time now,
                                         int keep) {
  keep = std::max(keep, 1);
  QuarantineSet result;
  std::vector<std::string> sets = ListQuarantineSets(db_path);
  if (!sets.empty() && SameAsSet(db_path, sets.back())) {
    result.dir = sets.back();
    result.reused = true;
    return result;
  }

  std::string stamp = absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone());
  std::string dir = db_path + ".corrupt-" + stamp;
  // Two corruptions within one second: keep both, distinguishable.
  for (int n = 2; fs::exists(dir); ++n) {
    dir = absl::StrCat(db_path, ".corrupt-", stamp, "-", n);
  }
  // Copy into a temporary folder and rename it: a set is whole or absent.
  std::string tmp = dir + ".tmp";
  std::error_code error;
  fs::remove_all(tmp, error);
  fs::create_directories(tmp, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("quarantine: cannot create ", tmp, ": ", error.message()));
  }
  std::string name = fs::path(db_path).filename().string();
  for (const char* suffix : kSuffixes) {
    fs::path from = db_path + suffix;
    if (!fs::exists(from, error)) continue;
    fs::path to = fs::path(tmp) / (name + suffix);
    fs::copy_file(from, to, error);
    if (error) {
      return absl::UnavailableError(
          absl::StrCat("quarantine: cannot copy ", from.string(), ": ", error.message()));
    }
    if (absl::Status s = SyncPath(to.string()); !s.ok()) return s;
  }
  fs::rename(tmp, dir, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("quarantine: cannot rename ", tmp, ": ", error.message()));
  }
  (void)SyncParent(dir);
  result.dir = dir;

  sets = ListQuarantineSets(db_path);
  for (size_t i = 0; i + keep < sets.size(); ++i) fs::remove_all(sets[i], error);
  return result;
}

}  // namespace kanban::storage
