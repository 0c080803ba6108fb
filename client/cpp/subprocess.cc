#include "client/cpp/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

extern char** environ;

namespace kanban::client {
namespace {

constexpr int kPollMillis = 50;
// Once stdout and stderr are closed the program has (almost always) exited:
// check for that more often, so a short program costs its caller little (the
// tests run hundreds of them).
constexpr int kExitPollMillis = 2;
// After the program exits, at most this much more is read from pipes that
// its surviving children may still be writing to.
constexpr size_t kMaxDrainBytes = 1 << 20;

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

// Close-on-exec, so later children do not inherit ends they should not hold.
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

std::vector<std::string> BuildEnvironment(const std::vector<std::string>& extra) {
  std::set<absl::string_view> replaced;
  for (const std::string& entry : extra) replaced.insert(VariableName(entry));
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (replaced.count(VariableName(*entry)) == 0) env.emplace_back(*entry);
  }
  for (const std::string& entry : extra) {
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

// Collects what the program writes: the head of stdout, the tail of stderr.
class OutputSink {
 public:
  OutputSink(const SubprocessOptions& options, SubprocessResult& result)
      : options_(options), result_(result) {}

  void Stdout(const char* data, size_t size) {
    const size_t room = options_.max_stdout - result_.out.size();
    if (size > room) result_.out_truncated = true;
    result_.out.append(data, std::min(size, room));
  }

  void Stderr(const char* data, size_t size) {
    std::string& tail = result_.err_tail;
    tail.append(data, size);
    // Trimmed in bulk, so a chatty program costs amortized O(1) per byte.
    if (tail.size() > 2 * options_.max_stderr_tail) Trim();
  }

  void Trim() {
    std::string& tail = result_.err_tail;
    if (tail.size() > options_.max_stderr_tail) {
      tail.erase(0, tail.size() - options_.max_stderr_tail);
    }
  }

 private:
  const SubprocessOptions& options_;
  SubprocessResult& result_;
};

// Reads what is available from `fd`; closes it at end of file. Returns the
// number of bytes read.
size_t ReadSome(Fd& fd, bool is_stdout, OutputSink& sink) {
  char buffer[16384];
  const ssize_t n = read(fd.get(), buffer, sizeof(buffer));
  if (n > 0) {
    if (is_stdout) {
      sink.Stdout(buffer, static_cast<size_t>(n));
    } else {
      sink.Stderr(buffer, static_cast<size_t>(n));
    }
    return static_cast<size_t>(n);
  }
  if (n == 0 || (errno != EINTR && errno != EAGAIN)) fd.Close();
  return 0;
}

}  // namespace

absl::StatusOr<pid_t> SpawnProcess(const std::string& path,
                                   const std::vector<std::string>& argv,
                                   const std::vector<std::string>& env,
                                   const std::vector<std::pair<int, int>>& redirects,
                                   bool own_process_group) {
  if (argv.empty()) return absl::InvalidArgumentError("no command to run");
  std::vector<std::string> args = argv;
  std::vector<std::string> environment = BuildEnvironment(env);
  std::vector<char*> c_args = CArray(args);
  std::vector<char*> c_env = CArray(environment);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (const auto& [from, to] : redirects) {
    posix_spawn_file_actions_adddup2(&actions, from, to);
  }
  // Callers ignore SIGPIPE (see the header); the program should not inherit
  // that, nor a blocked signal.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigset_t defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (own_process_group) {
    posix_spawnattr_setpgroup(&attributes, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attributes, flags);
  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, path.c_str(), &actions, &attributes, c_args.data(), c_env.data());
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("cannot start ", path, ": ", std::strerror(rc)));
  }
  return pid;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

absl::StatusOr<std::string> FindExecutable(const std::string& name) {
  if (name.empty()) return absl::NotFoundError("empty command name");
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) == 0) return name;
    return absl::NotFoundError(absl::StrCat(name, ": ", std::strerror(errno)));
  }
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(name, ": command not found in $PATH"));
}

absl::StatusOr<SubprocessResult> RunSubprocess(const SubprocessOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("no command to run");
  absl::StatusOr<std::string> path = FindExecutable(options.argv[0]);
  if (!path.ok()) return path.status();
  absl::StatusOr<Pipe> in = MakePipe();
  absl::StatusOr<Pipe> out = MakePipe();
  absl::StatusOr<Pipe> err = MakePipe();
  for (const auto* pipe : {&in, &out, &err}) {
    if (!pipe->ok()) return pipe->status();
  }
  absl::StatusOr<pid_t> pid =
      SpawnProcess(*path, options.argv, options.env,
                   {{in->read.get(), 0}, {out->write.get(), 1}, {err->write.get(), 2}},
                   /*own_process_group=*/true);
  if (!pid.ok()) return pid.status();
  // Only the program may hold these ends, or the reads below never see EOF.
  in->read.Close();
  out->write.Close();
  err->write.Close();
  for (const Fd* fd : {&in->write, &out->read, &err->read}) {
    fcntl(fd->get(), F_SETFL, O_NONBLOCK);
  }
  if (options.stdin_data.empty()) in->write.Close();

  SubprocessResult result;
  OutputSink sink(options, result);
  size_t written = 0;
  absl::Time kill_at = absl::InfiniteFuture();  // When SIGKILL is due.
  bool reaped = false;
  while (!reaped) {
    if (!result.killed && options.should_kill && options.should_kill()) {
      result.killed = true;
      kill(-*pid, SIGTERM);
      kill_at = absl::Now() + options.kill_grace;
    }
    if (absl::Now() >= kill_at) {
      kill(-*pid, SIGKILL);
      kill_at = absl::InfiniteFuture();
    }
    // Numbers taken now: a read below may close (and reset) an Fd.
    const int out_fd = out->read.get();
    const int err_fd = err->read.get();
    std::vector<pollfd> fds;
    if (out_fd >= 0) fds.push_back({out_fd, POLLIN, 0});
    if (err_fd >= 0) fds.push_back({err_fd, POLLIN, 0});
    if (in->write.open()) fds.push_back({in->write.get(), POLLOUT, 0});
    // Also the tick for should_kill() and for noticing the exit.
    const bool outputs_open = out_fd >= 0 || err_fd >= 0;
    if (poll(fds.data(), fds.size(), outputs_open ? kPollMillis : kExitPollMillis) < 0 &&
        errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll: ", std::strerror(errno)));
    }
    for (const pollfd& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == out_fd) {
        ReadSome(out->read, /*is_stdout=*/true, sink);
      } else if (p.fd == err_fd) {
        ReadSome(err->read, /*is_stdout=*/false, sink);
      } else {
        const ssize_t n = write(in->write.get(), options.stdin_data.data() + written,
                                options.stdin_data.size() - written);
        if (n > 0) written += static_cast<size_t>(n);
        // All written, or the program closed its stdin (EPIPE): stop either way.
        if (written == options.stdin_data.size() ||
            (n < 0 && errno != EINTR && errno != EAGAIN)) {
          in->write.Close();
        }
      }
    }
    int status = 0;
    const pid_t done = waitpid(*pid, &status, WNOHANG);
    if (done == *pid) {
      result.exit_code = DecodeWaitStatus(status);
      if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
      reaped = true;
    } else if (done < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
    }
  }
  // Everything the program wrote before exiting is in the pipes by now.
  size_t drained = 0;
  for (auto [fd, is_stdout] :
       {std::pair{&out->read, true}, std::pair{&err->read, false}}) {
    while (fd->open() && drained < kMaxDrainBytes) {
      const size_t n = ReadSome(*fd, is_stdout, sink);
      if (n == 0) break;
      drained += n;
    }
  }
  sink.Trim();
  return result;
}

}  // namespace kanban::client
