#include "tests/cluster/replicas.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "tests/support/backends.h"

namespace kanban::testing {
namespace {

grpc::ChannelArguments QuickReconnect() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  return args;
}

}  // namespace

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

void Prepare(grpc::ClientContext& ctx, absl::Duration timeout, const std::string& token) {
  ctx.set_deadline(DeadlineIn(timeout));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
}

bool WaitFor(absl::Duration timeout, const std::function<bool()>& condition,
             absl::Duration every) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(every);
  }
  return condition();
}

std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  grpc::ChannelArguments args = QuickReconnect();
  // A channel argument no other channel has keeps gRPC from sharing one
  // connection (subchannel) between channels to the same address: each
  // worker gets a connection of its own, as separate clients would.
  static std::atomic<int> next{0};
  args.SetInt("kanban.test.channel", next.fetch_add(1));
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::shared_ptr<grpc::Channel> ConnectRoundRobin(
    const std::vector<std::string>& addresses) {
  grpc::ChannelArguments args = QuickReconnect();
  args.SetLoadBalancingPolicyName("round_robin");
  return grpc::CreateCustomChannel(absl::StrCat("ipv4:", absl::StrJoin(addresses, ",")),
                                   grpc::InsecureChannelCredentials(), args);
}

namespace {

// The rows `sql` returns from `database`, each as its '|'-separated fields.
absl::StatusOr<std::vector<std::vector<std::string>>> Psql(const std::string& database,
                                                           const std::string& sql) {
  RunResult r = Run({"psql", "--no-psqlrc", "-X", "-q", "-A", "-t", "-F", "|", "-v",
                     "ON_ERROR_STOP=1", "-d", database, "-c", sql},
                    {"PGOPTIONS"}, "", absl::Seconds(60));
  if (r.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat("psql ", sql, ": ", Describe(r)));
  }
  std::vector<std::vector<std::string>> rows;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    rows.push_back(absl::StrSplit(line, '|'));
  }
  return rows;
}

}  // namespace

absl::StatusOr<std::vector<LoggedEvent>> DatabaseEvents(const std::string& database) {
  absl::StatusOr<std::vector<std::vector<std::string>>> rows =
      Psql(database, "SELECT seq, kind, task_id FROM events ORDER BY seq");
  if (!rows.ok()) return rows.status();
  std::vector<LoggedEvent> events;
  for (const std::vector<std::string>& row : *rows) {
    LoggedEvent e;
    if (row.size() != 3 || !absl::SimpleAtoi(row[0], &e.seq)) {
      return absl::InternalError(absl::StrCat("psql printed ", absl::StrJoin(row, "|")));
    }
    e.kind = row[1];
    e.task_id = row[2];
    events.push_back(std::move(e));
  }
  return events;
}

absl::StatusOr<int64_t> DatabaseHead(const std::string& database) {
  absl::StatusOr<std::vector<std::vector<std::string>>> rows =
      Psql(database, "SELECT COALESCE(max(seq), 0) FROM events");
  if (!rows.ok()) return rows.status();
  int64_t head = 0;
  if (rows->size() != 1 || rows->front().size() != 1 ||
      !absl::SimpleAtoi(rows->front().front(), &head)) {
    return absl::InternalError("psql printed no head");
  }
  return head;
}

std::string CompareWithLog(const std::vector<v1::Event>& feed,
                           const std::vector<LoggedEvent>& log) {
  for (size_t i = 0; i < std::min(feed.size(), log.size()); ++i) {
    const v1::Event& f = feed[i];
    const LoggedEvent& l = log[i];
    if (f.seq() != l.seq || f.kind() != l.kind || f.task_id() != l.task_id) {
      return absl::StrCat("event ", i, ": the feed has ", f.seq(), " ", f.kind(), " ",
                          f.task_id(), ", the database ", l.seq, " ", l.kind, " ",
                          l.task_id);
    }
  }
  if (feed.size() != log.size()) {
    return absl::StrCat("the feed has ", feed.size(), " events, the database ",
                        log.size());
  }
  return "";
}

void Problems::Add(const std::string& problem) {
  if (++count_ <= 10) absl::StrAppend(&first_, "\n  ", problem);
}

std::string Problems::Summary() const {
  return absl::StrCat(count_, " problems; the first:", first_);
}

std::string CheckDense(const std::vector<v1::Event>& events, int64_t first,
                       int64_t last) {
  std::string problems;
  int found = 0;
  int64_t want = first;
  for (const v1::Event& e : events) {
    if (e.seq() != want && found < 5) {
      ++found;
      absl::StrAppend(&problems, "expected seq ", want, ", got ", e.seq(), "; ");
    }
    want = e.seq() + 1;
  }
  if (static_cast<int64_t>(events.size()) != last - first + 1) {
    absl::StrAppend(&problems, events.size(), " events for the ", last - first + 1,
                    " seqs ", first, "..", last, "; ");
  }
  if (!events.empty() && events.back().seq() != last) {
    absl::StrAppend(&problems, "the last seq is ", events.back().seq(), ", not ", last);
  }
  return problems;
}

// ---- PrivatePostgres ---------------------------------------------------------

PrivatePostgres::PrivatePostgres(std::string state_dir)
    : state_dir_(std::move(state_dir)) {
  ok_ = Run("start") == 0;
}

PrivatePostgres::~PrivatePostgres() { Run("stop"); }

int PrivatePostgres::Run(const std::string& command) {
  RunResult r = kanban::testing::Run(
      {KANBAN_SOURCE_DIR "/tests/support/postgres_server.sh", command, state_dir_}, {},
      "", absl::Seconds(120));
  EXPECT_EQ(r.exit_code, 0) << "postgres_server.sh " << command << ": " << Describe(r);
  return r.exit_code;
}

std::string PrivatePostgres::target() const {
  return std::string(absl::StripAsciiWhitespace(ReadFileOrEmpty(state_dir_ + "/target")));
}

// ---- Replicas ---------------------------------------------------------------

Replicas::Replicas(const std::string& kanband_path, const std::string& database,
                   int count, std::vector<std::string> args)
    : kanband_path_(kanband_path), database_(database), args_(std::move(args)) {
  replicas_.resize(count);
  addresses_.resize(count);
  for (int i = 0; i < count; ++i) {
    if (!StartOne(i, "127.0.0.1:0")) ok_ = false;
  }
}

std::string Replicas::Id(int i) { return absl::StrCat("r", i); }

bool Replicas::StartOne(int i, const std::string& listen) {
  std::vector<std::string> args = {"--listen=" + listen, "--replica_id=" + Id(i)};
  args.insert(args.end(), args_.begin(), args_.end());
  // KANBAN_SYNCHRONOUS_MODE from the caller's environment would change what
  // is tested; tests that mean FULL say --synchronous=full.
  replicas_[i] =
      StartKanband(kanband_path_, database_, args, {"KANBAN_SYNCHRONOUS_MODE"});
  if (!replicas_[i].ok()) return false;
  addresses_[i] = replicas_[i].address;
  return true;
}

void Replicas::Kill(int i) {
  EXPECT_EQ(replicas_[i].process.Signal(SIGKILL), 0) << Id(i) << " was not running";
  EXPECT_EQ(replicas_[i].process.Wait(absl::Seconds(10)), 128 + SIGKILL)
      << Id(i) << " had exited before it was killed; its log:\n"
      << replicas_[i].Log();
  killed_.emplace_back(i, std::move(replicas_[i]));
  replicas_[i] = Kanband();
}

bool Replicas::Restart(int i) {
  if (Running(i)) Kill(i);
  // StartKanband's own --listen=127.0.0.1:0 comes first; the later one wins.
  return StartOne(i, addresses_[i]) && replicas_[i].address == addresses_[i];
}

bool Replicas::Running(int i) {
  return replicas_[i].process.running() &&
         replicas_[i].process.Wait(absl::ZeroDuration()) == -1;
}

std::string Replicas::Logs() const {
  std::string out;
  for (const auto& [i, killed] : killed_) {
    absl::StrAppend(&out, "---- ", Id(i), " (killed) log:\n", killed.Log());
  }
  for (int i = 0; i < size(); ++i) {
    absl::StrAppend(&out, "---- ", Id(i), " log:\n", replicas_[i].Log());
  }
  return out;
}

// ---- FeedReader ---------------------------------------------------------------

FeedReader::FeedReader(std::shared_ptr<grpc::Channel> channel,
                       v1::WatchEventsRequest request, std::string token)
    : channel_(std::move(channel)), token_(std::move(token)) {
  if (!token_.empty()) ctx_.AddMetadata("authorization", "Bearer " + token_);
  thread_ = std::thread([this, request = std::move(request)] { Read(request); });
}

FeedReader::~FeedReader() {
  Cancel();
  thread_.join();
}

void FeedReader::Cancel() { ctx_.TryCancel(); }

void FeedReader::Read(v1::WatchEventsRequest request) {
  std::unique_ptr<v1::KanbanService::Stub> stub = v1::KanbanService::NewStub(channel_);
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader =
      stub->WatchEvents(&ctx_, request);
  v1::WatchEventsResponse response;
  while (reader->Read(&response)) {
    absl::MutexLock lock(&mu_);
    for (v1::Event& e : *response.mutable_events()) {
      position_ = std::max(position_, e.seq());
      events_.push_back(std::move(e));
    }
    position_ = std::max(position_, response.bookmark_seq());
  }
  grpc::Status status = reader->Finish();
  absl::MutexLock lock(&mu_);
  status_ = std::move(status);
  done_ = true;
  ended_at_ = absl::Now();
}

bool FeedReader::Done() const {
  absl::MutexLock lock(&mu_);
  return done_;
}

grpc::Status FeedReader::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

absl::Time FeedReader::ended_at() const {
  absl::MutexLock lock(&mu_);
  return ended_at_;
}

std::vector<v1::Event> FeedReader::Events() const {
  absl::MutexLock lock(&mu_);
  return events_;
}

int64_t FeedReader::Position() const {
  absl::MutexLock lock(&mu_);
  return position_;
}

bool FeedReader::WaitForPosition(int64_t seq, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto reached = [this, seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return position_ >= seq || done_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  return position_ >= seq;
}

bool FeedReader::WaitForDone(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&done_), timeout);
}

std::vector<v1::Event> ReadWholeFeed(std::shared_ptr<grpc::Channel> channel, int64_t head,
                                     absl::Duration timeout, const std::string& token) {
  v1::WatchEventsRequest request;
  request.set_after_seq(0);
  FeedReader reader(std::move(channel), request, token);
  EXPECT_TRUE(reader.WaitForPosition(head, timeout))
      << "the whole feed up to seq " << head << " did not arrive within " << timeout
      << "; got up to " << reader.Position() << ", stream "
      << (reader.Done() ? reader.status().error_message() : "open");
  return reader.Events();
}

void ClusterTest::SetUp() {
  if (!PostgresServer().has_value()) {
    GTEST_SKIP() << "no PostgreSQL for tests (run through ctest: fixture `postgres`)";
  }
  absl::StatusOr<std::string> db = NewPostgresDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  database_ = *db;
}

}  // namespace kanban::testing
