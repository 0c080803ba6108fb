#include "client/bench/kanband_child.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

extern char** environ;

namespace kanban::bench {

KanbandChild::KanbandChild(const std::string& kanband, const std::string& parent_dir,
                           const std::string& name,
                           const std::vector<std::string>& extra_args) {
  dir_ = absl::StrFormat("%s/%s_%d", parent_dir, name, getpid());
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  const std::string port_file = dir_ + "/port";
  const std::string log = dir_ + "/kanband.log";
  std::vector<std::string> args = {kanband, "--listen=127.0.0.1:0",
                                   "--db=" + dir_ + "/kanban.db",
                                   "--port_file=" + port_file};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  // Not our stdout: a caller reading it through a pipe would otherwise wait
  // for kanband too.
  posix_spawn_file_actions_adddup2(&actions, 2, 1);
  const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    std::fprintf(stderr, "cannot start %s\n", argv[0]);
    std::exit(1);
  }
  for (int i = 0; i < 300 && address_.empty(); ++i) {
    std::ifstream in(port_file);
    int port = 0;
    if (in >> port && port > 0) address_ = absl::StrFormat("127.0.0.1:%d", port);
    if (address_.empty()) absl::SleepFor(absl::Milliseconds(50));
  }
  if (address_.empty()) {
    std::fprintf(stderr, "kanband did not start; see %s\n", log.c_str());
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    std::exit(1);
  }
}

KanbandChild::~KanbandChild() {
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  std::filesystem::remove_all(dir_);
}

}  // namespace kanban::bench
