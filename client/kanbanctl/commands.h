// kanbanctl's commands as a table: each has a name, a usage line, its own
// flags and a handler that builds one request, calls one RPC and prints the
// response (except `work`, a worker loop, and `watch`, a feed follower; see
// work.h and watch.h). The table is constant and safe to
// read from any thread.
#ifndef KANBAN_CLIENT_KANBANCTL_COMMANDS_H_
#define KANBAN_CLIENT_KANBANCTL_COMMANDS_H_

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/cpp/tls.h"
#include "client/kanbanctl/args.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"
#include "kanban/v1/kanban.grpc.pb.h"

namespace kanban::client {

// Process exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRpcFailed = 1;  // The server answered with an error.
inline constexpr int kExitUsage = 2;      // The command line was wrong.

struct Command;

// Everything a handler may use; all references outlive the handler call.
struct Invocation {
  const Command& command;
  const ParsedArgs& args;
  v1::KanbanService::StubInterface& stub;
  v1::HeartbeatService::StubInterface& heartbeat_stub;
  // The channel both stubs use, for commands that build their own client
  // (work), and the address it dials.
  const std::shared_ptr<grpc::Channel>& channel;
  const std::string& server;
  // The channel's credentials and arguments (TLS) and its bearer token (""
  // for none; --token or $KANBAN_TOKEN), for commands that open a channel of
  // their own (watch) or pass them on (work). Never print the token.
  const ChannelSecurity& security;
  const std::string& token;
  bool json;               // --json: one line of JSON per response.
  absl::Duration timeout;  // Deadline of each RPC, from its start.
  std::ostream& out;
  std::ostream& err;
};

// Returns the process exit code (kExitOk, kExitRpcFailed or kExitUsage) after
// writing the result to `out` and any error to `err`.
using Handler = int (*)(const Invocation& invocation);

struct Command {
  const char* name;
  const char* usage;    // What follows the name, e.g. "ID STATUS [--reason R]".
  const char* summary;  // One line for the help text.
  int min_args;         // Positional arguments after the name.
  int max_args;
  std::vector<FlagSpec> flags;
  Handler run;
};

// Flags accepted before or after any command.
const std::vector<FlagSpec>& GlobalFlags();

// Every command, in the order the help text lists them.
const std::vector<Command>& Commands();

// The named command, or nullptr.
const Command* FindCommand(absl::string_view name);

// The full help text: synopsis, global flags and every command.
void PrintHelp(std::ostream& out);

// The usage line and summary of one command.
void PrintCommandHelp(const Command& command, std::ostream& out);

// Writes "error: CODE: message" to `in.err` (for UNAUTHENTICATED without a
// token, followed by a line saying how to give one); returns kExitRpcFailed.
int RpcFailure(const Invocation& in, absl::StatusCode code, absl::string_view message);
int RpcFailure(const Invocation& in, const grpc::Status& status);
int RpcFailure(const Invocation& in, const absl::Status& status);

// The line RpcFailure adds after the error ("hint: ..."), or "" when it adds
// none, for commands that report errors in their own format (work).
std::string AuthHint(const Invocation& in, absl::StatusCode code);

// Writes "usage error: MESSAGE" and a hint (the command's usage line, or a
// pointer to `kanbanctl help`) to `err`; returns kExitUsage.
int UsageFailure(const Command* command, absl::string_view message, std::ostream& err);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_KANBANCTL_COMMANDS_H_
