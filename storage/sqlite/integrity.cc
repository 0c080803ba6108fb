#include "storage/sqlite/integrity.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/status_macros.h"

namespace kanban::storage {

absl::StatusOr<std::vector<std::string>> FindProblems(Connection& db, bool full,
                                                      int max_problems) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement check,
      db.Prepare(absl::StrCat("PRAGMA ", full ? "integrity_check" : "quick_check", "(",
                              max_problems, ")")));
  std::vector<std::string> problems;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, check.Step());
    if (!row) break;
    std::string line = check.ColumnText(0);
    if (line != "ok") problems.push_back(std::move(line));
  }
  return problems;
}

absl::Status QuickCheck(Connection& db) {
  KANBAN_ASSIGN_OR_RETURN(std::vector<std::string> problems,
                          FindProblems(db, /*full=*/false, /*max_problems=*/20));
  if (problems.empty()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      "quick_check found ", problems.size(), problems.size() == 20 ? "+" : "",
      " problem(s): ", absl::StrJoin(problems, "; ")));
}

}  // namespace kanban::storage
