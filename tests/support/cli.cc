#include "tests/support/cli.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kanban::testing {

::testing::AssertionResult IsRpcError(const RunResult& r, absl::string_view code) {
  if (r.exit_code == 1 && absl::StartsWith(r.err, absl::StrCat("error: ", code, ": ")) &&
      r.out.empty()) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected exit code 1 and \"error: " << code
                                       << ": ...\"; got " << Describe(r);
}

::testing::AssertionResult IsUsageError(const RunResult& r,
                                        absl::string_view message_part) {
  if (r.exit_code == 2 && absl::StartsWith(r.err, "usage error: ") &&
      absl::StrContains(r.err, message_part) && r.out.empty()) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected exit code 2 and \"usage error: ..."
                                       << message_part << "...\"; got " << Describe(r);
}

std::string Field(const std::string& block, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(block, '\n')) {
    if (absl::ConsumePrefix(&line, absl::StrCat(key, ":"))) {
      return std::string(absl::StripAsciiWhitespace(line));
    }
  }
  return absl::StrCat("<no ", key, ">");
}

std::vector<std::string> Row(const std::string& table, size_t row) {
  std::vector<std::string> lines = absl::StrSplit(table, '\n', absl::SkipEmpty());
  if (row >= lines.size()) return {};
  return absl::StrSplit(lines[row], ' ', absl::SkipEmpty());
}

}  // namespace kanban::testing
