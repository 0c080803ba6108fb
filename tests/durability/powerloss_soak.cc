// Power-cut soak: many cut-reopen-check cycles against the real Store through
// the power-loss VFS, for each durability mode and both wal_autocheckpoint
// values (100 and 1000 pages), printing one row each: acknowledged writes,
// how many a cut lost, corruptions, the largest WAL and the mean reopen
// (recovery) time. Exits 1 if any row broke an invariant (a corruption, an
// inconsistent event log, a loss in FULL, or a loss of anything a sync had
// covered), so the suite's short run checks as well as prints.
//
//   powerloss_soak [--cuts=N] [--mode=normal|full|both] [--tear] [--seed=S]
//                  [--threads=N] [--dir=PATH]
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "tests/durability/powerloss_harness.h"

namespace kanban::testing {
namespace {

struct Config {
  int cuts = 100;
  std::string mode = "both";
  bool tear = false;
  uint64_t seed = 1;
  int threads = 4;
  std::string dir = "/tmp";
};

bool Row(const Config& config, storage::SyncMode mode, int checkpoint,
         const std::string& dir) {
  PowerCutOptions options;
  options.dir = dir;
  options.mode = mode;
  options.wal_autocheckpoint = checkpoint;
  options.cut_mode = config.tear ? PowerLossVfs::CutMode::kTearLast
                                 : PowerLossVfs::CutMode::kDropUnsynced;
  options.cuts = config.cuts;
  options.seed = config.seed;
  options.threads = config.threads;
  PowerCutResult r = RunPowerCuts(options);
  bool full = mode == storage::SyncMode::kFull;
  absl::PrintF("%-6s %5d %-4s %5d %8d %6d %12d %11d %7d %13d %10.2f\n",
               full ? "FULL" : "NORMAL", checkpoint, config.tear ? "tear" : "drop",
               r.cuts, r.acked, r.lost, r.acked_since_wal_sync, r.corruptions,
               r.inconsistencies, r.max_wal_bytes,
               r.cuts > 0 ? r.reopen_ms_total / r.cuts : 0.0);
  std::fflush(stdout);
  for (const std::string& p : r.problems) absl::FPrintF(stderr, "  problem: %s\n", p);
  bool ok = r.cuts == config.cuts && r.corruptions == 0 && r.inconsistencies == 0 &&
            r.lost_after_sync == 0 && (!full || r.lost == 0);
  if (!ok)
    absl::FPrintF(stderr, "  ^ invariant broken (lost after a sync: %d)\n",
                  r.lost_after_sync);
  return ok;
}

int Main(int argc, char** argv) {
  Config config;
  const char* usage =
      "usage: powerloss_soak [--cuts=N] [--mode=normal|full|both] [--tear] [--seed=S] "
      "[--threads=N] [--dir=PATH]\n";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      size_t n = std::strlen(flag);
      return arg.compare(0, n, flag) == 0 ? arg.c_str() + n : nullptr;
    };
    if (arg == "--tear") {
      config.tear = true;
    } else if (const char* v = value("--cuts=")) {
      if (!absl::SimpleAtoi(v, &config.cuts) || config.cuts <= 0) return 2;
    } else if (const char* v = value("--mode=")) {
      config.mode = v;
      if (config.mode != "normal" && config.mode != "full" && config.mode != "both") {
        std::fputs(usage, stderr);
        return 2;
      }
    } else if (const char* v = value("--seed=")) {
      if (!absl::SimpleAtoi(v, &config.seed)) return 2;
    } else if (const char* v = value("--threads=")) {
      if (!absl::SimpleAtoi(v, &config.threads) || config.threads <= 0) return 2;
    } else if (const char* v = value("--dir=")) {
      config.dir = v;
    } else {
      std::fputs(usage, stderr);
      return 2;
    }
  }
  std::string pattern = config.dir + "/powerloss-soak-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    absl::FPrintF(stderr, "mkdtemp %s: %s\n", pattern, std::strerror(errno));
    return 2;
  }
  std::string dir = buffer.data();

  absl::PrintF("powerloss_soak: %d cuts per row, %d writer threads, seed %d, %s\n",
               config.cuts, config.threads, config.seed,
               config.tear ? "last unsynced write torn" : "unsynced writes dropped");
  absl::PrintF("%-6s %5s %-4s %5s %8s %6s %12s %11s %7s %13s %10s\n", "mode", "ckpt",
               "cut", "cuts", "acked", "lost", "since_sync", "corruptions", "incons",
               "max_wal_bytes", "reopen_ms");
  bool ok = true;
  for (storage::SyncMode mode : {storage::SyncMode::kNormal, storage::SyncMode::kFull}) {
    bool full = mode == storage::SyncMode::kFull;
    if (config.mode != "both" && config.mode != (full ? "full" : "normal")) continue;
    for (int checkpoint :
         {storage::kFullWalAutocheckpoint, storage::kDefaultWalAutocheckpoint}) {
      ok = Row(config, mode, checkpoint, dir) && ok;
    }
  }
  std::filesystem::remove_all(dir);
  absl::PrintF("%s\n", ok ? "all invariants held" : "INVARIANT BROKEN");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace kanban::testing

int main(int argc, char** argv) { return kanban::testing::Main(argc, argv); }
