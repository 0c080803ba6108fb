// Power cuts against the real Store, in both durability modes, with unsynced
// writes dropped or the last one torn: the database always reopens intact,
// FULL never loses an acknowledged write, NORMAL loses only writes
// acknowledged since the WAL's last sync (its checkpoint). The short form of
// powerloss_soak; the counts are printed for the record.
#include <iostream>
#include <tuple>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/durability/powerloss_harness.h"
#include "tests/support/temp_dir.h"

namespace kanban::testing {
namespace {

using CutMode = PowerLossVfs::CutMode;
using storage::SyncMode;

class PowerLossTest : public ::testing::TestWithParam<std::tuple<SyncMode, CutMode>> {
 protected:
  PowerCutResult Run(uint64_t seed, int cuts) {
    PowerCutOptions options;
    options.dir = dir_.path();
    options.mode = std::get<0>(GetParam());
    options.cut_mode = std::get<1>(GetParam());
    options.cuts = cuts;
    options.seed = seed;
    options.cuts_per_database = 6;
    PowerCutResult r = RunPowerCuts(options);
    std::cout << "cuts=" << r.cuts << " acked=" << r.acked << " lost=" << r.lost
              << " acked_since_wal_sync=" << r.acked_since_wal_sync
              << " corruptions=" << r.corruptions << " max_wal_bytes=" << r.max_wal_bytes
              << " avg_reopen_ms=" << (r.cuts > 0 ? r.reopen_ms_total / r.cuts : 0)
              << "\n";
    return r;
  }
  TempDir dir_;
};

TEST_P(PowerLossTest, ReopensIntactAndKeepsWhatWasSynced) {
  PowerCutResult r = Run(/*seed=*/42, /*cuts=*/12);
  std::string problems = absl::StrJoin(r.problems, "\n");
  ASSERT_EQ(r.cuts, 12) << problems;
  EXPECT_GT(r.acked, 0);
  EXPECT_EQ(r.corruptions, 0) << problems;
  EXPECT_EQ(r.inconsistencies, 0) << problems;
  // In every mode: nothing that a WAL sync had covered is lost.
  EXPECT_EQ(r.lost_after_sync, 0) << problems;
  if (std::get<0>(GetParam()) == SyncMode::kFull) {
    EXPECT_EQ(r.lost, 0) << problems;
  } else if (std::get<1>(GetParam()) == CutMode::kDropUnsynced) {
    // NORMAL does lose the writes after its last sync, and the harness
    // notices: a check that could not see a loss would prove nothing above.
    EXPECT_GT(r.lost, 0);
  }
  EXPECT_LE(r.lost, r.acked_since_wal_sync);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, PowerLossTest,
    ::testing::Combine(::testing::Values(SyncMode::kFull, SyncMode::kNormal),
                       ::testing::Values(CutMode::kDropUnsynced, CutMode::kTearLast)),
    [](const auto& info) {
      return std::string(std::get<0>(info.param) == SyncMode::kFull ? "Full" : "Normal") +
             (std::get<1>(info.param) == CutMode::kDropUnsynced ? "Drop" : "Tear");
    });

}  // namespace
}  // namespace kanban::testing
