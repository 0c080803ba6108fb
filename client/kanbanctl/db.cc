#include "client/kanbanctl/db.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/kanbanctl/print.h"
#include "grpcpp/client_context.h"

namespace kanban::client {
namespace {

int PrintJson(const Invocation& in, const google::protobuf::Message& message) {
  absl::StatusOr<std::string> json = ToJson(message);
  if (!json.ok()) {
    in.err << "error: " << json.status().message() << "\n";
    return kExitRpcFailed;
  }
  in.out << *json << "\n" << std::flush;
  return kExitOk;
}

std::string Bar(const v1::BackupProgress& p) {
  constexpr int kWidth = 30;
  double fraction =
      p.pages_total() > 0 ? static_cast<double>(p.pages_copied()) / p.pages_total() : 0.0;
  int filled = static_cast<int>(fraction * kWidth);
  return absl::StrFormat("\r[%s%s] %3.0f%%  %d/%d pages", std::string(filled, '#'),
                         std::string(kWidth - filled, ' '), fraction * 100,
                         p.pages_copied(), p.pages_total());
}

int Backup(const Invocation& in, std::unique_ptr<v1::AdminService::Stub> stub) {
  if (in.args.positional().size() != 2) {
    return UsageFailure(&in.command, "db backup: PATH is required", in.err);
  }
  v1::BackupRequest request;
  std::error_code error;
  request.set_path(std::filesystem::absolute(in.args.positional()[1], error).string());
  request.set_overwrite(in.args.Has("overwrite"));

  // A backup takes as long as it takes: no deadline, Ctrl-C cancels it.
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::BackupProgress>> reader =
      stub->Backup(&context, request);
  const bool tty = &in.out == &std::cout && isatty(STDOUT_FILENO);
  v1::BackupProgress progress, last;
  int64_t printed_percent = -1;
  while (reader->Read(&progress)) {
    last = progress;
    if (in.json) {
      if (int rc = PrintJson(in, progress); rc != kExitOk) return rc;
      continue;
    }
    if (progress.done()) break;
    if (tty) {
      in.out << Bar(progress) << std::flush;
      continue;
    }
    // Plain lines for logs: every 10%.
    int64_t percent = progress.pages_total() > 0
                          ? progress.pages_copied() * 100 / progress.pages_total()
                          : 0;
    if (percent / 10 != printed_percent / 10) {
      printed_percent = percent;
      in.out << "copied " << progress.pages_copied() << "/" << progress.pages_total()
             << " pages (" << percent << "%)\n"
             << std::flush;
    }
  }
  grpc::Status status = reader->Finish();
  if (tty && !in.json) in.out << "\n";
  if (!status.ok()) return RpcFailure(in, status);
  if (!last.done()) {
    in.err << "error: the server ended the backup without saying it was complete\n";
    return kExitRpcFailed;
  }
  if (!in.json) {
    in.out << "backup complete: " << last.path() << " (" << last.bytes() << " bytes, "
           << last.pages_total() << " pages, checked)\n";
  }
  return kExitOk;
}

int Check(const Invocation& in, std::unique_ptr<v1::AdminService::Stub> stub) {
  if (in.args.positional().size() != 1) {
    return UsageFailure(&in.command, "db check: takes no PATH", in.err);
  }
  v1::CheckIntegrityRequest request;
  request.set_quick(in.args.Has("quick"));
  grpc::ClientContext context;
  // A full check reads the whole database: allow it far more than --timeout.
  context.set_deadline(absl::ToChronoTime(absl::Now() + in.timeout + absl::Hours(1)));
  v1::CheckIntegrityResponse response;
  grpc::Status status = stub->CheckIntegrity(&context, request, &response);
  if (!status.ok()) return RpcFailure(in, status);
  if (in.json) {
    if (int rc = PrintJson(in, response); rc != kExitOk) return rc;
  } else if (response.ok()) {
    in.out << (request.quick() ? "quick_check" : "integrity_check") << ": ok ("
           << absl::FormatDuration(absl::Seconds(response.took().seconds()) +
                                   absl::Nanoseconds(response.took().nanos()))
           << ")\n";
  } else {
    in.out << "problems found (" << response.problems_size() << "):\n";
    for (const std::string& p : response.problems()) in.out << "  " << p << "\n";
    in.out << "writes are now stopped on the server; restore from a backup "
              "(kanband --restore-from)\n";
  }
  return response.ok() ? kExitOk : kExitRpcFailed;
}

}  // namespace

int RunDb(const Invocation& in) {
  const std::string& action = in.args.positional()[0];
  std::unique_ptr<v1::AdminService::Stub> stub = v1::AdminService::NewStub(in.channel);
  if (action == "backup") return Backup(in, std::move(stub));
  if (action == "check") return Check(in, std::move(stub));
  return UsageFailure(&in.command,
                      "db: unknown action \"" + action + "\" (backup or check)", in.err);
}

}  // namespace kanban::client
