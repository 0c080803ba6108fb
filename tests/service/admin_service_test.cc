// AdminService end to end: online backups taken while writers keep writing
// (the copy holds everything acknowledged before it, and checks clean),
// refused requests with the field named, and integrity checks.
//
// Backup and CheckIntegrity are SQLite tools; on PostgreSQL they refuse,
// naming pg_dump / pg_basebackup / amcheck (AdminServicePostgresTest).
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/server.h"
#include "storage/sqlite/connection.h"
#include "tests/support/backends.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

using ::grpc::StatusCode;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(60);
}

class AdminServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.store.path = dir_.File("kanban.db");
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    kanban_ = v1::KanbanService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  grpc::Status Create(const std::string& title, v1::Task* task) {
    v1::CreateTaskRequest request;
    request.set_title(title);
    request.set_body(std::string(1500, 'b'));
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    return kanban_->CreateTask(&context, request, task);
  }

  // Runs a backup to `path`; returns the final status and every message.
  grpc::Status Backup(const std::string& path, std::vector<v1::BackupProgress>* messages,
                      bool overwrite = false) {
    v1::BackupRequest request;
    request.set_path(path);
    request.set_overwrite(overwrite);
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    auto reader = admin_->Backup(&context, request);
    v1::BackupProgress progress;
    while (reader->Read(&progress)) messages->push_back(progress);
    return reader->Finish();
  }

  kanban::testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KanbanService::Stub> kanban_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

TEST_F(AdminServiceTest, BackupWhileWritingHoldsEveryEarlierWriteAndChecksClean) {
  std::vector<std::string> before;
  for (int i = 0; i < 300; ++i) {
    v1::Task task;
    ASSERT_TRUE(Create(absl::StrCat("before ", i), &task).ok());
    before.push_back(task.id());
  }
  // Writers keep going during the whole backup.
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; !stop; ++i) {
        v1::Task task;
        if (Create(absl::StrCat("during ", w, "/", i), &task).ok()) ++written;
      }
    });
  }
  std::string path = dir_.File("backup.db");
  std::vector<v1::BackupProgress> messages;
  grpc::Status status = Backup(path, &messages);
  stop = true;
  for (std::thread& t : writers) t.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GT(written.load(), 0);

  ASSERT_FALSE(messages.empty());
  const v1::BackupProgress& last = messages.back();
  EXPECT_TRUE(last.done());
  EXPECT_EQ(last.path(), path);
  EXPECT_EQ(last.bytes(), static_cast<int64_t>(std::filesystem::file_size(path)));
  for (size_t i = 0; i + 1 < messages.size(); ++i) EXPECT_FALSE(messages[i].done());
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));

  // The copy is a single file (no WAL needed), clean, with every task
  // acknowledged before the backup started.
  storage::SqliteConnection::Options read_only;
  read_only.read_only = true;
  absl::StatusOr<std::unique_ptr<storage::Connection>> copy =
      storage::SqliteConnection::Open(path, read_only);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(*(*copy)->QueryText("PRAGMA journal_mode"), "delete");
  EXPECT_EQ(*(*copy)->QueryText("PRAGMA integrity_check"), "ok");
  for (const std::string& id : before) {
    absl::StatusOr<int64_t> n = (*copy)->QueryInt(
        absl::StrCat("SELECT count(*) FROM tasks WHERE id = '", id, "'"));
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, 1) << id;
  }
  // Events and tasks agree in the copy: it is one consistent moment.
  absl::StatusOr<int64_t> tasks = (*copy)->QueryInt("SELECT count(*) FROM tasks");
  absl::StatusOr<int64_t> created =
      (*copy)->QueryInt("SELECT count(*) FROM events WHERE kind = 'created'");
  EXPECT_EQ(*tasks, *created);
  EXPECT_GE(*tasks, 300);
}

TEST_F(AdminServiceTest, BackupRefusesBadPathsNamingTheField) {
  std::vector<v1::BackupProgress> messages;
  grpc::Status status = Backup("relative/backup.db", &messages);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("path: must be absolute"));

  status = Backup("", &messages);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("path:"));

  status = Backup(dir_.File("no/such/folder/b.db"), &messages);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("does not exist"));

  status = Backup(std::filesystem::absolute(dir_.File("kanban.db")).string(), &messages);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("the database itself"));
  EXPECT_TRUE(messages.empty());

  // An existing file is kept unless overwrite is set.
  std::string path = dir_.File("taken.db");
  ASSERT_TRUE(Backup(path, &messages).ok());
  auto size = std::filesystem::file_size(path);
  status = Backup(path, &messages);
  EXPECT_EQ(status.error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(std::filesystem::file_size(path), size);
  v1::Task task;
  ASSERT_TRUE(Create("more", &task).ok());
  EXPECT_TRUE(Backup(path, &messages, /*overwrite=*/true).ok());
}

TEST_F(AdminServiceTest, CheckIntegrityReportsOkAndValidatesItsLimit) {
  v1::Task task;
  ASSERT_TRUE(Create("something", &task).ok());
  for (bool quick : {false, true}) {
    v1::CheckIntegrityRequest request;
    request.set_quick(quick);
    v1::CheckIntegrityResponse response;
    grpc::ClientContext context;
    context.set_deadline(Deadline());
    grpc::Status status = admin_->CheckIntegrity(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(response.ok());
    EXPECT_EQ(response.problems_size(), 0);
  }
  v1::CheckIntegrityRequest request;
  request.set_max_problems(-1);
  v1::CheckIntegrityResponse response;
  grpc::ClientContext context;
  grpc::Status status = admin_->CheckIntegrity(&context, request, &response);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("max_problems:"));
  // A clean check leaves writes on.
  EXPECT_TRUE(Create("after", &task).ok());
}

// Backup and CheckIntegrity are SQLite tools. On PostgreSQL they refuse
// with FAILED_PRECONDITION and name the server's own tools instead.
TEST(AdminServicePostgresTest, SqliteToolsReferToPostgresTools) {
  if (!testing::PostgresServer().has_value()) GTEST_SKIP() << "no PostgreSQL for tests";
  absl::StatusOr<std::string> db = testing::NewPostgresDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  testing::TempDir dir;
  Server::Options options;
  options.listen = "127.0.0.1:0";
  options.store.path = *db;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto admin = v1::AdminService::NewStub(channel);

  v1::BackupRequest backup;
  backup.set_path(dir.File("copy.db"));
  grpc::ClientContext backup_context;
  backup_context.set_deadline(Deadline());
  auto reader = admin->Backup(&backup_context, backup);
  v1::BackupProgress progress;
  while (reader->Read(&progress)) {
  }
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("pg_dump"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("copy.db")));

  v1::CheckIntegrityRequest check;
  v1::CheckIntegrityResponse checked;
  grpc::ClientContext check_context;
  check_context.set_deadline(Deadline());
  status = admin->CheckIntegrity(&check_context, check, &checked);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("amcheck"));
}

}  // namespace
}  // namespace kanban::service
