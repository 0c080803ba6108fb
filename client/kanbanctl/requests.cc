#include "client/kanbanctl/requests.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace kanban::client {
namespace {

absl::Status Usage(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

absl::StatusOr<std::string> ReadBodyFile(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), {});
  }
  std::ifstream file(path, std::ios::binary);
  if (!file.is_open()) {
    return Usage(
        absl::StrCat("--body-file: cannot open \"", path, "\": ", std::strerror(errno)));
  }
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// The body from --body or --body-file; nullopt when neither was given.
absl::StatusOr<std::optional<std::string>> Body(const ParsedArgs& args) {
  if (args.Has("body") && args.Has("body-file")) {
    return Usage("give --body or --body-file, not both");
  }
  if (args.Has("body-file")) return ReadBodyFile(args.Get("body-file"));
  if (args.Has("body")) return args.Get("body");
  return std::nullopt;
}

absl::StatusOr<google::protobuf::Timestamp> ParseTimestamp(absl::string_view flag,
                                                           const std::string& text) {
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &time, &error)) {
    return Usage(absl::StrCat("--", flag, ": \"", text,
                              "\" is not an RFC 3339 time such as "
                              "2024-05-01T09:30:00Z (",
                              error, ")"));
  }
  google::protobuf::Timestamp timestamp;
  int64_t seconds = absl::ToUnixSeconds(time);
  timestamp.set_seconds(seconds);
  timestamp.set_nanos(static_cast<int32_t>((time - absl::FromUnixSeconds(seconds)) /
                                           absl::Nanoseconds(1)));
  return timestamp;
}

template <typename Repeated>
void AddAll(const std::vector<std::string>& values, Repeated* field) {
  for (const std::string& value : values) *field->Add() = value;
}

}  // namespace

absl::StatusOr<v1::Status> ParseStatus(absl::string_view name) {
  v1::Status status = v1::STATUS_UNSPECIFIED;
  std::string upper = absl::AsciiStrToUpper(name);
  if (!v1::Status_Parse(upper, &status) || status == v1::STATUS_UNSPECIFIED) {
    return Usage(
        absl::StrCat("unknown status \"", name,
                     "\"; use triage, todo, ready, running, blocked, review, done or "
                     "archived"));
  }
  return status;
}

absl::StatusOr<v1::CreateBoardRequest> BuildCreateBoard(const ParsedArgs& args) {
  v1::CreateBoardRequest request;
  request.set_name(args.positional()[0]);
  request.set_description(args.Get("description"));
  return request;
}

absl::StatusOr<v1::CreateTaskRequest> BuildCreateTask(const ParsedArgs& args) {
  if (!args.Has("title")) return Usage("create needs --title");
  v1::CreateTaskRequest request;
  request.set_title(args.Get("title"));
  request.set_board(args.Get("board"));
  absl::StatusOr<std::optional<std::string>> body = Body(args);
  if (!body.ok()) return body.status();
  if (body->has_value()) request.set_body(**body);
  request.set_priority(args.GetInt32("priority").value_or(0));
  AddAll(args.GetAll("label"), request.mutable_labels());
  request.set_assignee(args.Get("assignee"));
  AddAll(args.GetAll("parent"), request.mutable_parent_ids());
  request.set_max_attempts(args.GetInt32("max-attempts").value_or(0));
  if (args.Has("not-before")) {
    absl::StatusOr<google::protobuf::Timestamp> not_before =
        ParseTimestamp("not-before", args.Get("not-before"));
    if (!not_before.ok()) return not_before.status();
    *request.mutable_not_before() = *not_before;
  }
  request.set_idempotency_key(args.Get("idempotency-key"));
  if (args.Has("triage")) request.set_initial_status(v1::TRIAGE);
  return request;
}

absl::StatusOr<v1::GetTaskRequest> BuildGetTask(const ParsedArgs& args) {
  v1::GetTaskRequest request;
  request.set_task_id(args.positional()[0]);
  return request;
}

absl::StatusOr<v1::ListTasksRequest> BuildListTasks(const ParsedArgs& args) {
  v1::ListTasksRequest request;
  request.set_board(args.Get("board"));
  for (const std::string& value : args.GetAll("status")) {
    for (absl::string_view name : absl::StrSplit(value, ',', absl::SkipEmpty())) {
      absl::StatusOr<v1::Status> status = ParseStatus(name);
      if (!status.ok()) return status.status();
      request.add_statuses(*status);
    }
  }
  request.set_assignee(args.Get("assignee"));
  request.set_label(args.Get("label"));
  request.set_page_size(args.GetInt32("page-size").value_or(0));
  request.set_page_token(args.Get("page-token"));
  return request;
}

absl::StatusOr<v1::UpdateTaskRequest> BuildUpdateTask(const ParsedArgs& args) {
  if (args.Has("label") && args.Has("clear-labels")) {
    return Usage("give --label or --clear-labels, not both");
  }
  v1::UpdateTaskRequest request;
  request.set_task_id(args.positional()[0]);
  if (args.Has("title")) request.set_title(args.Get("title"));
  if (args.Has("body")) request.set_body(args.Get("body"));
  if (auto priority = args.GetInt32("priority")) request.set_priority(*priority);
  if (args.Has("assignee")) request.set_assignee(args.Get("assignee"));
  // Setting the message, even empty, is what replaces the labels.
  if (args.Has("label") || args.Has("clear-labels")) {
    AddAll(args.GetAll("label"), request.mutable_labels()->mutable_values());
  }
  request.set_expected_version(args.GetInt64("expected-version").value_or(0));
  return request;
}

absl::StatusOr<v1::MoveTaskRequest> BuildMoveTask(const ParsedArgs& args) {
  absl::StatusOr<v1::Status> to = ParseStatus(args.positional()[1]);
  if (!to.ok()) return to.status();
  v1::MoveTaskRequest request;
  request.set_task_id(args.positional()[0]);
  request.set_to_status(*to);
  request.set_expected_version(args.GetInt64("expected-version").value_or(0));
  request.set_reason(args.Get("reason"));
  return request;
}

absl::StatusOr<v1::LinkTasksRequest> BuildLinkTasks(const ParsedArgs& args) {
  v1::LinkTasksRequest request;
  request.set_parent_id(args.positional()[0]);
  request.set_child_id(args.positional()[1]);
  return request;
}

absl::StatusOr<v1::UnlinkTasksRequest> BuildUnlinkTasks(const ParsedArgs& args) {
  v1::UnlinkTasksRequest request;
  request.set_parent_id(args.positional()[0]);
  request.set_child_id(args.positional()[1]);
  return request;
}

absl::StatusOr<v1::AddCommentRequest> BuildAddComment(const ParsedArgs& args) {
  const char* user = std::getenv("USER");
  v1::AddCommentRequest request;
  request.set_task_id(args.positional()[0]);
  request.set_body(args.positional()[1]);
  request.set_author(args.Get("author", user != nullptr && *user != '\0' ? user : "cli"));
  return request;
}

absl::StatusOr<v1::ListCommentsRequest> BuildListComments(const ParsedArgs& args) {
  v1::ListCommentsRequest request;
  request.set_task_id(args.positional()[0]);
  return request;
}

google::protobuf::Duration ToProtoDuration(absl::Duration duration) {
  google::protobuf::Duration proto;
  const int64_t seconds = absl::IDivDuration(duration, absl::Seconds(1), &duration);
  proto.set_seconds(seconds);
  proto.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(duration)));
  return proto;
}

absl::StatusOr<v1::ClaimTaskRequest> BuildClaimTask(const ParsedArgs& args) {
  if (!args.Has("worker")) return Usage("claim needs --worker");
  v1::ClaimTaskRequest request;
  request.set_board(args.Get("board"));
  request.set_worker_id(args.Get("worker"));
  if (auto lease = args.GetDuration("lease")) {
    *request.mutable_lease_duration() = ToProtoDuration(*lease);
  }
  AddAll(args.GetAll("label"), request.mutable_labels());
  request.set_assignee(args.Get("assignee"));
  if (auto wait = args.GetDuration("wait")) {
    *request.mutable_wait() = ToProtoDuration(*wait);
  }
  return request;
}

absl::StatusOr<v1::HeartbeatRequest> BuildHeartbeat(const ParsedArgs& args) {
  if (!args.Has("worker")) return Usage("heartbeat needs --worker");
  v1::HeartbeatRequest request;
  request.set_worker_id(args.Get("worker"));
  for (const std::string& arg : args.positional()) {
    // Task ids have no colon; the token is everything after the first one.
    const size_t colon = arg.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == arg.size()) {
      return Usage(absl::StrCat("\"", arg, "\" is not TASK_ID:TOKEN"));
    }
    v1::HeldLease* lease = request.add_leases();
    lease->set_task_id(arg.substr(0, colon));
    lease->set_lease_token(arg.substr(colon + 1));
  }
  return request;
}

absl::StatusOr<v1::CompleteTaskRequest> BuildCompleteTask(const ParsedArgs& args) {
  v1::CompleteTaskRequest request;
  request.set_task_id(args.positional()[0]);
  request.set_lease_token(args.positional()[1]);
  request.set_result(args.Get("result"));
  return request;
}

absl::StatusOr<v1::FailTaskRequest> BuildFailTask(const ParsedArgs& args) {
  if (!args.Has("error")) return Usage("fail needs --error");
  v1::FailTaskRequest request;
  request.set_task_id(args.positional()[0]);
  request.set_lease_token(args.positional()[1]);
  request.set_error(args.Get("error"));
  request.set_retry(args.Has("retry"));
  return request;
}

absl::StatusOr<v1::ReleaseTaskRequest> BuildReleaseTask(const ParsedArgs& args) {
  v1::ReleaseTaskRequest request;
  request.set_task_id(args.positional()[0]);
  request.set_lease_token(args.positional()[1]);
  return request;
}

absl::StatusOr<v1::ListWorkersRequest> BuildListWorkers(const ParsedArgs& args) {
  v1::ListWorkersRequest request;
  request.set_board(args.Get("board"));
  return request;
}

}  // namespace kanban::client
