// The operator's durability choice: KANBAN_SYNCHRONOUS_MODE or the
// --synchronous flag, and the pragmas it turns into on the writer connection.
#ifndef KANBAN_STORAGE_DURABILITY_H_
#define KANBAN_STORAGE_DURABILITY_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/db.h"
#include "storage/types.h"

namespace kanban::storage {

inline constexpr char kSynchronousModeEnv[] = "KANBAN_SYNCHRONOUS_MODE";
inline constexpr int kFullWalAutocheckpoint = 100;
inline constexpr int kDefaultWalAutocheckpoint = 1000;  // SQLite's default.

enum class SyncMode { kNormal, kFull };

struct DurabilitySettings {
  SyncMode mode = SyncMode::kNormal;  // Default: NORMAL.
  // Pages; FULL uses kFullWalAutocheckpoint, NORMAL SQLite's default.
  int wal_autocheckpoint = kDefaultWalAutocheckpoint;
  // Where the choice came from, for the start-up log: "default",
  // "KANBAN_SYNCHRONOUS_MODE", "--synchronous".
  std::string source = "default";
  // Non-empty when the environment held a value that was not understood.
  std::string warning;
};

// Resolves the effective settings. `env` is the variable's value (nullopt when
// unset): trimmed, case-insensitive "full" selects FULL; anything else NORMAL
// (with a warning for values other than "normal" and ""). `flag`, when not
// empty, overrides the variable and must be "full" or "normal" (any case);
// otherwise INVALID_ARGUMENT naming --synchronous.
absl::StatusOr<DurabilitySettings> ResolveDurability(std::optional<absl::string_view> env,
                                                     absl::string_view flag);

// Reads the variable from the process environment, then resolves.
absl::StatusOr<DurabilitySettings> DurabilityFromEnvironment(absl::string_view flag);

// Prepares a read-write connection: WAL (set only when the file is not WAL
// already), foreign keys, synchronous and wal_autocheckpoint.
absl::Status ApplyDurability(Connection& db, const DurabilitySettings& settings);

// Reads back synchronous, wal_autocheckpoint, journal_mode and user_version
// from `db` (per-connection pragmas: pass the writer's connection).
absl::StatusOr<DurabilityInfo> ReadDurability(Connection& db);

absl::string_view SyncModeName(SyncMode mode);

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_DURABILITY_H_
