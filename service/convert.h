// Conversion between kanban.v1 protobuf messages and storage's domain types:
// the only place both are known. Requests are checked for what only the wire
// form can get wrong (unknown enum numbers, out-of-range timestamps); the
// board's rules are checked by storage. Thread-safe (pure functions).
#ifndef KANBAN_SERVICE_CONVERT_H_
#define KANBAN_SERVICE_CONVERT_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "kanban/v1/kanban.pb.h"
#include "storage/types.h"

namespace kanban::service {

// INVALID_ARGUMENT naming `field` for numbers outside the Status enum.
absl::StatusOr<storage::TaskStatus> StatusFromProto(int value, absl::string_view field);
// INVALID_ARGUMENT naming `field` for a timestamp outside 0001..9999 or with
// nanos outside [0, 1e9).
absl::StatusOr<absl::Time> TimeFromProto(const google::protobuf::Timestamp& ts,
                                         absl::string_view field);
void TimeToProto(absl::Time t, google::protobuf::Timestamp* out);
// INVALID_ARGUMENT naming `field` for a negative or out-of-range duration.
absl::StatusOr<absl::Duration> DurationFromProto(const google::protobuf::Duration& d,
                                                 absl::string_view field);
void DurationToProto(absl::Duration d, google::protobuf::Duration* out);

absl::StatusOr<storage::NewTask> FromProto(const v1::CreateTaskRequest& request);
absl::StatusOr<storage::TaskUpdate> FromProto(const v1::UpdateTaskRequest& request);
absl::StatusOr<storage::TaskMove> FromProto(const v1::MoveTaskRequest& request);
absl::StatusOr<storage::TaskFilter> FromProto(const v1::ListTasksRequest& request);
storage::Board FromProto(const v1::CreateBoardRequest& request);
storage::NewComment FromProto(const v1::AddCommentRequest& request);
absl::StatusOr<storage::ClaimRequest> FromProto(const v1::ClaimTaskRequest& request);
std::vector<storage::HeldLease> FromProto(
    const google::protobuf::RepeatedPtrField<v1::HeldLease>& leases);

void ToProto(const storage::Task& task, v1::Task* out);
void ToProto(const storage::Board& board, v1::Board* out);
void ToProto(const storage::Comment& comment, v1::Comment* out);
void ToProto(const storage::Event& event, v1::Event* out);

// Tokens: the request's role is passed through as a number and checked by
// the Store (storage::ValidateNewToken), which names the field.
storage::TokenRecord FromProto(const v1::CreateTokenRequest& request);
void ToProto(const storage::TokenRecord& token, v1::Token* out);
void ToProto(const std::vector<storage::TokenRecord>& tokens,
             v1::ListTokensResponse* out);
void ToProto(const std::vector<storage::Board>& boards, v1::ListBoardsResponse* out);
void ToProto(const storage::TaskPage& page, v1::ListTasksResponse* out);
void ToProto(const std::vector<storage::Comment>& comments,
             v1::ListCommentsResponse* out);
void ToProto(const storage::Lease& lease, v1::Lease* out);
void ToProto(const storage::ClaimResult& result, v1::ClaimTaskResponse* out);
void ToProto(const std::vector<storage::LeaseStatus>& statuses,
             v1::HeartbeatResponse* out);
void ToProto(const std::vector<storage::Worker>& workers, v1::ListWorkersResponse* out);

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_CONVERT_H_
