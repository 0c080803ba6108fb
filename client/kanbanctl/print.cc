#include "client/kanbanctl/print.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace kanban::client {
namespace {

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

int DisplayWidth(absl::string_view text) {
  return static_cast<int>(std::count_if(text.begin(), text.end(),
                                        [](char c) { return !IsContinuationByte(c); }));
}

std::string OneLine(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return text;
}

// `text` in double quotes, on one line, readable back unambiguously.
std::string Quoted(absl::string_view text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  quoted += '"';
  return OneLine(std::move(quoted));
}

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

std::string JoinOrDash(const google::protobuf::RepeatedPtrField<std::string>& values) {
  return OrDash(absl::StrJoin(values, ", "));
}

std::string StatusName(v1::Status status) { return v1::Status_Name(status); }

// Multi-line text under its key, indented so it cannot be mistaken for keys.
void PrintIndented(absl::string_view key, const std::string& text, std::ostream& out) {
  out << key << ":\n";
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    out << "  " << line << "\n";
  }
}

}  // namespace

Table::Table(std::vector<std::string> header) { AddRow(std::move(header)); }

void Table::AddRow(std::vector<std::string> cells) {
  for (std::string& cell : cells) cell = OneLine(std::move(cell));
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out) const {
  std::vector<int> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], DisplayWidth(row[i]));
    }
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(widths[i] - DisplayWidth(row[i]) + 2, ' ');
      }
    }
    // A trailing empty cell would leave padding behind.
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << "\n";
  }
}

std::string FormatTime(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(time.seconds()),
                          absl::UTCTimeZone());
}

std::string Truncate(absl::string_view text, int max_chars) {
  if (DisplayWidth(text) <= max_chars) return std::string(text);
  int kept = 0;
  size_t end = 0;
  // Stop at the start of the first code point that no longer fits.
  for (; end < text.size(); ++end) {
    if (!IsContinuationByte(text[end]) && kept++ == max_chars - 3) break;
  }
  return absl::StrCat(text.substr(0, end), "...");
}

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = false;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot render JSON: ", status.ToString()));
  }
  return json;
}

void PrintBoard(const v1::Board& board, std::ostream& out) {
  Table table;
  table.AddRow({"name:", board.name()});
  table.AddRow({"description:", OrDash(board.description())});
  table.AddRow({"created:", FormatTime(board.created_at())});
  table.Print(out);
}

void PrintBoards(const v1::ListBoardsResponse& response, std::ostream& out) {
  Table table({"NAME", "CREATED", "DESCRIPTION"});
  for (const v1::Board& board : response.boards()) {
    table.AddRow({board.name(), FormatTime(board.created_at()), board.description()});
  }
  table.Print(out);
}

void PrintTask(const v1::Task& task, std::ostream& out) {
  Table table;
  table.AddRow({"id:", task.id()});
  table.AddRow({"board:", task.board()});
  table.AddRow({"title:", task.title()});
  table.AddRow({"status:", StatusName(task.status())});
  table.AddRow({"priority:", absl::StrCat(task.priority())});
  table.AddRow({"version:", absl::StrCat(task.version())});
  table.AddRow({"labels:", JoinOrDash(task.labels())});
  table.AddRow({"assignee:", OrDash(task.assignee())});
  table.AddRow({"parents:", JoinOrDash(task.parent_ids())});
  table.AddRow({"attempts:", absl::StrCat(task.attempt(), " of ", task.max_attempts())});
  table.AddRow({"not_before:", FormatTime(task.not_before())});
  table.AddRow({"created:", FormatTime(task.created_at())});
  table.AddRow({"updated:", FormatTime(task.updated_at())});
  // Rarely set; shown only when they say something.
  if (!task.idempotency_key().empty()) {
    table.AddRow({"idempotency_key:", task.idempotency_key()});
  }
  if (!task.result().empty()) table.AddRow({"result:", task.result()});
  if (!task.last_error().empty()) table.AddRow({"last_error:", task.last_error()});
  table.Print(out);
  if (!task.body().empty()) PrintIndented("body", task.body(), out);
}

void PrintTasks(const v1::ListTasksResponse& response, std::ostream& out) {
  constexpr int kTitleChars = 40;
  Table table({"ID", "STATUS", "PRI", "VER", "TITLE", "LABELS", "ASSIGNEE"});
  for (const v1::Task& task : response.tasks()) {
    table.AddRow({task.id(), StatusName(task.status()), absl::StrCat(task.priority()),
                  absl::StrCat(task.version()), Truncate(task.title(), kTitleChars),
                  absl::StrJoin(task.labels(), ","), task.assignee()});
  }
  table.Print(out);
}

void PrintComment(const v1::Comment& comment, std::ostream& out) {
  out << "added comment " << comment.id() << " to task " << comment.task_id() << "\n";
}

void PrintComments(const v1::ListCommentsResponse& response, std::ostream& out) {
  for (const v1::Comment& comment : response.comments()) {
    PrintIndented(absl::StrCat("#", comment.id(), " ", comment.author(), " at ",
                               FormatTime(comment.created_at())),
                  comment.body(), out);
  }
}

void PrintServerInfo(const v1::ServerInfo& info, std::ostream& out) {
  absl::Duration uptime =
      absl::Seconds(info.uptime().seconds()) + absl::Nanoseconds(info.uptime().nanos());
  Table table;
  table.AddRow({"version:", info.version()});
  table.AddRow({"database:", info.database_path()});
  if (!info.backend().empty()) {
    table.AddRow({"backend:", absl::StrCat(info.backend(), " ", info.backend_version())});
  }
  if (info.backend() == "postgresql") {
    table.AddRow({"synchronous_commit:", info.synchronous()});
  } else {
    table.AddRow({"synchronous:", info.synchronous()});
    table.AddRow({"wal_autocheckpoint:", absl::StrCat(info.wal_autocheckpoint())});
    table.AddRow({"journal_mode:", info.journal_mode()});
  }
  table.AddRow({"schema_version:", absl::StrCat(info.schema_version())});
  if (!info.replica_id().empty()) table.AddRow({"replica:", info.replica_id()});
  table.AddRow({"sweeping:", info.sweeping() ? "yes" : "no"});
  // FormatDuration writes a zero duration as a bare "0".
  uptime = absl::Trunc(uptime, absl::Milliseconds(1));
  table.AddRow(
      {"uptime:", uptime == absl::ZeroDuration() ? "0s" : absl::FormatDuration(uptime)});
  table.Print(out);
}

void PrintClaim(const v1::ClaimTaskResponse& response, std::ostream& out) {
  constexpr int kTitleChars = 40;
  if (!response.has_task()) {
    out << "nothing to claim\n";
    return;
  }
  const v1::Task& task = response.task();
  Table table({"TASK", "TITLE", "ATTEMPT", "TOKEN", "EXPIRES"});
  table.AddRow({task.id(), Truncate(task.title(), kTitleChars),
                absl::StrCat(response.lease().attempt(), "/", task.max_attempts()),
                response.lease().token(), FormatTime(response.lease().expires_at())});
  table.Print(out);
}

void PrintHeartbeat(const v1::HeartbeatResponse& response, std::ostream& out) {
  Table table({"TASK", "STATE", "EXPIRES", "REASON"});
  for (const v1::LeaseStatus& lease : response.leases()) {
    table.AddRow({lease.task_id(), v1::LeaseStatus::State_Name(lease.state()),
                  FormatTime(lease.expires_at()), lease.reason()});
  }
  table.Print(out);
}

void PrintWorkers(const v1::ListWorkersResponse& response, std::ostream& out) {
  Table table({"WORKER", "LAST SEEN", "FIRST SEEN", "TASKS"});
  for (const v1::Worker& worker : response.workers()) {
    table.AddRow({worker.worker_id(), FormatTime(worker.last_seen()),
                  FormatTime(worker.first_seen()),
                  absl::StrJoin(worker.task_ids(), ",")});
  }
  table.Print(out);
}

std::string RoleName(v1::Role role) {
  absl::string_view name = v1::Role_Name(role);
  absl::ConsumePrefix(&name, "ROLE_");
  return absl::AsciiStrToLower(name);
}

std::string TokenBoards(const v1::Token& token) {
  return token.boards().empty() ? "*" : absl::StrJoin(token.boards(), ", ");
}

void PrintToken(const v1::Token& token, std::ostream& out) {
  Table table;
  table.AddRow({"name:", token.name()});
  table.AddRow({"role:", RoleName(token.role())});
  table.AddRow({"boards:", TokenBoards(token)});
  table.AddRow({"worker:", OrDash(token.worker_id())});
  table.AddRow({"created:", FormatTime(token.created_at())});
  table.AddRow({"created_by:", OrDash(token.created_by())});
  table.AddRow({"revoked:", FormatTime(token.revoked_at())});
  table.Print(out);
}

void PrintTokens(const v1::ListTokensResponse& response, std::ostream& out) {
  Table table({"NAME", "ROLE", "BOARDS", "WORKER", "CREATED", "CREATED BY", "REVOKED"});
  for (const v1::Token& token : response.tokens()) {
    // Without spaces, so that each row splits into its columns.
    table.AddRow({token.name(), RoleName(token.role()),
                  token.boards().empty() ? "*" : absl::StrJoin(token.boards(), ","),
                  OrDash(token.worker_id()), FormatTime(token.created_at()),
                  OrDash(token.created_by()), FormatTime(token.revoked_at())});
  }
  table.Print(out);
}

void PrintEvent(const v1::Event& event, std::ostream& out) {
  std::string line = absl::StrCat("seq=", event.seq(), " ", FormatTime(event.time()), " ",
                                  event.board(), " ", event.kind());
  if (!event.task_id().empty()) absl::StrAppend(&line, " ", event.task_id());
  if (event.has_task()) {
    absl::StrAppend(&line, " ", StatusName(event.task().status()), " ",
                    Quoted(event.task().title()));
  }
  // Token names are [A-Za-z0-9._-]: no quoting needed.
  if (!event.principal().empty()) absl::StrAppend(&line, " by ", event.principal());
  if (!event.reason().empty()) absl::StrAppend(&line, " (", OneLine(event.reason()), ")");
  out << line << "\n";
}

}  // namespace kanban::client
