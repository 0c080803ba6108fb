#include "tests/support/backends.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "storage/postgres/connection.h"

namespace kanban::testing {

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "sqlite" : "postgres";
}

std::optional<std::string> PostgresServer() {
  const char* file = std::getenv("KANBAN_TEST_POSTGRES_FILE");
  if (file == nullptr || *file == '\0') return std::nullopt;
  std::ifstream in(file);
  std::string target;
  if (!std::getline(in, target) || target.empty()) return std::nullopt;
  return std::string(absl::StripAsciiWhitespace(target));
}

absl::StatusOr<std::string> NewPostgresDatabase() {
  std::optional<std::string> server = PostgresServer();
  if (!server.has_value()) {
    return absl::FailedPreconditionError(
        "no PostgreSQL for tests: run through ctest (fixture `postgres`), or set "
        "KANBAN_TEST_POSTGRES_FILE to a file holding a server's URI");
  }
  static std::atomic<int> counter{0};
  const std::string name =
      absl::StrCat("kanban_test_", getpid(), "_", counter.fetch_add(1));
  storage::PgConnection::Options options;
  options.target = *server;
  absl::StatusOr<std::unique_ptr<storage::PgConnection>> admin =
      storage::PgConnection::Open(options);
  if (!admin.ok()) return admin.status();
  // A schema, not a database: a new database copies template1 through the
  // WAL (megabytes, and a checkpoint), a schema is a catalog row.
  if (absl::Status s = (*admin)->Exec(absl::StrCat("CREATE SCHEMA ", name)); !s.ok()) {
    return s;
  }
  return absl::StrCat(*server, "?options=-csearch_path%3D", name);
}

std::string FreshDatabase(Backend backend, const std::string& sqlite_file) {
  if (backend == Backend::kSqlite) return sqlite_file;
  if (!PostgresServer().has_value()) {
    // GTEST_SKIP returns void: record the skip through a lambda.
    [] {
      GTEST_SKIP() << "no PostgreSQL for tests (run through ctest: fixture `postgres`)";
    }();
    return "";
  }
  absl::StatusOr<std::string> db = NewPostgresDatabase();
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? *db : "";
}

}  // namespace kanban::testing
