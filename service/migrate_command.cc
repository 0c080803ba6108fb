#include "service/migrate_command.h"

#include <iostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/command_flags.h"
#include "storage/migrate.h"
#include "storage/postgres/connection.h"

namespace kanban::service {
namespace {

int Usage(const std::string& problem) {
  std::cerr
      << "kanband migrate: " << problem << "\n"
      << "usage: kanband migrate --from=SQLITE_FILE --to=postgresql://USER@HOST/DB\n"
      << "  copies every board, task, event (seqs unchanged), lease, worker and\n"
      << "  token into an empty PostgreSQL database; stop kanband first.\n";
  return 2;
}

}  // namespace

int RunMigrateCommand(int argc, char** argv) {
  std::string from, to;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> flags =
      ParseCommandFlags(argc, argv, 1);
  if (!flags.ok()) return Usage(std::string(flags.status().message()));
  for (const auto& [flag, value] : *flags) {
    if (flag == "from") {
      from = value;
    } else if (flag == "to") {
      to = value;
    } else {
      return Usage(absl::StrCat("unknown flag --", flag));
    }
  }
  if (from.empty() || to.empty()) return Usage("--from and --to are required");
  if (storage::IsPostgresTarget(from)) return Usage("--from must be a SQLite file");
  if (!storage::IsPostgresTarget(to)) {
    return Usage("--to must be a PostgreSQL URI (postgresql://...) or connection string");
  }
  const std::string shown = storage::RedactPostgresTarget(to);
  absl::StatusOr<storage::CopyReport> report =
      storage::CopySqliteToPostgres(from, to, absl::Now());
  if (!report.ok()) {
    std::cerr << "kanband migrate: " << from << " -> " << shown << ": "
              << report.status().message()
              << (absl::IsFailedPrecondition(report.status()) &&
                          absl::StrContains(report.status().message(), "in use")
                      ? "\n(stop the kanband serving it first)"
                      : "")
              << "\n";
    return 1;
  }
  std::cout << "copied " << from << " -> " << shown << "\n";
  for (const auto& [table, rows] : report->rows) {
    std::cout << "  " << table << ": " << rows << "\n";
  }
  std::cout << "  next event seq: " << report->last_event_seq + 1 << "\n";
  return 0;
}

}  // namespace kanban::service
