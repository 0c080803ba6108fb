// kanban-bench: the project's gRPC load generator, for where ghz is not
// available (and for what ghz cannot do: claim -> complete cycles, watch
// fan-out delays, NORMAL vs FULL back to back). `kanban-bench --help` lists
// the scenarios and flags; deploy/ghz/README.md shows how its figures map
// to ghz's.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "client/bench/driver.h"
#include "client/bench/idle_watchers.h"
#include "client/bench/kanband_child.h"
#include "client/bench/options.h"
#include "client/bench/report.h"
#include "client/bench/scenarios.h"
#include "client/bench/watch_scenario.h"
#include "client/cpp/channel.h"

namespace kanban::bench {
namespace {

std::string LoadText(const Options& o) {
  std::string load = absl::StrCat(o.concurrency, " in flight, ");
  if (o.count > 0) {
    absl::StrAppend(&load, o.count, " calls");
  } else {
    absl::StrAppend(&load, absl::FormatDuration(o.duration));
  }
  if (o.rate > 0) absl::StrAppendFormat(&load, " at most %.0f/s", o.rate);
  absl::StrAppend(&load, ", ", o.connections,
                  o.connections == 1 ? " connection" : " connections");
  return load;
}

// Runs `options.scenario` (not modes) against `--server`, or against a
// kanband it starts (and stops before returning). An error is a setup
// failure: nothing was measured.
absl::StatusOr<Result> RunScenario(const Options& options) {
  std::unique_ptr<KanbandChild> child;
  std::string address = options.server;
  if (options.own_server()) {
    std::vector<std::string> args = {"--synchronous=" + options.synchronous};
    // Later flags win: this replaces the child's fresh SQLite file.
    if (!options.db.empty()) args.push_back("--db=" + options.db);
    child = std::make_unique<KanbandChild>(
        options.kanband, options.dir,
        absl::StrCat("kanban-bench-", options.scenario, "-", options.synchronous), args);
    address = child->address();
  }
  absl::StatusOr<client::ServerTarget> resolved = client::ResolveServerAddress(address);
  if (!resolved.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server: ", resolved.status().message()));
  }
  Target target(*resolved, options);
  if (absl::Status s = target.Connect(); !s.ok()) return s;
  absl::StatusOr<std::string> sync = ServerSynchronous(target);
  if (!sync.ok()) return sync.status();
  if (absl::Status s = EnsureBoard(target, options.board); !s.ok()) return s;

  Result result;
  const Load load{options.concurrency, options.count, options.duration, options.rate};
  if (options.scenario == "watch") {
    // Idle streams first, on the fresh server, so that the live phase's heap
    // does not hide what they cost. With several replicas, all on the first.
    std::vector<Extra> idle;
    if (options.idle_watchers > 0) {
      absl::StatusOr<std::vector<Extra>> measured = MeasureIdleWatchers(
          target.replicas().front(), options.idle_watchers, child ? child->pid() : -1);
      if (!measured.ok()) return measured.status();
      idle = *std::move(measured);
    }
    absl::StatusOr<Result> watched = RunWatch(target, options);
    if (!watched.ok()) return watched.status();
    result = *std::move(watched);
    result.extras.insert(result.extras.end(), idle.begin(), idle.end());
  } else {
    absl::StatusOr<std::unique_ptr<UnaryScenario>> scenario =
        MakeUnaryScenario(options.scenario, &target, options);
    if (!scenario.ok()) return scenario.status();
    if (absl::Status s = (*scenario)->Prepare(); !s.ok()) return s;
    Recorder recorder;
    const absl::Duration total = RunLoad(
        options.scenario, load,
        [&](int loop, int64_t seq, Done done) {
          (*scenario)->Start(loop, seq, std::move(done));
        },
        &recorder);
    result.scenario = options.scenario;
    result.summary = recorder.Summarize(total);
    (*scenario)->Finish(result.summary, &result);
  }
  result.setup =
      absl::StrFormat("%s (%s, synchronous=%s), board %s, %s", address,
                      child ? "kanband started by kanban-bench" : "given server", *sync,
                      options.board, LoadText(options));

  if (options.scenario == "health") {
    result.has_check = true;  // It is the Check run.
    result.check = result.summary;
  } else if (options.check) {
    absl::StatusOr<std::unique_ptr<UnaryScenario>> health =
        MakeUnaryScenario("health", &target, options);
    Recorder recorder;
    const absl::Duration total = RunLoad(
        "check", load,
        [&](int loop, int64_t seq, Done done) {
          (*health)->Start(loop, seq, std::move(done));
        },
        &recorder);
    result.has_check = true;
    result.check = recorder.Summarize(total);
  }
  return result;
}

int SetupFailed(const absl::Status& status) {
  std::fprintf(stderr, "kanban-bench: %s\n", status.ToString().c_str());
  return 1;
}

int RunModes(const Options& options) {
  Options normal = options, full = options;
  normal.scenario = full.scenario = "create";
  normal.synchronous = "normal";
  full.synchronous = "full";
  const absl::StatusOr<Result> normal_result = RunScenario(normal);
  if (!normal_result.ok()) return SetupFailed(normal_result.status());
  const absl::StatusOr<Result> full_result = RunScenario(full);
  if (!full_result.ok()) return SetupFailed(full_result.status());
  const Result& n = *normal_result;
  const Result& f = *full_result;
  const double ratio = n.summary.rps > 0 ? f.summary.rps / n.summary.rps : 0;
  const bool passed = n.passed() && f.passed();
  if (options.json) {
    std::printf(
        "{\"name\":\"kanban-bench "
        "modes\",\"scenario\":\"modes\",\"normal\":%s,\"full\":%s,"
        "\"full_to_normal\":%.4f,\"passed\":%s}\n",
        FormatJson(n).c_str(), FormatJson(f).c_str(), ratio, passed ? "true" : "false");
  } else {
    std::printf("=== NORMAL ===\n%s\n=== FULL ===\n%s\n", FormatText(n).c_str(),
                FormatText(f).c_str());
    std::printf(
        "CreateTask NORMAL %.2f RPS (%.3f of Check), FULL %.2f RPS (%.3f of Check): "
        "FULL/NORMAL %.3f\n",
        n.summary.rps, n.ratio_to_check(), f.summary.rps, f.ratio_to_check(), ratio);
  }
  return passed ? 0 : 1;
}

int Main(int argc, char** argv) {
  // As in kanband: Debian's Abseil keeps Mutex deadlock detection on, a
  // graph update on every lock of gRPC's and ours. The load generator
  // shares the cores with the server it measures; it should not pay that.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::StatusOr<Options> options =
      ParseOptions(std::vector<std::string>(argv + 1, argv + argc));
  if (!options.ok()) {
    if (absl::IsCancelled(options.status())) {
      std::printf("%s", Usage().c_str());
      return 0;
    }
    std::fprintf(stderr, "kanban-bench: %s\n\n%s",
                 std::string(options.status().message()).c_str(), Usage().c_str());
    return 2;
  }
  if (options->scenario == "modes") return RunModes(*options);
  const absl::StatusOr<Result> result = RunScenario(*options);
  if (!result.ok()) return SetupFailed(result.status());
  if (options->json) {
    std::printf("%s\n", FormatJson(*result).c_str());
  } else {
    std::printf("%s", FormatText(*result).c_str());
  }
  return result->passed() ? 0 : 1;
}

}  // namespace
}  // namespace kanban::bench

int main(int argc, char** argv) { return kanban::bench::Main(argc, argv); }
