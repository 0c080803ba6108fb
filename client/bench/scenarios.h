// The unary scenarios (create, get, list, claim-complete, heartbeat, health)
// and what they share: the target server's channels and stubs, and the
// setup helpers (board, prefilled tasks).
#ifndef KANBAN_CLIENT_BENCH_SCENARIOS_H_
#define KANBAN_CLIENT_BENCH_SCENARIOS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/bench/driver.h"
#include "client/bench/options.h"
#include "client/bench/report.h"
#include "client/cpp/channel.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "kanban/v1/kanban.grpc.pb.h"

namespace kanban::bench {

// The label every task the bench creates carries, and every claim asks for.
inline constexpr char kBenchLabel[] = "kanban-bench";

// One server, or several replicas of one (--server a,b,c), each reached
// over `options.connections` HTTP/2 connections of its own. Loop i uses
// replica i % replicas (so the loops are spread evenly over the replicas),
// on that replica's connection (i / replicas) % connections. Thread-safe
// after Connect.
class Target {
 public:
  // `target` as ResolveServerAddress made it: one channel per entry of
  // target.replicas and connection.
  Target(const client::ServerTarget& target, const Options& options);

  // Waits (up to 15 s) until every connection is up. UNAVAILABLE if not.
  absl::Status Connect();

  // The dialable address of each replica, in --server order; one entry for
  // a single server (or a dns: name, balanced by gRPC).
  const std::vector<std::string>& replicas() const { return target_.replicas; }
  // A new channel to replica `index` (of replicas()) with a connection of
  // its own, for streams that should not share the loops' connections.
  std::shared_ptr<grpc::Channel> NewChannel(int index) const;

  v1::KanbanService::Stub* kanban(int loop) const;
  v1::HeartbeatService::Stub* heartbeat(int loop) const;
  grpc::health::v1::Health::Stub* health(int loop) const;
  const std::string& address() const { return address_; }
  // Sets the per-call deadline (--timeout) on `ctx`.
  void SetDeadline(grpc::ClientContext* ctx) const;

 private:
  const client::ServerTarget target_;
  const std::string address_;  // The replicas, comma-separated.
  const absl::Duration timeout_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::KanbanService::Stub>> kanban_;
  std::vector<std::unique_ptr<v1::HeartbeatService::Stub>> heartbeat_;
  std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>> health_;
};

// Creates `board` unless it exists (or is "default").
absl::Status EnsureBoard(const Target& target, const std::string& board);

// The server's "synchronous" as read back from its database (FULL, NORMAL),
// or an error.
absl::StatusOr<std::string> ServerSynchronous(const Target& target);

// The CreateTask request the bench sends: on `options.board`, with the
// bench label and a body of `options.payload` bytes.
v1::CreateTaskRequest BenchTaskRequest(const Options& options, int64_t seq);

// Creates `n` bench tasks, 64 at a time, and returns their ids.
absl::StatusOr<std::vector<std::string>> Prefill(const Target& target,
                                                 const Options& options, int64_t n);

// A unary scenario: Prepare once, then Start from many loops at once.
class UnaryScenario {
 public:
  virtual ~UnaryScenario() = default;
  // Sets up what the calls need (tasks, leases); an error means the run
  // cannot start.
  virtual absl::Status Prepare() { return absl::OkStatus(); }
  // Starts one call (or cycle); see StartFn. Thread-safe.
  virtual void Start(int loop, int64_t seq, Done done) = 0;
  // Figures beyond ghz's, and problems, once the run is over.
  virtual void Finish(const Summary& summary, Result* result) {}
};

// The scenario named `name` (not watch or modes), or INVALID_ARGUMENT.
// `target` and `options` must outlive it.
absl::StatusOr<std::unique_ptr<UnaryScenario>> MakeUnaryScenario(const std::string& name,
                                                                 const Target* target,
                                                                 const Options& options);

}  // namespace kanban::bench

#endif  // KANBAN_CLIENT_BENCH_SCENARIOS_H_
