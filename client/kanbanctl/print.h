// How kanbanctl shows responses: aligned tables and key: value blocks for
// people, one line of JSON for scripts. All functions are thread-compatible
// and write only to the stream they are given.
#ifndef KANBAN_CLIENT_KANBANCTL_PRINT_H_
#define KANBAN_CLIENT_KANBANCTL_PRINT_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "kanban/v1/kanban.pb.h"

namespace kanban::client {

// The one table printer: columns separated by two spaces and padded to the
// widest cell (counted in UTF-8 code points); the last column is not padded.
// Control characters in cells print as spaces so a row stays one line.
class Table {
 public:
  // A table without a header row (used for key: value blocks).
  Table() = default;
  explicit Table(std::vector<std::string> header);

  void AddRow(std::vector<std::string> cells);
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;  // The header, if any, first.
};

// RFC 3339 in UTC with second precision; "-" for an unset timestamp.
std::string FormatTime(const google::protobuf::Timestamp& time);

// `text` cut to at most `max_chars` code points, ending in "..." when cut.
std::string Truncate(absl::string_view text, int max_chars);

// `message` as one line of JSON with the .proto field names; fields holding
// their default value are left out. INTERNAL if protobuf refuses.
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message);

// Human-readable renderings, one per response type.
void PrintBoard(const v1::Board& board, std::ostream& out);
void PrintBoards(const v1::ListBoardsResponse& response, std::ostream& out);
void PrintTask(const v1::Task& task, std::ostream& out);
void PrintTasks(const v1::ListTasksResponse& response, std::ostream& out);
void PrintComment(const v1::Comment& comment, std::ostream& out);
void PrintComments(const v1::ListCommentsResponse& response, std::ostream& out);
void PrintServerInfo(const v1::ServerInfo& info, std::ostream& out);
// A claimed task and its lease, or "nothing to claim".
void PrintClaim(const v1::ClaimTaskResponse& response, std::ostream& out);
void PrintHeartbeat(const v1::HeartbeatResponse& response, std::ostream& out);
void PrintWorkers(const v1::ListWorkersResponse& response, std::ostream& out);
// Tokens never carry their secret, so neither output shows one. A role
// prints as "admin", "producer", ...; no boards as "*" (every board).
void PrintToken(const v1::Token& token, std::ostream& out);
void PrintTokens(const v1::ListTokensResponse& response, std::ostream& out);
// "admin", "producer", "worker", "viewer" (or "unspecified").
std::string RoleName(v1::Role role);
// A token's boards joined by ", ", or "*" when it may touch every board.
std::string TokenBoards(const v1::Token& token);
// One event as one line (`watch`): seq, time, board, kind, then for task
// events the task id, its status after the change and its quoted title,
// "by NAME" when the event names its principal (the token that caused it;
// servers without auth name none), and the reason in parentheses when there
// is one. Control characters print as
// spaces; in the title, `"` and `\` are escaped with a backslash.
void PrintEvent(const v1::Event& event, std::ostream& out);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_KANBANCTL_PRINT_H_
