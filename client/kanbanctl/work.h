// `kanbanctl work`: a ready-made worker that runs a command once per claimed
// task. The task is in the command's environment (KANBAN_TASK_ID, _TITLE,
// _BOARD, _ATTEMPT, _PRIORITY, _LABELS comma-joined, KANBAN_LEASE_TOKEN,
// KANBAN_WORKER_ID, KANBAN_SERVER, and KANBAN_TLS_* and KANBAN_TOKEN for the
// --tls-* and --token flags given, so that it can call kanbanctl back) and
// its body on stdin. Exit status 0
// completes the task with stdout (at most 64 KiB) as the result; anything else
// fails it for a retry, with the end of stderr as the error. A lost lease
// kills the command (SIGTERM, then SIGKILL after --grace). The first SIGINT or
// SIGTERM stops claiming and lets the current command finish and report; a
// second one kills kanbanctl at once. One line per task goes to stderr.
#ifndef KANBAN_CLIENT_KANBANCTL_WORK_H_
#define KANBAN_CLIENT_KANBANCTL_WORK_H_

#include "client/kanbanctl/commands.h"

namespace kanban::client {

// The handler of the `work` command; the positional arguments are the
// command to run. Returns kExitOk once stopped (signal, --once, --max-tasks),
// kExitRpcFailed when claiming fails for good, kExitUsage for a bad command
// line. Installs SIGINT and SIGTERM handlers and ignores SIGPIPE for the rest
// of the process's life; call it once per process.
int RunWork(const Invocation& in);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_KANBANCTL_WORK_H_
