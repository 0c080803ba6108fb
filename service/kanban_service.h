// KanbanService over the callback API: each method converts the request,
// hands it to the Store, and finishes from the Store's callback. No method
// blocks, takes a lock, or touches SQLite on a gRPC thread.
#ifndef KANBAN_SERVICE_KANBAN_SERVICE_H_
#define KANBAN_SERVICE_KANBAN_SERVICE_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/auth.h"
#include "service/claim_waiters.h"
#include "service/watch_registry.h"
#include "storage/store.h"

namespace kanban::service {

// WatchEvents is registered raw (ByteBuffer in and out): its streams send
// bytes encoded once per event and shared by every watcher (watch_wire.h).
// Clients see the same WatchEventsResponse messages.
class KanbanServiceImpl final
    : public v1::KanbanService::WithRawCallbackMethod_WatchEvents<
          v1::KanbanService::CallbackService> {
 public:
  // The default of --max_claim_wait: at most this long may a ClaimTask wait
  // for work.
  static constexpr absl::Duration kDefaultMaxClaimWait = absl::Seconds(30);

  // `store`, `auth`, `waiters` and `watchers` are not owned and must outlive the
  // server. `watch_stall_timeout` ends watchers that stop reading; a
  // ClaimTask wait above `max_claim_wait` is INVALID_ARGUMENT.
  // Thread-safe.
  KanbanServiceImpl(storage::Store* store, const Auth* auth, ClaimWaiters* waiters,
                    WatchRegistry* watchers, absl::Duration watch_stall_timeout,
                    absl::Duration max_claim_wait = kDefaultMaxClaimWait);

  // What GetServerInfo reports as replica_id (the Server sets it once it
  // knows its port).
  void SetReplicaId(std::string id) ABSL_LOCKS_EXCLUDED(replica_mu_);

  grpc::ServerUnaryReactor* CreateBoard(grpc::CallbackServerContext* ctx,
                                        const v1::CreateBoardRequest* request,
                                        v1::Board* response) override;
  grpc::ServerUnaryReactor* ListBoards(grpc::CallbackServerContext* ctx,
                                       const v1::ListBoardsRequest* request,
                                       v1::ListBoardsResponse* response) override;
  grpc::ServerUnaryReactor* CreateTask(grpc::CallbackServerContext* ctx,
                                       const v1::CreateTaskRequest* request,
                                       v1::Task* response) override;
  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* ctx,
                                    const v1::GetTaskRequest* request,
                                    v1::Task* response) override;
  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* ctx,
                                      const v1::ListTasksRequest* request,
                                      v1::ListTasksResponse* response) override;
  grpc::ServerUnaryReactor* UpdateTask(grpc::CallbackServerContext* ctx,
                                       const v1::UpdateTaskRequest* request,
                                       v1::Task* response) override;
  grpc::ServerUnaryReactor* MoveTask(grpc::CallbackServerContext* ctx,
                                     const v1::MoveTaskRequest* request,
                                     v1::Task* response) override;
  grpc::ServerUnaryReactor* LinkTasks(grpc::CallbackServerContext* ctx,
                                      const v1::LinkTasksRequest* request,
                                      v1::Task* response) override;
  grpc::ServerUnaryReactor* UnlinkTasks(grpc::CallbackServerContext* ctx,
                                        const v1::UnlinkTasksRequest* request,
                                        v1::Task* response) override;
  grpc::ServerUnaryReactor* AddComment(grpc::CallbackServerContext* ctx,
                                       const v1::AddCommentRequest* request,
                                       v1::Comment* response) override;
  grpc::ServerUnaryReactor* ListComments(grpc::CallbackServerContext* ctx,
                                         const v1::ListCommentsRequest* request,
                                         v1::ListCommentsResponse* response) override;
  grpc::ServerUnaryReactor* ClaimTask(grpc::CallbackServerContext* ctx,
                                      const v1::ClaimTaskRequest* request,
                                      v1::ClaimTaskResponse* response) override;
  grpc::ServerUnaryReactor* CompleteTask(grpc::CallbackServerContext* ctx,
                                         const v1::CompleteTaskRequest* request,
                                         v1::Task* response) override;
  grpc::ServerUnaryReactor* FailTask(grpc::CallbackServerContext* ctx,
                                     const v1::FailTaskRequest* request,
                                     v1::Task* response) override;
  grpc::ServerUnaryReactor* ReleaseTask(grpc::CallbackServerContext* ctx,
                                        const v1::ReleaseTaskRequest* request,
                                        v1::Task* response) override;
  // `request` holds an encoded WatchEventsRequest.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchEvents(
      grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* ctx,
                                          const v1::GetServerInfoRequest* request,
                                          v1::ServerInfo* response) override;

 private:
  storage::Store* const store_;
  const Auth* const auth_;
  ClaimWaiters* const waiters_;
  WatchRegistry* const watchers_;
  const absl::Duration watch_stall_timeout_;
  const absl::Duration max_claim_wait_;
  const absl::Time started_;
  mutable absl::Mutex replica_mu_;
  std::string replica_id_ ABSL_GUARDED_BY(replica_mu_);
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_KANBAN_SERVICE_H_
