#include "client/kanbanctl/commands.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/kanbanctl/db.h"
#include "client/kanbanctl/health.h"
#include "client/kanbanctl/print.h"
#include "client/kanbanctl/requests.h"
#include "client/kanbanctl/token.h"
#include "client/kanbanctl/watch.h"
#include "client/kanbanctl/work.h"
#include "grpcpp/client_context.h"

namespace kanban::client {
namespace {

using Stub = v1::KanbanService::StubInterface;
using HeartbeatStub = v1::HeartbeatService::StubInterface;

// A blocking unary method of either stub, e.g. &Stub::GetTask.
template <typename S, typename Request, typename Response>
using Rpc = grpc::Status (S::*)(grpc::ClientContext*, const Request&, Response*);

// The invocation's stub of type S.
template <typename S>
S& StubOf(const Invocation& in);
template <>
Stub& StubOf<Stub>(const Invocation& in) {
  return in.stub;
}
template <>
HeartbeatStub& StubOf<HeartbeatStub>(const Invocation& in) {
  return in.heartbeat_stub;
}

template <typename Response>
using Printer = void (*)(const Response&, std::ostream&);

// Bound on the positional arguments of commands that take a list.
constexpr int kManyArgs = 1 << 20;

// ---- Flags, shared by the commands that accept them. ----------------------

const FlagSpec kAfter{"after", FlagKind::kInt64};
const FlagSpec kAll{"all", FlagKind::kBool};
const FlagSpec kAssignee{"assignee", FlagKind::kString};
const FlagSpec kAuthor{"author", FlagKind::kString};
const FlagSpec kBoard{"board", FlagKind::kString};
const FlagSpec kBody{"body", FlagKind::kString};
const FlagSpec kBodyFile{"body-file", FlagKind::kString};
const FlagSpec kBookmarkInterval{"bookmark-interval", FlagKind::kDuration};
const FlagSpec kClearLabels{"clear-labels", FlagKind::kBool};
const FlagSpec kDescription{"description", FlagKind::kString};
const FlagSpec kError{"error", FlagKind::kString};
const FlagSpec kExpectedVersion{"expected-version", FlagKind::kInt64};
const FlagSpec kFromNow{"from-now", FlagKind::kBool};
const FlagSpec kGrace{"grace", FlagKind::kDuration};
const FlagSpec kIdempotencyKey{"idempotency-key", FlagKind::kString};
const FlagSpec kKind{"kind", FlagKind::kString};
const FlagSpec kLabel{"label", FlagKind::kString};
const FlagSpec kLease{"lease", FlagKind::kDuration};
const FlagSpec kMaxAttempts{"max-attempts", FlagKind::kInt32};
const FlagSpec kMaxTasks{"max-tasks", FlagKind::kInt32};
const FlagSpec kName{"name", FlagKind::kString};
const FlagSpec kNotBefore{"not-before", FlagKind::kString};
const FlagSpec kOnce{"once", FlagKind::kBool};
const FlagSpec kOverwrite{"overwrite", FlagKind::kBool};
const FlagSpec kPageSize{"page-size", FlagKind::kInt32};
const FlagSpec kPageToken{"page-token", FlagKind::kString};
const FlagSpec kParent{"parent", FlagKind::kString};
const FlagSpec kPriority{"priority", FlagKind::kInt32};
const FlagSpec kQuick{"quick", FlagKind::kBool};
const FlagSpec kReason{"reason", FlagKind::kString};
const FlagSpec kResult{"result", FlagKind::kString};
const FlagSpec kRetry{"retry", FlagKind::kBool};
const FlagSpec kRole{"role", FlagKind::kString};
const FlagSpec kService{"service", FlagKind::kString};
const FlagSpec kStatus{"status", FlagKind::kString};
const FlagSpec kTask{"task", FlagKind::kString};
const FlagSpec kTitle{"title", FlagKind::kString};
const FlagSpec kTriage{"triage", FlagKind::kBool};
const FlagSpec kUnary{"unary", FlagKind::kBool};
const FlagSpec kVerbose{"verbose", FlagKind::kBool};
const FlagSpec kWait{"wait", FlagKind::kDuration};
const FlagSpec kWorker{"worker", FlagKind::kString};
const FlagSpec kWorkerId{"worker-id", FlagKind::kString};

// ---- Calling and reporting. ------------------------------------------------

template <typename Request>
absl::StatusOr<Request> NoArguments() {
  return Request();
}

// `extra` lengthens the deadline of calls that wait on the server by design.
template <typename S, typename Request, typename Response>
grpc::Status Invoke(const Invocation& in, Rpc<S, Request, Response> rpc,
                    const Request& request, Response* response,
                    absl::Duration extra = absl::ZeroDuration()) {
  grpc::ClientContext context;
  // gRPC 1.51 takes only system_clock deadlines.
  context.set_deadline(absl::ToChronoTime(absl::Now() + in.timeout + extra));
  return (StubOf<S>(in).*rpc)(&context, request, response);
}

template <typename Response>
int Emit(const Invocation& in, const Response& response, Printer<Response> print) {
  if (!in.json) {
    print(response, in.out);
    return kExitOk;
  }
  absl::StatusOr<std::string> json = ToJson(response);
  if (!json.ok()) {
    in.err << "error: " << json.status().message() << "\n";
    return kExitRpcFailed;
  }
  in.out << *json << "\n";
  return kExitOk;
}

// The whole life of a simple command: request, call, print.
template <typename S, typename Request, typename Response>
int Call(const Invocation& in, const absl::StatusOr<Request>& request,
         Rpc<S, Request, Response> rpc, Printer<Response> print,
         absl::Duration extra_timeout = absl::ZeroDuration()) {
  if (!request.ok()) {
    return UsageFailure(&in.command, request.status().message(), in.err);
  }
  Response response;
  grpc::Status status = Invoke(in, rpc, *request, &response, extra_timeout);
  if (!status.ok()) return RpcFailure(in, status);
  return Emit(in, response, print);
}

// ---- Handlers that are more than Call(). -----------------------------------

// With --all, follows next_page_token to the end and shows one merged list.
int RunList(const Invocation& in) {
  absl::StatusOr<v1::ListTasksRequest> request = BuildListTasks(in.args);
  if (!request.ok()) {
    return UsageFailure(&in.command, request.status().message(), in.err);
  }
  const bool follow = in.args.Has("all");
  v1::ListTasksResponse merged;
  do {
    v1::ListTasksResponse page;
    grpc::Status status = Invoke(in, &Stub::ListTasks, *request, &page);
    if (!status.ok()) return RpcFailure(in, status);
    if (follow && !page.next_page_token().empty() &&
        page.next_page_token() == request->page_token()) {
      // A server that hands back the token it was given would loop forever.
      in.err << "error: the server repeated page token " << page.next_page_token()
             << "\n";
      return kExitRpcFailed;
    }
    for (v1::Task& task : *page.mutable_tasks()) {
      *merged.add_tasks() = std::move(task);
    }
    merged.set_next_page_token(page.next_page_token());
    request->set_page_token(page.next_page_token());
  } while (follow && !merged.next_page_token().empty());
  if (!merged.next_page_token().empty()) {
    in.err << "next page: --page-token " << merged.next_page_token() << "\n";
  }
  return Emit(in, merged, PrintTasks);
}

// The call waits on the server for up to --wait, so its deadline does too.
int RunClaim(const Invocation& in) {
  return Call(in, BuildClaimTask(in.args), &Stub::ClaimTask, PrintClaim,
              in.args.GetDuration("wait").value_or(absl::ZeroDuration()));
}

int RunHelp(const Invocation& in) {
  if (in.args.positional().empty()) {
    PrintHelp(in.out);
    return kExitOk;
  }
  const Command* command = FindCommand(in.args.positional()[0]);
  if (command == nullptr) {
    return UsageFailure(&in.command,
                        absl::StrCat("unknown command \"", in.args.positional()[0], "\""),
                        in.err);
  }
  PrintCommandHelp(*command, in.out);
  return kExitOk;
}

}  // namespace

std::string AuthHint(const Invocation& in, absl::StatusCode code) {
  if (code != absl::StatusCode::kUnauthenticated || !in.token.empty()) return "";
  return "hint: this server requires a token: give --token or set KANBAN_TOKEN";
}

int RpcFailure(const Invocation& in, absl::StatusCode code, absl::string_view message) {
  in.err << "error: " << absl::StatusCodeToString(code) << ": " << message << "\n";
  if (std::string hint = AuthHint(in, code); !hint.empty()) in.err << hint << "\n";
  return kExitRpcFailed;
}

// grpc::StatusCode and absl::StatusCode share their numbering (both are
// google.rpc.Code), so absl supplies the canonical names.
int RpcFailure(const Invocation& in, const grpc::Status& status) {
  return RpcFailure(in, static_cast<absl::StatusCode>(status.error_code()),
                    status.error_message());
}

int RpcFailure(const Invocation& in, const absl::Status& status) {
  return RpcFailure(in, status.code(), status.message());
}

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"server", FlagKind::kString},          {"json", FlagKind::kBool},
      {"timeout", FlagKind::kSeconds},        {"help", FlagKind::kBool},
      {"version", FlagKind::kBool},           {"tls-ca", FlagKind::kString},
      {"tls-cert", FlagKind::kString},        {"tls-key", FlagKind::kString},
      {"tls-server-name", FlagKind::kString}, {"token", FlagKind::kString}};
  return *flags;
}

// Kept in table layout by hand: one command per entry, its fields in the
// order of struct Command.
// clang-format off
const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"boards", "", "List the boards.", 0, 0, {},
       [](const Invocation& in) {
         return Call(in, NoArguments<v1::ListBoardsRequest>(), &Stub::ListBoards,
                     PrintBoards);
       }},
      {"board-create", "NAME [--description D]",
       "Create a board; NAME matches [a-z0-9_-]{1,64}.", 1, 1, {kDescription},
       [](const Invocation& in) {
         return Call(in, BuildCreateBoard(in.args), &Stub::CreateBoard, PrintBoard);
       }},
      {"create",
       "--title T [--board B] [--body TEXT | --body-file PATH] [--priority N] "
       "[--label L]... [--assignee A] [--parent ID]... [--max-attempts N] "
       "[--not-before RFC3339] [--idempotency-key K] [--triage]",
       "Create a task (--body-file - reads stdin).", 0, 0,
       {kTitle, kBoard, kBody, kBodyFile, kPriority, kLabel, kAssignee, kParent,
        kMaxAttempts, kNotBefore, kIdempotencyKey, kTriage},
       [](const Invocation& in) {
         return Call(in, BuildCreateTask(in.args), &Stub::CreateTask, PrintTask);
       }},
      {"get", "ID", "Show one task.", 1, 1, {},
       [](const Invocation& in) {
         return Call(in, BuildGetTask(in.args), &Stub::GetTask, PrintTask);
       }},
      {"list",
       "[--board B] [--status S]... [--assignee A] [--label L] [--page-size N] "
       "[--page-token T] [--all]",
       "List tasks, highest priority first, then oldest; --all fetches every page.",
       0, 0, {kBoard, kStatus, kAssignee, kLabel, kPageSize, kPageToken, kAll},
       RunList},
      {"update",
       "ID [--title T] [--body B] [--priority N] [--assignee A] [--label L]... "
       "[--clear-labels] [--expected-version N]",
       "Change a task's fields; --label replaces all labels.", 1, 1,
       {kTitle, kBody, kPriority, kAssignee, kLabel, kClearLabels, kExpectedVersion},
       [](const Invocation& in) {
         return Call(in, BuildUpdateTask(in.args), &Stub::UpdateTask, PrintTask);
       }},
      {"move", "ID STATUS [--expected-version N] [--reason R]",
       "Move a task; STATUS is triage, todo, ready, running, blocked, review, done "
       "or archived.",
       2, 2, {kExpectedVersion, kReason},
       [](const Invocation& in) {
         return Call(in, BuildMoveTask(in.args), &Stub::MoveTask, PrintTask);
       }},
      {"link", "PARENT_ID CHILD_ID", "Make CHILD_ID wait for PARENT_ID.", 2, 2, {},
       [](const Invocation& in) {
         return Call(in, BuildLinkTasks(in.args), &Stub::LinkTasks, PrintTask);
       }},
      {"unlink", "PARENT_ID CHILD_ID", "Remove a link made by link.", 2, 2, {},
       [](const Invocation& in) {
         return Call(in, BuildUnlinkTasks(in.args), &Stub::UnlinkTasks, PrintTask);
       }},
      {"comment", "ID BODY [--author A]",
       "Comment on a task (author: --author, else $USER, else cli).", 2, 2, {kAuthor},
       [](const Invocation& in) {
         return Call(in, BuildAddComment(in.args), &Stub::AddComment, PrintComment);
       }},
      {"comments", "ID", "Show a task's comments, oldest first.", 1, 1, {},
       [](const Invocation& in) {
         return Call(in, BuildListComments(in.args), &Stub::ListComments,
                     PrintComments);
       }},
      {"info", "", "Show the server's version and database settings.", 0, 0, {},
       [](const Invocation& in) {
         return Call(in, NoArguments<v1::GetServerInfoRequest>(), &Stub::GetServerInfo,
                     PrintServerInfo);
       }},
      {"claim",
       "--worker W [--board B] [--label L]... [--assignee A] [--lease 60s] "
       "[--wait 0s]",
       "Claim the next READY task and print it with its lease token; --wait "
       "waits for one (at most 30s).",
       0, 0, {kWorker, kBoard, kLabel, kAssignee, kLease, kWait}, RunClaim},
      {"heartbeat", "--worker W [TASK_ID:TOKEN]...",
       "Extend leases; prints EXTENDED or LOST (with the reason) for each.", 0,
       kManyArgs, {kWorker},
       [](const Invocation& in) {
         return Call(in, BuildHeartbeat(in.args), &HeartbeatStub::Heartbeat,
                     PrintHeartbeat);
       }},
      {"complete", "TASK_ID TOKEN [--result R]", "Finish a claimed task: DONE.", 2, 2,
       {kResult},
       [](const Invocation& in) {
         return Call(in, BuildCompleteTask(in.args), &Stub::CompleteTask, PrintTask);
       }},
      {"fail", "TASK_ID TOKEN --error E [--retry]",
       "Fail a claimed task: READY after a backoff with --retry while attempts are "
       "left, else BLOCKED.",
       2, 2, {kError, kRetry},
       [](const Invocation& in) {
         return Call(in, BuildFailTask(in.args), &Stub::FailTask, PrintTask);
       }},
      {"release", "TASK_ID TOKEN",
       "Give a claimed task back: READY at once, the attempt not counted.", 2, 2, {},
       [](const Invocation& in) {
         return Call(in, BuildReleaseTask(in.args), &Stub::ReleaseTask, PrintTask);
       }},
      {"workers", "[--board B]", "List workers, most recently seen first.", 0, 0,
       {kBoard},
       [](const Invocation& in) {
         return Call(in, BuildListWorkers(in.args), &HeartbeatStub::ListWorkers,
                     PrintWorkers);
       }},
      {"work",
       "[--board B] [--worker W] [--label L]... [--assignee A] [--lease 60s] "
       "[--wait 30s] [--max-tasks N] [--once] [--grace 10s] [--unary] -- COMMAND "
       "[ARG]...",
       "Claim tasks and run COMMAND for each: task in KANBAN_* variables, body on "
       "stdin; exit 0 completes it with stdout as the result, else fails it "
       "(retried). --once: at most one task. Tasks come on a worker stream "
       "(WorkerService.Work) unless the server has none or --unary asks for the "
       "ClaimTask, Heartbeat and CompleteTask/FailTask calls.",
       1, kManyArgs,
       {kBoard, kWorker, kLabel, kAssignee, kLease, kWait, kMaxTasks, kOnce, kGrace,
        kUnary},
       RunWork},
      {"watch",
       "[--board B] [--after N | --from-now] [--task ID]... [--kind K]... "
       "[--bookmark-interval 10s] [--verbose]",
       "Print events as they are committed, one line each, until SIGINT or "
       "SIGTERM; resumes by itself after disconnects. Starts from now, or after "
       "seq N (0: all retained history); --verbose shows bookmarks on stderr.",
       0, 0, {kBoard, kAfter, kFromNow, kTask, kKind, kBookmarkInterval, kVerbose},
       RunWatch},
      {"health", "[--service NAME]",
       "Ask grpc.health.v1.Health/Check; prints SERVING, NOT_SERVING, UNKNOWN or "
       "SERVICE_UNKNOWN. Exit 0 only for SERVING, 1 otherwise, 3 when the server "
       "did not answer (unreachable or --timeout passed).",
       0, 0, {kService}, RunHealth},
      {"db", "backup PATH [--overwrite] | check [--quick]",
       "backup: copy the database to PATH on the server's machine while it "
       "serves (made absolute here), with progress. check: run integrity_check "
       "(--quick: quick_check); exit 1 when it finds problems.",
       1, 2, {kOverwrite, kQuick}, RunDb},
      {"token",
       "create --name N --role admin|producer|worker|viewer [--board B]... "
       "[--worker-id W] | list [--all] | revoke NAME",
       "Manage bearer tokens (admin only). create: print the new token's secret "
       "alone on stdout, once (the server keeps only a hash; --board limits it "
       "to boards, --worker-id names a worker token's worker). list: the "
       "tokens, without secrets (--all: revoked ones too; BOARDS * is every "
       "board). revoke: refuse NAME from its next call on.",
       1, 2, {kName, kRole, kBoard, kWorkerId, kAll}, RunToken},
      {"help", "[COMMAND]", "Show this help, or one command's usage.", 0, 1, {},
       RunHelp},
  };
  return *commands;
}
// clang-format on

const Command* FindCommand(absl::string_view name) {
  const std::vector<Command>& commands = Commands();
  auto it = std::find_if(commands.begin(), commands.end(),
                         [&](const Command& c) { return name == c.name; });
  return it == commands.end() ? nullptr : &*it;
}

void PrintHelp(std::ostream& out) {
  out << "kanbanctl: command-line client of the kanban task board.\n\n"
         "usage: kanbanctl [--server ADDR] [--token TOKEN] [--json] "
         "[--timeout SECONDS] COMMAND [ARGS...]\n\n"
         "global flags (also accepted after the command; --flag=value works "
         "too):\n"
         "  --server ADDR      server address (default: $KANBAN_SERVER, else "
         "127.0.0.1:7300);\n"
         "                     several replicas: host:port,host:port,... (calls\n"
         "                     are spread over them and skip one that is down),\n"
         "                     or dns:///name:port for a name with several records\n"
         "  --token TOKEN      bearer token sent with every call, for a kanband\n"
         "                     run with --auth=token (default: $KANBAN_TOKEN, the\n"
         "                     safer way: other users can see flags in ps).\n"
         "                     Without TLS it crosses the network in the clear.\n"
         "  --json             print each response as one line of JSON\n"
         "  --timeout SECONDS  deadline of each call (default: 10)\n"
         "  --help, -h         show this help (after a command: its usage)\n"
         "  --version          show the version\n"
         "  --tls-ca FILE      use TLS, trusting the CA certificate(s) in FILE (PEM)\n"
         "  --tls-cert FILE    client certificate (PEM), for servers that require one\n"
         "  --tls-key FILE     private key of --tls-cert\n"
         "  --tls-server-name NAME\n"
         "                     name the server's certificate must carry (default: the\n"
         "                     (first) host in --server)\n"
         "  Any --tls-* flag turns TLS on (without --tls-ca, the system's CAs are\n"
         "  trusted). Defaults: $KANBAN_TLS_CA, $KANBAN_TLS_CERT, $KANBAN_TLS_KEY,\n"
         "  $KANBAN_TLS_SERVER_NAME.\n\n"
         "commands:\n";
  for (const Command& command : Commands()) {
    out << "  " << command.name << (*command.usage ? " " : "") << command.usage
        << "\n      " << command.summary << "\n";
  }
  out << "\nexit status: 0 success, 1 the server returned an error "
         "(printed as \"error: CODE: message\"), 2 usage error.\n";
}

void PrintCommandHelp(const Command& command, std::ostream& out) {
  out << "usage: kanbanctl " << command.name << (*command.usage ? " " : "")
      << command.usage << "\n  " << command.summary << "\n";
}

int UsageFailure(const Command* command, absl::string_view message, std::ostream& err) {
  err << "usage error: " << message << "\n";
  if (command != nullptr) {
    err << "usage: kanbanctl " << command->name << (*command->usage ? " " : "")
        << command->usage << "\n";
  } else {
    err << "run 'kanbanctl help' for the list of commands\n";
  }
  return kExitUsage;
}

}  // namespace kanban::client
