// Turns a parsed kanbanctl command line into the request message of one RPC.
// Pure functions of their arguments, except that --body-file reads a file or
// stdin; thread-compatible.
//
// Each builder expects the command's positional arguments to be present (the
// dispatcher checks their count first) and returns INVALID_ARGUMENT, with a
// message for the user, on input it cannot turn into a request.
#ifndef KANBAN_CLIENT_KANBANCTL_REQUESTS_H_
#define KANBAN_CLIENT_KANBANCTL_REQUESTS_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/kanbanctl/args.h"
#include "google/protobuf/duration.pb.h"
#include "kanban/v1/kanban.pb.h"

namespace kanban::client {

// "todo", "Ready", "DONE", ... -> the enum value; STATUS_UNSPECIFIED and
// unknown names are INVALID_ARGUMENT.
absl::StatusOr<v1::Status> ParseStatus(absl::string_view name);

// board-create NAME [--description D]
absl::StatusOr<v1::CreateBoardRequest> BuildCreateBoard(const ParsedArgs& args);
// create --title T [...]
absl::StatusOr<v1::CreateTaskRequest> BuildCreateTask(const ParsedArgs& args);
// get ID
absl::StatusOr<v1::GetTaskRequest> BuildGetTask(const ParsedArgs& args);
// list [--board B] [--status S]... [...]; --status also takes "a,b".
absl::StatusOr<v1::ListTasksRequest> BuildListTasks(const ParsedArgs& args);
// update ID [--title T] [...]
absl::StatusOr<v1::UpdateTaskRequest> BuildUpdateTask(const ParsedArgs& args);
// move ID STATUS [--expected-version N] [--reason R]
absl::StatusOr<v1::MoveTaskRequest> BuildMoveTask(const ParsedArgs& args);
// link PARENT_ID CHILD_ID
absl::StatusOr<v1::LinkTasksRequest> BuildLinkTasks(const ParsedArgs& args);
// unlink PARENT_ID CHILD_ID
absl::StatusOr<v1::UnlinkTasksRequest> BuildUnlinkTasks(const ParsedArgs& args);
// comment ID BODY [--author A]; the author defaults to $USER, else "cli".
absl::StatusOr<v1::AddCommentRequest> BuildAddComment(const ParsedArgs& args);
// comments ID
absl::StatusOr<v1::ListCommentsRequest> BuildListComments(const ParsedArgs& args);

// claim --worker W [--board B] [--label L]... [--assignee A] [--lease D]
// [--wait D]
absl::StatusOr<v1::ClaimTaskRequest> BuildClaimTask(const ParsedArgs& args);
// heartbeat --worker W [TASK_ID:TOKEN]...
absl::StatusOr<v1::HeartbeatRequest> BuildHeartbeat(const ParsedArgs& args);
// complete TASK_ID TOKEN [--result R]
absl::StatusOr<v1::CompleteTaskRequest> BuildCompleteTask(const ParsedArgs& args);
// fail TASK_ID TOKEN --error E [--retry]
absl::StatusOr<v1::FailTaskRequest> BuildFailTask(const ParsedArgs& args);
// release TASK_ID TOKEN
absl::StatusOr<v1::ReleaseTaskRequest> BuildReleaseTask(const ParsedArgs& args);
// workers [--board B]
absl::StatusOr<v1::ListWorkersRequest> BuildListWorkers(const ParsedArgs& args);

// `duration` as a google.protobuf.Duration.
google::protobuf::Duration ToProtoDuration(absl::Duration duration);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_KANBANCTL_REQUESTS_H_
