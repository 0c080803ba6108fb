// The watch scenario: --watchers WatchEvents streams (from now, the bench
// board, kind "created") while --concurrency writers create tasks. The
// request unit is one event delivered to one watcher; its latency is the
// delay from the event's commit time (Event.time) to its receipt. With
// several replicas (--server a,b,c), watchers and writer loops are assigned
// to them round-robin, so the figures cover the cross-replica feed: with
// three replicas two thirds of the deliveries cross from one to another.
#ifndef KANBAN_CLIENT_BENCH_WATCH_SCENARIO_H_
#define KANBAN_CLIENT_BENCH_WATCH_SCENARIO_H_

#include "absl/status/statusor.h"
#include "client/bench/options.h"
#include "client/bench/report.h"
#include "client/bench/scenarios.h"

namespace kanban::bench {

// Runs it against `target`; fills everything of the Result but the Check
// comparison and `setup`. An error means it could not start (watchers
// could not subscribe); failures during the run are in the Result.
absl::StatusOr<Result> RunWatch(const Target& target, const Options& options);

}  // namespace kanban::bench

#endif  // KANBAN_CLIENT_BENCH_WATCH_SCENARIO_H_
