// Bearer tokens: rows of the tokens table (only a SHA-256 of each secret is
// stored) and the two writes on them. Making secrets and checking calls is
// the service layer's (service/auth.h).
#ifndef KANBAN_STORAGE_TOKENS_H_
#define KANBAN_STORAGE_TOKENS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/db.h"
#include "storage/types.h"
#include "storage/writer.h"

namespace kanban::storage {

namespace sql {
// Every token, by name; revoked ones only when `include_revoked`.
absl::StatusOr<std::vector<TokenRecord>> ListTokens(Connection& db, bool include_revoked);
}  // namespace sql

namespace mutations {
// ALREADY_EXISTS when the name was ever used: revoked names stay taken, so
// that the principal in old events names one token only. created_at and
// created_by (the actor's principal, or kanband) are filled in.
absl::StatusOr<TokenRecord> CreateToken(WriteContext& ctx, const TokenRecord& token);
// Sets revoked_at (unless already set) and returns the token; NOT_FOUND for
// an unknown name.
absl::StatusOr<TokenRecord> RevokeToken(WriteContext& ctx, const std::string& name);
}  // namespace mutations

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_TOKENS_H_
