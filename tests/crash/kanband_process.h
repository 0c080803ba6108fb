// One kanband for the crash harness: started on a given database, killed
// with SIGKILL (or stopped with SIGTERM), restarted on the same file.
#ifndef KANBAN_TESTS_CRASH_KANBAND_PROCESS_H_
#define KANBAN_TESTS_CRASH_KANBAND_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tests/support/process.h"

namespace kanban::crash {

class KanbandProcess {
 public:
  // `dir` holds the port file and the log (appended to by every start).
  KanbandProcess(std::string kanband_path, std::string db_path, std::string dir,
                 std::vector<std::string> extra_args);

  // Starts kanband and waits up to `timeout` for its port and a connected
  // channel. Errors carry the end of kanband's log.
  absl::Status Start(absl::Duration timeout);
  // SIGKILLs kanband and reaps it. INTERNAL if it was not killed by the
  // signal (it had exited already).
  absl::Status Kill();
  // SIGTERMs kanband and waits up to `timeout`; INTERNAL unless it exits 0.
  absl::Status Stop(absl::Duration timeout);

  // The channel to the running kanband (null before Start).
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const std::string& log_path() const { return log_path_; }
  // The last `bytes` of the log.
  std::string LogTail(size_t bytes = 2000) const;

 private:
  const std::string kanband_path_;
  const std::string db_path_;
  const std::string port_file_;
  const std::string log_path_;
  const std::vector<std::string> extra_args_;
  testing::ChildProcess process_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace kanban::crash

#endif  // KANBAN_TESTS_CRASH_KANBAND_PROCESS_H_
