// `kanbanctl health [--service NAME]`: one grpc.health.v1.Health/Check call,
// for probes (systemd, container HEALTHCHECK, load balancers, scripts). It
// prints the serving status (SERVING, NOT_SERVING, UNKNOWN or
// SERVICE_UNKNOWN), or with --json the response as one line of JSON, and
// exits 0 only for SERVING, so `kanbanctl health && ...` means "up".
#ifndef KANBAN_CLIENT_KANBANCTL_HEALTH_H_
#define KANBAN_CLIENT_KANBANCTL_HEALTH_H_

#include "client/kanbanctl/commands.h"

namespace kanban::client {

// Exit code of `health` when no answer came: the server could not be reached
// (UNAVAILABLE) or did not answer within --timeout (DEADLINE_EXCEEDED).
// Apart from kExitRpcFailed so that a probe can tell "down" from "up but
// not serving".
inline constexpr int kExitUnreachable = 3;

// The handler of the `health` command; --service names the service to ask
// about ("" by default: the server as a whole; kanband also knows
// "kanban.v1.KanbanService"). Returns kExitOk for SERVING; kExitRpcFailed
// for any other status, for an unknown service (NOT_FOUND, printed as
// SERVICE_UNKNOWN) and for any other error; kExitUnreachable as above.
// Errors go to `in.err` as "error: CODE: message".
int RunHealth(const Invocation& in);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_KANBANCTL_HEALTH_H_
