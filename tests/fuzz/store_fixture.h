// The Store that fuzz_requests drives: one per process, on a SQLite file in a
// fresh temporary directory, with a fake clock and a small fixture of tasks in
// every state, so that fuzzed requests reach moves, links, claims and
// completions. Fuzzed requests name fixture tasks and leases through "#"
// references (see Resolve*). Not thread-safe: use from the fuzzing thread.
#ifndef KANBAN_TESTS_FUZZ_STORE_FIXTURE_H_
#define KANBAN_TESTS_FUZZ_STORE_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/clock.h"
#include "storage/store.h"
#include "storage/types.h"

namespace kanban::fuzz {

// Prints `what` (and `status` when not OK) and aborts: libFuzzer reports the
// abort as a crash and saves the input.
[[noreturn]] void Fail(absl::string_view what,
                       const absl::Status& status = absl::OkStatus());

// Every field of `task`, one per line: equal texts mean equal tasks.
std::string Describe(const storage::Task& task);

class StoreFixture {
 public:
  // Opens the store in a new directory under $TMPDIR (or /tmp) and builds the
  // fixture; aborts if it cannot.
  StoreFixture();
  ~StoreFixture();  // Closes the store and removes the directory.
  StoreFixture(const StoreFixture&) = delete;
  StoreFixture& operator=(const StoreFixture&) = delete;

  storage::Store& store() { return *store_; }
  storage::FakeClock& clock() { return clock_; }

  // Starts again from a fresh database, clock and fixture: called every so
  // many inputs, so that long runs do not grow the database without bound.
  void Reset();

  // "#N" (N decimal, absent means 0) becomes known task N modulo their count;
  // anything else is left as it is.
  void ResolveTaskId(std::string* id) const;
  // A token "#N" becomes known lease N's token, and then a task id of just
  // "#" becomes that lease's task (other task ids resolve as above).
  void ResolveLease(std::string* task_id, std::string* token) const;
  // "#N" becomes the worker of known lease N.
  void ResolveWorkerId(std::string* worker_id) const;

  // Tasks and leases later requests may name (the newest few are kept).
  void RememberTask(const std::string& id);
  void RememberLease(const storage::Lease& lease);

  // The events committed since the previous call (all of them, in order).
  std::vector<storage::Event> NewEvents();

 private:
  void Open();
  void BuildFixture();

  const absl::Time start_ = absl::FromUnixSeconds(1800000000);
  storage::FakeClock clock_{start_};
  std::string dir_;
  std::unique_ptr<storage::Store> store_;
  std::vector<std::string> tasks_;
  std::vector<storage::Lease> leases_;
  size_t next_task_ = 0;  // Ring positions for Remember*.
  size_t next_lease_ = 0;
  int64_t last_seq_ = 0;  // Of the events NewEvents returned.
};

}  // namespace kanban::fuzz

#endif  // KANBAN_TESTS_FUZZ_STORE_FIXTURE_H_
