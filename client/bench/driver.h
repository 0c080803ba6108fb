// The load driver: N closed loops, each starting its next call when the
// previous one finished (ghz's model), until a count or a duration is
// reached, optionally paced to a total rate. Prints a progress line on
// stderr once a second.
#ifndef KANBAN_CLIENT_BENCH_DRIVER_H_
#define KANBAN_CLIENT_BENCH_DRIVER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "client/bench/stats.h"

namespace kanban::bench {

// Finishes one call. `exhausted` means the call found nothing to do (say,
// no task left to claim): it is not recorded and its loop stops.
using Done = std::function<void(const grpc::Status& status, bool exhausted)>;

// Starts call number `seq` (0, 1, ...) for loop `loop` without blocking,
// and arranges for `done` to be called exactly once, from any thread.
using StartFn = std::function<void(int loop, int64_t seq, Done done)>;

struct Load {
  int concurrency = 64;  // Loops, i.e. calls in flight.
  int64_t count = 0;     // Calls to start in total; 0: run for `duration`.
  absl::Duration duration = absl::Seconds(10);  // When `count` is 0.
  double rate = 0;  // Call starts per second over all loops; 0: unpaced.
};

// Runs `load` with `start`, recording every finished call's latency and
// status in `recorder`. `progress_extra`, if set, is appended to the
// progress line. Returns the wall time from the first start to the last
// completion. Blocks; thread-safe as long as `start` is.
absl::Duration RunLoad(const std::string& label, const Load& load, const StartFn& start,
                       Recorder* recorder,
                       const std::function<std::string()>& progress_extra = nullptr);

// Prints `line` as the progress line on stderr: overwritten in place on a
// terminal, one line each otherwise.
void PrintProgress(const std::string& line);
// Ends an in-place progress line (a newline on a terminal, else nothing).
void EndProgress();

}  // namespace kanban::bench

#endif  // KANBAN_CLIENT_BENCH_DRIVER_H_
