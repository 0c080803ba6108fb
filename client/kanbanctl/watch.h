// `kanbanctl watch`: follows the server's event feed and prints one line per
// event as it arrives (flushed at once), human-readable or, with --json, the
// Event message as one line of JSON. It starts from now unless --after N is
// given, and resumes by itself after a dropped connection or a server
// restart (client/cpp/watcher.h), with no gap and no duplicate. SIGINT or
// SIGTERM ends it with status 0.
#ifndef KANBAN_CLIENT_KANBANCTL_WATCH_H_
#define KANBAN_CLIENT_KANBANCTL_WATCH_H_

#include "client/kanbanctl/commands.h"

namespace kanban::client {

// The handler of the `watch` command. Returns kExitOk once stopped by a
// signal; kExitRpcFailed when the feed fails in a way a resume cannot fix
// (OUT_OF_RANGE: the start point is older than the retained history;
// INVALID_ARGUMENT, ...) or stdout cannot be written, after printing
// "error: CODE: message" to `in.err`; kExitUsage for a bad command line.
// --timeout does not apply: the stream has no deadline. Installs SIGINT and
// SIGTERM handlers for the duration of the call; call it once per process.
int RunWatch(const Invocation& in);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_KANBANCTL_WATCH_H_
