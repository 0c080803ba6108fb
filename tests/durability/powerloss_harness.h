// Power-cut cycles against the real Store: several threads create, move,
// update, claim and complete tasks (group commit at work), recording every
// write acknowledged before the cut; the power is cut at a random moment
// (by another thread after a random number of acknowledgements, or by the
// VFS right after a random number of file writes, i.e. mid-commit or
// mid-checkpoint); the Store is closed, the files are set back to what the
// simulated disk kept, the database is reopened with the normal storage
// code and checked. Shared by powerloss_test (asserts) and powerloss_soak
// (prints a table).
#ifndef KANBAN_TESTS_DURABILITY_POWERLOSS_HARNESS_H_
#define KANBAN_TESTS_DURABILITY_POWERLOSS_HARNESS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "storage/durability.h"
#include "tests/durability/powerloss_vfs.h"

namespace kanban::testing {

struct PowerCutOptions {
  std::string dir;  // Databases are made under it. Required.
  storage::SyncMode mode = storage::SyncMode::kFull;
  int wal_autocheckpoint = 0;  // Pages; 0: the mode's default.
  PowerLossVfs::CutMode cut_mode = PowerLossVfs::CutMode::kDropUnsynced;
  int cuts = 10;
  uint64_t seed = 1;
  int threads = 4;
  // A fresh database after this many cuts, so checks stay cheap.
  int cuts_per_database = 10;
  // A cut comes after a number of acknowledged writes in [min, max] (or,
  // every other cut, after a number of file writes in [1, 4 * max]).
  int min_acks = 10;
  int max_acks = 300;
  std::string vfs_name = "powerloss";
};

struct PowerCutResult {
  int cuts = 0;
  // Writes (creates, moves, updates, claims, completions) acknowledged
  // before their cut, and how many of them the reopened database lacked.
  int64_t acked = 0;
  int64_t lost = 0;
  // Acknowledged after the WAL's last sync before the cut: the writes
  // NORMAL may lose. Summed over the cuts.
  int64_t acked_since_wal_sync = 0;
  // Lost writes acknowledged before a later WAL sync, or present in the
  // database before this cut's cycle began: lost in spite of a sync. Must
  // be 0 in every mode.
  int64_t lost_after_sync = 0;
  // Reopen failed or PRAGMA integrity_check was not "ok".
  int corruptions = 0;
  // Event log gaps, or a task whose newest event's snapshot is not its row.
  int inconsistencies = 0;
  int64_t max_wal_bytes = 0;
  double reopen_ms_total = 0;
  // Descriptions of the first few problems, for test output.
  std::vector<std::string> problems;
};

// Runs `options.cuts` cut-reopen-check cycles. Never aborts on a finding;
// every finding is counted.
PowerCutResult RunPowerCuts(const PowerCutOptions& options);

}  // namespace kanban::testing

#endif  // KANBAN_TESTS_DURABILITY_POWERLOSS_HARNESS_H_
