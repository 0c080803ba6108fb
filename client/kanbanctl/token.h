// `kanbanctl token create|list|revoke`: bearer tokens through the
// AdminService (ROLE_ADMIN only). `create` prints the new secret alone on
// stdout, so that `TOKEN=$(kanbanctl token create ...)` captures it, and a
// reminder that it cannot be shown again on stderr; with --json, stdout is
// the CreateTokenResponse (secret included) as one line of JSON. Nothing
// else ever prints a secret: `list` and `revoke` show tokens without one.
#ifndef KANBAN_CLIENT_KANBANCTL_TOKEN_H_
#define KANBAN_CLIENT_KANBANCTL_TOKEN_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/kanbanctl/args.h"
#include "client/kanbanctl/commands.h"
#include "kanban/v1/kanban.pb.h"

namespace kanban::client {

// "admin", "Producer", "WORKER", "viewer" -> the enum value; anything else
// is INVALID_ARGUMENT.
absl::StatusOr<v1::Role> ParseRole(absl::string_view name);

// token create --name N --role R [--board B]... [--worker-id W]; --board
// also takes "a,b". INVALID_ARGUMENT, for the user, without --name or
// --role, for an unknown role, and unless --worker-id comes with role
// worker and only with it.
absl::StatusOr<v1::CreateTokenRequest> BuildCreateToken(const ParsedArgs& args);

// The handler of the `token` command; the first positional argument is the
// action. Returns kExitOk, kExitRpcFailed after "error: CODE: message" on
// `in.err`, or kExitUsage.
int RunToken(const Invocation& in);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_KANBANCTL_TOKEN_H_
