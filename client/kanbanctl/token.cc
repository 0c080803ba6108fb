#include "client/kanbanctl/token.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/kanbanctl/print.h"
#include "grpcpp/client_context.h"

namespace kanban::client {
namespace {

using Stub = v1::AdminService::Stub;

// One unary AdminService call with the command's deadline.
template <typename Request, typename Response>
grpc::Status Invoke(const Invocation& in, Stub& stub,
                    grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Request&,
                                              Response*),
                    const Request& request, Response* response) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + in.timeout));
  return (stub.*rpc)(&context, request, response);
}

int PrintJson(const Invocation& in, const google::protobuf::Message& message) {
  absl::StatusOr<std::string> json = ToJson(message);
  if (!json.ok()) {
    in.err << "error: " << json.status().message() << "\n";
    return kExitRpcFailed;
  }
  in.out << *json << "\n";
  return kExitOk;
}

int Create(const Invocation& in, Stub& stub) {
  if (in.args.positional().size() != 1) {
    return UsageFailure(&in.command, "token create: takes no NAME; use --name", in.err);
  }
  absl::StatusOr<v1::CreateTokenRequest> request = BuildCreateToken(in.args);
  if (!request.ok()) {
    return UsageFailure(&in.command, request.status().message(), in.err);
  }
  v1::CreateTokenResponse response;
  grpc::Status status = Invoke(in, stub, &Stub::CreateToken, *request, &response);
  if (!status.ok()) return RpcFailure(in, status);
  if (in.json) {
    if (int rc = PrintJson(in, response); rc != kExitOk) return rc;
  } else {
    // Alone on stdout, for TOKEN=$(kanbanctl token create ...).
    in.out << response.secret() << "\n";
  }
  const v1::Token& token = response.token();
  in.err << "created token " << token.name() << " (role " << RoleName(token.role())
         << ", boards " << TokenBoards(token)
         << (token.worker_id().empty() ? "" : ", worker " + token.worker_id())
         << "). Store its secret now: it cannot be shown again.\n";
  return kExitOk;
}

int List(const Invocation& in, Stub& stub) {
  if (in.args.positional().size() != 1) {
    return UsageFailure(&in.command, "token list: takes no NAME", in.err);
  }
  v1::ListTokensRequest request;
  request.set_include_revoked(in.args.Has("all"));
  v1::ListTokensResponse response;
  grpc::Status status = Invoke(in, stub, &Stub::ListTokens, request, &response);
  if (!status.ok()) return RpcFailure(in, status);
  if (in.json) return PrintJson(in, response);
  PrintTokens(response, in.out);
  return kExitOk;
}

int Revoke(const Invocation& in, Stub& stub) {
  if (in.args.positional().size() != 2) {
    return UsageFailure(&in.command, "token revoke: NAME is required", in.err);
  }
  v1::RevokeTokenRequest request;
  request.set_name(in.args.positional()[1]);
  v1::Token response;
  grpc::Status status = Invoke(in, stub, &Stub::RevokeToken, request, &response);
  if (!status.ok()) return RpcFailure(in, status);
  if (in.json) return PrintJson(in, response);
  PrintToken(response, in.out);
  return kExitOk;
}

}  // namespace

absl::StatusOr<v1::Role> ParseRole(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "admin") return v1::ROLE_ADMIN;
  if (lower == "producer") return v1::ROLE_PRODUCER;
  if (lower == "worker") return v1::ROLE_WORKER;
  if (lower == "viewer") return v1::ROLE_VIEWER;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role \"", name, "\"; use admin, producer, worker or viewer"));
}

absl::StatusOr<v1::CreateTokenRequest> BuildCreateToken(const ParsedArgs& args) {
  if (!args.Has("name")) return absl::InvalidArgumentError("token create needs --name");
  if (!args.Has("role")) return absl::InvalidArgumentError("token create needs --role");
  absl::StatusOr<v1::Role> role = ParseRole(args.Get("role"));
  if (!role.ok()) return role.status();
  const bool worker = *role == v1::ROLE_WORKER;
  if (worker != args.Has("worker-id")) {
    return absl::InvalidArgumentError(worker
                                          ? "a worker token needs --worker-id"
                                          : "--worker-id goes with --role worker only");
  }
  v1::CreateTokenRequest request;
  request.set_name(args.Get("name"));
  request.set_role(*role);
  for (const std::string& value : args.GetAll("board")) {
    for (absl::string_view board : absl::StrSplit(value, ',', absl::SkipEmpty())) {
      request.add_boards(std::string(board));
    }
  }
  request.set_worker_id(args.Get("worker-id"));
  return request;
}

int RunToken(const Invocation& in) {
  const std::string& action = in.args.positional()[0];
  std::unique_ptr<Stub> stub = v1::AdminService::NewStub(in.channel);
  if (action == "create") return Create(in, *stub);
  if (action == "list") return List(in, *stub);
  if (action == "revoke") return Revoke(in, *stub);
  return UsageFailure(
      &in.command,
      absl::StrCat("token: unknown action \"", action, "\" (create, list or revoke)"),
      in.err);
}

}  // namespace kanban::client
