// AdminService over the callback API: online backup (a server stream of
// progress) and integrity checks, on the running server's Store.
#ifndef KANBAN_SERVICE_ADMIN_SERVICE_H_
#define KANBAN_SERVICE_ADMIN_SERVICE_H_

#include "kanban/v1/kanban.grpc.pb.h"
#include "storage/store.h"

namespace kanban::service {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `store` is not owned and must outlive the server. Thread-safe.
  explicit AdminServiceImpl(storage::Store* store) : store_(store) {}

  grpc::ServerWriteReactor<v1::BackupProgress>* Backup(
      grpc::CallbackServerContext* ctx, const v1::BackupRequest* request) override;
  grpc::ServerUnaryReactor* CheckIntegrity(grpc::CallbackServerContext* ctx,
                                           const v1::CheckIntegrityRequest* request,
                                           v1::CheckIntegrityResponse* response) override;

 private:
  storage::Store* const store_;
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_ADMIN_SERVICE_H_
