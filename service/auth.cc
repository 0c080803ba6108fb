#include "service/auth.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "storage/rules.h"

namespace kanban::service {

bool RoleAllows(storage::Role role, Access access) {
  switch (role) {
    case storage::Role::kAdmin:
      return true;
    case storage::Role::kProducer:
      return access == Access::kRead || access == Access::kProduce;
    case storage::Role::kWorker:
      return access == Access::kRead || access == Access::kWork;
    case storage::Role::kViewer:
      return access == Access::kRead;
    case storage::Role::kUnspecified:
      break;
  }
  return false;
}

bool IsLoopbackAddress(absl::string_view listen) {
  if (absl::StartsWith(listen, "unix:") || absl::StartsWith(listen, "unix-abstract:")) {
    return true;
  }
  const size_t colon = listen.rfind(':');
  return IsLoopbackHost(colon == absl::string_view::npos ? listen
                                                         : listen.substr(0, colon));
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || host == "[::1]" || absl::StartsWith(host, "127.");
}

Auth::Known Auth::KnownOf(const storage::TokenRecord& token) {
  return Known{token.role, storage::Actor{token.name, token.boards, token.worker_id},
               token.revoked_at};
}

size_t Auth::active() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [hash, known] : by_hash_) n += known.revoked_at.has_value() ? 0 : 1;
  return n;
}

void Auth::Load(const std::vector<storage::TokenRecord>& tokens) {
  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<std::string, Known> loaded;
  for (const storage::TokenRecord& token : tokens) {
    Known known = KnownOf(token);
    // A revocation is for good: a read that began before it committed
    // (TokenRefresh) does not bring the token back.
    if (auto old = by_hash_.find(token.secret_hash); old != by_hash_.end() &&
                                                     old->second.revoked_at.has_value() &&
                                                     !known.revoked_at.has_value()) {
      known.revoked_at = old->second.revoked_at;
    }
    loaded[token.secret_hash] = std::move(known);
  }
  by_hash_ = std::move(loaded);
}

void Auth::Put(const storage::TokenRecord& token) {
  absl::MutexLock lock(&mu_);
  by_hash_[token.secret_hash] = KnownOf(token);
}

absl::StatusOr<Auth::Known> Auth::Find(const grpc::ServerContextBase& ctx) const {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "authorization: missing; send the metadata \"authorization: Bearer <token>\"");
  }
  absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kBearer = "bearer ";
  if (!absl::StartsWithIgnoreCase(value, kBearer)) {
    return absl::UnauthenticatedError(
        "authorization: expected \"Bearer <token>\"");  // Never echo the value.
  }
  const std::string hash =
      HashSecret(absl::StripAsciiWhitespace(value.substr(kBearer.size())));
  absl::MutexLock lock(&mu_);
  auto found = by_hash_.find(hash);
  if (found == by_hash_.end()) {
    return absl::UnauthenticatedError("authorization: unknown token");
  }
  if (found->second.revoked_at.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "authorization: token \"", found->second.actor.principal, "\" was revoked at ",
        absl::FormatTime(absl::RFC3339_sec, *found->second.revoked_at,
                         absl::UTCTimeZone())));
  }
  return found->second;
}

absl::StatusOr<storage::Actor> Auth::Check(const grpc::ServerContextBase& ctx,
                                           Access access,
                                           absl::string_view method) const {
  if (!enabled_) return storage::Actor();
  absl::StatusOr<Known> known = Find(ctx);
  if (!known.ok()) return known.status();
  if (!RoleAllows(known->role, access)) {
    return absl::PermissionDeniedError(
        absl::StrCat("token \"", known->actor.principal, "\" has role ",
                     storage::RoleName(known->role), ", which may not call ", method));
  }
  return std::move(known->actor);
}

std::string Auth::PrincipalOf(const grpc::ServerContextBase& ctx) const {
  if (!enabled_) return "";
  absl::StatusOr<Known> known = Find(ctx);
  return known.ok() ? known->actor.principal : "";
}

std::string Auth::NewSecret() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // Without randomness no secret is safe to hand out.
    std::abort();
  }
  return absl::StrCat("kb_", absl::WebSafeBase64Escape(absl::string_view(
                                 reinterpret_cast<const char*>(bytes), sizeof(bytes))));
}

std::string Auth::HashSecret(absl::string_view secret) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

}  // namespace kanban::service
