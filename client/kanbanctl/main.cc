// kanbanctl: the command-line client of kanband. Parses the command line,
// opens a channel to --server (one kanband, or several replicas balanced
// with round_robin: see ResolveServerAddress in client/cpp/channel.h),
// plaintext or TLS with the --tls-* flags (with --token or $KANBAN_TOKEN,
// every call carries the bearer token), and runs one command from the table
// in commands.h. Run `kanbanctl help` for the commands.

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "client/cpp/channel.h"
#include "client/cpp/tls.h"
#include "client/kanbanctl/args.h"
#include "client/kanbanctl/commands.h"
#include "grpc/support/log.h"
#include "grpcpp/security/credentials.h"
#include "kanban/v1/kanban.grpc.pb.h"

namespace kanban::client {
namespace {

constexpr char kDefaultServer[] = "127.0.0.1:7300";
constexpr char kServerEnv[] = "KANBAN_SERVER";
constexpr char kTokenEnv[] = "KANBAN_TOKEN";
constexpr double kDefaultTimeoutSeconds = 10;

// The flag's value, else the variable's when set and not empty, else
// `fallback`.
std::string FlagOrEnv(const ParsedArgs& args, absl::string_view flag, const char* env,
                      const std::string& fallback = "") {
  const char* value = std::getenv(env);
  return args.Get(flag, value != nullptr && *value != '\0' ? value : fallback);
}

std::string ServerAddress(const ParsedArgs& args) {
  return FlagOrEnv(args, "server", kServerEnv, kDefaultServer);
}

TlsFiles TlsFilesFrom(const ParsedArgs& args) {
  return TlsFiles{FlagOrEnv(args, "tls-ca", "KANBAN_TLS_CA"),
                  FlagOrEnv(args, "tls-cert", "KANBAN_TLS_CERT"),
                  FlagOrEnv(args, "tls-key", "KANBAN_TLS_KEY"),
                  FlagOrEnv(args, "tls-server-name", "KANBAN_TLS_SERVER_NAME")};
}

// A usage problem with the number of positional arguments, or "" if none.
std::string CheckArgumentCount(const Command& command, const ParsedArgs& args) {
  const int count = static_cast<int>(args.positional().size());
  if (count < command.min_args) {
    return absl::StrCat("missing argument for \"", command.name, "\"");
  }
  if (count > command.max_args) {
    return absl::StrCat("unexpected argument \"", args.positional()[command.max_args],
                        "\" for \"", command.name, "\"");
  }
  return "";
}

int Main(int argc, char** argv) {
  absl::StatusOr<CommandLine> line =
      ParseCommandLine(std::vector<std::string>(argv + 1, argv + argc), GlobalFlags(),
                       [](absl::string_view name) -> const std::vector<FlagSpec>* {
                         const Command* command = FindCommand(name);
                         return command == nullptr ? nullptr : &command->flags;
                       });
  if (!line.ok()) return UsageFailure(nullptr, line.status().message(), std::cerr);
  const ParsedArgs& args = line->args;
  const Command* command = FindCommand(line->command);

  if (args.Has("help")) {
    if (command != nullptr) {
      PrintCommandHelp(*command, std::cout);
    } else {
      PrintHelp(std::cout);
    }
    return kExitOk;
  }
  if (args.Has("version")) {
    std::cout << "kanbanctl " << KANBAN_VERSION << "\n";
    return kExitOk;
  }
  if (command == nullptr) return UsageFailure(nullptr, "no command given", std::cerr);
  if (std::string problem = CheckArgumentCount(*command, args); !problem.empty()) {
    return UsageFailure(command, problem, std::cerr);
  }

  // gRPC logs a failed connection (a refused TLS handshake, ...) to stderr
  // itself, and the same reason reaches the user in "error: CODE: message":
  // keep the output to that one line unless GRPC_VERBOSITY asks for more.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) {
    gpr_set_log_function([](gpr_log_func_args*) {});
  }
  // The channel connects lazily, so commands that make no call cost nothing.
  const std::string server = ServerAddress(args);
  // Checked (and its names resolved) before anything else: a bad list is a
  // usage error that names the flag.
  absl::StatusOr<ServerTarget> target = ResolveServerAddress(server);
  if (!target.ok()) {
    return UsageFailure(
        nullptr,
        absl::StrCat("--server (or $", kServerEnv, "): ", target.status().message()),
        std::cerr);
  }
  absl::StatusOr<ChannelSecurity> security = LoadChannelSecurity(TlsFilesFrom(args));
  if (!security.ok()) {
    return UsageFailure(nullptr, security.status().message(), std::cerr);
  }
  // A token read from a file or pasted usually brings a line break along.
  const std::string token(
      absl::StripAsciiWhitespace(FlagOrEnv(args, "token", kTokenEnv)));
  absl::StatusOr<std::shared_ptr<grpc::Channel>> made_channel =
      CreateChannel(*target, *security, token);
  if (!made_channel.ok()) {
    // The message names the problem, never the token itself.
    return UsageFailure(
        nullptr,
        absl::StrCat("--token (or $", kTokenEnv, "): ", made_channel.status().message()),
        std::cerr);
  }
  const std::shared_ptr<grpc::Channel> channel = *std::move(made_channel);
  std::unique_ptr<v1::KanbanService::Stub> stub = v1::KanbanService::NewStub(channel);
  std::unique_ptr<v1::HeartbeatService::Stub> heartbeat_stub =
      v1::HeartbeatService::NewStub(channel);
  const Invocation invocation{
      *command,
      args,
      *stub,
      *heartbeat_stub,
      channel,
      server,
      *security,
      token,
      args.Has("json"),
      absl::Seconds(args.GetSeconds("timeout").value_or(kDefaultTimeoutSeconds)),
      std::cout,
      std::cerr};
  return command->run(invocation);
}

}  // namespace
}  // namespace kanban::client

int main(int argc, char** argv) { return kanban::client::Main(argc, argv); }
