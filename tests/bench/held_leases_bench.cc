// What held leases cost the writer when their workers only heartbeat: opens
// --streams WorkerService.Work streams holding --leases leases between
// them, heartbeats every stream's leases once per heartbeat interval for
// --intervals intervals, and reads kanband's kanban_writer_batch_size
// histogram before and after. Prints, per interval, the writer's mutations
// (each stream heartbeat is at most one) and transactions. Usage:
//   held_leases_bench --server=HOST:PORT --metrics_port=N [--streams=100]
//       [--leases=1000] [--lease=3s] [--intervals=5]
// (tests/bench/held_leases.sh starts the kanband.)
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/support/http_client.h"

ABSL_FLAG(std::string, server, "", "kanband's gRPC address");
ABSL_FLAG(int, metrics_port, 0, "kanband's --metrics_listen port on 127.0.0.1");
ABSL_FLAG(int, streams, 100, "worker streams");
ABSL_FLAG(int, leases, 1000, "leases held, spread evenly over the streams");
ABSL_FLAG(absl::Duration, lease, absl::Seconds(3), "lease duration (interval: a third)");
ABSL_FLAG(int, intervals, 5, "heartbeat intervals measured");

namespace v1 = kanban::v1;
using Stream = grpc::ClientReaderWriter<v1::WorkRequest, v1::WorkResponse>;

namespace {

// kanban_writer_batch_size's _count (transactions) and _sum (mutations).
struct WriterCounts {
  double batches = -1;
  double mutations = -1;
};

WriterCounts ScrapeWriter(int port) {
  WriterCounts counts;
  absl::StatusOr<kanban::testing::HttpResponse> r =
      kanban::testing::HttpFetch(port, "GET", "/metrics");
  if (!r.ok()) return counts;
  for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 2) continue;
    if (parts[0] == "kanban_writer_batch_size_count") {
      (void)absl::SimpleAtod(parts[1], &counts.batches);
    } else if (parts[0] == "kanban_writer_batch_size_sum") {
      (void)absl::SimpleAtod(parts[1], &counts.mutations);
    }
  }
  return counts;
}

struct Worker {
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream;
  std::vector<v1::Lease> leases;
  int extended = 0;  // EXTENDED answers read.
  int lost = 0;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string server = absl::GetFlag(FLAGS_server);
  const int metrics_port = absl::GetFlag(FLAGS_metrics_port);
  const int n_streams = absl::GetFlag(FLAGS_streams);
  const int n_leases = absl::GetFlag(FLAGS_leases);
  const absl::Duration lease = absl::GetFlag(FLAGS_lease);
  if (server.empty() || metrics_port <= 0 || n_streams < 1 || n_leases < n_streams) {
    std::fprintf(stderr,
                 "held_leases_bench: --server and --metrics_port are required, and "
                 "--leases must be at least --streams\n");
    return 2;
  }
  auto channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  auto tasks = v1::KanbanService::NewStub(channel);
  auto work = v1::WorkerService::NewStub(channel);
  for (int i = 0; i < n_leases; ++i) {
    v1::CreateTaskRequest r;
    r.set_title(absl::StrCat("held ", i));
    v1::Task task;
    grpc::ClientContext ctx;
    if (grpc::Status s = tasks->CreateTask(&ctx, r, &task); !s.ok()) {
      std::fprintf(stderr, "CreateTask: %s\n", s.error_message().c_str());
      return 1;
    }
  }
  // Attach every stream with its share as the window, and wait for the
  // assignments to fill it.
  std::vector<std::unique_ptr<Worker>> workers;
  absl::Duration interval;
  for (int i = 0; i < n_streams; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->stream = work->Work(&worker->ctx);
    const int window = n_leases / n_streams + (i < n_leases % n_streams ? 1 : 0);
    v1::WorkRequest attach;
    attach.mutable_attach()->mutable_claim()->set_worker_id(absl::StrCat("held-", i));
    attach.mutable_attach()->mutable_claim()->mutable_lease_duration()->set_seconds(
        absl::ToInt64Seconds(lease));
    attach.mutable_attach()->set_max_outstanding(window);
    if (!worker->stream->Write(attach)) {
      std::fprintf(stderr, "attach %d failed\n", i);
      return 1;
    }
    v1::WorkResponse response;
    while (static_cast<int>(worker->leases.size()) < window &&
           worker->stream->Read(&response)) {
      if (response.has_attached()) {
        interval = absl::Seconds(response.attached().heartbeat_interval().seconds()) +
                   absl::Nanoseconds(response.attached().heartbeat_interval().nanos());
      }
      for (const v1::ClaimTaskResponse& a : response.assignments()) {
        worker->leases.push_back(a.lease());
      }
    }
    if (static_cast<int>(worker->leases.size()) < window) {
      std::fprintf(stderr, "stream %d got %zu of %d assignments\n", i,
                   worker->leases.size(), window);
      return 1;
    }
    workers.push_back(std::move(worker));
  }
  // One reader per stream counts the answers.
  std::vector<std::thread> readers;
  for (auto& worker : workers) {
    readers.emplace_back([w = worker.get()] {
      v1::WorkResponse response;
      while (w->stream->Read(&response)) {
        for (const v1::LeaseStatus& s : response.leases()) {
          (s.state() == v1::LeaseStatus::EXTENDED ? w->extended : w->lost)++;
        }
      }
    });
  }
  auto heartbeat_all = [&] {
    for (auto& worker : workers) {
      v1::WorkRequest beat;
      for (const v1::Lease& l : worker->leases) {
        v1::HeldLease* held = beat.add_heartbeat();
        held->set_task_id(l.task_id());
        held->set_lease_token(l.token());
      }
      worker->stream->Write(beat);
    }
  };
  // One round to settle in, then the measured intervals.
  heartbeat_all();
  absl::SleepFor(interval);
  const WriterCounts before = ScrapeWriter(metrics_port);
  const int intervals = absl::GetFlag(FLAGS_intervals);
  const absl::Time start = absl::Now();
  for (int i = 0; i < intervals; ++i) {
    heartbeat_all();
    absl::SleepFor(start + (i + 1) * interval - absl::Now());
  }
  const WriterCounts after = ScrapeWriter(metrics_port);
  for (auto& worker : workers) {
    worker->stream->WritesDone();
  }
  for (std::thread& reader : readers) reader.join();
  int extended = 0, lost = 0;
  for (auto& worker : workers) {
    extended += worker->extended;
    lost += worker->lost;
    worker->stream->Finish();
  }
  if (before.batches < 0 || after.batches < 0) {
    std::fprintf(stderr, "no kanban_writer_batch_size on port %d\n", metrics_port);
    return 1;
  }
  const double mutations = (after.mutations - before.mutations) / intervals;
  const double batches = (after.batches - before.batches) / intervals;
  std::printf("held_leases: %d leases over %d streams, interval %s, %d intervals\n",
              n_leases, n_streams, absl::FormatDuration(interval).c_str(), intervals);
  std::printf("  writer mutations per interval:    %.1f (%.2f per stream)\n", mutations,
              mutations / n_streams);
  std::printf("  writer transactions per interval: %.1f\n", batches);
  std::printf("  lease answers: %d extended, %d lost\n", extended, lost);
  if (lost > 0) {
    std::fprintf(stderr, "held_leases: leases were lost\n");
    return 1;
  }
  return 0;
}
