// `kanband token create`: makes a bearer token straight in the database file,
// with kanband stopped: the way to the first admin token (and back in, should
// every admin token be lost). Running servers take kanbanctl token create.
#ifndef KANBAN_SERVICE_TOKEN_COMMAND_H_
#define KANBAN_SERVICE_TOKEN_COMMAND_H_

namespace kanban::service {

// argv[0] is "token". Prints the secret alone on stdout; errors on stderr.
// Returns the process exit code: 0, 1 (the database could not be opened or
// written, e.g. kanband holds it) or 2 (bad arguments).
int RunTokenCommand(int argc, char** argv);

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_TOKEN_COMMAND_H_
