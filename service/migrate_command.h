// `kanband migrate --from=FILE --to=URI`: copies a SQLite database into an
// empty PostgreSQL database (storage/migrate.h), with kanband stopped on
// the file. The README's "Moving to PostgreSQL" walks through it.
#ifndef KANBAN_SERVICE_MIGRATE_COMMAND_H_
#define KANBAN_SERVICE_MIGRATE_COMMAND_H_

namespace kanban::service {

// argv[0] is "migrate". Prints what was copied on stdout; errors on stderr
// (never the target's password). Returns the process exit code: 0, 1 (the
// copy failed; the target is unchanged) or 2 (bad arguments).
int RunMigrateCommand(int argc, char** argv);

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_MIGRATE_COMMAND_H_
