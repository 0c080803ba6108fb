#include "client/kanbanctl/work.h"

#include <signal.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "client/cpp/subprocess.h"
#include "client/cpp/worker.h"
#include "client/kanbanctl/signals.h"

namespace kanban::client {
namespace {

constexpr size_t kMaxResultBytes = 64 * 1024;  // Of stdout, kept as the result.
constexpr size_t kMaxStderrBytes = 4 * 1024;   // Of stderr's end, kept for the error.
constexpr int kErrorLines = 20;                // Of those, the last lines reported.

// What the command line asked for.
struct WorkSettings {
  std::vector<std::string> argv;
  std::string server;
  // KANBAN_TLS_*=value for the --tls-* flags given, and KANBAN_TOKEN for
  // --token, so that the command can call kanbanctl back over the same kind
  // of channel with the same token. (Values from the environment reach the
  // command anyway.)
  std::vector<std::string> channel_env;
  absl::Duration grace;
  bool once = false;
};

// ---- Text the server accepts. ----------------------------------------------

// Length of the valid UTF-8 sequence at the start of `text`, or 0.
size_t Utf8SequenceLength(absl::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  size_t length;
  uint32_t code_point;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code_point = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code_point = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i) & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code_point < kMinimum[length] || (code_point >= 0xD800 && code_point <= 0xDFFF) ||
      code_point > 0x10FFFF) {
    return 0;
  }
  return length;
}

// Protobuf refuses string fields that are not UTF-8, and programs print what
// they like: invalid bytes become U+FFFD and the text is cut, on a character
// boundary, to at most `max_bytes`.
std::string ValidUtf8(absl::string_view text, size_t max_bytes) {
  static constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";
  std::string valid;
  while (!text.empty()) {
    const size_t length = Utf8SequenceLength(text);
    const absl::string_view piece = length == 0 ? kReplacement : text.substr(0, length);
    if (valid.size() + piece.size() > max_bytes) break;
    valid.append(piece.data(), piece.size());
    text.remove_prefix(length == 0 ? 1 : length);
  }
  return valid;
}

// The last `count` non-empty lines of `text`, newline-separated.
std::string LastLines(absl::string_view text, int count) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  if (lines.size() > static_cast<size_t>(count)) {
    lines.erase(lines.begin(), lines.end() - count);
  }
  return absl::StrJoin(lines, "\n");
}

// ---- Running the command for one task. -------------------------------------

std::vector<std::string> TaskEnvironment(const TaskContext& context,
                                         const WorkSettings& settings) {
  const v1::Task& task = context.task();
  std::vector<std::string> env = {
      absl::StrCat("KANBAN_TASK_ID=", task.id()),
      absl::StrCat("KANBAN_TASK_TITLE=", task.title()),
      absl::StrCat("KANBAN_TASK_BOARD=", task.board()),
      absl::StrCat("KANBAN_TASK_ATTEMPT=", task.attempt()),
      absl::StrCat("KANBAN_TASK_PRIORITY=", task.priority()),
      absl::StrCat("KANBAN_TASK_LABELS=", absl::StrJoin(task.labels(), ",")),
      absl::StrCat("KANBAN_LEASE_TOKEN=", context.lease().token()),
      absl::StrCat("KANBAN_WORKER_ID=", context.lease().worker_id()),
      absl::StrCat("KANBAN_SERVER=", settings.server),
  };
  env.insert(env.end(), settings.channel_env.begin(), settings.channel_env.end());
  return env;
}

// The Worker's handler: the command's stdout on exit status 0, else an error
// that the worker reports with FailTask(retry = true).
absl::StatusOr<std::string> RunCommand(const WorkSettings& settings,
                                       TaskContext& context) {
  SubprocessOptions options;
  options.argv = settings.argv;
  options.env = TaskEnvironment(context, settings);
  options.stdin_data = context.task().body();
  options.max_stdout = kMaxResultBytes;
  options.max_stderr_tail = kMaxStderrBytes;
  options.should_kill = [&context] { return context.cancelled(); };
  options.kill_grace = settings.grace;
  absl::StatusOr<SubprocessResult> run = RunSubprocess(options);
  if (!run.ok()) {
    return absl::UnknownError(
        absl::StrCat("cannot run the command: ", run.status().message()));
  }
  // The lease is gone, so the worker reports nothing; the code is for form.
  if (run->killed) return absl::CancelledError("killed: the lease was lost");
  if (run->exit_code == 0) return ValidUtf8(run->out, kMaxResultBytes);
  std::string error =
      run->signal != 0 ? absl::StrCat("command killed by signal ", run->signal, " (",
                                      strsignal(run->signal), ")")
                       : absl::StrCat("command failed with exit status ", run->exit_code);
  std::string stderr_tail =
      LastLines(ValidUtf8(run->err_tail, kMaxStderrBytes), kErrorLines);
  if (!stderr_tail.empty()) absl::StrAppend(&error, ": ", stderr_tail);
  return absl::UnknownError(error);
}

// ---- Reporting and signals. --------------------------------------------------

// Writes whole lines to one stream from several threads.
class LineWriter {
 public:
  explicit LineWriter(std::ostream& out) : out_(out) {}

  void Write(absl::string_view line) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    out_ << absl::StrReplaceAll(line, {{"\n", " | "}}) << std::endl;
  }

 private:
  absl::Mutex mu_;
  std::ostream& out_ ABSL_GUARDED_BY(mu_);
};

std::string EventLine(const WorkerEvent& event) {
  using Kind = WorkerEvent::Kind;
  const char* name = WorkerEventName(event.kind);
  switch (event.kind) {
    case Kind::kClaimed:
      return absl::StrCat(name, " ", event.task_id, " attempt ", event.attempt, ": ",
                          event.title);
    case Kind::kCompleted:
    case Kind::kReleased:
      return absl::StrCat(name, " ", event.task_id);
    case Kind::kFailed:
    case Kind::kLost:
      return absl::StrCat(name, " ", event.task_id, ": ", event.detail);
    case Kind::kRpcError:
      return absl::StrCat(name, event.task_id.empty() ? "" : " ", event.task_id, ": ",
                          event.detail);
  }
  return name;
}

absl::StatusOr<WorkerOptions> BuildWorkerOptions(const ParsedArgs& args) {
  WorkerOptions options;
  options.board = args.Get("board");
  options.worker_id = args.Get("worker", DefaultWorkerId());
  if (options.worker_id.empty()) return absl::InvalidArgumentError("--worker is empty");
  options.labels = args.GetAll("label");
  options.assignee = args.Get("assignee");
  options.lease_duration = args.GetDuration("lease").value_or(absl::Seconds(60));
  options.claim_wait = args.GetDuration("wait").value_or(absl::Seconds(30));
  options.max_tasks = args.GetInt32("max-tasks").value_or(0);
  if (options.max_tasks < 0) {
    return absl::InvalidArgumentError("--max-tasks must not be negative");
  }
  if (args.Has("once")) {
    options.max_tasks = 1;
    options.exit_when_idle = true;
  }
  options.use_streams = !args.Has("unary");
  return options;
}

}  // namespace

int RunWork(const Invocation& in) {
  absl::StatusOr<WorkerOptions> options = BuildWorkerOptions(in.args);
  if (!options.ok()) return UsageFailure(&in.command, options.status().message(), in.err);
  WorkSettings settings;
  settings.argv = in.args.positional();
  settings.server = in.server;
  for (const auto& [flag, variable] :
       {std::pair{"tls-ca", "KANBAN_TLS_CA"}, std::pair{"tls-cert", "KANBAN_TLS_CERT"},
        std::pair{"tls-key", "KANBAN_TLS_KEY"},
        std::pair{"tls-server-name", "KANBAN_TLS_SERVER_NAME"}}) {
    if (in.args.Has(flag)) {
      settings.channel_env.push_back(absl::StrCat(variable, "=", in.args.Get(flag)));
    }
  }
  // The token as used (trimmed); empty when --token "" turned it off.
  if (in.args.Has("token")) settings.channel_env.push_back("KANBAN_TOKEN=" + in.token);
  settings.grace = in.args.GetDuration("grace").value_or(absl::Seconds(10));
  settings.once = in.args.Has("once");
  // A missing program would fail every task it is given; refuse it up front.
  if (absl::StatusOr<std::string> path = FindExecutable(settings.argv[0]); !path.ok()) {
    return UsageFailure(&in.command, path.status().message(), in.err);
  }
  options->rpc_timeout = in.timeout;

  LineWriter log(in.err);
  int claimed = 0;
  options->on_event = [&](const WorkerEvent& event) {
    if (event.kind == WorkerEvent::Kind::kClaimed) ++claimed;
    log.Write(EventLine(event));
  };
  // A program that does not read its stdin must not kill kanbanctl.
  signal(SIGPIPE, SIG_IGN);
  Worker worker(in.channel, *options);
  StopSignals stop_signals([&] {
    log.Write("stopping: finishing the current task, claiming no more");
    worker.Stop();
  });
  if (absl::Status status = stop_signals.Install(); !status.ok()) {
    in.err << "error: " << status.message() << "\n";
    return kExitRpcFailed;
  }
  absl::Status status = worker.Run(
      [&settings](TaskContext& context) { return RunCommand(settings, context); });
  if (!status.ok()) {
    log.Write(absl::StrCat("error: ", absl::StatusCodeToString(status.code()), ": ",
                           status.message()));
    if (std::string hint = AuthHint(in, status.code()); !hint.empty()) log.Write(hint);
    return kExitRpcFailed;
  }
  if (settings.once && claimed == 0) log.Write("nothing to claim");
  return kExitOk;
}

}  // namespace kanban::client
