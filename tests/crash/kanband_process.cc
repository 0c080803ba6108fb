#include "tests/crash/kanband_process.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kanban::crash {

KanbandProcess::KanbandProcess(std::string kanband_path, std::string db_path,
                               std::string dir, std::vector<std::string> extra_args)
    : kanband_path_(std::move(kanband_path)),
      db_path_(std::move(db_path)),
      port_file_(dir + "/port"),
      log_path_(dir + "/kanband.log"),
      extra_args_(std::move(extra_args)) {}

absl::Status KanbandProcess::Start(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  unlink(port_file_.c_str());
  std::vector<std::string> argv = {kanband_path_, "--listen=127.0.0.1:0",
                                   "--db=" + db_path_, "--port_file=" + port_file_};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  if (absl::Status s = process_.Start(argv, {}, log_path_); !s.ok()) return s;
  // kanband writes the port file only once it serves; nothing to wait on
  // but the file itself (or kanband's exit).
  int port = 0;
  while (true) {
    std::string text(absl::StripAsciiWhitespace(testing::ReadFileOrEmpty(port_file_)));
    if (absl::SimpleAtoi(text, &port) && port > 0) break;
    const int code = process_.Wait(absl::Milliseconds(10));
    if (code != -1) {
      return absl::InternalError(absl::StrCat("kanband exited with ", code,
                                              " before serving; log:\n", LogTail()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("kanband wrote no port within ",
                                                      absl::FormatDuration(timeout),
                                                      "; log:\n", LogTail()));
    }
  }
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                 grpc::InsecureChannelCredentials());
  if (!channel_->WaitForConnected(absl::ToChronoTime(deadline))) {
    return absl::DeadlineExceededError(
        absl::StrCat("cannot connect to kanband on port ", port, "; log:\n", LogTail()));
  }
  return absl::OkStatus();
}

absl::Status KanbandProcess::Kill() {
  if (process_.Signal(SIGKILL) != 0) {
    return absl::InternalError(
        absl::StrCat("kanband was not running; log:\n", LogTail()));
  }
  const int code = process_.Wait(absl::Seconds(30));
  if (code != 128 + SIGKILL) {
    return absl::InternalError(absl::StrCat("kanband ended with ", code,
                                            " instead of SIGKILL; log:\n", LogTail()));
  }
  return absl::OkStatus();
}

absl::Status KanbandProcess::Stop(absl::Duration timeout) {
  process_.Signal(SIGTERM);
  const int code = process_.Wait(timeout);
  if (code != 0) {
    return absl::InternalError(
        absl::StrCat("kanband stopped with ", code, " after SIGTERM; log:\n", LogTail()));
  }
  return absl::OkStatus();
}

std::string KanbandProcess::LogTail(size_t bytes) const {
  std::string log = testing::ReadFileOrEmpty(log_path_);
  return log.size() > bytes ? log.substr(log.size() - bytes) : log;
}

}  // namespace kanban::crash
