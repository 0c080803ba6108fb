// Child processes, the one implementation that `kanbanctl work` and the
// tests' support code (tests/support/process.h) share: RunSubprocess feeds a
// program its stdin, captures a bounded amount of its stdout and the tail of
// its stderr, and kills it (SIGTERM, then SIGKILL after a grace period) when
// asked to stop; SpawnProcess only starts one, for callers that keep it
// running (a server under test). Thread-compatible; the calling process must
// ignore SIGPIPE while RunSubprocess feeds stdin (a program that does not read
// its stdin would otherwise kill it).
#ifndef KANBAN_CLIENT_CPP_SUBPROCESS_H_
#define KANBAN_CLIENT_CPP_SUBPROCESS_H_

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kanban::client {

struct SubprocessOptions {
  // The program and its arguments; argv[0] is looked up in $PATH unless it
  // contains a '/'. Required.
  std::vector<std::string> argv;

  // "NAME=value" entries added to this process's environment, replacing
  // variables of the same name; a bare "NAME" removes the variable.
  // Default: none.
  std::vector<std::string> env;

  // Written to the program's stdin, which is then closed. Default: "".
  std::string stdin_data;

  // Most stdout bytes kept; the rest is read and dropped. Default: 64 KiB.
  size_t max_stdout = 64 * 1024;

  // Most bytes kept from the end of stderr. Default: 4 KiB.
  size_t max_stderr_tail = 4 * 1024;

  // Polled about every 50 ms while the program runs; once it returns true
  // the program's process group gets SIGTERM, and SIGKILL after kill_grace.
  // Default: never.
  std::function<bool()> should_kill;

  // Default: 10 s.
  absl::Duration kill_grace = absl::Seconds(10);
};

struct SubprocessResult {
  int exit_code = -1;   // The exit status, or 128 + N if killed by signal N.
  int signal = 0;       // N if killed by signal N, else 0.
  bool killed = false;  // should_kill() turned true and the program was signalled.
  std::string out;      // The first max_stdout bytes of stdout.
  bool out_truncated = false;
  std::string err_tail;  // The last max_stderr_tail bytes of stderr.
};

// Runs `options.argv` in a process group of its own (so a terminal's Ctrl-C
// reaches kanbanctl, not the program, and a kill reaches the program's
// children too) and waits for it to exit. Output written by children that
// outlive the program may be lost. INVALID_ARGUMENT for an empty argv;
// NOT_FOUND or INTERNAL when the program cannot be started.
absl::StatusOr<SubprocessResult> RunSubprocess(const SubprocessOptions& options);

// Starts the program at `path` with `argv` (argv[0] included; no $PATH
// search), this process's environment changed by `env` (as
// SubprocessOptions::env), and each (from, to) pair of `redirects` dup2'ed
// in the child. The child starts with nothing blocked and SIGPIPE at its
// default, whatever this process does with them; with `own_process_group`
// it leads a process group of its own. The caller reaps it (waitpid).
// INTERNAL when it cannot be started (glibc reports a failed exec here).
absl::StatusOr<pid_t> SpawnProcess(const std::string& path,
                                   const std::vector<std::string>& argv,
                                   const std::vector<std::string>& env,
                                   const std::vector<std::pair<int, int>>& redirects,
                                   bool own_process_group);

// A waitpid status as SubprocessResult::exit_code: the exit status, or
// 128 + N if signal N killed the process; -1 for anything else.
int DecodeWaitStatus(int status);

// The path `name` would run as: itself when it contains a '/', else the
// first executable match in $PATH. NOT_FOUND if there is none.
absl::StatusOr<std::string> FindExecutable(const std::string& name);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_CPP_SUBPROCESS_H_
