// Authentication and roles. With auth on (--auth=token), every call but the
// health service and server reflection carries "authorization: Bearer
// <secret>"; Check turns it into the storage::Actor the call acts as, or
// refuses it:
//   no token, an unknown one or a revoked one    UNAUTHENTICATED
//   a known token whose role may not do this     PERMISSION_DENIED
// (Boards and worker identity are checked where the data is: the Store
// refuses an actor's writes and reads outside its boards or leases.)
//
// The known tokens are kept in memory by the hash of their secret: loaded
// at start and updated after each create or revoke commits, so a revocation
// holds from the token's next call. Secrets are never stored or logged.
#ifndef KANBAN_SERVICE_AUTH_H_
#define KANBAN_SERVICE_AUTH_H_

#include <grpcpp/server_context.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/types.h"

namespace kanban::service {

// What an RPC needs, in role terms.
enum class Access {
  kRead,     // Reads and watching: every role.
  kProduce,  // Boards and tasks: producer and admin.
  kWork,     // The worker protocol: worker and admin.
  kAdmin,    // AdminService: admin.
};

bool RoleAllows(storage::Role role, Access access);

// True for listen addresses only this machine can reach: 127.0.0.0/8,
// [::1], localhost, and unix: sockets.
bool IsLoopbackAddress(absl::string_view listen);
// True for the host part of an address or Host header that names this
// machine: localhost, 127.x.x.x or [::1].
bool IsLoopbackHost(absl::string_view host);

class Auth {
 public:
  // Off: Check lets every call through as the unrestricted, anonymous actor.
  explicit Auth(bool enabled) : enabled_(enabled) {}
  bool enabled() const { return enabled_; }

  // Replaces the known tokens (revoked ones included, for clearer refusals);
  // a token known to be revoked stays revoked.
  void Load(const std::vector<storage::TokenRecord>& tokens) ABSL_LOCKS_EXCLUDED(mu_);
  // Adds or updates one token (after its create or revoke committed).
  void Put(const storage::TokenRecord& token) ABSL_LOCKS_EXCLUDED(mu_);

  // The actor for a call on `ctx` that needs `access`; `method` names the RPC
  // in refusals. Thread-safe.
  absl::StatusOr<storage::Actor> Check(const grpc::ServerContextBase& ctx, Access access,
                                       absl::string_view method) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Tokens not revoked.
  size_t active() const ABSL_LOCKS_EXCLUDED(mu_);
  // The name of the valid token a call carries, else "" (for the access log).
  std::string PrincipalOf(const grpc::ServerContextBase& ctx) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // A new random secret: "kb_" and 43 base64url characters (256 bits).
  static std::string NewSecret();
  // Lowercase hex SHA-256 of `secret`: what the database keeps.
  static std::string HashSecret(absl::string_view secret);

 private:
  // What a call needs of a token: its role and the actor it becomes (the
  // rest of the record, hash included, is not kept).
  struct Known {
    storage::Role role = storage::Role::kUnspecified;
    storage::Actor actor;  // actor.principal is the token's name.
    std::optional<absl::Time> revoked_at;
  };
  static Known KnownOf(const storage::TokenRecord& token);
  // The token the call's metadata names, or UNAUTHENTICATED.
  absl::StatusOr<Known> Find(const grpc::ServerContextBase& ctx) const
      ABSL_LOCKS_EXCLUDED(mu_);

  const bool enabled_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Known> by_hash_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_AUTH_H_
