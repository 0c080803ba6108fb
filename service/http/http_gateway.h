// The HTTP door: a JSON API under /api/v1/, a Server-Sent Events feed at
// /api/v1/events and the board's web page at /, served by libmicrohttpd.
//
// A thin gateway, not a second implementation: every request becomes a call
// on the real gRPC services through the server's in-process channel, with
// the request's "Authorization" header forwarded as "authorization"
// metadata, so authentication, roles, validation, metrics and the access log
// are exactly those of gRPC. Bodies use protobuf's canonical JSON mapping
// (lowerCamelCase names, enums by name, int64 as strings, defaults omitted).
// gRPC codes become HTTP statuses as http_status.h says, with the body
// {"code":"NOT_FOUND","message":"..."}.
//
//   GET  /api/v1/boards                      ListBoards
//   GET  /api/v1/boards/{board}/tasks        ListTasks (?status=, repeated or
//                                            comma-separated; &label= &assignee=
//                                            &page_size= &page_token=)
//   POST /api/v1/boards/{board}/tasks        CreateTask (CreateTaskRequest)
//   GET  /api/v1/tasks/{id}                  GetTask
//   POST /api/v1/tasks/{id}:move             MoveTask (MoveTaskRequest)
//   GET  /api/v1/tasks/{id}/comments         ListComments
//   POST /api/v1/tasks/{id}/comments         AddComment (AddCommentRequest)
//   GET  /api/v1/workers                     ListWorkers (?board=)
//   GET  /api/v1/events                      WatchEvents as text/event-stream
//                                            (?board= &task_id= &kind=
//                                            &after_seq= &from_now=)
//
// The event stream: each event is `id: <seq>` + `data: <Event JSON>`, so a
// browser's automatic reconnect (Last-Event-ID, which wins over after_seq
// and from_now) resumes exactly after the last event it saw. Bookmarks that
// move the position past filtered-out events are `event: bookmark` with an
// `id:`; idle streams get a comment every keepalive. A stream that cannot go
// on ends with `event: error` and the JSON error body (OUT_OF_RANGE, a
// compacted resume point, also carries "oldestSeq"). Errors found before the
// stream starts (auth, bad filter) are ordinary HTTP error responses. Since
// EventSource cannot send headers, this endpoint alone also takes the token
// as ?access_token=; it is never logged.
//
// Hostile clients: the door runs on one event loop (libmicrohttpd's epoll
// thread), so an open connection costs a socket and a little memory, never
// a thread. A request waiting for gRPC, and an event stream waiting for its
// next event, is suspended: off the loop until gRPC's callback resumes it.
// Bounds, all in Options: a request (headers and body) must arrive within
// request_timeout of the connection opening or of its previous response
// (plus idle_timeout on a keep-alive connection); a connection silent for
// idle_timeout is closed; connections beyond max_connections_per_peer from
// one address, or max_connections in all, are closed at once on accept,
// counted (on_refused) and logged at most once per address a minute.
#ifndef KANBAN_SERVICE_HTTP_HTTP_GATEWAY_H_
#define KANBAN_SERVICE_HTTP_HTTP_GATEWAY_H_

#include <grpcpp/channel.h>
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kanban/v1/kanban.grpc.pb.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace kanban::service {

class HttpGateway {
 public:
  struct Options {
    // host:port ("127.0.0.1:7380", "0.0.0.0:7380", "[::1]:7380"); port 0
    // picks a free port. Required.
    std::string listen;
    // Event streams open at once; more get 429 RESOURCE_EXHAUSTED.
    // Default: 40.
    int max_event_streams = 40;
    // How often an idle event stream gets a bookmark or a comment, so that
    // proxies keep it open and a vanished client is noticed. Default: 15 s.
    absl::Duration keepalive = absl::Seconds(15);
    // Longest request body read. Default: 4 MiB (as --max_request_bytes).
    size_t max_body_bytes = 4 << 20;
    // Deadline of each unary call. Default: 30 s.
    absl::Duration call_timeout = absl::Seconds(30);
    // A request's headers and body must have arrived this long after the
    // connection opened or its previous response was sent (a keep-alive
    // connection gets idle_timeout more); else the connection is closed.
    // Default: 10 s.
    absl::Duration request_timeout = absl::Seconds(10);
    // A connection that sends nothing (and is sent nothing) this long is
    // closed; an event stream waiting for events is not. Whole seconds,
    // at least 1. Default: 15 s.
    absl::Duration idle_timeout = absl::Seconds(15);
    // Connections open at once, in all and from one address; beyond
    // either a new connection is closed at once. Default: 1024 and 128.
    int max_connections = 1024;
    int max_connections_per_peer = 128;
    // Called (on the event loop; must not block) for each refused
    // connection, with the reason: "per_peer" or "total", and for each
    // connection closed by request_timeout, with "request_timeout".
    std::function<void(absl::string_view reason)> on_refused;
  };

  // Starts serving; calls go to `channel` (the server's in-process channel,
  // which must outlive Stop()). UNAVAILABLE when the address cannot be
  // bound, INVALID_ARGUMENT when it cannot be parsed.
  static absl::StatusOr<std::unique_ptr<HttpGateway>> Start(
      Options options, std::shared_ptr<grpc::Channel> channel);
  ~HttpGateway();  // Stops.
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  // The bound port.
  int port() const { return port_; }

  // Ends every open event stream, cancels the calls in flight and waits for
  // them, closes every connection and the listening socket. Call before
  // the gRPC server shuts down. Thread-safe; idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_, conn_mu_);

  // Defined in http_gateway.cc, where only its helpers use them.
  struct Request;  // One HTTP request (libmicrohttpd's con_cls).
  struct Peer;     // One TCP connection (libmicrohttpd's socket_context).
  class EventStream;

 private:
  HttpGateway(Options options, std::shared_ptr<grpc::Channel> channel);

  // libmicrohttpd's callbacks; `cls` is the HttpGateway.
  static int OnAccept(void* cls, const sockaddr* addr, socklen_t addrlen);
  static int OnRequest(void* cls, MHD_Connection* connection, const char* url,
                       const char* method, const char* version, const char* upload_data,
                       size_t* upload_data_size, void** con_cls);
  static void OnRequestDone(void* cls, MHD_Connection* connection, void** con_cls,
                            int toe);
  static void OnConnection(void* cls, MHD_Connection* connection, void** socket_context,
                           int toe);

  // A request whose body has arrived: answers it, or suspends its
  // connection until a gRPC call does.
  void Dispatch(Request* r);
  void ServePage(Request* r);
  void ServeApi(Request* r);
  void ServeEvents(Request* r);
  // A resumed request: queues its answer.
  void Finish(Request* r);
  // Suspends `r` and starts a unary call (`start(ctx, request*, response*,
  // done)` makes it) whose callback stores the answer and resumes `r`.
  template <typename Response, typename RequestMessage, typename StartFn>
  void Call(Request* r, RequestMessage request, StartFn start);

  // Refusal bookkeeping: counts, and logs at most once per address a minute.
  void Refuse(const std::string& peer, absl::string_view reason, absl::string_view why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(conn_mu_);
  // Closes connections past their request deadline, until Stop.
  void Reap() ABSL_LOCKS_EXCLUDED(conn_mu_);

  // Event streams in flight, so that Stop() can end them. UNAVAILABLE when
  // stopping, RESOURCE_EXHAUSTED at max_event_streams (the stream must not
  // start).
  absl::Status Register(EventStream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  void Unregister(EventStream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  bool stopping() ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const Options options_;
  // Listening on loopback: requests must name a loopback host (see
  // CheckHost in http_gateway.cc).
  const bool loopback_only_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::KanbanService::Stub> kanban_;
  const std::unique_ptr<v1::HeartbeatService::Stub> heartbeat_;
  MHD_Daemon* daemon_ = nullptr;      // Set by Start, cleared by Stop.
  std::atomic<bool> starting_{true};  // libmicrohttpd's messages are logged.
  int port_ = 0;
  std::thread reaper_;

  absl::Mutex stop_mu_;  // Serializes Stop().
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Requests suspended on a unary call, and open event streams; Stop
  // cancels them and waits until both are empty.
  absl::flat_hash_set<Request*> calls_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<EventStream*> streams_ ABSL_GUARDED_BY(mu_);

  // Connections, for the caps and the reaper. A Peer is removed (under
  // this lock) before libmicrohttpd closes its socket, so the reaper never
  // shuts down a reused descriptor.
  absl::Mutex conn_mu_;
  bool reaper_stop_ ABSL_GUARDED_BY(conn_mu_) = false;
  absl::flat_hash_set<Peer*> peers_ ABSL_GUARDED_BY(conn_mu_);
  absl::flat_hash_map<std::string, int> open_per_address_ ABSL_GUARDED_BY(conn_mu_);
  int open_ ABSL_GUARDED_BY(conn_mu_) = 0;
  absl::flat_hash_map<std::string, absl::Time> last_logged_ ABSL_GUARDED_BY(conn_mu_);
};

// The socket address for a --`flag` value "host:port" ("[::1]:port" for
// IPv6): names are not resolved, so "localhost" is 127.0.0.1; an empty
// host is every IPv4 interface. INVALID_ARGUMENT, naming `flag`, if it
// cannot be parsed. (The metrics endpoint uses it too.)
absl::Status ParseListenAddress(absl::string_view flag, absl::string_view listen,
                                sockaddr_storage* out);

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_HTTP_HTTP_GATEWAY_H_
