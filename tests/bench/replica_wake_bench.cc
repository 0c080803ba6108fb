// How fast a ClaimTask waiting on one replica is woken by a task created
// through another (README "Several kanband on one database"): each round
// parks a claim with `wait` on --waiter for a label of its own, creates a
// task with that label through --producer, and times from the create's
// answer (its commit) to the claim's answer. Prints p50, p99 and max over
// the rounds. Usage:
//   replica_wake_bench --producer=HOST:PORT --waiter=HOST:PORT [--rounds=200]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kanban/v1/kanban.grpc.pb.h"

ABSL_FLAG(std::string, producer, "", "replica that creates the tasks");
ABSL_FLAG(std::string, waiter, "", "replica where the claims wait");
ABSL_FLAG(int, rounds, 200, "claims timed");
ABSL_FLAG(absl::Duration, park, absl::Milliseconds(20),
          "pause between sending a claim and creating its task, so that it is parked");

namespace v1 = kanban::v1;

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string producer = absl::GetFlag(FLAGS_producer);
  const std::string waiter = absl::GetFlag(FLAGS_waiter);
  if (producer.empty() || waiter.empty()) {
    std::fprintf(stderr, "replica_wake_bench: --producer and --waiter are required\n");
    return 2;
  }
  auto make = [](const std::string& address) {
    return v1::KanbanService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  };
  auto produce = make(producer);
  auto wait = make(waiter);
  const std::string run = absl::StrCat(absl::ToUnixMicros(absl::Now()));
  std::vector<double> ms;
  int missed = 0;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    const std::string label = absl::StrCat("wake-", run, "-", round);
    v1::ClaimTaskResponse claimed;
    grpc::Status claim_status;
    absl::Time woken;
    std::thread claimer([&] {
      v1::ClaimTaskRequest request;
      request.set_worker_id("wake-bench");
      request.add_labels(label);
      request.mutable_wait()->set_seconds(10);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
      claim_status = wait->ClaimTask(&ctx, request, &claimed);
      woken = absl::Now();
    });
    absl::SleepFor(absl::GetFlag(FLAGS_park));
    v1::CreateTaskRequest create;
    create.set_title("wake");
    create.add_labels(label);
    v1::Task task;
    grpc::ClientContext ctx;
    grpc::Status created = produce->CreateTask(&ctx, create, &task);
    const absl::Time committed = absl::Now();
    claimer.join();
    if (!created.ok() || !claim_status.ok()) {
      std::fprintf(stderr, "round %d: create %s, claim %s\n", round,
                   created.error_message().c_str(), claim_status.error_message().c_str());
      return 1;
    }
    if (!claimed.has_task() || claimed.task().id() != task.id()) {
      ++missed;
      continue;
    }
    ms.push_back(absl::ToDoubleMilliseconds(woken - committed));
    v1::CompleteTaskRequest complete;
    complete.set_task_id(task.id());
    complete.set_lease_token(claimed.lease().token());
    v1::Task done;
    grpc::ClientContext complete_ctx;
    (void)wait->CompleteTask(&complete_ctx, complete, &done);
  }
  if (ms.empty()) {
    std::fprintf(stderr, "replica_wake_bench: no claim was woken (%d missed)\n", missed);
    return 1;
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))];
  };
  std::printf(
      "waiting claim woken through another replica: %zu rounds, p50 %.2f ms, p99 %.2f "
      "ms, max %.2f ms (commit -> claim answered), %d not woken by their task\n",
      ms.size(), at(0.5), at(0.99), ms.back(), missed);
  return missed == 0 ? 0 : 1;
}
