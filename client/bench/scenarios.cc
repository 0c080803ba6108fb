#include "client/bench/scenarios.h"

#include <atomic>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/bench/stream_scenario.h"

namespace kanban::bench {
namespace {

// One asynchronous unary call's state, deleted when the call finishes.
template <typename Request, typename Response>
struct Unary {
  grpc::ClientContext ctx;
  Request request;
  Response response;
};

// Setup calls are not measured; they get a generous deadline whatever
// --timeout says.
void SetSetupDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

class CreateScenario final : public UnaryScenario {
 public:
  CreateScenario(const Target* target, const Options& options)
      : target_(target), options_(options) {}

  void Start(int loop, int64_t seq, Done done) override {
    auto* c = new Unary<v1::CreateTaskRequest, v1::Task>();
    target_->SetDeadline(&c->ctx);
    c->request = BenchTaskRequest(options_, seq);
    target_->kanban(loop)->async()->CreateTask(&c->ctx, &c->request, &c->response,
                                               [c, done](grpc::Status s) {
                                                 delete c;
                                                 done(s, false);
                                               });
  }

 private:
  const Target* const target_;
  const Options& options_;
};

class GetScenario final : public UnaryScenario {
 public:
  GetScenario(const Target* target, const Options& options)
      : target_(target), options_(options) {}

  absl::Status Prepare() override {
    absl::StatusOr<std::vector<std::string>> ids =
        Prefill(*target_, options_, options_.prefill >= 0 ? options_.prefill : 1000);
    if (!ids.ok()) return ids.status();
    if (ids->empty())
      return absl::InvalidArgumentError("get needs --prefill of at least 1");
    ids_ = *std::move(ids);
    return absl::OkStatus();
  }

  void Start(int loop, int64_t seq, Done done) override {
    auto* c = new Unary<v1::GetTaskRequest, v1::Task>();
    target_->SetDeadline(&c->ctx);
    c->request.set_task_id(ids_[seq % ids_.size()]);
    target_->kanban(loop)->async()->GetTask(&c->ctx, &c->request, &c->response,
                                            [c, done](grpc::Status s) {
                                              delete c;
                                              done(s, false);
                                            });
  }

  void Finish(const Summary& summary, Result* result) override {
    result->extras.push_back(
        NumberExtra("tasks_read_from", ids_.size(),
                    absl::StrCat(ids_.size(), " tasks, round robin")));
  }

 private:
  const Target* const target_;
  const Options& options_;
  std::vector<std::string> ids_;  // Constant after Prepare.
};

class ListScenario final : public UnaryScenario {
 public:
  ListScenario(const Target* target, const Options& options)
      : target_(target), options_(options) {}

  absl::Status Prepare() override {
    return Prefill(*target_, options_, options_.prefill >= 0 ? options_.prefill : 200)
        .status();
  }

  void Start(int loop, int64_t seq, Done done) override {
    auto* c = new Unary<v1::ListTasksRequest, v1::ListTasksResponse>();
    target_->SetDeadline(&c->ctx);
    c->request.set_board(options_.board);
    c->request.set_page_size(options_.page_size);
    target_->kanban(loop)->async()->ListTasks(
        &c->ctx, &c->request, &c->response, [this, c, done](grpc::Status s) {
          tasks_.fetch_add(c->response.tasks_size(), std::memory_order_relaxed);
          delete c;
          done(s, false);
        });
  }

  void Finish(const Summary& summary, Result* result) override {
    const double per_page =
        summary.ok() > 0 ? static_cast<double>(tasks_.load()) / summary.ok() : 0;
    result->extras.push_back(NumberExtra(
        "tasks_per_page", per_page,
        absl::StrFormat("%.1f (page_size %d)", per_page, options_.page_size)));
    result->extras.push_back(
        NumberExtra("tasks_per_second", per_page * summary.rps,
                    absl::StrFormat("%.0f", per_page * summary.rps)));
  }

 private:
  const Target* const target_;
  const Options& options_;
  std::atomic<int64_t> tasks_{0};
};

// ClaimTask then CompleteTask; the cycle is the request. Tasks come from the
// prefill; a loop that finds the board empty stops.
class ClaimCompleteScenario final : public UnaryScenario {
 public:
  ClaimCompleteScenario(const Target* target, const Options& options)
      : target_(target), options_(options) {}

  absl::Status Prepare() override {
    int64_t n = options_.prefill;
    if (n < 0) {
      n = options_.count > 0
              ? options_.count
              : static_cast<int64_t>(4000 * absl::ToDoubleSeconds(options_.duration));
    }
    return Prefill(*target_, options_, n).status();
  }

  void Start(int loop, int64_t seq, Done done) override {
    auto* c = new Cycle();
    target_->SetDeadline(&c->claim_ctx);
    c->claim.set_board(options_.board);
    c->claim.set_worker_id(absl::StrCat("kanban-bench-", loop));
    c->claim.add_labels(kBenchLabel);
    c->sent = absl::Now();
    target_->kanban(loop)->async()->ClaimTask(
        &c->claim_ctx, &c->claim, &c->claimed, [this, c, loop, done](grpc::Status s) {
          const absl::Time now = absl::Now();
          claims_.Record(now - c->sent, s);
          if (!s.ok() || !c->claimed.has_task()) {
            if (s.ok()) empty_.fetch_add(1, std::memory_order_relaxed);
            delete c;
            return done(s, s.ok());  // Empty board: this loop is done.
          }
          target_->SetDeadline(&c->complete_ctx);
          c->complete.set_task_id(c->claimed.task().id());
          c->complete.set_lease_token(c->claimed.lease().token());
          c->complete.set_result("ok");
          c->sent = now;
          target_->kanban(loop)->async()->CompleteTask(
              &c->complete_ctx, &c->complete, &c->completed,
              [this, c, done](grpc::Status s2) {
                completes_.Record(absl::Now() - c->sent, s2);
                delete c;
                done(s2, false);
              });
        });
  }

  void Finish(const Summary& summary, Result* result) override {
    const Summary claims = claims_.Summarize(summary.total);
    const Summary completes = completes_.Summarize(summary.total);
    result->extras.push_back(NumberExtra(
        "rpcs_per_second",
        (claims.count + completes.count) / absl::ToDoubleSeconds(summary.total),
        absl::StrFormat(
            "%.0f (ClaimTask + CompleteTask)",
            (claims.count + completes.count) / absl::ToDoubleSeconds(summary.total))));
    for (const auto& [name, s] :
         {std::pair<const char*, const Summary*>{"claim", &claims},
          {"complete", &completes}}) {
      result->extras.push_back(NumberExtra(absl::StrCat(name, "_p50_ns"),
                                           absl::ToInt64Nanoseconds(s->Percentile(0.5)),
                                           HumanDuration(s->Percentile(0.5))));
      result->extras.push_back(NumberExtra(absl::StrCat(name, "_p99_ns"),
                                           absl::ToInt64Nanoseconds(s->Percentile(0.99)),
                                           HumanDuration(s->Percentile(0.99))));
    }
    if (empty_.load() > 0) {
      result->problems.push_back(
          absl::StrFormat("%d loops found the board empty and stopped early (after %d "
                          "cycles); raise --prefill",
                          empty_.load(), summary.count));
    }
  }

 private:
  struct Cycle {
    grpc::ClientContext claim_ctx, complete_ctx;
    v1::ClaimTaskRequest claim;
    v1::ClaimTaskResponse claimed;
    v1::CompleteTaskRequest complete;
    v1::Task completed;
    absl::Time sent;
  };

  const Target* const target_;
  const Options& options_;
  Recorder claims_, completes_;
  std::atomic<int64_t> empty_{0};
};

// Each loop is a worker holding --leases leases (claimed in Prepare) and
// renewing them all in each Heartbeat. A lease reported LOST counts as
// FAILED_PRECONDITION, the code the worker protocol uses for a lost lease.
class HeartbeatScenario final : public UnaryScenario {
 public:
  HeartbeatScenario(const Target* target, const Options& options)
      : target_(target), options_(options) {}

  ~HeartbeatScenario() override { ReleaseAll(); }

  absl::Status Prepare() override {
    const int n = options_.concurrency * options_.leases;
    absl::Status created = Prefill(*target_, options_, n).status();
    if (!created.ok()) return created;
    for (int i = 0; i < n; ++i) {
      grpc::ClientContext ctx;
      SetSetupDeadline(&ctx);
      v1::ClaimTaskRequest claim;
      claim.set_board(options_.board);
      claim.set_worker_id(WorkerId(i % options_.concurrency));
      claim.add_labels(kBenchLabel);
      claim.mutable_lease_duration()->set_seconds(3600);
      v1::ClaimTaskResponse claimed;
      grpc::Status s = target_->kanban(i)->ClaimTask(&ctx, claim, &claimed);
      if (!s.ok()) return FromGrpc(s, "heartbeat setup: ClaimTask");
      if (!claimed.has_task()) {
        return absl::FailedPreconditionError("heartbeat setup: no task left to claim");
      }
      v1::HeldLease lease;
      lease.set_task_id(claimed.task().id());
      lease.set_lease_token(claimed.lease().token());
      leases_.push_back(lease);
    }
    return absl::OkStatus();
  }

  void Start(int loop, int64_t seq, Done done) override {
    auto* c = new Unary<v1::HeartbeatRequest, v1::HeartbeatResponse>();
    target_->SetDeadline(&c->ctx);
    c->request.set_worker_id(WorkerId(loop));
    for (int i = 0; i < options_.leases; ++i) {
      *c->request.add_leases() = leases_[i * options_.concurrency + loop];
    }
    target_->heartbeat(loop)->async()->Heartbeat(
        &c->ctx, &c->request, &c->response, [c, done](grpc::Status s) {
          if (s.ok()) {
            for (const v1::LeaseStatus& l : c->response.leases()) {
              if (l.state() != v1::LeaseStatus::EXTENDED) {
                s = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                 absl::StrCat("lease lost: ", l.reason()));
              }
            }
          }
          delete c;
          done(s, false);
        });
  }

  void Finish(const Summary& summary, Result* result) override {
    result->extras.push_back(
        NumberExtra("workers", options_.concurrency,
                    absl::StrCat(options_.concurrency, ", ", options_.leases,
                                 options_.leases == 1 ? " lease" : " leases", " each")));
  }

 private:
  static std::string WorkerId(int loop) { return absl::StrCat("kanban-bench-hb-", loop); }

  // Gives the tasks back (READY) so the board is left as it was found.
  void ReleaseAll() {
    for (size_t i = 0; i < leases_.size(); ++i) {
      grpc::ClientContext ctx;
      SetSetupDeadline(&ctx);
      v1::ReleaseTaskRequest release;
      release.set_task_id(leases_[i].task_id());
      release.set_lease_token(leases_[i].lease_token());
      v1::Task task;
      target_->kanban(static_cast<int>(i))->ReleaseTask(&ctx, release, &task);
    }
  }

  const Target* const target_;
  const Options& options_;
  // Lease j of loop i at j * concurrency + i; constant after Prepare.
  std::vector<v1::HeldLease> leases_;
};

class HealthScenario final : public UnaryScenario {
 public:
  explicit HealthScenario(const Target* target) : target_(target) {}

  void Start(int loop, int64_t seq, Done done) override {
    auto* c = new Unary<grpc::health::v1::HealthCheckRequest,
                        grpc::health::v1::HealthCheckResponse>();
    target_->SetDeadline(&c->ctx);
    target_->health(loop)->async()->Check(&c->ctx, &c->request, &c->response,
                                          [c, done](grpc::Status s) {
                                            delete c;
                                            done(s, false);
                                          });
  }

 private:
  const Target* const target_;
};

}  // namespace

absl::StatusOr<std::vector<std::string>> Prefill(const Target& target,
                                                 const Options& options, int64_t n) {
  std::vector<std::string> ids;
  if (n == 0) return ids;
  absl::Mutex mu;
  ids.reserve(n);
  Recorder recorder;
  Load load;
  load.concurrency = 64;
  load.count = n;
  RunLoad(
      "prefill", load,
      [&](int loop, int64_t seq, Done done) {
        auto* c = new Unary<v1::CreateTaskRequest, v1::Task>();
        target.SetDeadline(&c->ctx);
        c->request = BenchTaskRequest(options, seq);
        target.kanban(loop)->async()->CreateTask(&c->ctx, &c->request, &c->response,
                                                 [c, done, &mu, &ids](grpc::Status s) {
                                                   if (s.ok()) {
                                                     absl::MutexLock lock(&mu);
                                                     ids.push_back(c->response.id());
                                                   }
                                                   delete c;
                                                   done(s, false);
                                                 });
      },
      &recorder);
  const Summary summary = recorder.Summarize(absl::ZeroDuration());
  if (summary.ok() != n) {
    return absl::UnavailableError(absl::StrFormat(
        "prefill: %d of %d CreateTask calls failed, e.g. %s", n - summary.ok(), n,
        summary.errors.empty() ? "?" : summary.errors.begin()->first));
  }
  return ids;
}

Target::Target(const client::ServerTarget& target, const Options& options)
    : target_(target),
      address_(absl::StrJoin(target.replicas, ",")),
      timeout_(options.timeout) {
  // Channel c * replicas + r is replica r's connection c: loop i lands on
  // replica i % replicas.
  for (int c = 0; c < options.connections; ++c) {
    for (int r = 0; r < static_cast<int>(replicas().size()); ++r) {
      channels_.push_back(NewChannel(r));
      kanban_.push_back(v1::KanbanService::NewStub(channels_.back()));
      heartbeat_.push_back(v1::HeartbeatService::NewStub(channels_.back()));
      health_.push_back(grpc::health::v1::Health::NewStub(channels_.back()));
    }
  }
}

std::shared_ptr<grpc::Channel> Target::NewChannel(int index) const {
  grpc::ChannelArguments args;
  // Without this, channels to one address share one connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A dns: name stays one entry that gRPC balances over its records.
  if (target_.round_robin && replicas().size() == 1) {
    args.SetLoadBalancingPolicyName("round_robin");
  }
  return grpc::CreateCustomChannel(target_.replicas[index],
                                   grpc::InsecureChannelCredentials(), args);
}

absl::Status Target::Connect() {
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(15);
  for (size_t i = 0; i < channels_.size(); ++i) {
    if (!channels_[i]->WaitForConnected(deadline)) {
      return absl::UnavailableError(absl::StrCat(
          "cannot connect to ", target_.replicas[i % target_.replicas.size()]));
    }
  }
  return absl::OkStatus();
}

v1::KanbanService::Stub* Target::kanban(int loop) const {
  return kanban_[loop % kanban_.size()].get();
}
v1::HeartbeatService::Stub* Target::heartbeat(int loop) const {
  return heartbeat_[loop % heartbeat_.size()].get();
}
grpc::health::v1::Health::Stub* Target::health(int loop) const {
  return health_[loop % health_.size()].get();
}

void Target::SetDeadline(grpc::ClientContext* ctx) const {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoNanoseconds(timeout_));
}

absl::Status EnsureBoard(const Target& target, const std::string& board) {
  if (board == "default") return absl::OkStatus();
  grpc::ClientContext ctx;
  SetSetupDeadline(&ctx);
  v1::CreateBoardRequest request;
  request.set_name(board);
  request.set_description("load generated by kanban-bench");
  v1::Board response;
  grpc::Status s = target.kanban(0)->CreateBoard(&ctx, request, &response);
  if (s.ok() || s.error_code() == grpc::StatusCode::ALREADY_EXISTS)
    return absl::OkStatus();
  return FromGrpc(s, "CreateBoard " + board);
}

absl::StatusOr<std::string> ServerSynchronous(const Target& target) {
  grpc::ClientContext ctx;
  SetSetupDeadline(&ctx);
  v1::ServerInfo info;
  grpc::Status s =
      target.kanban(0)->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info);
  if (!s.ok()) return FromGrpc(s, "GetServerInfo");
  return info.synchronous();
}

v1::CreateTaskRequest BenchTaskRequest(const Options& options, int64_t seq) {
  v1::CreateTaskRequest request;
  request.set_board(options.board);
  request.set_title(absl::StrCat("kanban-bench task ", seq));
  request.set_body(std::string(options.payload, 'x'));
  request.set_priority(static_cast<int32_t>(seq % 5));
  request.add_labels(kBenchLabel);
  return request;
}

absl::StatusOr<std::unique_ptr<UnaryScenario>> MakeUnaryScenario(const std::string& name,
                                                                 const Target* target,
                                                                 const Options& options) {
  if (name == "create") return std::make_unique<CreateScenario>(target, options);
  if (name == "get") return std::make_unique<GetScenario>(target, options);
  if (name == "list") return std::make_unique<ListScenario>(target, options);
  if (name == "claim-complete")
    return std::make_unique<ClaimCompleteScenario>(target, options);
  if (name == "heartbeat") return std::make_unique<HeartbeatScenario>(target, options);
  if (name == "health") return std::make_unique<HealthScenario>(target);
  if (name == "stream") return MakeStreamScenario(target, options);
  return absl::InvalidArgumentError(absl::StrCat("not a unary scenario: ", name));
}

}  // namespace kanban::bench
