// AdminService over the callback API: online backup (a server stream of
// progress), integrity checks and bearer tokens, on the running server's
// Store. Every call needs an admin token when auth is on.
#ifndef KANBAN_SERVICE_ADMIN_SERVICE_H_
#define KANBAN_SERVICE_ADMIN_SERVICE_H_

#include "kanban/v1/kanban.grpc.pb.h"
#include "service/auth.h"
#include "service/watch_registry.h"
#include "storage/store.h"

namespace kanban::service {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // Not owned; each must outlive the server. A revoked token's streams in
  // `watchers` end. Thread-safe.
  AdminServiceImpl(storage::Store* store, Auth* auth, WatchRegistry* watchers)
      : store_(store), auth_(auth), watchers_(watchers) {}

  grpc::ServerWriteReactor<v1::BackupProgress>* Backup(
      grpc::CallbackServerContext* ctx, const v1::BackupRequest* request) override;
  grpc::ServerUnaryReactor* CheckIntegrity(grpc::CallbackServerContext* ctx,
                                           const v1::CheckIntegrityRequest* request,
                                           v1::CheckIntegrityResponse* response) override;
  grpc::ServerUnaryReactor* CreateToken(grpc::CallbackServerContext* ctx,
                                        const v1::CreateTokenRequest* request,
                                        v1::CreateTokenResponse* response) override;
  grpc::ServerUnaryReactor* ListTokens(grpc::CallbackServerContext* ctx,
                                       const v1::ListTokensRequest* request,
                                       v1::ListTokensResponse* response) override;
  grpc::ServerUnaryReactor* RevokeToken(grpc::CallbackServerContext* ctx,
                                        const v1::RevokeTokenRequest* request,
                                        v1::Token* response) override;

 private:
  storage::Store* const store_;
  Auth* const auth_;
  WatchRegistry* const watchers_;
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_ADMIN_SERVICE_H_
