#include "client/bench/stream_scenario.h"

#include <grpcpp/support/client_callback.h>

#include <atomic>
#include <deque>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace kanban::bench {
namespace {

// A slot that waits this long with nothing pushed ends its loop (the board
// ran dry: raise --prefill).
constexpr absl::Duration kDryAfter = absl::Seconds(2);

// One Work stream. Outcomes wait in `pending_` while a write is in flight
// and go out together in the next one.
class Stream final : public grpc::ClientBidiReactor<v1::WorkRequest, v1::WorkResponse> {
 public:
  Stream(v1::WorkerService::Stub* stub, const Options& options, int index, int window)
      : stub_(stub) {
    v1::WorkAttach* attach = first_.mutable_attach();
    attach->mutable_claim()->set_board(options.board);
    attach->mutable_claim()->set_worker_id(absl::StrCat("kanban-bench-stream-", index));
    attach->mutable_claim()->add_labels(kBenchLabel);
    attach->set_max_outstanding(window);
  }

  void Open() {
    stub_->async()->Work(&ctx_, this);
    {
      absl::MutexLock lock(&mu_);
      writing_ = true;
    }
    StartWrite(&first_);
    StartRead(&in_);
    StartCall();
  }

  // A slot asks for its next cycle: `done` runs once its completion is
  // answered (or the board ran dry, or the stream failed).
  void Next(Done done) {
    bool flush = false;
    {
      absl::MutexLock lock(&mu_);
      if (!status_.ok() || ended_) return done(FailedStatus(), false);
      waiting_.push_back({std::move(done), absl::Now()});
      flush = MatchLocked();
    }
    if (flush) Flush();
  }

  // Slots that waited kDryAfter with nothing pushed end their loops.
  void ExpireDry(absl::Time now) {
    std::vector<Done> dry;
    {
      absl::MutexLock lock(&mu_);
      while (!waiting_.empty() && now - waiting_.front().since > kDryAfter) {
        dry.push_back(std::move(waiting_.front().done));
        waiting_.pop_front();
        ++dry_;
      }
    }
    for (Done& done : dry) done(grpc::Status::OK, /*exhausted=*/true);
  }

  // Closes the stream (after the load ended) and waits for its end.
  void Close() {
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
    }
    Flush();
    ended_note_.WaitForNotificationWithTimeout(absl::Seconds(30));
  }

  int64_t dry() {
    absl::MutexLock lock(&mu_);
    return dry_;
  }
  int64_t messages_in() const { return messages_in_.load(); }
  int64_t writes() const { return writes_.load(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    messages_in_.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::pair<Done, grpc::Status>> finished;
    bool flush = false;
    {
      absl::MutexLock lock(&mu_);
      for (const v1::ClaimTaskResponse& a : in_.assignments()) {
        ready_.push_back(a.lease());
      }
      for (const v1::WorkResult& r : in_.results()) {
        auto it = ops_.find(r.op_id());
        if (it == ops_.end()) continue;
        grpc::Status s = grpc::Status::OK;
        if (r.state() != v1::WorkResult::DONE) {
          s = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                           absl::StrCat("outcome ", v1::WorkResult::State_Name(r.state()),
                                        " ", r.reason(), r.message()));
        }
        finished.emplace_back(std::move(it->second), s);
        ops_.erase(it);
      }
      flush = MatchLocked();
    }
    for (auto& [done, s] : finished) done(s, false);
    if (flush) Flush();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) return;
    }
    Flush();
  }

  void OnDone(const grpc::Status& s) override {
    std::vector<Done> failed;
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;
      status_ = s;
      for (auto& [op, done] : ops_) failed.push_back(std::move(done));
      ops_.clear();
      for (Waiting& w : waiting_) failed.push_back(std::move(w.done));
      waiting_.clear();
    }
    for (Done& done : failed) done(FailedStatus(), false);
    ended_note_.Notify();
  }

 private:
  struct Waiting {
    Done done;
    absl::Time since;
  };

  grpc::Status FailedStatus() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return status_.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended")
                        : status_;
  }

  // Pairs waiting slots with pushed assignments; true when outcomes are
  // pending a write.
  bool MatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!waiting_.empty() && !ready_.empty()) {
      const v1::Lease lease = std::move(ready_.front());
      ready_.pop_front();
      v1::WorkOutcome* o = pending_.add_outcomes();
      o->set_op_id(++next_op_);
      o->set_task_id(lease.task_id());
      o->set_lease_token(lease.token());
      o->set_complete("ok");
      ops_[next_op_] = std::move(waiting_.front().done);
      waiting_.pop_front();
    }
    return pending_.outcomes_size() > 0 || closing_;
  }

  void Flush() {
    bool write = false, close = false;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || ended_ || write_closed_) return;
      if (pending_.outcomes_size() > 0) {
        out_.Swap(&pending_);
        pending_.Clear();
        writing_ = true;
        write = true;
      } else if (closing_) {
        write_closed_ = true;
        close = true;
      }
    }
    if (write) {
      writes_.fetch_add(1, std::memory_order_relaxed);
      StartWrite(&out_);
    }
    if (close) StartWritesDone();
  }

  v1::WorkerService::Stub* const stub_;
  grpc::ClientContext ctx_;
  v1::WorkRequest first_;
  v1::WorkResponse in_;  // Only the reactor's read path touches it.
  v1::WorkRequest out_;  // Being written.
  std::atomic<int64_t> messages_in_{0}, writes_{0};
  absl::Notification ended_note_;

  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::Lease> ready_ ABSL_GUARDED_BY(mu_);  // Pushed, not yet taken.
  std::deque<Waiting> waiting_ ABSL_GUARDED_BY(mu_);  // Slots with nothing.
  v1::WorkRequest pending_ ABSL_GUARDED_BY(mu_);      // Outcomes for the next write.
  std::map<uint64_t, Done> ops_ ABSL_GUARDED_BY(mu_);
  uint64_t next_op_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dry_ ABSL_GUARDED_BY(mu_) = 0;
};

class StreamScenario final : public UnaryScenario {
 public:
  StreamScenario(const Target* target, const Options& options)
      : target_(target), options_(options) {}

  ~StreamScenario() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (ticker_.joinable()) ticker_.join();
    for (auto& s : streams_) s->Close();
  }

  absl::Status Prepare() override {
    int64_t n = options_.prefill;
    if (n < 0) {
      n = options_.count > 0
              ? options_.count + options_.concurrency * 2
              : static_cast<int64_t>(10000 * absl::ToDoubleSeconds(options_.duration));
    }
    absl::Status filled = Prefill(*target_, options_, n).status();
    if (!filled.ok()) return filled;
    const int streams = std::min(options_.streams, options_.concurrency);
    for (int i = 0; i < streams; ++i) {
      // Slots of this stream, and a prefetch of as many again.
      const int slots =
          options_.concurrency / streams + (i < options_.concurrency % streams);
      stubs_.push_back(v1::WorkerService::NewStub(
          target_->NewChannel(i % target_->replicas().size())));
      streams_.push_back(
          std::make_unique<Stream>(stubs_.back().get(), options_, i, 2 * slots));
      streams_.back()->Open();
    }
    ticker_ = std::thread([this] {
      absl::MutexLock lock(&mu_);
      while (!mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(100))) {
        mu_.Unlock();
        for (auto& s : streams_) s->ExpireDry(absl::Now());
        mu_.Lock();
      }
    });
    return absl::OkStatus();
  }

  void Start(int loop, int64_t seq, Done done) override {
    streams_[loop % streams_.size()]->Next(std::move(done));
  }

  void Finish(const Summary& summary, Result* result) override {
    int64_t dry = 0, in = 0, writes = 0;
    for (auto& s : streams_) {
      dry += s->dry();
      in += s->messages_in();
      writes += s->writes();
    }
    result->extras.push_back(NumberExtra(
        "streams", streams_.size(),
        absl::StrFormat("%d (%d slots)", streams_.size(), options_.concurrency)));
    const double cycles = summary.ok();
    if (cycles > 0) {
      result->extras.push_back(
          NumberExtra("messages_per_cycle", (in + writes) / cycles,
                      absl::StrFormat("%.2f (%d received, %d sent)",
                                      (in + writes) / cycles, in, writes)));
    }
    if (dry > 0) {
      result->problems.push_back(
          absl::StrFormat("%d slots found the board empty and stopped early (after %d "
                          "cycles); raise --prefill",
                          dry, summary.count));
    }
  }

 private:
  const Target* const target_;
  const Options& options_;
  std::vector<std::unique_ptr<v1::WorkerService::Stub>> stubs_;
  std::vector<std::unique_ptr<Stream>> streams_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread ticker_;
};

}  // namespace

std::unique_ptr<UnaryScenario> MakeStreamScenario(const Target* target,
                                                  const Options& options) {
  return std::make_unique<StreamScenario>(target, options);
}

}  // namespace kanban::bench
