// Assertions and parsers for what kanbanctl prints, shared by the CLI tests.
#ifndef KANBAN_TESTS_SUPPORT_CLI_H_
#define KANBAN_TESTS_SUPPORT_CLI_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "tests/support/process.h"

namespace kanban::testing {

// Exit code 1, nothing on stdout, stderr "error: <code>: ...".
::testing::AssertionResult IsRpcError(const RunResult& r, absl::string_view code);

// Exit code 2, nothing on stdout, stderr "usage error: ..." containing
// `message_part`.
::testing::AssertionResult IsUsageError(const RunResult& r,
                                        absl::string_view message_part);

// The value printed after "key:" in a key: value block; "<no key>" if absent.
std::string Field(const std::string& block, absl::string_view key);

// The cells of row `row` (0 is the header) of a table, split on spaces.
std::vector<std::string> Row(const std::string& table, size_t row);

}  // namespace kanban::testing

#endif  // KANBAN_TESTS_SUPPORT_CLI_H_
