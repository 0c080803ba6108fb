#include "client/bench/driver.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <queue>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace kanban::bench {
namespace {

// Runs functions at given times on its own thread, for --rate: a loop that
// is early must not sleep in a gRPC callback thread.
class Pacer {
 public:
  Pacer() : thread_([this] { Loop(); }) {}
  ~Pacer() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  void At(absl::Time when, std::function<void()> fn) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    queue_.push(Item{when, next_++, std::move(fn)});
  }

 private:
  struct Item {
    absl::Time when;
    int64_t order;  // FIFO among equal times.
    std::function<void()> fn;
    bool operator>(const Item& o) const {
      return when != o.when ? when > o.when : order > o.order;
    }
  };

  void Loop() {
    while (true) {
      std::function<void()> fn;
      {
        absl::MutexLock lock(&mu_);
        while (true) {
          if (!queue_.empty() && queue_.top().when <= absl::Now()) break;
          if (stop_) return;
          const size_t size = queue_.size();
          const absl::Time wake =
              queue_.empty() ? absl::InfiniteFuture() : queue_.top().when;
          // Wake for the first item's time, a new (maybe earlier) item, or stop.
          auto changed = [this, size]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
            return stop_ || queue_.size() != size;
          };
          mu_.AwaitWithDeadline(absl::Condition(&changed), wake);
        }
        fn = queue_.top().fn;
        queue_.pop();
      }
      fn();  // Starts an asynchronous call; never blocks.
    }
  }

  absl::Mutex mu_;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue_
      ABSL_GUARDED_BY(mu_);
  int64_t next_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The state of one RunLoad.
class Run {
 public:
  Run(const Load& load, const StartFn& start, Recorder* recorder)
      : load_(load), start_fn_(start), recorder_(recorder), running_(load.concurrency) {
    if (load_.rate > 0) pacer_ = std::make_unique<Pacer>();
  }

  absl::Duration Go(const std::string& label, const std::function<std::string()>& extra) {
    start_ = absl::Now();
    end_ = load_.count > 0 ? absl::InfiniteFuture() : start_ + load_.duration;
    for (int i = 0; i < load_.concurrency; ++i) Next(i);
    absl::Time last_print = start_;
    int64_t last_done = 0;
    while (!finished_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      const absl::Time now = absl::Now();
      const int64_t done = recorder_->completed();
      std::string line =
          absl::StrFormat("[%s] %.0f s: %d calls, %.0f/s (last second %.0f/s), %d errors",
                          label, absl::ToDoubleSeconds(now - start_), done,
                          done / absl::ToDoubleSeconds(now - start_),
                          (done - last_done) / absl::ToDoubleSeconds(now - last_print),
                          recorder_->failed());
      if (extra) line += ", " + extra();
      PrintProgress(line);
      last_print = now;
      last_done = done;
    }
    EndProgress();
    absl::MutexLock lock(&mu_);
    return last_completion_ - start_;
  }

 private:
  // Starts loop `loop`'s next call, or stops the loop.
  void Next(int loop) {
    const int64_t seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
    if (load_.count > 0 ? seq >= load_.count : absl::Now() >= end_) return Stopped();
    if (load_.rate > 0) {
      const absl::Time when = start_ + absl::Seconds(seq / load_.rate);
      if (when >= end_) return Stopped();
      if (when > absl::Now()) {
        pacer_->At(when, [this, loop, seq] { Issue(loop, seq); });
        return;
      }
    }
    Issue(loop, seq);
  }

  void Issue(int loop, int64_t seq) {
    const absl::Time sent = absl::Now();
    start_fn_(loop, seq, [this, loop, sent](const grpc::Status& status, bool exhausted) {
      if (exhausted) return Stopped();
      const absl::Time now = absl::Now();
      recorder_->Record(now - sent, status);
      {
        absl::MutexLock lock(&mu_);
        last_completion_ = std::max(last_completion_, now);
      }
      Next(loop);
    });
  }

  void Stopped() {
    if (running_.fetch_sub(1) != 1) return;
    {
      absl::MutexLock lock(&mu_);
      if (last_completion_ < start_) last_completion_ = absl::Now();
    }
    // Last: once notified, Go returns and this object goes away.
    finished_.Notify();
  }

  const Load load_;
  const StartFn& start_fn_;
  Recorder* const recorder_;
  std::unique_ptr<Pacer> pacer_;
  absl::Time start_, end_;  // Set before the first call; constant after.
  std::atomic<int64_t> next_seq_{0};
  std::atomic<int> running_;
  absl::Mutex mu_;
  absl::Time last_completion_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Notification finished_;  // Every loop has stopped.
};

bool StderrIsTerminal() {
  static const bool tty = isatty(2) == 1;
  return tty;
}

}  // namespace

void PrintProgress(const std::string& line) {
  if (StderrIsTerminal()) {
    std::fprintf(stderr, "\r%s\033[K", line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

void EndProgress() {
  if (StderrIsTerminal()) std::fprintf(stderr, "\r\033[K");
}

absl::Duration RunLoad(const std::string& label, const Load& load, const StartFn& start,
                       Recorder* recorder,
                       const std::function<std::string()>& progress_extra) {
  Run run(load, start, recorder);
  return run.Go(label, progress_extra);
}

}  // namespace kanban::bench
