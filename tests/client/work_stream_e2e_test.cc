// End to end: 64 worker slots over 8 WorkerService.Work streams empty a board
// while the kanband under them is killed (SIGKILL) and started again on the
// same database. Every task must end DONE with exactly one "completed"
// event. The slots are this file's own small stream client: it confirms each
// assignment and completes it in one message, and after a break re-attaches
// with the old stream id, lists the leases it still holds and sends again
// every outcome whose result it never saw (answered DONE when its first try
// had committed).
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using ::kanban::testing::Kanband;
using ::kanban::testing::StartKanband;
using ::kanban::testing::TempDir;

constexpr int kStreams = 8;
constexpr int kWindow = 8;  // 64 slots.
// A kill loses the unconfirmed assignments' grace: they run to this expiry.
// Long enough that no lease a worker holds expires while kanband restarts.
constexpr absl::Duration kLease = absl::Seconds(10);
constexpr absl::Duration kDeadline = absl::Minutes(3);

// What every stream saw, for the checks at the end.
class Ledger {
 public:
  void Assigned(const std::string& task_id, const std::string& token) {
    absl::MutexLock lock(&mu_);
    tokens_[task_id].insert(token);
  }
  void Done(const std::string& task_id) {
    absl::MutexLock lock(&mu_);
    done_.insert(task_id);
  }
  void Lost(const std::string& task_id, const std::string& reason) {
    absl::MutexLock lock(&mu_);
    lost_[task_id] = reason;
  }
  size_t done() {
    absl::MutexLock lock(&mu_);
    return done_.size();
  }
  // Tasks assigned under more than one lease (run again after a lease
  // expired): only the ones in flight at the kill may be.
  int run_twice() {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& [task, tokens] : tokens_) n += tokens.size() > 1 ? 1 : 0;
    return n;
  }
  std::map<std::string, std::string> lost() {
    absl::MutexLock lock(&mu_);
    return lost_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::set<std::string>> tokens_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> done_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> lost_ ABSL_GUARDED_BY(mu_);
};

// The address of the kanband now serving ("" while there is none).
class Address {
 public:
  void Set(std::string address) {
    absl::MutexLock lock(&mu_);
    address_ = std::move(address);
  }
  std::string Get() {
    absl::MutexLock lock(&mu_);
    return address_;
  }

 private:
  absl::Mutex mu_;
  std::string address_ ABSL_GUARDED_BY(mu_);
};

// One stream's worker: a thread that attaches, completes what it is pushed,
// and re-attaches (resuming) whenever the stream ends, until stopped.
class StreamWorker {
 public:
  StreamWorker(int n, Address* address, Ledger* ledger)
      : worker_id_(absl::StrCat("e2e-", n)), address_(address), ledger_(ledger) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~StreamWorker() {
    stop_ = true;
    {
      absl::MutexLock lock(&mu_);
      if (ctx_ != nullptr) ctx_->TryCancel();
    }
    thread_.join();
  }
  int attaches() const { return attaches_; }
  int resumed() const { return resumed_; }
  int resent() const { return resent_; }

 private:
  struct Held {
    std::string token;
    bool outcome_sent = false;
  };

  void Loop() {
    while (!stop_) {
      const std::string address = address_->Get();
      if (!address.empty()) RunStream(address);
      if (!stop_) absl::SleepFor(absl::Milliseconds(50));
    }
  }

  void RunStream(const std::string& address) {
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    auto stub = v1::WorkerService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoSeconds(kDeadline));
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      ctx_ = &ctx;
    }
    auto stream = stub->Work(&ctx);
    v1::WorkRequest attach;
    v1::ClaimTaskRequest* claim = attach.mutable_attach()->mutable_claim();
    claim->set_worker_id(worker_id_);
    claim->mutable_lease_duration()->set_seconds(absl::ToInt64Seconds(kLease));
    attach.mutable_attach()->set_max_outstanding(kWindow);
    attach.mutable_attach()->set_resume_stream_id(stream_id_);
    for (const auto& [task_id, held] : held_) {
      v1::HeldLease* lease = attach.add_heartbeat();
      lease->set_task_id(task_id);
      lease->set_lease_token(held.token);
    }
    ++attaches_;
    // Outcomes whose results never came: sent again after the attach.
    v1::WorkRequest again;
    for (const auto& [task_id, held] : held_) {
      if (held.outcome_sent) AddComplete(task_id, held.token, &again);
    }
    resent_ += again.outcomes_size();
    if (stream->Write(attach) && (again.outcomes_size() == 0 || stream->Write(again))) {
      v1::WorkResponse response;
      while (stream->Read(&response)) {
        if (!Handle(response, stream.get())) break;
      }
    }
    {
      absl::MutexLock lock(&mu_);
      ctx_ = nullptr;
    }
    ctx.TryCancel();
    stream->Finish();
  }

  // Completes what `response` assigns; false when the stream should end.
  bool Handle(const v1::WorkResponse& response,
              grpc::ClientReaderWriter<v1::WorkRequest, v1::WorkResponse>* stream) {
    if (response.has_attached()) {
      stream_id_ = response.attached().stream_id();
      if (response.attached().resumed()) ++resumed_;
    }
    for (const v1::WorkResult& result : response.results()) {
      if (result.state() == v1::WorkResult::DONE) {
        ledger_->Done(result.task_id());
        held_.erase(result.task_id());
      } else if (result.state() == v1::WorkResult::LOST) {
        ledger_->Lost(result.task_id(), result.reason());
        held_.erase(result.task_id());
      } else {
        held_[result.task_id()].outcome_sent = false;  // Sent again below.
      }
    }
    for (const v1::LeaseStatus& lease : response.leases()) {
      if (lease.state() != v1::LeaseStatus::LOST) continue;
      auto it = held_.find(lease.task_id());
      // An outcome is out: its result says what happened. (The attach's
      // heartbeat answers LOST "completed" for a lease whose outcome had
      // committed before the kill; the outcome sent again is DONE.)
      if (it != held_.end() && it->second.outcome_sent) continue;
      ledger_->Lost(lease.task_id(), lease.reason());
      held_.erase(lease.task_id());
    }
    v1::WorkRequest out;
    for (const v1::ClaimTaskResponse& assignment : response.assignments()) {
      ledger_->Assigned(assignment.task().id(), assignment.lease().token());
      out.add_received(assignment.lease().token());
      held_[assignment.task().id()] = Held{assignment.lease().token(), false};
    }
    for (auto& [task_id, held] : held_) {
      if (held.outcome_sent) continue;
      AddComplete(task_id, held.token, &out);
      held.outcome_sent = true;
    }
    if (response.go_away()) return false;
    if (out.received_size() == 0 && out.outcomes_size() == 0) return true;
    return stream->Write(out);
  }

  void AddComplete(const std::string& task_id, const std::string& token,
                   v1::WorkRequest* out) {
    v1::WorkOutcome* outcome = out->add_outcomes();
    outcome->set_op_id(++next_op_);
    outcome->set_task_id(task_id);
    outcome->set_lease_token(token);
    outcome->set_complete("done by " + worker_id_);
  }

  const std::string worker_id_;
  Address* const address_;
  Ledger* const ledger_;
  std::atomic<bool> stop_{false};
  std::atomic<int> attaches_{0};
  std::atomic<int> resumed_{0};
  std::atomic<int> resent_{0};

  // The worker thread's own.
  std::string stream_id_;
  std::map<std::string, Held> held_;
  uint64_t next_op_ = 0;

  absl::Mutex mu_;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;  // The stream's, for Stop.
  std::thread thread_;
};

class WorkStreamEndToEndTest : public ::kanban::testing::BackendTest {
 protected:
  int TaskCount() const { return 20000; }

  // Creates `n` tasks from 16 threads.
  void CreateTasks(const std::string& address, int n) {
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    auto stub = v1::KanbanService::NewStub(channel);
    std::atomic<int> next{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t) {
      threads.emplace_back([&] {
        for (int i = next++; i < n; i = next++) {
          v1::CreateTaskRequest r;
          r.set_title(absl::StrCat("task ", i));
          v1::Task task;
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
          if (!stub->CreateTask(&ctx, r, &task).ok()) ++failed;
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    ASSERT_EQ(failed, 0);
  }

  // Every "completed" event, counted by task.
  std::map<std::string, int> CompletedEvents(const std::string& address, int expected) {
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    auto stub = v1::KanbanService::NewStub(channel);
    v1::WatchEventsRequest r;
    r.set_after_seq(0);
    r.add_kinds("completed");
    r.mutable_bookmark_interval()->set_nanos(200000000);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub->WatchEvents(&ctx, r);
    std::map<std::string, int> completed;
    int total = 0;
    v1::WatchEventsResponse response;
    // Read past the expected count until a bookmark: an extra completion
    // would be in the history before it.
    while (reader->Read(&response)) {
      for (const v1::Event& event : response.events()) {
        ++completed[event.task_id()];
        ++total;
      }
      if (total >= expected && response.events_size() == 0) break;
    }
    ctx.TryCancel();
    reader->Finish();
    return completed;
  }

  TempDir dir_;
};

TEST_P(WorkStreamEndToEndTest,
       SixtyFourSlotsOverEightStreamsCompleteEveryTaskOnceAcrossAKill) {
  const std::string& db = Database(dir_.File("kanban.db"));
  if (db.empty()) return;
  const std::vector<std::string> flags = {"--sweep_interval=200ms"};
  Kanband first = StartKanband(KANBAND_PATH, db, flags);
  ASSERT_TRUE(first.ok());
  const int n = TaskCount();
  CreateTasks(first.address, n);

  Address address;
  Ledger ledger;
  address.Set(first.address);
  std::vector<std::unique_ptr<StreamWorker>> workers;
  for (int i = 0; i < kStreams; ++i) {
    workers.push_back(std::make_unique<StreamWorker>(i, &address, &ledger));
  }
  const absl::Time deadline = absl::Now() + kDeadline;
  const absl::Time start = absl::Now();
  while (ledger.done() < static_cast<size_t>(n / 2) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const size_t done_at_kill = ledger.done();
  address.Set("");
  first.process.Signal(SIGKILL);  // Results in flight are lost.
  first.process.Wait(absl::Seconds(10));
  Kanband second = StartKanband(KANBAND_PATH, db, flags);
  ASSERT_TRUE(second.ok());
  address.Set(second.address);
  while (ledger.done() < static_cast<size_t>(n) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Duration took = absl::Now() - start;
  int resent = 0;
  for (const auto& worker : workers) resent += worker->resent();
  workers.clear();  // Stops the streams.

  EXPECT_GT(done_at_kill, 0u);
  EXPECT_LT(done_at_kill, static_cast<size_t>(n)) << "the kill came after the end";
  EXPECT_EQ(ledger.done(), static_cast<size_t>(n)) << second.Log();
  std::map<std::string, int> completed = CompletedEvents(second.address, n);
  EXPECT_EQ(completed.size(), static_cast<size_t>(n));
  int twice = 0;
  for (const auto& [task, count] : completed) twice += count > 1 ? 1 : 0;
  EXPECT_EQ(twice, 0) << "tasks completed more than once";
  // Only leases in flight at the kill (their assignment unconfirmed, the
  // grace gone with the process) may have expired and run again.
  EXPECT_LE(ledger.run_twice(), kStreams * kWindow);
  for (const auto& [task, reason] : ledger.lost()) {
    ADD_FAILURE() << "task " << task << " lost: " << reason;
    break;
  }
  std::cout << "[ e2e ] " << n << " tasks in " << absl::FormatDuration(took) << ", "
            << done_at_kill << " done at the kill, " << resent
            << " outcomes sent again after it, " << ledger.run_twice()
            << " run under a second lease\n";
}

INSTANTIATE_TEST_SUITE_P(Backends, WorkStreamEndToEndTest,
                         ::kanban::testing::AllBackends(),
                         ::kanban::testing::BackendName);

}  // namespace
}  // namespace kanban
