// Stopping a long-running kanbanctl command (work, watch) on SIGINT or
// SIGTERM: a self-pipe turns the signal into a plain function call on a
// thread of its own, where taking a mutex (Worker::Stop, Watcher::Stop) is
// allowed, as it is not in a signal handler.
#ifndef KANBAN_CLIENT_KANBANCTL_SIGNALS_H_
#define KANBAN_CLIENT_KANBANCTL_SIGNALS_H_

#include <functional>
#include <thread>

#include "absl/status/status.h"

namespace kanban::client {

// Calls `on_signal` on its own thread when the first SIGINT or SIGTERM
// arrives. The handlers reset themselves, so a second signal kills the
// process the default way. At most one object may be installed at a time in
// a process; not thread-safe (construct, Install and destroy on one thread).
class StopSignals {
 public:
  explicit StopSignals(std::function<void()> on_signal);
  // Restores the default SIGINT and SIGTERM handlers and joins the thread;
  // must not run from `on_signal`.
  ~StopSignals();

  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Starts the thread and installs the handlers. INTERNAL if the pipe cannot
  // be made; nothing is installed then.
  absl::Status Install();

 private:
  void Watch();  // The thread: waits on the pipe.

  // Constant after construction.
  const std::function<void()> on_signal_;

  // Set by Install().
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::thread thread_;
};

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_KANBANCTL_SIGNALS_H_
