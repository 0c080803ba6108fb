#include "service/kanban_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/claim_reactor.h"
#include "service/convert.h"
#include "service/grpc_status.h"
#include "service/reply.h"
#include "service/watch_reactor.h"
#include "storage/rules.h"

namespace kanban::service {

KanbanServiceImpl::KanbanServiceImpl(storage::Store* store, const Auth* auth,
                                     ClaimWaiters* waiters, WatchRegistry* watchers,
                                     absl::Duration watch_stall_timeout,
                                     absl::Duration max_claim_wait)
    : store_(store),
      auth_(auth),
      waiters_(waiters),
      watchers_(watchers),
      watch_stall_timeout_(watch_stall_timeout),
      max_claim_wait_(max_claim_wait),
      started_(absl::Now()) {}

void KanbanServiceImpl::SetReplicaId(std::string id) {
  absl::MutexLock lock(&replica_mu_);
  replica_id_ = std::move(id);
}

namespace {

// A stream that fails before it starts.
class RejectedStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit RejectedStream(const absl::Status& status)
      : RejectedStream(ToGrpcStatus(status)) {}
  explicit RejectedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

absl::StatusOr<WatchFilter> WatchFilterFromProto(const v1::WatchEventsRequest& r) {
  WatchFilter filter;
  if (!r.board().empty()) {
    if (absl::Status s = storage::ValidateBoardName(r.board(), "board"); !s.ok())
      return s;
  }
  filter.board = r.board();
  for (int i = 0; i < r.task_ids_size(); ++i) {
    if (absl::Status s =
            storage::ValidateTaskId(r.task_ids(i), absl::StrCat("task_ids[", i, "]"));
        !s.ok()) {
      return s;
    }
    filter.task_ids.insert(r.task_ids(i));
  }
  for (int i = 0; i < r.kinds_size(); ++i) {
    if (!storage::IsEventKind(r.kinds(i))) {
      // A misspelt kind would otherwise match nothing, silently.
      return absl::InvalidArgumentError(
          absl::StrCat("kinds[", i, "]: unknown event kind \"", r.kinds(i).substr(0, 64),
                       "\"; known: ", absl::StrJoin(storage::kEventKinds, ", ")));
    }
    filter.kinds.insert(r.kinds(i));
  }
  return filter;
}

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* KanbanServiceImpl::WatchEvents(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_request) {
  // What the generated typed handler does before calling the method; the
  // copy shares the bytes (Deserialize consumes its buffer).
  v1::WatchEventsRequest parsed;
  grpc::ByteBuffer copy(*raw_request);
  if (grpc::Status s =
          grpc::SerializationTraits<v1::WatchEventsRequest>::Deserialize(&copy, &parsed);
      !s.ok()) {
    return new RejectedStream(s);
  }
  const v1::WatchEventsRequest* request = &parsed;
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kRead, "WatchEvents");
  if (!actor.ok()) return new RejectedStream(actor.status());
  absl::StatusOr<WatchFilter> filter = WatchFilterFromProto(*request);
  if (!filter.ok()) return new RejectedStream(filter.status());
  // A token limited to some boards sees only their events.
  if (!filter->board.empty()) {
    if (absl::Status s = storage::CheckBoardAccess(*actor, filter->board, "board");
        !s.ok()) {
      return new RejectedStream(s);
    }
  }
  filter->boards = actor->boards;
  WatchReactor::Options options;
  options.stall_timeout = watch_stall_timeout_;
  options.principal = actor->principal;
  if (request->has_bookmark_interval()) {
    absl::StatusOr<absl::Duration> interval =
        DurationFromProto(request->bookmark_interval(), "bookmark_interval");
    if (!interval.ok()) return new RejectedStream(interval.status());
    options.bookmark_interval = *interval;
  }
  std::optional<int64_t> after;
  if (request->start_case() == v1::WatchEventsRequest::kAfterSeq) {
    if (request->after_seq() < 0) {
      return new RejectedStream(
          absl::InvalidArgumentError("after_seq: must not be negative"));
    }
    after = request->after_seq();
  } else if (request->start_case() != v1::WatchEventsRequest::kFromNow) {
    after = 0;  // No start given: the whole retained history.
  }
  auto* reactor =
      new WatchReactor(ctx, store_, watchers_, *std::move(filter), after, options);
  reactor->Start();
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::CreateBoard(
    grpc::CallbackServerContext* ctx, const v1::CreateBoardRequest* request,
    v1::Board* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kProduce, "CreateBoard");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->CreateBoard(FromProto(*request), Reply<storage::Board>(reactor, response),
                      *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::ListBoards(
    grpc::CallbackServerContext* ctx, const v1::ListBoardsRequest* request,
    v1::ListBoardsResponse* response) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kRead, "ListBoards");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->ListBoards(Reply<std::vector<storage::Board>>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::CreateTask(
    grpc::CallbackServerContext* ctx, const v1::CreateTaskRequest* request,
    v1::Task* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kProduce, "CreateTask");
  if (!actor.ok()) return Reject(ctx, actor.status());
  absl::StatusOr<storage::NewTask> task = FromProto(*request);
  if (!task.ok()) return Reject(ctx, task.status());
  auto* reactor = ctx->DefaultReactor();
  store_->CreateTask(*std::move(task), Reply<storage::Task>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::GetTask(grpc::CallbackServerContext* ctx,
                                                     const v1::GetTaskRequest* request,
                                                     v1::Task* response) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kRead, "GetTask");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->GetTask(request->task_id(), Reply<storage::Task>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::ListTasks(
    grpc::CallbackServerContext* ctx, const v1::ListTasksRequest* request,
    v1::ListTasksResponse* response) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kRead, "ListTasks");
  if (!actor.ok()) return Reject(ctx, actor.status());
  absl::StatusOr<storage::TaskFilter> filter = FromProto(*request);
  if (!filter.ok()) return Reject(ctx, filter.status());
  auto* reactor = ctx->DefaultReactor();
  store_->ListTasks(*std::move(filter), Reply<storage::TaskPage>(reactor, response),
                    *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::UpdateTask(
    grpc::CallbackServerContext* ctx, const v1::UpdateTaskRequest* request,
    v1::Task* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kProduce, "UpdateTask");
  if (!actor.ok()) return Reject(ctx, actor.status());
  absl::StatusOr<storage::TaskUpdate> update = FromProto(*request);
  if (!update.ok()) return Reject(ctx, update.status());
  auto* reactor = ctx->DefaultReactor();
  store_->UpdateTask(*std::move(update), Reply<storage::Task>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::MoveTask(grpc::CallbackServerContext* ctx,
                                                      const v1::MoveTaskRequest* request,
                                                      v1::Task* response) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kProduce, "MoveTask");
  if (!actor.ok()) return Reject(ctx, actor.status());
  absl::StatusOr<storage::TaskMove> move = FromProto(*request);
  if (!move.ok()) return Reject(ctx, move.status());
  auto* reactor = ctx->DefaultReactor();
  store_->MoveTask(*std::move(move), Reply<storage::Task>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::LinkTasks(
    grpc::CallbackServerContext* ctx, const v1::LinkTasksRequest* request,
    v1::Task* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kProduce, "LinkTasks");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->LinkTasks(request->parent_id(), request->child_id(),
                    Reply<storage::Task>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::UnlinkTasks(
    grpc::CallbackServerContext* ctx, const v1::UnlinkTasksRequest* request,
    v1::Task* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kProduce, "UnlinkTasks");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->UnlinkTasks(request->parent_id(), request->child_id(),
                      Reply<storage::Task>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::AddComment(
    grpc::CallbackServerContext* ctx, const v1::AddCommentRequest* request,
    v1::Comment* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kProduce, "AddComment");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->AddComment(FromProto(*request), Reply<storage::Comment>(reactor, response),
                     *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::ListComments(
    grpc::CallbackServerContext* ctx, const v1::ListCommentsRequest* request,
    v1::ListCommentsResponse* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kRead, "ListComments");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->ListComments(request->task_id(),
                       Reply<std::vector<storage::Comment>>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::ClaimTask(
    grpc::CallbackServerContext* ctx, const v1::ClaimTaskRequest* request,
    v1::ClaimTaskResponse* response) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kWork, "ClaimTask");
  if (!actor.ok()) return Reject(ctx, actor.status());
  absl::StatusOr<storage::ClaimRequest> claim = FromProto(*request);
  if (!claim.ok()) return Reject(ctx, claim.status());
  absl::StatusOr<absl::Duration> wait = DurationFromProto(request->wait(), "wait");
  if (!wait.ok()) return Reject(ctx, wait.status());
  if (*wait > max_claim_wait_) {
    return Reject(ctx, absl::InvalidArgumentError(absl::StrCat(
                           "wait: at most ", absl::FormatDuration(max_claim_wait_),
                           " (--max_claim_wait), got ", absl::FormatDuration(*wait))));
  }
  // Answer (empty) a little before the caller's own deadline, so that it
  // hears "nothing yet" instead of DEADLINE_EXCEEDED.
  absl::Time deadline = absl::Now() + *wait;
  absl::Time client_deadline = absl::FromChrono(ctx->deadline());
  if (client_deadline < deadline + absl::Milliseconds(100)) {
    deadline = std::max(absl::Now(), client_deadline - absl::Milliseconds(100));
  }
  auto* reactor = new ClaimReactor(store_, waiters_, *std::move(claim), *std::move(actor),
                                   deadline, response);
  reactor->Attempt(/*trigger=*/nullptr);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::CompleteTask(
    grpc::CallbackServerContext* ctx, const v1::CompleteTaskRequest* request,
    v1::Task* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kWork, "CompleteTask");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->CompleteTask({request->task_id(), request->lease_token()}, request->result(),
                       Reply<storage::Task>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::FailTask(grpc::CallbackServerContext* ctx,
                                                      const v1::FailTaskRequest* request,
                                                      v1::Task* response) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kWork, "FailTask");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->FailTask({request->task_id(), request->lease_token()}, request->error(),
                   request->retry(), Reply<storage::Task>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::ReleaseTask(
    grpc::CallbackServerContext* ctx, const v1::ReleaseTaskRequest* request,
    v1::Task* response) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kWork, "ReleaseTask");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->ReleaseTask({request->task_id(), request->lease_token()},
                      Reply<storage::Task>(reactor, response), *actor);
  return reactor;
}

grpc::ServerUnaryReactor* KanbanServiceImpl::GetServerInfo(
    grpc::CallbackServerContext* ctx, const v1::GetServerInfoRequest* request,
    v1::ServerInfo* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kRead, "GetServerInfo");
  if (!actor.ok()) return Reject(ctx, actor.status());
  // Everything here was read back from the writer connection at open, so the
  // call needs no database access.
  const storage::DurabilityInfo& info = store_->durability();
  response->set_version(KANBAN_VERSION);
  response->set_database_path(store_->path());
  response->set_synchronous(info.synchronous);
  response->set_wal_autocheckpoint(info.wal_autocheckpoint);
  response->set_schema_version(info.schema_version);
  response->set_journal_mode(info.journal_mode);
  response->set_backend(info.backend);
  response->set_backend_version(info.server_version);
  {
    absl::MutexLock lock(&replica_mu_);
    response->set_replica_id(replica_id_);
  }
  response->set_sweeping(store_->sweeping());
  absl::Duration uptime = absl::Now() - started_;
  response->mutable_uptime()->set_seconds(absl::ToInt64Seconds(uptime));
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace kanban::service
