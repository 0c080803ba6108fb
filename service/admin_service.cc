#include "service/admin_service.h"

#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "service/convert.h"
#include "service/grpc_status.h"
#include "service/reply.h"

namespace kanban::service {
namespace {

constexpr int kDefaultMaxProblems = 100;
constexpr int kMaxProblems = 10000;

// Streams a backup's progress. Progress comes faster than a slow client
// reads it, so only the newest message waits while one is being written.
// Owned by two parties, gRPC (until OnDone) and the Store (until the
// backup's callback); the last to let go deletes it.
class BackupReactor : public grpc::ServerWriteReactor<v1::BackupProgress> {
 public:
  BackupReactor(storage::Store* store, const v1::BackupRequest& request) {
    storage::Store::BackupRequest backup;
    backup.path = request.path();
    backup.overwrite = request.overwrite();
    store->Backup(
        std::move(backup),
        [this](const storage::BackupProgress& p) { return OnProgress(p); },
        [this](absl::StatusOr<storage::BackupResult> result) {
          OnResult(std::move(result));
        });
  }

  void OnWriteDone(bool ok) override {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) cancelled_ = true;
      action = Next();
    }
    Act(action);
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  void OnDone() override { Unref(); }

 private:
  // What to do once outside mu_: gRPC may run a reaction inline.
  struct Action {
    const v1::BackupProgress* write = nullptr;
    std::optional<grpc::Status> finish;
  };

  bool OnProgress(const storage::BackupProgress& p) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return false;
      v1::BackupProgress message;
      message.set_pages_copied(p.pages_copied);
      message.set_pages_total(p.pages_total);
      pending_ = std::move(message);
      action = Next();
    }
    Act(action);
    return true;
  }

  void OnResult(absl::StatusOr<storage::BackupResult> result) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      if (result.ok()) {
        v1::BackupProgress last;
        last.set_pages_copied(result->pages);
        last.set_pages_total(result->pages);
        last.set_done(true);
        last.set_path(result->path);
        last.set_bytes(result->bytes);
        pending_ = std::move(last);
      } else {
        pending_.reset();
      }
      final_ = ToGrpcStatus(result.status());
      action = Next();
    }
    Act(action);
    Unref();
  }

  Action Next() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Action action;
    if (writing_ || finished_) return action;
    if (pending_.has_value() && !cancelled_) {
      writing_ = true;
      sending_ = *std::move(pending_);
      pending_.reset();
      action.write = &sending_;
      // The last message goes out with the status.
      if (final_.has_value()) {
        action.finish = *final_;
        finished_ = true;
      }
    } else if (final_.has_value()) {
      action.finish = *final_;
      finished_ = true;
    }
    return action;
  }

  void Act(const Action& action) {
    if (action.write != nullptr && action.finish.has_value()) {
      StartWriteAndFinish(action.write, grpc::WriteOptions(), *action.finish);
    } else if (action.write != nullptr) {
      StartWrite(action.write);
    } else if (action.finish.has_value()) {
      Finish(*action.finish);
    }
  }

  void Unref() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  absl::Mutex mu_;
  int refs_ ABSL_GUARDED_BY(mu_) = 2;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<v1::BackupProgress> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> final_ ABSL_GUARDED_BY(mu_);
  v1::BackupProgress sending_;  // Stable while gRPC writes it.
};

// A backup refused before it starts.
class RejectedBackup final : public grpc::ServerWriteReactor<v1::BackupProgress> {
 public:
  explicit RejectedBackup(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<v1::BackupProgress>* AdminServiceImpl::Backup(
    grpc::CallbackServerContext* ctx, const v1::BackupRequest* request) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kAdmin, "Backup");
  if (!actor.ok()) return new RejectedBackup(actor.status());
  return new BackupReactor(store_, *request);
}

grpc::ServerUnaryReactor* AdminServiceImpl::CheckIntegrity(
    grpc::CallbackServerContext* ctx, const v1::CheckIntegrityRequest* request,
    v1::CheckIntegrityResponse* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kAdmin, "CheckIntegrity");
  if (!actor.ok()) return Reject(ctx, actor.status());
  int max_problems = request->max_problems();
  if (max_problems < 0 || max_problems > kMaxProblems) {
    return Reject(ctx, absl::InvalidArgumentError(
                           "max_problems: must be between 0 and 10000 (0: 100)"));
  }
  if (max_problems == 0) max_problems = kDefaultMaxProblems;
  auto* reactor = ctx->DefaultReactor();
  absl::Time start = absl::Now();
  store_->CheckIntegrity(
      request->quick(), max_problems,
      [reactor, response, start](absl::StatusOr<std::vector<std::string>> problems) {
        if (problems.ok()) {
          response->set_ok(problems->empty());
          for (std::string& p : *problems) response->add_problems(std::move(p));
          DurationToProto(absl::Now() - start, response->mutable_took());
        }
        reactor->Finish(ToGrpcStatus(problems.status()));
      });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateToken(
    grpc::CallbackServerContext* ctx, const v1::CreateTokenRequest* request,
    v1::CreateTokenResponse* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kAdmin, "CreateToken");
  if (!actor.ok()) return Reject(ctx, actor.status());
  storage::TokenRecord token = FromProto(*request);
  std::string secret = Auth::NewSecret();
  token.secret_hash = Auth::HashSecret(secret);
  auto* reactor = ctx->DefaultReactor();
  store_->CreateToken(
      std::move(token),
      [this, reactor, response,
       secret = std::move(secret)](absl::StatusOr<storage::TokenRecord> created) {
        if (created.ok()) {
          auth_->Put(*created);  // Usable from now on.
          ToProto(*created, response->mutable_token());
          response->set_secret(secret);
        }
        reactor->Finish(ToGrpcStatus(created.status()));
      },
      *actor);
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListTokens(
    grpc::CallbackServerContext* ctx, const v1::ListTokensRequest* request,
    v1::ListTokensResponse* response) {
  absl::StatusOr<storage::Actor> actor = auth_->Check(*ctx, Access::kAdmin, "ListTokens");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->ListTokens(request->include_revoked(),
                     Reply<std::vector<storage::TokenRecord>>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokeToken(
    grpc::CallbackServerContext* ctx, const v1::RevokeTokenRequest* request,
    v1::Token* response) {
  absl::StatusOr<storage::Actor> actor =
      auth_->Check(*ctx, Access::kAdmin, "RevokeToken");
  if (!actor.ok()) return Reject(ctx, actor.status());
  auto* reactor = ctx->DefaultReactor();
  store_->RevokeToken(
      request->name(),
      [this, reactor, response](absl::StatusOr<storage::TokenRecord> revoked) {
        if (revoked.ok()) {
          // Refused from its next call on, and its watch streams end now.
          auth_->Put(*revoked);
          watchers_->EndStreamsOf(revoked->name);
          ToProto(*revoked, response);
        }
        reactor->Finish(ToGrpcStatus(revoked.status()));
      },
      *actor);
  return reactor;
}

}  // namespace kanban::service
