#include "service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace kanban::service {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(Options options) {
  std::unique_ptr<Server> server(new Server());
  server->waiters_ = std::make_unique<ClaimWaiters>();
  // Committed events wake waiting claims, then go wherever the caller sent
  // them.
  auto forward = std::move(options.store.on_commit);
  options.store.on_commit = [waiters = server->waiters_.get(),
                             forward](const std::vector<storage::Event>& events) {
    waiters->OnCommit(events);
    if (forward) forward(events);
  };
  // The health service exists before the store, so that a store fenced
  // while opening is already reported.
  server->health_ = std::make_unique<HealthServiceImpl>();
  auto fenced = std::move(options.store.on_fenced);
  options.store.on_fenced = [health = server->health_.get(),
                             fenced](const absl::Status& status) {
    health->SetNotWritable();
    if (fenced) fenced(status);
  };
  absl::StatusOr<std::unique_ptr<storage::Store>> store =
      storage::Store::Open(std::move(options.store));
  if (!store.ok()) return store.status();
  server->store_ = *std::move(store);
  server->watchers_ = std::make_unique<WatchRegistry>(server->store_->events());
  server->kanban_ = std::make_unique<KanbanServiceImpl>(
      server->store_.get(), server->waiters_.get(), server->watchers_.get(),
      options.watch_stall_timeout);
  server->heartbeat_ = std::make_unique<HeartbeatServiceImpl>(server->store_.get());
  server->admin_ = std::make_unique<AdminServiceImpl>(server->store_.get());

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC turns on SO_REUSEPORT by default, which would let a second kanband
  // bind the same port and split the traffic: refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(server->kanban_.get());
  builder.RegisterService(server->heartbeat_.get());
  builder.RegisterService(server->health_.get());
  builder.RegisterService(server->admin_.get());
  server->grpc_ = builder.BuildAndStart();
  if (server->grpc_ == nullptr || server->port_ == 0) {
    server->store_->Close();
    return absl::UnavailableError(
        absl::StrCat("listen: cannot serve on ", options.listen));
  }
  return server;
}

Server::~Server() { Shutdown(); }

void Server::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  if (grpc_) {
    health_->Shutdown();
    waiters_->Shutdown();   // Waiting claims answer now instead of at their deadline.
    watchers_->Shutdown();  // Every stream ends with UNAVAILABLE.
    grpc_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoSeconds(grace));
    grpc_->Wait();
  }
  if (store_) store_->Close();
}

}  // namespace kanban::service
