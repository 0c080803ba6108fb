// What many WatchEvents streams that only wait cost a kanband: its resident
// memory per stream and its CPU while they idle. Part of `kanban-bench watch
// --idle_watchers N`, run before the live phase so that the server's heap is
// still fresh.
#ifndef KANBAN_CLIENT_BENCH_IDLE_WATCHERS_H_
#define KANBAN_CLIENT_BENCH_IDLE_WATCHERS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/bench/report.h"

namespace kanban::bench {

// Opens `n` from-now WatchEvents streams to `address` (64 per channel, one
// connection each), waits (up to 120 s) until each got its first response,
// reads kanband's VmRSS and CPU time (from /proc/`kanband_pid`; -1: not
// ours, no figures), and cancels them. The figures come back as extras
// (idle_watchers, idle_watch_rss_kib_each, idle_cpu_percent).
// UNAVAILABLE if not every stream subscribed.
absl::StatusOr<std::vector<Extra>> MeasureIdleWatchers(const std::string& address, int n,
                                                       pid_t kanband_pid);

}  // namespace kanban::bench

#endif  // KANBAN_CLIENT_BENCH_IDLE_WATCHERS_H_
