// What ghz and grpcurl see of a running kanband through server reflection:
// every service listed, and each resolvable to descriptors without any
// .proto file, grpc.health.v1.Health included (gRPC's built-in health
// service is invisible to reflection; kanband's own is not).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kanban {
namespace {

using grpc::reflection::v1alpha::ServerReflection;
using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;

class ReflectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = testing::StartKanband(KANBAND_PATH, dir_.File("kanban.db"));
    ASSERT_TRUE(server_.ok());
    auto channel =
        grpc::CreateChannel(server_.address, grpc::InsecureChannelCredentials());
    stub_ = ServerReflection::NewStub(channel);
  }

  // One request/response on a fresh reflection stream.
  ServerReflectionResponse Ask(const ServerReflectionRequest& request) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub_->ServerReflectionInfo(&ctx);
    EXPECT_TRUE(stream->Write(request));
    stream->WritesDone();
    ServerReflectionResponse response, extra;
    EXPECT_TRUE(stream->Read(&response));
    EXPECT_FALSE(stream->Read(&extra)) << "one answer per request";
    grpc::Status status = stream->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Adds the files of `response` to `known`, by name.
  static void Collect(
      const ServerReflectionResponse& response,
      std::map<std::string, google::protobuf::FileDescriptorProto>* known) {
    for (const std::string& bytes :
         response.file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      ASSERT_TRUE(file.ParseFromString(bytes));
      (*known)[file.name()] = file;
    }
  }

  // Builds `file` into `pool` after its dependencies, fetching any the server
  // has not sent yet by file name, as ghz does.
  void Build(const google::protobuf::FileDescriptorProto& file,
             std::map<std::string, google::protobuf::FileDescriptorProto>* known,
             google::protobuf::DescriptorPool* pool) {
    if (pool->FindFileByName(file.name()) != nullptr) return;
    for (const std::string& dep : file.dependency()) {
      if (!known->count(dep)) {
        ServerReflectionRequest by_name;
        by_name.set_file_by_filename(dep);
        Collect(Ask(by_name), known);
      }
      ASSERT_TRUE(known->count(dep)) << "server did not send " << dep;
      Build(known->at(dep), known, pool);
    }
    ASSERT_NE(pool->BuildFile(file), nullptr) << file.name();
  }

  // Loads the file defining `symbol`, and its dependencies, into `pool`.
  void Resolve(const std::string& symbol, google::protobuf::DescriptorPool* pool) {
    ServerReflectionRequest request;
    request.set_file_containing_symbol(symbol);
    ServerReflectionResponse response = Ask(request);
    ASSERT_TRUE(response.has_file_descriptor_response())
        << symbol << ": " << response.error_response().error_message();
    std::map<std::string, google::protobuf::FileDescriptorProto> known;
    Collect(response, &known);
    // The first file is the one that defines the symbol.
    google::protobuf::FileDescriptorProto first;
    ASSERT_TRUE(first.ParseFromString(
        response.file_descriptor_response().file_descriptor_proto(0)));
    Build(first, &known, pool);
  }

  testing::TempDir dir_;
  testing::Kanband server_;
  std::unique_ptr<ServerReflection::Stub> stub_;
};

TEST_F(ReflectionTest, ListsEveryService) {
  ServerReflectionRequest request;
  request.set_list_services("");
  ServerReflectionResponse response = Ask(request);
  std::set<std::string> names;
  for (const auto& s : response.list_services_response().service())
    names.insert(s.name());
  EXPECT_THAT(names, ::testing::IsSupersetOf(
                         {"kanban.v1.KanbanService", "grpc.health.v1.Health"}));
}

TEST_F(ReflectionTest, KanbanServiceResolvesWithoutProtoFiles) {
  google::protobuf::DescriptorPool pool;
  Resolve("kanban.v1.KanbanService", &pool);
  const google::protobuf::ServiceDescriptor* service =
      pool.FindServiceByName("kanban.v1.KanbanService");
  ASSERT_NE(service, nullptr);
  const google::protobuf::MethodDescriptor* create =
      service->FindMethodByName("CreateTask");
  ASSERT_NE(create, nullptr);
  EXPECT_EQ(create->input_type()->full_name(), "kanban.v1.CreateTaskRequest");
  EXPECT_NE(create->input_type()->FindFieldByName("not_before"), nullptr);
  EXPECT_EQ(
      create->input_type()->FindFieldByName("not_before")->message_type()->full_name(),
      "google.protobuf.Timestamp");
}

TEST_F(ReflectionTest, HealthResolvesToo) {
  google::protobuf::DescriptorPool pool;
  Resolve("grpc.health.v1.Health", &pool);
  const google::protobuf::ServiceDescriptor* health =
      pool.FindServiceByName("grpc.health.v1.Health");
  ASSERT_NE(health, nullptr);
  EXPECT_NE(health->FindMethodByName("Check"), nullptr);
  EXPECT_NE(health->FindMethodByName("Watch"), nullptr);
}

}  // namespace
}  // namespace kanban
