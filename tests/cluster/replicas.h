// A harness for the cluster fault tests: several real kanband processes
// ("replicas") on one PostgreSQL database, generated stubs to each of them
// or to all of them through one round_robin channel, SIGKILL and restart of
// one replica, a WatchEvents stream read on a thread of its own, and a
// deadline-bounded wait for a condition (tests poll; they never sleep a
// fixed time hoping something happened).
//
// Nothing here is thread-safe unless it says so; use Replicas from the
// test's main thread. Stubs and channels are gRPC's, and thread-safe.
#ifndef KANBAN_TESTS_CLUSTER_REPLICAS_H_
#define KANBAN_TESTS_CLUSTER_REPLICAS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kanban/v1/kanban.grpc.pb.h"
#include "tests/support/process.h"

namespace kanban::testing {

// Long enough never to be hit by a passing test; a bound for a failing one.
inline constexpr absl::Duration kPatience = absl::Seconds(30);

// A gRPC deadline `d` from now (gRPC 1.51 takes system_clock time points).
std::chrono::system_clock::time_point DeadlineIn(absl::Duration d);

// Sets `ctx`'s deadline to `timeout` from now and, when `token` is not
// empty, adds "authorization: Bearer <token>".
void Prepare(grpc::ClientContext& ctx, absl::Duration timeout,
             const std::string& token = "");

// Calls `condition` every `every` until it returns true (then true) or
// `timeout` has passed (then false; `condition` is called once more at the
// end, so a condition met just in time counts).
bool WaitFor(absl::Duration timeout, const std::function<bool()>& condition,
             absl::Duration every = absl::Milliseconds(20));

// A channel to one "127.0.0.1:PORT" that notices a restarted server quickly
// (gRPC's own reconnect backoff starts at 1 s and grows to 2 min). Each
// call makes a channel with a connection of its own.
std::shared_ptr<grpc::Channel> Connect(const std::string& address);

// One channel over every address in `addresses`, load-balanced round_robin
// ("ipv4:127.0.0.1:P1,127.0.0.1:P2,..."): a replica that goes away drops out
// of the rotation, the calls in flight on it fail UNAVAILABLE.
std::shared_ptr<grpc::Channel> ConnectRoundRobin(
    const std::vector<std::string>& addresses);

// One row of the events table.
struct LoggedEvent {
  int64_t seq = 0;
  std::string kind;
  std::string task_id;
};

// The whole event log of `database`, in seq order, read from PostgreSQL
// directly (with psql, not through kanband): the ground truth that the
// replicas' feeds and the workers' claims are checked against.
absl::StatusOr<std::vector<LoggedEvent>> DatabaseEvents(const std::string& database);

// The seq of the newest event in `database` (0 if none), read likewise.
absl::StatusOr<int64_t> DatabaseHead(const std::string& database);

// "" when `events` are exactly the seqs first..last, in order, once each;
// otherwise a description of the first few problems.
std::string CheckDense(const std::vector<v1::Event>& events, int64_t first, int64_t last);

// "" when `feed` (a replica's WatchEvents) and `log` (DatabaseEvents) hold
// the same events, seq, kind and task, in the same order; otherwise where
// they first differ.
std::string CompareWithLog(const std::vector<v1::Event>& feed,
                           const std::vector<LoggedEvent>& log);

// Collects a test's findings about many items (tasks, events) and reports
// the first few, so that one broken guarantee makes one readable failure
// rather than thousands.
class Problems {
 public:
  void Add(const std::string& problem);
  int count() const { return count_; }
  // The count and the first ten.
  std::string Summary() const;

 private:
  int count_ = 0;
  std::string first_;
};

// A PostgreSQL server of the test's own (tests/support/postgres_server.sh
// in a directory of the caller's), for a test that stops or kills it: the
// suite's shared server must stay up for the tests running beside it.
class PrivatePostgres {
 public:
  // Starts the server; ok() says whether it did.
  explicit PrivatePostgres(std::string state_dir);
  // Stops the server and removes its files.
  ~PrivatePostgres();
  PrivatePostgres(const PrivatePostgres&) = delete;
  PrivatePostgres& operator=(const PrivatePostgres&) = delete;

  bool ok() const { return ok_; }
  // Runs the script's `command` ("crash": pg_ctl stop -m immediate;
  // "resume": start again on the same port) and returns its exit status.
  int Run(const std::string& command);
  // A libpq URI of the server's `postgres` database.
  std::string target() const;

 private:
  const std::string state_dir_;
  bool ok_ = false;
};

// Several kanband on one database, each started with
//   --db=DATABASE --listen=127.0.0.1:0 --port_file=... --replica_id=rI
// followed by `args`. The destructor SIGKILLs every replica still running.
class Replicas {
 public:
  // Starts `count` replicas and waits for each to serve. A replica that does
  // not start adds a test failure (with its log) and makes ok() false.
  Replicas(const std::string& kanband_path, const std::string& database, int count,
           std::vector<std::string> args = {});
  Replicas(const Replicas&) = delete;
  Replicas& operator=(const Replicas&) = delete;

  bool ok() const { return ok_; }
  int size() const { return static_cast<int>(replicas_.size()); }
  const std::string& database() const { return database_; }
  // Replica i's "127.0.0.1:PORT"; a restart keeps it.
  const std::string& address(int i) const { return addresses_[i]; }
  const std::vector<std::string>& addresses() const { return addresses_; }
  // Replica i's --replica_id, "r<i>".
  static std::string Id(int i);

  // A new channel (a connection of its own) to replica i.
  std::shared_ptr<grpc::Channel> Channel(int i) const { return Connect(address(i)); }
  std::unique_ptr<v1::KanbanService::Stub> Stub(int i) const {
    return v1::KanbanService::NewStub(Channel(i));
  }
  // One round_robin channel over every replica.
  std::shared_ptr<grpc::Channel> RoundRobin() const {
    return ConnectRoundRobin(addresses_);
  }

  // SIGKILLs replica i and reaps it; adds a test failure if it had exited
  // already.
  void Kill(int i);
  // Starts replica i again, on its old port. False (and a test failure)
  // when it does not start.
  bool Restart(int i);
  // True while replica i runs (it was not killed, and has not exited).
  bool Running(int i);

  // Every replica's log, each under a heading, killed incarnations
  // included: for failure messages.
  std::string Logs() const;

 private:
  bool StartOne(int i, const std::string& listen);

  const std::string kanband_path_;
  const std::string database_;
  const std::vector<std::string> args_;
  bool ok_ = true;
  std::vector<Kanband> replicas_;
  std::vector<std::string> addresses_;
  // Killed incarnations, kept for their logs.
  std::vector<std::pair<int, Kanband>> killed_;
};

// A WatchEvents stream read on a thread of its own, from `request`, with
// `token` as its bearer token when not empty. The accessors are thread-safe.
class FeedReader {
 public:
  FeedReader(std::shared_ptr<grpc::Channel> channel, v1::WatchEventsRequest request,
             std::string token = "");
  // Cancels the stream and joins the thread.
  ~FeedReader();
  FeedReader(const FeedReader&) = delete;
  FeedReader& operator=(const FeedReader&) = delete;

  // Ends the stream (it finishes CANCELLED unless it had ended).
  void Cancel();
  // True once the stream has ended (by the server, an error or Cancel).
  bool Done() const ABSL_LOCKS_EXCLUDED(mu_);
  // How it ended; OK until Done().
  grpc::Status status() const ABSL_LOCKS_EXCLUDED(mu_);
  // When it ended (InfiniteFuture until Done()).
  absl::Time ended_at() const ABSL_LOCKS_EXCLUDED(mu_);
  // Every event received so far, in arrival order.
  std::vector<v1::Event> Events() const ABSL_LOCKS_EXCLUDED(mu_);
  // The resume point: the larger of the last event's seq and the last
  // bookmark; -1 before the first response.
  int64_t Position() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until Position() >= seq (true), the stream ends or `timeout`
  // passes (false).
  bool WaitForPosition(int64_t seq, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until the stream ends (true) or `timeout` passes (false).
  bool WaitForDone(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Read(v1::WatchEventsRequest request);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::string token_;
  grpc::ClientContext ctx_;
  mutable absl::Mutex mu_;
  std::vector<v1::Event> events_ ABSL_GUARDED_BY(mu_);
  int64_t position_ ABSL_GUARDED_BY(mu_) = -1;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  absl::Time ended_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread thread_;  // Last: started once everything above exists.
};

// Reads the whole feed through `channel` (after_seq 0) up to `head`.
// Fails the test (and returns what it got) if the stream ends or `timeout`
// passes first.
std::vector<v1::Event> ReadWholeFeed(std::shared_ptr<grpc::Channel> channel, int64_t head,
                                     absl::Duration timeout = kPatience,
                                     const std::string& token = "");

// A test on a fresh database (schema) of the suite's PostgreSQL, in
// database_; skipped when the suite started none.
class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override;
  std::string database_;
};

}  // namespace kanban::testing

#endif  // KANBAN_TESTS_CLUSTER_REPLICAS_H_
