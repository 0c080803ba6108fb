// claim_bench: the worker cycle (ClaimTask -> CompleteTask) against a real
// kanband, with N concurrent workers, next to grpc.health.v1.Health/Check
// on the same server in the same run, in NORMAL and in FULL.
//
//   claim_bench [--kanband=PATH | --server=HOST:PORT] [--workers=64]
//               [--tasks=20000] [--check_seconds=3] [--modes=normal,full]
//               [--dir=/tmp] [--smoke]
//
// With --kanband (the default: the kanband built beside this program) each
// mode gets a fresh kanband on a fresh database on 127.0.0.1. Prints tasks
// completed per second, ClaimTask latency p50/p99, Check RPS and the ratio.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/bench/kanband_child.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "kanban/v1/kanban.grpc.pb.h"

namespace kanban::bench {
namespace {

struct Config {
  std::string kanband = KANBAND_PATH;
  std::string server;  // If set, use this server instead of starting one.
  int workers = 64;
  int tasks = 20000;
  double check_seconds = 3;
  std::vector<std::string> modes = {"normal", "full"};
  std::string dir = "/tmp";
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// Runs `n` concurrent asynchronous loops; each calls `step(done)` and calls
// it again when `done(bool more)` is called with true. Returns when every
// loop has stopped.
void RunLoops(int n, const std::function<void(std::function<void(bool)>)>& step) {
  std::atomic<int> running{n};
  absl::Notification all_done;
  std::function<void()> next;
  struct Loop {
    std::function<void()> go;
  };
  std::vector<Loop> loops(n);
  for (int i = 0; i < n; ++i) {
    loops[i].go = [&, i] {
      step([&, i](bool more) {
        if (more) {
          loops[i].go();
        } else if (running.fetch_sub(1) == 1) {
          all_done.Notify();
        }
      });
    };
  }
  for (auto& loop : loops) loop.go();
  all_done.WaitForNotification();
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return ctx;
}

void CreateTasks(v1::KanbanService::Stub* stub, int tasks) {
  std::atomic<int> next{0}, errors{0};
  RunLoops(64, [&](std::function<void(bool)> done) {
    int n = next.fetch_add(1);
    if (n >= tasks) return done(false);
    struct Call {
      std::unique_ptr<grpc::ClientContext> ctx = Context();
      v1::CreateTaskRequest request;
      v1::Task response;
    };
    auto* call = new Call();
    call->request.set_title(absl::StrFormat("bench task %d", n));
    call->request.set_body("do the thing");
    call->request.set_priority(n % 5);
    stub->async()->CreateTask(call->ctx.get(), &call->request, &call->response,
                              [call, done, &errors](grpc::Status s) {
                                if (!s.ok()) errors++;
                                delete call;
                                done(true);
                              });
  });
  if (errors.load() > 0) {
    std::fprintf(stderr, "%d CreateTask errors\n", errors.load());
    std::exit(1);
  }
}

struct CycleResult {
  double tasks_per_second = 0, claim_p50_us = 0, claim_p99_us = 0;
  int completed = 0, errors = 0;
};

CycleResult ClaimCompleteCycle(v1::KanbanService::Stub* stub, int workers) {
  std::atomic<int> completed{0}, errors{0};
  absl::Mutex mu;
  std::vector<double> claim_latencies;
  absl::Time start = absl::Now();
  RunLoops(workers, [&](std::function<void(bool)> done) {
    struct Call {
      std::unique_ptr<grpc::ClientContext> ctx = Context();
      v1::ClaimTaskRequest claim;
      v1::ClaimTaskResponse claimed;
      std::unique_ptr<grpc::ClientContext> ctx2 = Context();
      v1::CompleteTaskRequest complete;
      v1::Task completed;
      absl::Time sent;
    };
    auto* call = new Call();
    call->claim.set_worker_id("bench");
    call->sent = absl::Now();
    stub->async()->ClaimTask(
        call->ctx.get(), &call->claim, &call->claimed, [&, call, done](grpc::Status s) {
          double us = absl::ToDoubleMicroseconds(absl::Now() - call->sent);
          {
            absl::MutexLock lock(&mu);
            claim_latencies.push_back(us);
          }
          if (!s.ok() || !call->claimed.has_task()) {
            if (!s.ok()) errors++;
            delete call;
            return done(false);  // Board empty (or failing): this worker stops.
          }
          call->complete.set_task_id(call->claimed.task().id());
          call->complete.set_lease_token(call->claimed.lease().token());
          call->complete.set_result("ok");
          stub->async()->CompleteTask(call->ctx2.get(), &call->complete, &call->completed,
                                      [&, call, done](grpc::Status s2) {
                                        if (s2.ok()) {
                                          completed++;
                                        } else {
                                          errors++;
                                        }
                                        delete call;
                                        done(true);
                                      });
        });
  });
  CycleResult r;
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  r.completed = completed.load();
  r.errors = errors.load();
  r.tasks_per_second = r.completed / seconds;
  r.claim_p50_us = Percentile(claim_latencies, 0.50);
  r.claim_p99_us = Percentile(claim_latencies, 0.99);
  return r;
}

double HealthCheckRps(grpc::health::v1::Health::Stub* stub, int concurrency,
                      absl::Duration duration) {
  std::atomic<int64_t> ok{0};
  const absl::Time end = absl::Now() + duration;
  absl::Time start = absl::Now();
  RunLoops(concurrency, [&](std::function<void(bool)> done) {
    if (absl::Now() >= end) return done(false);
    struct Call {
      std::unique_ptr<grpc::ClientContext> ctx = Context();
      grpc::health::v1::HealthCheckRequest request;
      grpc::health::v1::HealthCheckResponse response;
    };
    auto* call = new Call();
    stub->async()->Check(call->ctx.get(), &call->request, &call->response,
                         [call, done, &ok](grpc::Status s) {
                           if (s.ok()) ok++;
                           delete call;
                           done(true);
                         });
  });
  return ok.load() / absl::ToDoubleSeconds(absl::Now() - start);
}

int Main(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::vector<std::string> kv = absl::StrSplit(arg, absl::MaxSplits('=', 1));
    const std::string& key = kv[0];
    const std::string value = kv.size() > 1 ? kv[1] : "";
    bool ok = true;
    if (key == "--smoke") {
      config.tasks = 300;
      config.workers = 8;
      config.check_seconds = 0.3;
    } else if (key == "--kanband") {
      config.kanband = value;
    } else if (key == "--server") {
      config.server = value;
    } else if (key == "--workers") {
      ok = absl::SimpleAtoi(value, &config.workers) && config.workers > 0;
    } else if (key == "--tasks") {
      ok = absl::SimpleAtoi(value, &config.tasks) && config.tasks > 0;
    } else if (key == "--check_seconds") {
      ok = absl::SimpleAtod(value, &config.check_seconds);
    } else if (key == "--modes") {
      config.modes = absl::StrSplit(value, ',');
    } else if (key == "--dir") {
      config.dir = value;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: claim_bench [--kanband=PATH | --server=HOST:PORT] "
                   "[--workers=N] [--tasks=N] [--check_seconds=S] "
                   "[--modes=normal,full] [--dir=PATH] [--smoke]\n");
      return 2;
    }
  }
  if (!config.server.empty()) config.modes = {"(given server)"};
  std::printf("claim_bench: %d tasks, %d workers (claim -> complete), Check for %.1f s\n",
              config.tasks, config.workers, config.check_seconds);
  int failures = 0;
  for (const std::string& mode : config.modes) {
    std::unique_ptr<KanbandChild> server;
    std::string address = config.server;
    if (address.empty()) {
      server = std::make_unique<KanbandChild>(
          config.kanband, config.dir, "claim_bench_" + mode,
          std::vector<std::string>{"--synchronous=" + mode});
      address = server->address();
    }
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    auto kanban = v1::KanbanService::NewStub(channel);
    auto health = grpc::health::v1::Health::NewStub(channel);
    CreateTasks(kanban.get(), config.tasks);
    CycleResult cycle = ClaimCompleteCycle(kanban.get(), config.workers);
    double check =
        HealthCheckRps(health.get(), config.workers, absl::Seconds(config.check_seconds));
    std::printf(
        "%-8s %8.0f tasks/s completed   ClaimTask p50 %6.0f us  p99 %6.0f us   "
        "Check %8.0f RPS   cycle/Check %.2f   (%d completed, %d errors)\n",
        mode.c_str(), cycle.tasks_per_second, cycle.claim_p50_us, cycle.claim_p99_us,
        check, cycle.tasks_per_second / check, cycle.completed, cycle.errors);
    std::fflush(stdout);
    if (cycle.errors > 0 || cycle.completed != config.tasks) ++failures;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kanban::bench

int main(int argc, char** argv) { return kanban::bench::Main(argc, argv); }
