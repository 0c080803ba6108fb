// The `stream` scenario: --concurrency worker slots over --streams
// WorkerService.Work streams (slots spread evenly), each slot a closed loop
// of "take the next pushed assignment, complete it". One cycle is the
// request, as in claim-complete; latency runs from the slot asking for work
// to its completion's result.
#ifndef KANBAN_CLIENT_BENCH_STREAM_SCENARIO_H_
#define KANBAN_CLIENT_BENCH_STREAM_SCENARIO_H_

#include <memory>

#include "client/bench/options.h"
#include "client/bench/scenarios.h"

namespace kanban::bench {

std::unique_ptr<UnaryScenario> MakeStreamScenario(const Target* target,
                                                  const Options& options);

}  // namespace kanban::bench

#endif  // KANBAN_CLIENT_BENCH_STREAM_SCENARIO_H_
