// The HTTP door: a JSON API under /api/v1/, a Server-Sent Events feed at
// /api/v1/events and the board's web page at /, served by civetweb.
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
#ifndef KANBAN_SERVICE_HTTP_GATEWAY_H_
#define KANBAN_SERVICE_HTTP_GATEWAY_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kanban/v1/kanban.grpc.pb.h"

struct mg_context;
struct mg_connection;

namespace grpc {
class ClientContext;
}

namespace kanban::service {

class HttpGateway {
 public:
  struct Options {
    // host:port ("127.0.0.1:7380", "0.0.0.0:7380", "[::1]:7380"); port 0
    // picks a free port. Required.
    std::string listen;
    // Connections served at once; each open event stream holds one.
    // Default: 50.
    int threads = 50;
    // Event streams open at once; more get 429 RESOURCE_EXHAUSTED, so that
    // streams can never take every thread from the API and the page.
    // At most threads - 2. Default: 40.
    int max_event_streams = 40;
    // How often an idle event stream gets a bookmark or a comment, so that
    // proxies keep it open and a vanished client is noticed. Default: 15 s.
    absl::Duration keepalive = absl::Seconds(15);
    // Longest request body read. Default: 4 MiB (as --max_request_bytes).
    size_t max_body_bytes = 4 << 20;
    // Deadline of each unary call. Default: 30 s.
    absl::Duration call_timeout = absl::Seconds(30);
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

  // Ends every open event stream, waits for requests in flight, closes the
  // listening socket. Call before the gRPC server shuts down. Thread-safe;
  // idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  HttpGateway(Options options, std::shared_ptr<grpc::Channel> channel);

  // civetweb request handlers; `self` is the HttpGateway.
  static int HandleApi(mg_connection* conn, void* self);
  static int HandlePage(mg_connection* conn, void* self);

  void ServeApi(mg_connection* conn);
  void ServeEvents(mg_connection* conn);

  // Event streams in flight, so that Stop() can end them. UNAVAILABLE when
  // stopping, RESOURCE_EXHAUSTED at max_event_streams (the stream must not
  // start).
  absl::Status Register(grpc::ClientContext* ctx) ABSL_LOCKS_EXCLUDED(mu_);
  void Unregister(grpc::ClientContext* ctx) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const Options options_;
  // Listening on loopback: requests must name a loopback host (see
  // CheckHost in http_gateway.cc).
  const bool loopback_only_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::KanbanService::Stub> kanban_;
  const std::unique_ptr<v1::HeartbeatService::Stub> heartbeat_;
  mg_context* ctx_ = nullptr;  // Set by Start, cleared by Stop.
  int port_ = 0;
  bool knock_ = false;  // 127.0.0.1:port_ reaches the listening socket.

  absl::Mutex stop_mu_;  // Serializes Stop().
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<grpc::ClientContext*> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_HTTP_GATEWAY_H_
