// Puts a token straight into a database file, as `kanband token create`
// does, for tests that start a server with auth on.
#ifndef KANBAN_TESTS_SERVICE_SEED_TOKEN_H_
#define KANBAN_TESTS_SERVICE_SEED_TOKEN_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/auth.h"
#include "storage/store.h"

namespace kanban::service {

// Creates (opening, and creating if needed, the database at `path`) an
// admin token named "root" whose secret is `secret`.
inline absl::Status SeedAdminToken(const std::string& path, const std::string& secret) {
  storage::Store::Options options;
  options.path = path;
  options.sweep_interval = absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<storage::Store>> store =
      storage::Store::Open(std::move(options));
  if (!store.ok()) return store.status();
  storage::TokenRecord admin;
  admin.name = "root";
  admin.role = storage::Role::kAdmin;
  admin.secret_hash = Auth::HashSecret(secret);
  return storage::Await<storage::TokenRecord>(
             [&](auto done) { (*store)->CreateToken(admin, done); })
      .status();
}

}  // namespace kanban::service

#endif  // KANBAN_TESTS_SERVICE_SEED_TOKEN_H_
