// A kanband started by a benchmark on a fresh database in its own directory,
// stopped (SIGTERM) and cleaned up when the object goes away.
#ifndef KANBAN_CLIENT_BENCH_KANBAND_CHILD_H_
#define KANBAN_CLIENT_BENCH_KANBAND_CHILD_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace kanban::bench {

class KanbandChild {
 public:
  // Runs `kanband --listen=127.0.0.1:0 --db=DIR/kanban.db --port_file=...`
  // plus `extra_args`, with DIR = `parent_dir`/`name`_PID, and waits up to
  // 15 s for its port. Exits the benchmark with a message if it fails.
  KanbandChild(const std::string& kanband, const std::string& parent_dir,
               const std::string& name, const std::vector<std::string>& extra_args = {});
  ~KanbandChild();
  KanbandChild(const KanbandChild&) = delete;
  KanbandChild& operator=(const KanbandChild&) = delete;

  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::string dir_;
  std::string address_;
};

}  // namespace kanban::bench

#endif  // KANBAN_CLIENT_BENCH_KANBAND_CHILD_H_
