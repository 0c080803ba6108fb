// `kanbanctl db backup PATH` and `kanbanctl db check`: the AdminService from
// the command line. A backup shows a progress bar on a terminal and plain
// progress lines otherwise (or one JSON line per message with --json).
#ifndef KANBAN_CLIENT_KANBANCTL_DB_H_
#define KANBAN_CLIENT_KANBANCTL_DB_H_

#include "client/kanbanctl/commands.h"

namespace kanban::client {

// The handler of the `db` command. `db check` exits kExitRpcFailed when the
// check found problems (after listing them). A relative backup PATH is made
// absolute against the current folder: it names a file on the server, which
// this assumes to be the same machine.
int RunDb(const Invocation& in);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_KANBANCTL_DB_H_
