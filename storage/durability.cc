#include "storage/durability.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/status_macros.h"

namespace kanban::storage {

absl::string_view SyncModeName(SyncMode mode) {
  return mode == SyncMode::kFull ? "FULL" : "NORMAL";
}

absl::StatusOr<DurabilitySettings> ResolveDurability(std::optional<absl::string_view> env,
                                                     absl::string_view flag) {
  DurabilitySettings settings;
  if (!flag.empty()) {
    absl::string_view value = absl::StripAsciiWhitespace(flag);
    if (absl::EqualsIgnoreCase(value, "full")) {
      settings.mode = SyncMode::kFull;
    } else if (!absl::EqualsIgnoreCase(value, "normal")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--synchronous: must be full or normal, got \"", flag, "\""));
    }
    settings.source = "--synchronous";
  } else if (env.has_value()) {
    absl::string_view value = absl::StripAsciiWhitespace(*env);
    settings.source = kSynchronousModeEnv;
    if (absl::EqualsIgnoreCase(value, "full")) {
      settings.mode = SyncMode::kFull;
    } else if (!value.empty() && !absl::EqualsIgnoreCase(value, "normal")) {
      settings.warning = absl::StrCat(kSynchronousModeEnv, "=\"", *env,
                                      "\" is not full or normal; using NORMAL");
    }
  }
  settings.wal_autocheckpoint = settings.mode == SyncMode::kFull
                                    ? kFullWalAutocheckpoint
                                    : kDefaultWalAutocheckpoint;
  return settings;
}

absl::StatusOr<DurabilitySettings> DurabilityFromEnvironment(absl::string_view flag) {
  const char* env = std::getenv(kSynchronousModeEnv);
  return ResolveDurability(
      env == nullptr ? std::nullopt : std::optional<absl::string_view>(env), flag);
}

absl::Status ApplyDurability(Connection& db, const DurabilitySettings& settings) {
  // Check before set: re-issuing journal_mode=WAL on a file that is already
  // WAL is exactly the probe that once made transient state look like
  // corruption. Only a file that is not WAL yet is switched.
  KANBAN_ASSIGN_OR_RETURN(std::string mode, db.QueryText("PRAGMA journal_mode"));
  if (!absl::EqualsIgnoreCase(mode, "wal")) {
    KANBAN_ASSIGN_OR_RETURN(mode, db.QueryText("PRAGMA journal_mode=WAL"));
    if (!absl::EqualsIgnoreCase(mode, "wal")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database ", db.path(), " refused WAL journal mode (stays ", mode, ")"));
    }
  }
  KANBAN_RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys=ON"));
  // A batch touches many pages; with SQLite's default 2 MB cache the writer
  // spills dirty pages into the WAL mid-transaction. 64 MB keeps a batch in
  // memory until COMMIT writes it once.
  KANBAN_RETURN_IF_ERROR(db.Exec("PRAGMA cache_size=-65536"));
  KANBAN_RETURN_IF_ERROR(db.Exec(settings.mode == SyncMode::kFull
                                     ? "PRAGMA synchronous=FULL"
                                     : "PRAGMA synchronous=NORMAL"));
  KANBAN_RETURN_IF_ERROR(
      db.Exec(absl::StrCat("PRAGMA wal_autocheckpoint=", settings.wal_autocheckpoint)));
  return absl::OkStatus();
}

absl::StatusOr<DurabilityInfo> ReadDurability(Connection& db) {
  DurabilityInfo info;
  info.backend = "sqlite";
  KANBAN_ASSIGN_OR_RETURN(info.server_version, db.QueryText("SELECT sqlite_version()"));
  KANBAN_ASSIGN_OR_RETURN(int64_t sync, db.QueryInt("PRAGMA synchronous"));
  switch (sync) {
    case 0:
      info.synchronous = "OFF";
      break;
    case 1:
      info.synchronous = "NORMAL";
      break;
    case 2:
      info.synchronous = "FULL";
      break;
    case 3:
      info.synchronous = "EXTRA";
      break;
    default:
      info.synchronous = absl::StrCat(sync);
  }
  KANBAN_ASSIGN_OR_RETURN(int64_t checkpoint, db.QueryInt("PRAGMA wal_autocheckpoint"));
  info.wal_autocheckpoint = static_cast<int>(checkpoint);
  KANBAN_ASSIGN_OR_RETURN(info.journal_mode, db.QueryText("PRAGMA journal_mode"));
  KANBAN_ASSIGN_OR_RETURN(int64_t version, db.QueryInt("PRAGMA user_version"));
  info.schema_version = static_cast<int>(version);
  return info;
}

}  // namespace kanban::storage
