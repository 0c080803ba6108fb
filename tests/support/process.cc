#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

extern char** environ;

namespace kanban::testing {
namespace {

// A file descriptor that closes itself.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    Close();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }

  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read;
  Fd write;
};

// Close-on-exec, so no other child inherits the ends it should not hold.
absl::StatusOr<Pipe> MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

absl::string_view VariableName(absl::string_view entry) {
  return entry.substr(0, entry.find('='));
}

std::vector<std::string> BuildEnvironment(const std::vector<std::string>& extra_env) {
  std::set<absl::string_view> replaced;
  for (const std::string& entry : extra_env) replaced.insert(VariableName(entry));
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (replaced.count(VariableName(*entry)) == 0) env.push_back(*entry);
  }
  for (const std::string& entry : extra_env) {
    if (entry.find('=') != std::string::npos) env.push_back(entry);
  }
  return env;
}

// The char* array that exec wants; points into `strings`, which must outlive
// the array.
std::vector<char*> CArray(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Starts argv[0] with each (from, to) descriptor pair dup2'ed in the child.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv,
                            const std::vector<std::string>& extra_env,
                            const std::vector<std::pair<int, int>>& redirects) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::vector<std::string> args = argv;
  std::vector<std::string> env = BuildEnvironment(extra_env);
  std::vector<char*> c_args = CArray(args);
  std::vector<char*> c_env = CArray(env);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (const auto& [from, to] : redirects) {
    posix_spawn_file_actions_adddup2(&actions, from, to);
  }
  // The child starts with default signal handling and nothing blocked, even
  // though Run() makes this process ignore SIGPIPE.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigset_t defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  // glibc reports a failed exec (missing file, no permission) right here.
  int rc = posix_spawn(&pid, argv[0].c_str(), &actions, &attributes, c_args.data(),
                       c_env.data());
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("cannot start ", argv[0], ": ", std::strerror(rc)));
  }
  return pid;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

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

// Moves data between the parent's ends of the child's three pipes until the
// child closes stdout and stderr or `deadline` passes. Returns false on
// timeout.
bool Pump(Fd& in, Fd& out, Fd& err, const std::string& stdin_data, absl::Time deadline,
          RunResult& result) {
  size_t written = 0;
  if (stdin_data.empty()) in.Close();
  if (in.open()) fcntl(in.get(), F_SETFL, O_NONBLOCK);
  while (out.open() || err.open()) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    std::vector<pollfd> fds;
    std::vector<std::pair<Fd*, std::string*>> targets;
    for (auto [fd, text] : {std::pair{&out, &result.out}, std::pair{&err, &result.err}}) {
      if (!fd->open()) continue;
      fds.push_back({fd->get(), POLLIN, 0});
      targets.push_back({fd, text});
    }
    if (in.open()) fds.push_back({in.get(), POLLOUT, 0});
    int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    if (poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      return false;
    }
    for (size_t i = 0; i < targets.size(); ++i) {
      if (fds[i].revents == 0) continue;
      char buffer[16384];
      ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        targets[i].second->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        targets[i].first->Close();
      }
    }
    if (in.open() && fds.back().revents != 0) {
      ssize_t n =
          write(in.get(), stdin_data.data() + written, stdin_data.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      // Done, or the child closed its stdin (EPIPE): either way stop writing.
      if (written == stdin_data.size() || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        in.Close();
      }
    }
  }
  return true;
}

}  // namespace

RunResult Run(const std::vector<std::string>& argv,
              const std::vector<std::string>& extra_env, const std::string& stdin_data,
              absl::Duration timeout) {
  signal(SIGPIPE, SIG_IGN);
  RunResult result;
  absl::StatusOr<Pipe> in = MakePipe();
  absl::StatusOr<Pipe> out = MakePipe();
  absl::StatusOr<Pipe> err = MakePipe();
  for (const auto* pipe : {&in, &out, &err}) {
    if (!pipe->ok()) {
      ADD_FAILURE() << pipe->status();
      return result;
    }
  }
  absl::StatusOr<pid_t> pid =
      Spawn(argv, extra_env,
            {{in->read.get(), 0}, {out->write.get(), 1}, {err->write.get(), 2}});
  if (!pid.ok()) {
    ADD_FAILURE() << pid.status();
    result.err = std::string(pid.status().message());
    return result;
  }
  // Only the child may hold these ends, or the reads below never see EOF.
  in->read.Close();
  out->write.Close();
  err->write.Close();
  const absl::Time deadline = absl::Now() + timeout;
  std::optional<int> code;
  if (Pump(in->write, out->read, err->read, stdin_data, deadline, result)) {
    code = WaitUntil(*pid, deadline);
  }
  if (!code.has_value()) {
    KillAndReapPid(*pid);
    code = -1;
  }
  result.exit_code = *code;
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
  Fd output(open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!output.open()) {
    return absl::InternalError(
        absl::StrCat("cannot open ", output_path, ": ", std::strerror(errno)));
  }
  Fd null_input(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_input.open()) {
    return absl::InternalError(absl::StrCat("/dev/null: ", std::strerror(errno)));
  }
  absl::StatusOr<pid_t> pid = Spawn(
      argv, extra_env, {{null_input.get(), 0}, {output.get(), 1}, {output.get(), 2}});
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
