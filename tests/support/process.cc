#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "client/cpp/subprocess.h"
#include "gtest/gtest.h"

namespace kanban::testing {
namespace {

using ::kanban::client::DecodeWaitStatus;

// The decoded status once `pid` exits, or nullopt if it is still running at
// `deadline`. A child that cannot be waited for (ECHILD) counts as -1.
std::optional<int> WaitUntil(pid_t pid, absl::Time deadline) {
  while (true) {
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return DecodeWaitStatus(status);
    if (done < 0 && errno != EINTR) return -1;
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return std::nullopt;
    absl::SleepFor(std::min(left, absl::Milliseconds(5)));
  }
}

void KillAndReapPid(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

RunResult Run(const std::vector<std::string>& argv,
              const std::vector<std::string>& extra_env, const std::string& stdin_data,
              absl::Duration timeout) {
  signal(SIGPIPE, SIG_IGN);
  client::SubprocessOptions options;
  options.argv = argv;
  options.env = extra_env;
  options.stdin_data = stdin_data;
  // Tests compare whole outputs: keep everything.
  options.max_stdout = std::numeric_limits<size_t>::max() / 4;
  options.max_stderr_tail = std::numeric_limits<size_t>::max() / 4;
  const absl::Time deadline = absl::Now() + timeout;
  options.should_kill = [deadline] { return absl::Now() >= deadline; };
  options.kill_grace = absl::ZeroDuration();  // Past its time: SIGKILL at once.
  RunResult result;
  absl::StatusOr<client::SubprocessResult> run = client::RunSubprocess(options);
  if (!run.ok()) {
    ADD_FAILURE() << run.status();
    result.err = std::string(run.status().message());
    return result;
  }
  result.exit_code = run->killed ? -1 : run->exit_code;
  result.out = std::move(run->out);
  result.err = std::move(run->err_tail);
  return result;
}

ChildProcess::~ChildProcess() { KillAndReap(); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), exit_code_(other.exit_code_) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    KillAndReap();
    pid_ = std::exchange(other.pid_, -1);
    exit_code_ = other.exit_code_;
  }
  return *this;
}

absl::Status ChildProcess::Start(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& extra_env,
                                 const std::string& output_path) {
  if (pid_ > 0) return absl::FailedPreconditionError("a child is still running");
  const int output =
      open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (output < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open ", output_path, ": ", std::strerror(errno)));
  }
  const int null_input = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_input < 0) {
    const int error = errno;
    close(output);
    return absl::InternalError(absl::StrCat("/dev/null: ", std::strerror(error)));
  }
  // In this process's group, so that a test's Signal() reaches just it.
  absl::StatusOr<pid_t> pid = client::SpawnProcess(
      argv.empty() ? "" : argv[0], argv, extra_env,
      {{null_input, 0}, {output, 1}, {output, 2}}, /*own_process_group=*/false);
  close(null_input);
  close(output);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  exit_code_ = -1;
  return absl::OkStatus();
}

int ChildProcess::Signal(int sig) { return pid_ > 0 ? kill(pid_, sig) : -1; }

int ChildProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return exit_code_;
  std::optional<int> code = WaitUntil(pid_, absl::Now() + timeout);
  if (!code.has_value()) return -1;
  pid_ = -1;
  exit_code_ = *code;
  return exit_code_;
}

void ChildProcess::KillAndReap() {
  if (pid_ <= 0) return;
  KillAndReapPid(pid_);
  pid_ = -1;
  exit_code_ = 128 + SIGKILL;
}

std::string Kanband::Log() const { return ReadFileOrEmpty(log_path); }

Kanband StartKanband(const std::string& kanband_path, const std::string& db_path,
                     const std::vector<std::string>& extra_args,
                     const std::vector<std::string>& extra_env) {
  constexpr absl::Duration kStartTimeout = absl::Seconds(15);
  Kanband kanband;
  kanband.files = std::make_unique<TempDir>();
  kanband.log_path = kanband.files->File("kanband.log");
  const std::string port_file = kanband.files->File("port");
  std::vector<std::string> argv = {kanband_path, "--listen=127.0.0.1:0",
                                   "--db=" + db_path, "--port_file=" + port_file};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  if (absl::Status s = kanband.process.Start(argv, extra_env, kanband.log_path);
      !s.ok()) {
    ADD_FAILURE() << s;
    return kanband;
  }
  const absl::Time deadline = absl::Now() + kStartTimeout;
  while (true) {
    // The newline marks a complete write, so a half-written number is not
    // mistaken for the port.
    std::string text = ReadFileOrEmpty(port_file);
    int port = 0;
    if (absl::EndsWith(text, "\n") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port) && port > 0 &&
        port < 65536) {
      kanband.address = absl::StrCat("127.0.0.1:", port);
      return kanband;
    }
    if (int code = kanband.process.Wait(absl::Milliseconds(20)); code != -1) {
      ADD_FAILURE() << "kanband exited with status " << code << " before writing "
                    << port_file << "; its log:\n"
                    << kanband.Log();
      return kanband;
    }
    if (absl::Now() > deadline) {
      kanband.process.Signal(SIGKILL);
      kanband.process.Wait(absl::Seconds(5));
      ADD_FAILURE() << "kanband wrote no port to " << port_file << " within "
                    << kStartTimeout << "; its log:\n"
                    << kanband.Log();
      return kanband;
    }
  }
}

std::string Describe(const RunResult& r) {
  return absl::StrCat("exit code ", r.exit_code, "\n--- stdout:\n", r.out,
                      "--- stderr:\n", r.err);
}

std::string JsonValue(const std::string& json, const std::string& key) {
  const std::string marker = absl::StrCat("\"", key, "\":");
  size_t start = json.find(marker);
  if (start == std::string::npos) return "";
  start += marker.size();
  if (json[start] != '"') {
    return json.substr(start, json.find_first_of(",}", start) - start);
  }
  size_t end = start + 1;
  while (end < json.size() && json[end] != '"') end += json[end] == '\\' ? 2 : 1;
  return json.substr(start + 1, end - start - 1);
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

}  // namespace kanban::testing
