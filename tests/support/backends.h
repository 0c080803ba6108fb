// Runs a test against each storage backend: a SQLite file in the test's
// temporary directory, and a fresh database on the suite's private
// PostgreSQL (tests/support/postgres_server.sh, the CTest fixture
// `postgres`, which sets KANBAN_TEST_POSTGRES_FILE). Without that variable
// (a test binary run by hand) the PostgreSQL cases skip, saying why.
//
//   class FooTest : public ::testing::TestWithParam<testing::Backend> {...};
//   INSTANTIATE_TEST_SUITE_P(Backends, FooTest, testing::AllBackends(),
//                            testing::BackendName);
#ifndef KANBAN_TESTS_SUPPORT_BACKENDS_H_
#define KANBAN_TESTS_SUPPORT_BACKENDS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace kanban::testing {

enum class Backend { kSqlite, kPostgres };

// The skip message of a case that is about SQLite's own machinery.
inline constexpr char kSqliteOnly[] =
    "about a SQLite-only mechanism (the database file, its lock, a pragma, the VFS)";

inline auto AllBackends() {
  return ::testing::Values(Backend::kSqlite, Backend::kPostgres);
}
std::string BackendName(const ::testing::TestParamInfo<Backend>& info);

// The suite's PostgreSQL server (a libpq URI of its `postgres` database), or
// nullopt when the suite did not start one.
std::optional<std::string> PostgresServer();

// Creates a new, empty schema on the suite's server and returns a URI whose
// sessions use it (search_path): a database of its own, for the test.
// FAILED_PRECONDITION when there is no server.
absl::StatusOr<std::string> NewPostgresDatabase();

// A fresh database for `backend`: `sqlite_file` (a path in the test's
// temporary directory), or a new PostgreSQL database. Fails the test with
// a message when PostgreSQL is asked for but cannot be had, and marks it
// skipped when the suite started no server (check IsSkipped()).
std::string FreshDatabase(Backend backend, const std::string& sqlite_file);

// A fixture run against each backend (TEST_P; instantiate with AllBackends).
class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  // The test's database: made on the first call (FreshDatabase), the same
  // after. Empty when the test was skipped or failed making it: the
  // caller's SetUp returns then.
  const std::string& Database(const std::string& sqlite_file) {
    if (database_.empty()) database_ = FreshDatabase(GetParam(), sqlite_file);
    return database_;
  }
  bool OnPostgres() const { return GetParam() == Backend::kPostgres; }

 private:
  std::string database_;
};

}  // namespace kanban::testing

#endif  // KANBAN_TESTS_SUPPORT_BACKENDS_H_
