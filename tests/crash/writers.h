// The crash harness's writers: threads that send a random mix of real writes
// (create with parents, update and move with expected_version, link,
// comment, claim then complete/fail/release) to one kanband and record every
// answer in the Ledger, until kanband dies under them.
#ifndef KANBAN_TESTS_CRASH_WRITERS_H_
#define KANBAN_TESTS_CRASH_WRITERS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "tests/crash/ledger.h"

namespace kanban::crash {

// Writers for one cycle. Not thread-safe itself; its threads share only the
// channel, the Ledger and `killed`.
class Writers {
 public:
  // Starts `count` threads writing through `channel` until `killed` is set
  // (or a bounded number of calls). A call that fails once `killed` is set
  // counts as unacknowledged and ends its thread; any other failure the API
  // does not allow is recorded as a violation.
  // `seed` and `cycle` make each thread's choices reproducible (their
  // interleaving is not).
  Writers(std::shared_ptr<grpc::Channel> channel, Ledger& ledger,
          const std::atomic<bool>& killed, int count, uint64_t seed, int cycle);
  // Joins the threads (see Join).
  ~Writers();
  Writers(const Writers&) = delete;
  Writers& operator=(const Writers&) = delete;

  // Waits for every thread; they end soon after `killed` is set.
  void Join();

 private:
  std::vector<std::thread> threads_;
};

}  // namespace kanban::crash

#endif  // KANBAN_TESTS_CRASH_WRITERS_H_
