#include "client/kanbanctl/signals.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kanban::client {
namespace {

// The write end of the self-pipe that the signal handler writes to; a
// handler may only touch async-signal-safe state.
volatile sig_atomic_t signal_pipe_fd = -1;

void OnStopSignal(int) {
  const int saved_errno = errno;
  const char byte = 's';
  if (signal_pipe_fd >= 0) (void)!write(signal_pipe_fd, &byte, 1);
  errno = saved_errno;
}

}  // namespace

StopSignals::StopSignals(std::function<void()> on_signal)
    : on_signal_(std::move(on_signal)) {}

absl::Status StopSignals::Install() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  read_fd_ = fds[0];
  write_fd_ = fds[1];
  signal_pipe_fd = write_fd_;
  thread_ = std::thread([this] { Watch(); });
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  action.sa_flags = SA_RESETHAND | SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return absl::OkStatus();
}

StopSignals::~StopSignals() {
  if (!thread_.joinable()) return;
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal_pipe_fd = -1;
  const char quit = 'q';
  (void)!write(write_fd_, &quit, 1);
  thread_.join();
  close(read_fd_);
  close(write_fd_);
}

void StopSignals::Watch() {
  while (true) {
    char byte = 0;
    const ssize_t n = read(read_fd_, &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || byte == 'q') return;
    on_signal_();
  }
}

}  // namespace kanban::client
