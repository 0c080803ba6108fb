// fuzz_requests' input format, shared with the seed generator: the first
// byte, modulo kOpCount, picks the request; the rest is that request's
// serialized kanban.v1 message (kTick: a google.protobuf.Duration).
#ifndef KANBAN_TESTS_FUZZ_REQUEST_OPS_H_
#define KANBAN_TESTS_FUZZ_REQUEST_OPS_H_

#include <cstdint>

namespace kanban::fuzz {

enum Op : uint8_t {
  kCreateBoard,
  kCreateTask,
  kGetTask,
  kListTasks,
  kUpdateTask,
  kMoveTask,
  kLinkTasks,
  kUnlinkTasks,
  kAddComment,
  kListComments,
  kClaimTask,
  kCompleteTask,
  kFailTask,
  kReleaseTask,
  kHeartbeat,
  kListWorkers,
  kWatchEvents,
  kTick,  // Not a request: advance the fake clock, then sweep.
  kOpCount,
};

}  // namespace kanban::fuzz

#endif  // KANBAN_TESTS_FUZZ_REQUEST_OPS_H_
