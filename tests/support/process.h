// Child processes for tests: run a program to completion and capture its
// output (Run), keep a server running in the background (ChildProcess), and
// start a real kanband on a free port (StartKanband).
//
// Both are built on client/cpp/subprocess.h, the code `kanbanctl work` runs
// its programs with, so the tests exercise it too. Run searches $PATH for a
// name without a '/' and starts the program in a process group of its own
// (a timeout kills the group); ChildProcess takes argv[0] as a path. The
// environment is the test's own plus `extra_env`: "NAME=value" sets or
// overrides a variable, a bare "NAME" removes it. None of this is
// thread-safe; use it from the test's main thread.
#ifndef KANBAN_TESTS_SUPPORT_PROCESS_H_
#define KANBAN_TESTS_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tests/support/temp_dir.h"

namespace kanban::testing {

struct RunResult {
  // The exit status; 128 + N when killed by signal N; -1 when the program
  // could not be started or was killed for running past its timeout.
  int exit_code = -1;
  std::string out;  // Everything written to stdout.
  std::string err;  // Everything written to stderr.
};

// Runs `argv` with `stdin_data` on its stdin and waits for it to exit,
// SIGKILLing it once `timeout` has passed. Ignores SIGPIPE in the calling
// process (for the rest of its life) so a child that does not read its
// input cannot kill the test. A start failure also adds a test failure.
RunResult Run(const std::vector<std::string>& argv,
              const std::vector<std::string>& extra_env = {},
              const std::string& stdin_data = "",
              absl::Duration timeout = absl::Seconds(30));

// A long-running child (a server) whose stdout and stderr go to a file.
// Movable, not copyable; the destructor SIGKILLs and reaps a child that is
// still running.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts `argv` with stdin from /dev/null and stdout and stderr appended
  // to `output_path` (created if missing). FAILED_PRECONDITION if this object
  // already holds a child that was not reaped; INTERNAL if the file cannot be
  // opened or the program cannot be started.
  absl::Status Start(const std::vector<std::string>& argv,
                     const std::vector<std::string>& extra_env,
                     const std::string& output_path);

  // Sends `sig` to the child. Returns 0, or -1 if there is no running child
  // or kill(2) failed.
  int Signal(int sig);

  // Waits up to `timeout` for the child to exit. Returns its exit status, or
  // 128 + N if signal N killed it, or -1 if it is still running (or was
  // never started). Once reaped, later calls return the same value at once.
  int Wait(absl::Duration timeout);

  // True from a successful Start() until Wait() has reaped the child.
  bool running() const { return pid_ > 0; }

 private:
  void KillAndReap();

  pid_t pid_ = -1;      // > 0 while a child is running and not reaped.
  int exit_code_ = -1;  // The reaped child's status, as Wait() returns it.
};

// A kanband started by StartKanband.
struct Kanband {
  ChildProcess process;
  std::string address;             // "127.0.0.1:PORT"; empty when the start failed.
  std::string log_path;            // kanband's stdout and stderr.
  std::unique_ptr<TempDir> files;  // Holds the log and the port file.

  bool ok() const { return !address.empty(); }
  // The log as written so far.
  std::string Log() const;
};

// Starts `kanband_path --listen=127.0.0.1:0 --db=DB_PATH --port_file=FILE`
// followed by `extra_args`, and waits up to 15 s for FILE to hold the port
// number. If kanband exits first or the wait times out, adds a test failure
// that includes kanband's log and returns a Kanband whose ok() is false.
Kanband StartKanband(const std::string& kanband_path, const std::string& db_path,
                     const std::vector<std::string>& extra_args = {},
                     const std::vector<std::string>& extra_env = {});

// "exit code N", then stdout and stderr, for test failure messages.
std::string Describe(const RunResult& r);

// The value for `key` in one line of JSON as kanbanctl --json prints it: a
// string's text (escapes left as they are) or a number's digits; "" when the
// key is absent. Enough for flat fields; not a JSON parser.
std::string JsonValue(const std::string& json, const std::string& key);

// The whole content of a file; "" if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

}  // namespace kanban::testing

#endif  // KANBAN_TESTS_SUPPORT_PROCESS_H_
