#include "service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/server_interceptor.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/grpc_status.h"
#include "service/rpc_interceptor.h"

namespace kanban::service {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(Options options) {
  std::unique_ptr<Server> server(new Server());
  server->waiters_ = std::make_unique<ClaimWaiters>();
  server->work_streams_ = std::make_unique<WorkStreams>();
  // Committed events wake waiting claims and tell worker streams of the
  // leases they lost, then go wherever the caller sent them.
  auto forward = std::move(options.store.on_commit);
  options.store.on_commit = [waiters = server->waiters_.get(),
                             streams = server->work_streams_.get(),
                             forward](const std::vector<storage::Event>& events) {
    waiters->OnCommit(events);
    streams->OnCommit(events);
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
  // Metrics: the writer and sweeper report to them.
  if (!options.metrics_listen.empty()) {
    Metrics::Options metrics_options;
    metrics_options.task_count_interval = options.task_count_interval;
    server->metrics_ = std::make_unique<Metrics>(metrics_options);
    Metrics* metrics = server->metrics_.get();
    options.store.on_batch = [metrics](const storage::BatchStats& stats) {
      metrics->OnBatch(stats);
    };
    options.store.on_sweep = [metrics](const storage::SweepResult& result) {
      metrics->OnSweep(result);
    };
  }
  // ---- end metrics ----
  absl::StatusOr<std::unique_ptr<storage::Store>> store =
      storage::Store::Open(std::move(options.store));
  if (!store.ok()) return store.status();
  server->store_ = *std::move(store);
  server->watchers_ = std::make_unique<WatchRegistry>(
      server->store_->events(), options.max_watch_streams,
      options.max_watch_streams_per_token, WatchRegistry::kDefaultTick,
      options.watch_wake_threads);
  // Tokens: every one, revoked ones too (their refusals say so). Without
  // auth nothing reads them.
  server->auth_ = std::make_unique<Auth>(options.auth);
  if (options.auth) {
    absl::StatusOr<std::vector<storage::TokenRecord>> tokens =
        storage::Await<std::vector<storage::TokenRecord>>([&](auto done) {
          server->store_->ListTokens(/*include_revoked=*/true, done);
        });
    if (!tokens.ok()) {
      server->store_->Close();
      return tokens.status();
    }
    server->auth_->Load(*tokens);
    // Other kanband of the same database create and revoke tokens too.
    if (server->store_->is_postgres()) {
      server->token_refresh_ = std::make_unique<TokenRefresh>(
          server->store_.get(), server->auth_.get(), server->watchers_.get(), *tokens);
    }
  }
  server->kanban_ = std::make_unique<KanbanServiceImpl>(
      server->store_.get(), server->auth_.get(), server->waiters_.get(),
      server->watchers_.get(), options.watch_stall_timeout, options.max_claim_wait);
  server->heartbeat_ =
      std::make_unique<HeartbeatServiceImpl>(server->store_.get(), server->auth_.get());
  server->worker_ = std::make_unique<WorkerServiceImpl>(
      server->store_.get(), server->auth_.get(), server->waiters_.get(),
      server->work_streams_.get());
  server->admin_ = std::make_unique<AdminServiceImpl>(
      server->store_.get(), server->auth_.get(), server->watchers_.get());

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC turns on SO_REUSEPORT by default, which would let a second kanband
  // bind the same port and split the traffic: refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // TLS: certificates from Options::tls, else plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::InsecureServerCredentials();
  if (!options.tls.cert_pem.empty()) {
    grpc::SslServerCredentialsOptions ssl(
        options.tls.client_ca_pem.empty()
            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = options.tls.client_ca_pem;
    ssl.pem_key_cert_pairs.push_back({options.tls.key_pem, options.tls.cert_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(options.listen, credentials, &server->port_);
  // gRPC refuses bigger requests with RESOURCE_EXHAUSTED.
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  builder.RegisterService(server->kanban_.get());
  builder.RegisterService(server->heartbeat_.get());
  // Without it, Work answers UNIMPLEMENTED and clients use the unary calls.
  if (options.worker_streams) builder.RegisterService(server->worker_.get());
  builder.RegisterService(server->health_.get());
  builder.RegisterService(server->admin_.get());
  // Every interceptor goes into this one list: SetInterceptorCreators
  // replaces, it does not add.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  // RPC metrics and the access log.
  if (server->metrics_ || options.log_rpcs) {
    interceptors.push_back(MakeRpcInterceptorFactory(
        server->metrics_.get(), server->auth_.get(), options.log_rpcs));
  }
  // A full writer queue's retry hint becomes the grpc-retry-pushback-ms
  // trailer (see grpc_status.h).
  interceptors.push_back(NewRetryPushbackInterceptorFactory());
  if (!interceptors.empty()) {
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  server->grpc_ = builder.BuildAndStart();
  if (server->grpc_ == nullptr || server->port_ == 0) {
    server->store_->Close();
    return absl::UnavailableError(
        absl::StrCat("listen: cannot serve on ", options.listen));
  }
  server->replica_id_ = options.replica_id;
  if (server->replica_id_.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
    server->replica_id_ =
        absl::StrCat(host[0] != '\0' ? host : "localhost", ":", server->port_);
  }
  server->kanban_->SetReplicaId(server->replica_id_);
  // Metrics are served once everything they read exists.
  if (server->metrics_) {
    server->metrics_->SetSources(server->store_.get(), server->watchers_.get());
    if (absl::Status s = server->metrics_->Serve(options.metrics_listen); !s.ok()) {
      server->Shutdown(absl::ZeroDuration());
      return s;
    }
  }
  // The HTTP door calls the services above through the in-process channel,
  // so it starts last.
  if (!options.http_listen.empty()) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // Responses are the server's own.
    HttpGateway::Options http_options;
    http_options.listen = options.http_listen;
    http_options.keepalive = options.http_keepalive;
    http_options.max_event_streams = options.http_max_event_streams;
    http_options.max_body_bytes = static_cast<size_t>(options.max_request_bytes);
    http_options.request_timeout = options.http_request_timeout;
    http_options.idle_timeout = options.http_idle_timeout;
    http_options.max_connections = options.http_max_connections;
    http_options.max_connections_per_peer = options.http_max_connections_per_peer;
    if (Metrics* metrics = server->metrics_.get(); metrics != nullptr) {
      http_options.on_refused = [metrics](absl::string_view reason) {
        metrics->OnHttpRefused(reason);
      };
    }
    absl::StatusOr<std::unique_ptr<HttpGateway>> http =
        HttpGateway::Start(http_options, server->grpc_->InProcessChannel(args));
    if (!http.ok()) {
      server->Shutdown(absl::ZeroDuration());
      return http.status();
    }
    server->http_ = *std::move(http);
  }
  return server;
}

Server::~Server() { Shutdown(); }

void Server::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  // First: its event streams and requests are calls on grpc_.
  if (http_) http_->Stop();
  if (metrics_) metrics_->StopServing();  // Scrapes read the store.
  token_refresh_.reset();                 // Reads the store and ends streams.
  if (grpc_) {
    health_->Shutdown();
    waiters_->Shutdown();       // Waiting claims answer now instead of at their deadline.
    watchers_->Shutdown();      // Every stream ends with UNAVAILABLE.
    work_streams_->Shutdown();  // Worker streams get a go-away, then UNAVAILABLE.
    grpc_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoSeconds(grace));
    grpc_->Wait();
  }
  if (store_) store_->Close();
}

}  // namespace kanban::service
