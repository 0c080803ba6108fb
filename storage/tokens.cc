#include "storage/tokens.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "storage/json_text.h"
#include "storage/status_macros.h"

namespace kanban::storage {
namespace {

#define KANBAN_TOKEN_COLUMNS \
  "name, role, boards, worker_id, secret_hash, created_at, created_by, revoked_at"

absl::StatusOr<TokenRecord> ReadToken(const Statement& stmt) {
  TokenRecord t;
  t.name = stmt.ColumnText(0);
  t.role = static_cast<Role>(stmt.ColumnInt(1));
  KANBAN_ASSIGN_OR_RETURN(t.boards, DecodeStringArray(stmt.ColumnText(2)));
  t.worker_id = stmt.ColumnText(3);
  t.secret_hash = stmt.ColumnText(4);
  t.created_at = absl::FromUnixMicros(stmt.ColumnInt(5));
  t.created_by = stmt.ColumnText(6);
  if (!stmt.ColumnIsNull(7)) t.revoked_at = absl::FromUnixMicros(stmt.ColumnInt(7));
  return t;
}

absl::StatusOr<std::optional<TokenRecord>> FindToken(Connection& db,
                                                     const std::string& name) {
  KANBAN_ASSIGN_OR_RETURN(Statement stmt, db.Cached("SELECT " KANBAN_TOKEN_COLUMNS
                                                    " FROM tokens WHERE name = ?"));
  stmt.BindText(1, name);
  KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::optional<TokenRecord>();
  KANBAN_ASSIGN_OR_RETURN(TokenRecord token, ReadToken(stmt));
  return std::optional<TokenRecord>(std::move(token));
}

}  // namespace

absl::StatusOr<std::vector<TokenRecord>> sql::ListTokens(Connection& db,
                                                         bool include_revoked) {
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Cached(include_revoked ? "SELECT " KANBAN_TOKEN_COLUMNS
                                  " FROM tokens ORDER BY name"
                                : "SELECT " KANBAN_TOKEN_COLUMNS
                                  " FROM tokens WHERE revoked_at IS NULL ORDER BY name"));
  std::vector<TokenRecord> tokens;
  while (true) {
    KANBAN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return tokens;
    KANBAN_ASSIGN_OR_RETURN(TokenRecord token, ReadToken(stmt));
    tokens.push_back(std::move(token));
  }
}

absl::StatusOr<TokenRecord> mutations::CreateToken(WriteContext& ctx,
                                                   const TokenRecord& request) {
  KANBAN_ASSIGN_OR_RETURN(std::optional<TokenRecord> existing,
                          FindToken(ctx.db(), request.name));
  if (existing.has_value()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "name: token \"", request.name, "\" already exists",
        existing->revoked_at.has_value() ? " (revoked; names are never reused)" : ""));
  }
  TokenRecord token = request;
  token.created_at = ctx.now();
  token.created_by =
      ctx.actor().principal.empty() ? kServerPrincipal : ctx.actor().principal;
  token.revoked_at.reset();
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt,
      ctx.db().Cached("INSERT INTO tokens(name, role, boards, worker_id, secret_hash,"
                      " created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)"));
  stmt.BindText(1, token.name)
      .BindInt(2, static_cast<int>(token.role))
      .BindText(3, EncodeStringArray(token.boards))
      .BindText(4, token.worker_id)
      .BindText(5, token.secret_hash)
      .BindInt(6, absl::ToUnixMicros(token.created_at))
      .BindText(7, token.created_by);
  KANBAN_RETURN_IF_ERROR(stmt.Run());
  return token;
}

absl::StatusOr<TokenRecord> mutations::RevokeToken(WriteContext& ctx,
                                                   const std::string& name) {
  KANBAN_ASSIGN_OR_RETURN(std::optional<TokenRecord> token, FindToken(ctx.db(), name));
  if (!token.has_value()) {
    return absl::NotFoundError(absl::StrCat("name: no token \"", name, "\""));
  }
  if (token->revoked_at.has_value()) return *std::move(token);
  token->revoked_at = ctx.now();
  KANBAN_ASSIGN_OR_RETURN(
      Statement stmt, ctx.db().Cached("UPDATE tokens SET revoked_at = ? WHERE name = ?"));
  stmt.BindInt(1, absl::ToUnixMicros(*token->revoked_at)).BindText(2, name);
  KANBAN_RETURN_IF_ERROR(stmt.Run());
  return *std::move(token);
}

}  // namespace kanban::storage
