// The feed's pre-encoded wire bytes: per-event encodings spliced with a
// bookmark must be exactly what protobuf writes for the same
// WatchEventsResponse; the WireCache encodes each published event once; and,
// end to end on a real server, the raw bytes a watcher receives are
// protobuf's own serialization, a backlog comes as one response, and many
// watchers each get every event in order.
#include "service/watch_wire.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "service/convert.h"
#include "service/server.h"
#include "storage/event_hub.h"
#include "tests/support/temp_dir.h"

namespace kanban::service {
namespace {

std::string Bytes(const std::vector<grpc::Slice>& slices) {
  std::string out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  return Bytes(slices);
}

storage::Event MakeEvent(int64_t seq, const std::string& body = "") {
  storage::Event e;
  e.seq = seq;
  e.txn = seq;
  e.board = "default";
  e.task_id = absl::StrCat("t", seq);
  e.kind = "created";
  e.time = absl::FromUnixMicros(1700000000123456 + seq);
  e.reason = seq % 2 == 0 ? "" : "because";
  e.principal = "ann";
  storage::Task task;
  task.id = e.task_id;
  task.board = e.board;
  task.title = absl::StrCat("task ", seq, " \xc3\xa9");  // Not only ASCII.
  task.body = body;
  task.status = storage::TaskStatus::kReady;
  task.priority = static_cast<int32_t>(seq % 7) - 3;  // Negative too.
  task.labels = {"a", "b"};
  task.version = seq;
  task.created_at = e.time;
  task.updated_at = e.time;
  task.not_before = e.time + absl::Seconds(5);
  e.task = task;
  return e;
}

std::vector<storage::Event> MakeEvents(int64_t first, int64_t last) {
  std::vector<storage::Event> events;
  for (int64_t seq = first; seq <= last; ++seq) events.push_back(MakeEvent(seq));
  return events;
}

// What a protobuf writer makes of the same response.
std::string Expected(const std::vector<storage::Event>& events, int64_t bookmark) {
  v1::WatchEventsResponse response;
  for (const storage::Event& e : events) ToProto(e, response.add_events());
  response.set_bookmark_seq(bookmark);
  return response.SerializeAsString();
}

std::string Spliced(const std::vector<storage::Event>& events, int64_t bookmark) {
  std::vector<grpc::Slice> slices;
  for (const storage::Event& e : events) slices.push_back(EncodeEventField(e));
  slices.push_back(EncodeBookmarkField(bookmark));
  return Bytes(slices);
}

TEST(WatchWireTest, SplicedResponseIsProtobufsOwnSerialization) {
  const std::vector<storage::Event> some = MakeEvents(1, 3);
  std::vector<storage::Event> board_level = {MakeEvent(9)};
  board_level[0].task.reset();
  board_level[0].task_id.clear();
  board_level[0].kind = "board_created";
  // Lengths whose varint takes 1, 2 and 3 bytes.
  const std::vector<storage::Event> sized = {MakeEvent(10, ""),
                                             MakeEvent(11, std::string(300, 'x')),
                                             MakeEvent(12, std::string(70000, 'y'))};
  for (int64_t bookmark : {int64_t{0}, int64_t{1}, int64_t{127}, int64_t{128},
                           int64_t{1} << 40, std::numeric_limits<int64_t>::max()}) {
    SCOPED_TRACE(absl::StrCat("bookmark ", bookmark));
    EXPECT_EQ(Spliced({}, bookmark), Expected({}, bookmark));
    EXPECT_EQ(Spliced(some, bookmark), Expected(some, bookmark));
    EXPECT_EQ(Spliced(board_level, bookmark), Expected(board_level, bookmark));
    EXPECT_EQ(Spliced(sized, bookmark), Expected(sized, bookmark));
  }
  EXPECT_EQ(EncodeBookmarkField(0).size(), 0u) << "proto3 leaves a zero out";
  EXPECT_GT(EncodeEventField(storage::Event()).size(), 0u) << "never empty";
}

std::vector<storage::EventHub::EventPtr> Ptrs(const std::vector<storage::Event>& events) {
  std::vector<storage::EventHub::EventPtr> out;
  for (const storage::Event& e : events)
    out.push_back(std::make_shared<storage::Event>(e));
  return out;
}

TEST(WireCacheTest, EncodesWhatWasPublishedOnceAndKeepsTheNewest) {
  storage::EventHub hub(/*capacity=*/100, /*head=*/0);
  WireCache cache(/*capacity=*/4, /*head=*/0);
  EXPECT_EQ(cache.head(), 0);
  hub.Publish(MakeEvents(1, 3));
  EXPECT_EQ(cache.head(), 0) << "nothing is visible before Update";
  cache.Update(hub);
  EXPECT_EQ(cache.head(), 3);
  std::vector<grpc::Slice> found = cache.Lookup(Ptrs(MakeEvents(1, 3)));
  ASSERT_EQ(found.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Bytes({found[i]}), Bytes({EncodeEventField(MakeEvent(i + 1))}));
  }
  // The same bytes, not a copy: every watcher shares them.
  EXPECT_EQ(cache.Lookup(Ptrs(MakeEvents(2, 2)))[0].begin(), found[1].begin());

  hub.Publish(MakeEvents(4, 6));
  cache.Update(hub);
  EXPECT_EQ(cache.head(), 6);
  EXPECT_EQ(cache.size(), 4u);
  found = cache.Lookup(Ptrs(MakeEvents(1, 7)));
  EXPECT_EQ(found[0].size(), 0u) << "evicted";
  EXPECT_EQ(found[1].size(), 0u) << "evicted";
  for (int i = 2; i < 6; ++i) EXPECT_GT(found[i].size(), 0u) << "seq " << i + 1;
  EXPECT_EQ(found[6].size(), 0u) << "not published";
}

TEST(WireCacheTest, CatchesUpWithTheHubWhenItsRingMovedOn) {
  storage::EventHub hub(/*capacity=*/5, /*head=*/0);
  WireCache cache(/*capacity=*/5, /*head=*/0);
  hub.Publish(MakeEvents(1, 4));
  hub.Publish(MakeEvents(5, 8));  // 1..3 have left the ring.
  cache.Update(hub);
  EXPECT_EQ(cache.head(), 8) << "everything published is visible";
  // What the ring lost is not cached: a watcher encodes it itself.
  const std::vector<grpc::Slice> found = cache.Lookup(Ptrs(MakeEvents(1, 8)));
  EXPECT_EQ(found[0].size(), 0u);
  hub.Publish(MakeEvents(9, 9));
  cache.Update(hub);
  EXPECT_EQ(cache.head(), 9);
  EXPECT_GT(cache.Lookup(Ptrs(MakeEvents(9, 9)))[0].size(), 0u);
}

TEST(WireCacheTest, SkipMakesEverythingVisibleWithoutEncodingAndUpdateGoesOnFromThere) {
  storage::EventHub hub(/*capacity=*/100, /*head=*/0);
  WireCache cache(/*capacity=*/10, /*head=*/0);
  hub.Publish(MakeEvents(1, 3));
  cache.Update(hub);
  hub.Publish(MakeEvents(4, 6));
  cache.Skip(hub);  // Nobody watching.
  EXPECT_EQ(cache.head(), 6);
  EXPECT_EQ(cache.size(), 0u) << "nothing encoded, and the old encodings let go";
  for (const grpc::Slice& s : cache.Lookup(Ptrs(MakeEvents(1, 6))))
    EXPECT_EQ(s.size(), 0u);
  hub.Publish(MakeEvents(7, 8));
  cache.Update(hub);
  EXPECT_EQ(cache.head(), 8);
  const std::vector<grpc::Slice> found = cache.Lookup(Ptrs(MakeEvents(6, 8)));
  EXPECT_EQ(found[0].size(), 0u);
  EXPECT_EQ(Bytes({found[1]}), Bytes({EncodeEventField(MakeEvent(7))}));
  EXPECT_EQ(Bytes({found[2]}), Bytes({EncodeEventField(MakeEvent(8))}));
}

// ---- End to end, on a real server -------------------------------------------

constexpr auto kCallTimeout = std::chrono::seconds(20);
const char kWatchMethod[] = "/kanban.v1.KanbanService/WatchEvents";

class WatchWireServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Server::Options options;
    options.listen = "127.0.0.1:0";
    options.store.path = dir_.File("kanban.db");
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = NewChannel();
    stub_ = v1::KanbanService::NewStub(channel_);
  }
  void TearDown() override {
    stub_.reset();
    if (server_) server_->Shutdown();
  }

  std::shared_ptr<grpc::Channel> NewChannel() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(-1);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                     grpc::InsecureChannelCredentials(), args);
  }

  void Create(const std::string& title) {
    v1::CreateTaskRequest r;
    r.set_title(title);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    v1::Task task;
    const grpc::Status s = stub_->CreateTask(&ctx, r, &task);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  kanban::testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KanbanService::Stub> stub_;
};

// A WatchEvents call read as raw bytes (what the generated stub would parse).
class RawWatch {
 public:
  RawWatch(grpc::Channel* channel, const v1::WatchEventsRequest& request) {
    ctx_.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    reader_.reset(grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
        channel,
        grpc::internal::RpcMethod(kWatchMethod,
                                  grpc::internal::RpcMethod::SERVER_STREAMING),
        &ctx_, request));
  }
  ~RawWatch() {
    ctx_.TryCancel();
    grpc::ByteBuffer ignored;
    while (reader_->Read(&ignored)) {
    }
    reader_->Finish();
  }
  // The next response's bytes, parsed into `response`; false at the end.
  bool Read(std::string* bytes, v1::WatchEventsResponse* response) {
    grpc::ByteBuffer buffer;
    if (!reader_->Read(&buffer)) return false;
    *bytes = Bytes(buffer);
    return response->ParseFromString(*bytes);
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader_;
};

TEST_F(WatchWireServerTest,
       BytesOnTheWireAreProtobufsSerializationAndABacklogIsOneResponse) {
  // More than the 256 events a response used to be limited to, far less
  // than its 1 MB.
  constexpr int kBacklog = 600;
  for (int i = 0; i < kBacklog; ++i)
    ASSERT_NO_FATAL_FAILURE(Create(absl::StrCat("t", i)));
  // A write is answered before its events reach watchers: wait until a
  // watcher has seen the last one, so that the backlog is all there.
  {
    v1::WatchEventsRequest last;
    last.set_after_seq(kBacklog - 1);
    RawWatch watch(channel_.get(), last);
    std::string bytes;
    v1::WatchEventsResponse response;
    while (response.bookmark_seq() < kBacklog) ASSERT_TRUE(watch.Read(&bytes, &response));
  }
  v1::WatchEventsRequest request;
  request.set_after_seq(0);
  RawWatch watch(channel_.get(), request);
  std::string bytes;
  v1::WatchEventsResponse response;
  ASSERT_TRUE(watch.Read(&bytes, &response));
  EXPECT_EQ(bytes, response.SerializeAsString());
  ASSERT_EQ(response.events_size(), kBacklog) << "a backlog split into several responses";
  EXPECT_EQ(response.bookmark_seq(), kBacklog);
  for (int i = 0; i < kBacklog; ++i) EXPECT_EQ(response.events(i).seq(), i + 1);

  // Live events, filtered and not, come byte-exact too.
  v1::WatchEventsRequest filtered;
  filtered.set_from_now(true);
  filtered.add_kinds("created");
  RawWatch live(channel_.get(), filtered);
  ASSERT_TRUE(live.Read(&bytes, &response));
  EXPECT_EQ(bytes, response.SerializeAsString());
  EXPECT_EQ(response.bookmark_seq(), kBacklog);
  ASSERT_NO_FATAL_FAILURE(Create("live"));
  int64_t seen = 0;
  while (seen < kBacklog + 1 && live.Read(&bytes, &response)) {
    EXPECT_EQ(bytes, response.SerializeAsString());
    for (const v1::Event& e : response.events()) {
      EXPECT_EQ(e.seq(), kBacklog + 1);
      EXPECT_EQ(e.task().title(), "live");
    }
    seen = response.bookmark_seq();
  }
  EXPECT_EQ(seen, kBacklog + 1);
}

// Many watchers on a few connections, events written while they watch:
// each gets every event, once, in order (fan-out through parking and
// shared encodings).
TEST_F(WatchWireServerTest, ManyWatchersEachGetEveryEventInOrder) {
  constexpr int kWatchers = 200;
  constexpr int kEvents = 60;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::KanbanService::Stub>> stubs;
  for (int i = 0; i < 4; ++i) {
    channels.push_back(NewChannel());
    stubs.push_back(v1::KanbanService::NewStub(channels.back()));
  }
  struct Stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader;
  };
  std::vector<std::unique_ptr<Stream>> streams;
  v1::WatchEventsRequest request;
  request.set_from_now(true);
  int64_t base = 0;  // The head when they started.
  for (int i = 0; i < kWatchers; ++i) {
    auto s = std::make_unique<Stream>();
    s->ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    s->reader = stubs[i % stubs.size()]->WatchEvents(&s->ctx, request);
    v1::WatchEventsResponse first;
    ASSERT_TRUE(s->reader->Read(&first)) << "watcher " << i;
    if (i == 0) base = first.bookmark_seq();
    ASSERT_EQ(first.bookmark_seq(), base) << "watcher " << i;
    streams.push_back(std::move(s));
  }
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_NO_FATAL_FAILURE(Create(absl::StrCat("e", i)));
    if (i % 10 == 0) absl::SleepFor(absl::Milliseconds(5));  // Some parked, some not.
  }
  for (int i = 0; i < kWatchers; ++i) {
    std::vector<int64_t> seqs;
    v1::WatchEventsResponse r;
    while (seqs.size() < static_cast<size_t>(kEvents) && streams[i]->reader->Read(&r)) {
      for (const v1::Event& e : r.events()) seqs.push_back(e.seq());
    }
    std::vector<int64_t> want;
    for (int64_t s = base + 1; s <= base + kEvents; ++s) want.push_back(s);
    ASSERT_EQ(seqs, want) << "watcher " << i;
  }
  for (auto& s : streams) s->ctx.TryCancel();
  for (auto& s : streams) {
    v1::WatchEventsResponse ignored;
    while (s->reader->Read(&ignored)) {
    }
    s->reader->Finish();
  }
}

}  // namespace
}  // namespace kanban::service
