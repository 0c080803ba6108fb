#include "service/http/http_gateway.h"

// libmicrohttpd's header wants these first.
#include <arpa/inet.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/client_callback.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "service/auth.h"
#include "service/http/http_status.h"
#include "service/http/web_assets.h"
#include "service/log.h"

namespace kanban::service {

using Headers = std::vector<std::pair<std::string, std::string>>;

// One TCP connection: what the caps and the reaper need.
struct HttpGateway::Peer {
  int fd = -1;
  std::string address;  // The client's address, without the port.
  // Until the request is in (headers and body), the reaper closes the
  // connection at `deadline`; while it is answered, never.
  bool receiving = true;
  absl::Time deadline;
  bool shut = false;  // The reaper shut it down already.
};

// One HTTP request, from its headers to its answer.
struct HttpGateway::Request {
  MHD_Connection* connection = nullptr;
  Peer* peer = nullptr;
  std::string url;
  std::string method;
  std::string body;
  bool too_large = false;  // The body went past max_body_bytes (and is dropped).
  bool dispatched = false;
  // The answer; set before the request is resumed (or without suspending).
  bool answered = false;
  int status = 0;
  std::string content_type;
  std::string answer;
  Headers headers;
  // A unary call in flight: shared so that Stop can cancel it outside mu_.
  std::shared_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<google::protobuf::Message> call_request;
  std::unique_ptr<google::protobuf::Message> call_response;
  // An event stream.
  std::shared_ptr<EventStream> stream;
};

namespace {

constexpr absl::string_view kApiPrefix = "/api/v1";

// ---- Requests ---------------------------------------------------------------

const char* Header(MHD_Connection* conn, const char* name) {
  return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

// Every value of query parameter `name` (already URL-decoded by
// libmicrohttpd), in order. Names match without regard to case, as before.
std::vector<std::string> QueryValues(MHD_Connection* conn, const char* name) {
  struct Collect {
    const char* name;
    std::vector<std::string> values;
  } collect{name, {}};
  MHD_get_connection_values(
      conn, MHD_GET_ARGUMENT_KIND,
      [](void* cls, enum MHD_ValueKind, const char* key, const char* value) {
        auto* c = static_cast<Collect*>(cls);
        if (key != nullptr && absl::EqualsIgnoreCase(key, c->name)) {
          c->values.emplace_back(value != nullptr ? value : "");
        }
        return MHD_YES;
      },
      &collect);
  return std::move(collect.values);
}

std::optional<std::string> QueryValue(MHD_Connection* conn, const char* name) {
  std::vector<std::string> values = QueryValues(conn, name);
  if (values.empty()) return std::nullopt;
  return values.front();
}

// gRPC refuses metadata values outside printable ASCII; such a header is
// dropped, so that the service reports the credentials as missing.
bool IsPrintableAscii(absl::string_view value) {
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// The request's credentials become the call's "authorization" metadata: the
// Authorization header, or (event streams only, for EventSource)
// ?access_token=.
void AddAuthorization(MHD_Connection* conn, bool allow_query_token,
                      grpc::ClientContext* ctx) {
  std::string value;
  if (const char* header = Header(conn, "Authorization"); header != nullptr) {
    value = header;
  } else if (allow_query_token) {
    if (std::optional<std::string> token = QueryValue(conn, "access_token");
        token.has_value() && !token->empty()) {
      value = absl::StrCat("Bearer ", *token);
    }
  }
  if (!value.empty() && IsPrintableAscii(value)) ctx->AddMetadata("authorization", value);
}

std::optional<std::string> Trailer(const grpc::ClientContext& ctx, const char* key) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find(key);
  if (it == trailers.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

template <typename Message>
std::string ToJson(const Message& message) {
  std::string json;
  // Cannot fail for messages made by the generated stubs.
  (void)google::protobuf::util::MessageToJsonString(message, &json);
  return json;
}

// The host part of a Host header ("127.0.0.1:7380", "[::1]", "localhost").
absl::string_view HostPart(absl::string_view host) {
  if (absl::StartsWith(host, "[")) return host.substr(0, host.find(']') + 1);
  return host.substr(0, host.find(':'));
}

// "1.2.3.4" or "::1": the address without its port.
std::string AddressText(const sockaddr* addr) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (addr == nullptr) return text;
  if (addr->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, text,
              sizeof(text));
  } else if (addr->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, text,
              sizeof(text));
  }
  return text;
}

// ---- Answers ----------------------------------------------------------------

// Records the answer; the caller queues it (Queue) or resumes the request.
void Answer(HttpGateway::Request* r, int status, absl::string_view content_type,
            absl::string_view body, Headers headers = {}) {
  r->answered = true;
  r->status = status;
  r->content_type = std::string(content_type);
  r->answer = std::string(body);
  r->headers = std::move(headers);
}

void SendJson(HttpGateway::Request* r, int status, absl::string_view json,
              Headers headers = {}) {
  headers.emplace_back("Cache-Control", "no-store");
  Answer(r, status, "application/json", json, std::move(headers));
}

void SendError(HttpGateway::Request* r, grpc::StatusCode code, absl::string_view message,
               int http_status = 0, Headers headers = {}) {
  SendJson(r, http_status != 0 ? http_status : HttpStatusFor(code),
           ErrorJson(code, message), std::move(headers));
}

// A failed call's status; UNAVAILABLE's retry pushback becomes Retry-After.
void SendStatus(HttpGateway::Request* r, const grpc::Status& status,
                const grpc::ClientContext& ctx) {
  Headers headers;
  int64_t ms = 0;
  if (std::optional<std::string> pushback = Trailer(ctx, "grpc-retry-pushback-ms");
      pushback.has_value() && absl::SimpleAtoi(*pushback, &ms) && ms >= 0) {
    headers.emplace_back("Retry-After", absl::StrCat((ms + 999) / 1000));
  }
  SendError(r, status.error_code(), status.error_message(), 0, std::move(headers));
}

// Hands the recorded answer to libmicrohttpd.
void Queue(HttpGateway::Request* r) {
  MHD_Response* response = MHD_create_response_from_buffer(
      r->answer.size(), r->answer.data(), MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(response, "Content-Type", r->content_type.c_str());
  MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
  for (const auto& [name, value] : r->headers) {
    MHD_add_response_header(response, name.c_str(), value.c_str());
  }
  MHD_queue_response(r->connection, static_cast<unsigned>(r->status), response);
  MHD_destroy_response(response);  // libmicrohttpd keeps its own reference.
}

// A door listening on loopback answers only requests addressed to a
// loopback name: a web page whose own name an attacker pointed at 127.0.0.1
// (DNS rebinding) would otherwise be same-origin with the board. False
// after answering 403.
bool CheckHost(HttpGateway::Request* r, bool loopback_only) {
  if (!loopback_only) return true;
  const char* header = Header(r->connection, "Host");
  const absl::string_view host = HostPart(header != nullptr ? header : "");
  if (IsLoopbackHost(host)) return true;
  SendError(r, grpc::StatusCode::PERMISSION_DENIED,
            "Host: kanband's HTTP door listens on loopback and answers only requests "
            "addressed to localhost, 127.0.0.1 or [::1]",
            403);
  return false;
}

// Parses the request body (empty: the empty message). False after
// answering 400 or 413.
template <typename Message>
bool ParseBody(HttpGateway::Request* r, size_t limit, Message* message) {
  if (r->too_large) {
    SendError(r, grpc::StatusCode::RESOURCE_EXHAUSTED,
              absl::StrCat("body: larger than ", limit, " bytes"), 413);
    return false;
  }
  if (absl::StripAsciiWhitespace(r->body).empty()) return true;
  google::protobuf::util::Status parsed =
      google::protobuf::util::JsonStringToMessage(r->body, message);
  if (!parsed.ok()) {
    SendError(r, grpc::StatusCode::INVALID_ARGUMENT,
              absl::StrCat("body: not a JSON ", Message::descriptor()->name(), ": ",
                           std::string(parsed.message())));
    return false;
  }
  return true;
}

// A field given in both the path and the body must agree.
bool PathAgrees(HttpGateway::Request* r, const char* field, absl::string_view in_body,
                absl::string_view in_path) {
  if (in_body.empty() || in_body == in_path) return true;
  SendError(r, grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat(field, ": the body says \"", in_body, "\" but the path says \"",
                         in_path, "\""));
  return false;
}

// ---- Event streams ------------------------------------------------------------

std::string SseEvent(absl::string_view type, int64_t id, absl::string_view data) {
  std::string out;
  if (!type.empty()) absl::StrAppend(&out, "event: ", type, "\n");
  if (id >= 0) absl::StrAppend(&out, "id: ", id, "\n");
  // The JSON printer writes no newlines, so one data line is enough.
  absl::StrAppend(&out, "data: ", data, "\n\n");
  return out;
}

// The `event: error` that ends a stream, carrying `status` (and the oldest
// seq kept, for a compacted resume point): the browser reconnects unless
// the page closes its EventSource.
std::string EndEvent(const grpc::Status& status, const grpc::ClientContext& ctx) {
  std::optional<int64_t> oldest_seq;
  int64_t oldest = 0;
  if (std::optional<std::string> trailer = Trailer(ctx, "kanban-oldest-seq");
      trailer.has_value() && absl::SimpleAtoi(*trailer, &oldest)) {
    oldest_seq = oldest;
  }
  return SseEvent("error", -1,
                  ErrorJson(status.error_code(), status.error_message(), oldest_seq));
}

// libmicrohttpd's own messages while the door starts (why a bind failed)
// go to kanband's log, with any token in a URL masked: the log must never
// carry one. Once serving, its messages are about clients that went away
// or misbehaved, one line each: a hostile client could flood the log, so
// they are dropped (refusals are logged, rate-limited, by Refuse).
void LogMhd(void* cls, const char* format, va_list args) {
  if (!static_cast<std::atomic<bool>*>(cls)->load()) return;
  char buffer[1024];
  vsnprintf(buffer, sizeof(buffer), format, args);
  std::string text = buffer;
  for (size_t at = text.find("access_token="); at != std::string::npos;
       at = text.find("access_token=", at + 1)) {
    const size_t begin = at + std::strlen("access_token=");
    size_t end = text.find_first_of("& \"\r\n", begin);
    if (end == std::string::npos) end = text.size();
    text.replace(begin, end - begin, "REDACTED");
  }
  LogWarning(absl::StrCat("http: ", absl::StripTrailingAsciiWhitespace(text)));
}

}  // namespace

// ---- EventStream ------------------------------------------------------------

// One event stream: a WatchEvents call on gRPC's callback API, whose events
// are written to the connection as libmicrohttpd asks for them. No thread
// waits on it: with nothing to send, the connection is suspended, and the
// next read's callback resumes it. The next event is read only once the
// last is handed to libmicrohttpd, so a client that does not read holds
// back the stream (which the watch service ends once it stalls).
//
// Ownership: the reactor holds itself until OnDone; the request (and the
// response body that libmicrohttpd pulls from it) hold it too.
class HttpGateway::EventStream final
    : public grpc::ClientReadReactor<v1::WatchEventsResponse>,
      public std::enable_shared_from_this<EventStream> {
 public:
  EventStream(HttpGateway* gateway, MHD_Connection* connection, int64_t position)
      : gateway_(gateway), connection_(connection), position_(position) {}

  grpc::ClientContext ctx;
  v1::WatchEventsRequest request;

  // On the event loop: suspends the connection until the first response
  // (or the end), and starts the call.
  void Start() ABSL_LOCKS_EXCLUDED(mu_) {
    self_ = shared_from_this();
    {
      absl::MutexLock lock(&mu_);
      MHD_suspend_connection(connection_);
      suspended_ = true;
      reading_ = true;
      held_ = true;  // Taken below; until then Cancel must not release it.
    }
    gateway_->kanban_->async()->WatchEvents(&ctx, &request, this);
    StartRead(&response_);
    // Reads are started from outside the reactions (Pull): the hold keeps
    // OnDone from running while one may still start.
    AddHold();
    StartCall();
  }

  // On the event loop, once resumed: the stream's head, or an error answer.
  void Answer(Request* r) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    const bool as_stream =
        started_ || (done_ && status_.error_code() == grpc::StatusCode::OUT_OF_RANGE);
    if (!as_stream && !done_) {  // Resumed early: wait on.
      MHD_suspend_connection(connection_);
      suspended_ = true;
      return;
    }
    if (!as_stream) {
      SendStatus(r, status_, ctx);
      Queue(r);
      return;
    }
    MHD_Response* response = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 4096,
        [](void* cls, uint64_t, char* buf, size_t max) -> ssize_t {
          return (*static_cast<std::shared_ptr<EventStream>*>(cls))->Pull(buf, max);
        },
        new std::shared_ptr<EventStream>(shared_from_this()),
        [](void* cls) { delete static_cast<std::shared_ptr<EventStream>*>(cls); });
    MHD_add_response_header(response, "Content-Type", "text/event-stream");
    MHD_add_response_header(response, "Cache-Control", "no-store");
    MHD_add_response_header(response, "X-Accel-Buffering", "no");  // nginx: no buffering.
    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
    MHD_queue_response(connection_, 200, response);
    MHD_destroy_response(response);
  }

  // libmicrohttpd's content reader: the next bytes of the body, 0 after
  // suspending the connection until there are some, or the end.
  ssize_t Pull(char* buf, size_t max) ABSL_LOCKS_EXCLUDED(mu_) {
    bool read = false;
    {
      absl::MutexLock lock(&mu_);
      if (!out_.empty()) {
        const size_t n = std::min(max, out_.size());
        std::memcpy(buf, out_.data(), n);
        out_.erase(0, n);
        return static_cast<ssize_t>(n);
      }
      if (done_ || connection_ == nullptr) return MHD_CONTENT_READER_END_OF_STREAM;
      if (!reading_ && held_ && !cancelled_) read = reading_ = true;
      MHD_suspend_connection(connection_);
      suspended_ = true;
    }
    if (read) StartRead(&response_);
    return 0;
  }

  // The request is over (answered, or the client went away): no more
  // writes; the call is cancelled if it still runs.
  void Detach() ABSL_LOCKS_EXCLUDED(mu_) { Cancel(/*detach=*/true); }

  // Ends the call (Stop, or the client left).
  void Cancel(bool detach = false) ABSL_LOCKS_EXCLUDED(mu_) {
    bool release;
    {
      absl::MutexLock lock(&mu_);
      if (detach) connection_ = nullptr;
      cancelled_ = true;
      release = ReleaseLocked();
    }
    ctx.TryCancel();
    if (release) RemoveHold();
  }

  void OnReadDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_) {
    bool release;
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      if (ok) {
        if (!started_) {
          started_ = true;
          // The browser waits this long before reconnecting.
          out_ = "retry: 1000\n\n";
        }
        AppendLocked();
        WakeLocked();
      } else {
        failed_ = true;
      }
      release = ReleaseLocked();
    }
    if (release) RemoveHold();
  }

  void OnDone(const grpc::Status& status) override ABSL_LOCKS_EXCLUDED(mu_) {
    const bool stopping = gateway_->stopping();
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      status_ = status;
      if (stopping && started_) {
        status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "kanband is shutting down");
      }
      // A stream that started, or whose resume point was compacted away,
      // ends with an error event (unless the client is gone).
      if (connection_ != nullptr &&
          (started_ || status_.error_code() == grpc::StatusCode::OUT_OF_RANGE)) {
        out_ += EndEvent(status_, ctx);
      }
      WakeLocked();
    }
    gateway_->Unregister(this);  // The gateway may be gone after this.
    std::shared_ptr<EventStream> self = std::move(self_);
  }

 private:
  // The response as text/event-stream: events with their seq as id,
  // bookmarks that moved the position, or a keep-alive comment.
  void AppendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string text;
    for (const v1::Event& event : response_.events()) {
      absl::StrAppend(&text, SseEvent("", event.seq(), ToJson(event)));
      position_ = event.seq();
    }
    if (response_.bookmark_seq() > position_) {
      // Filtered-out events moved the position: resuming skips them.
      position_ = response_.bookmark_seq();
      absl::StrAppend(&text,
                      SseEvent("bookmark", position_,
                               absl::StrCat("{\"bookmarkSeq\":\"", position_, "\"}")));
    } else if (response_.events().empty()) {
      text = ": keep-alive\n\n";
    }
    out_ += text;
  }

  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (suspended_ && connection_ != nullptr) {
      suspended_ = false;
      MHD_resume_connection(connection_);
    }
  }

  // Whether the hold can go now (no read in flight, none to come); the
  // caller calls RemoveHold after unlocking, since it may run OnDone.
  bool ReleaseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!held_ || reading_ || !(cancelled_ || failed_)) return false;
    held_ = false;
    return true;
  }

  HttpGateway* const gateway_;
  std::shared_ptr<EventStream> self_;  // Until OnDone.
  v1::WatchEventsResponse response_;   // Written by one read at a time.

  absl::Mutex mu_;
  MHD_Connection* connection_ ABSL_GUARDED_BY(mu_);  // Null once detached.
  bool suspended_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;  // The hold Start takes.
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;  // A read came back empty.
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  int64_t position_ ABSL_GUARDED_BY(mu_);
  std::string out_ ABSL_GUARDED_BY(mu_);  // Not yet handed to libmicrohttpd.
};

// ---- HttpGateway --------------------------------------------------------------

// The socket address for a host:port: names are not resolved, so
// "localhost" is 127.0.0.1; an empty host is every IPv4 interface.
absl::Status ParseListenAddress(absl::string_view flag, absl::string_view listen,
                                sockaddr_storage* out) {
  const size_t colon = listen.rfind(':');
  if (colon == absl::string_view::npos || colon + 1 == listen.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": expected host:port, got \"", listen, "\""));
  }
  absl::string_view host = listen.substr(0, colon);
  absl::string_view port = listen.substr(colon + 1);
  int number = 0;
  if (!absl::SimpleAtoi(port, &number) || number < 0 || number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": bad port in \"", listen, "\""));
  }
  std::memset(out, 0, sizeof(*out));
  if (host == "localhost") host = "127.0.0.1";
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(number));
    const std::string text(host.substr(1, host.size() - 2));
    if (inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr) == 1) return absl::OkStatus();
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(out);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(number));
    if (host.empty()) {
      in4->sin_addr.s_addr = htonl(INADDR_ANY);
      return absl::OkStatus();
    }
    const std::string text(host);
    if (inet_pton(AF_INET, text.c_str(), &in4->sin_addr) == 1) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      flag, ": \"", host, "\" is not an IP address (names are not resolved)"));
}

HttpGateway::HttpGateway(Options options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      loopback_only_(IsLoopbackAddress(options_.listen)),
      channel_(std::move(channel)),
      kanban_(v1::KanbanService::NewStub(channel_)),
      heartbeat_(v1::HeartbeatService::NewStub(channel_)) {}

// libmicrohttpd rather than civetweb (which served the door before): civetweb
// gives each connection a thread from a fixed pool, so a few dozen clients
// that never finish their headers took every thread. libmicrohttpd serves
// every connection from one epoll loop, suspends a connection while gRPC
// answers it, and lets us refuse a connection by address at accept.
absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(
    Options options, std::shared_ptr<grpc::Channel> channel) {
  sockaddr_storage address;
  if (absl::Status s = ParseListenAddress("http_listen", options.listen, &address);
      !s.ok()) {
    return s;
  }
  std::unique_ptr<HttpGateway> gateway(
      new HttpGateway(std::move(options), std::move(channel)));
  const Options& o = gateway->options_;
  unsigned int flags =
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (address.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  const unsigned int idle_seconds = static_cast<unsigned int>(std::max<int64_t>(
      1, absl::ToInt64Seconds(absl::Ceil(o.idle_timeout, absl::Seconds(1)))));
  // Our own caps (OnAccept) refuse first: at its own limit libmicrohttpd
  // would stop accepting, leaving new connections queued in the kernel.
  const unsigned int limit =
      static_cast<unsigned int>(std::max(1, o.max_connections) + 16);
  using AcceptFn = MHD_Result (*)(void*, const sockaddr*, socklen_t);
  using CompletedFn =
      void (*)(void*, MHD_Connection*, void**, MHD_RequestTerminationCode);
  using NotifyFn =
      void (*)(void*, MHD_Connection*, void**, MHD_ConnectionNotificationCode);
  AcceptFn on_accept = [](void* cls, const sockaddr* addr, socklen_t len) {
    return static_cast<MHD_Result>(OnAccept(cls, addr, len));
  };
  MHD_AccessHandlerCallback on_request = [](void* cls, MHD_Connection* connection,
                                            const char* url, const char* method,
                                            const char* version, const char* upload_data,
                                            size_t* upload_data_size, void** con_cls) {
    return static_cast<MHD_Result>(OnRequest(cls, connection, url, method, version,
                                             upload_data, upload_data_size, con_cls));
  };
  CompletedFn on_done = [](void* cls, MHD_Connection* connection, void** con_cls,
                           MHD_RequestTerminationCode toe) {
    OnRequestDone(cls, connection, con_cls, static_cast<int>(toe));
  };
  NotifyFn on_connection = [](void* cls, MHD_Connection* connection,
                              void** socket_context, MHD_ConnectionNotificationCode toe) {
    OnConnection(cls, connection, socket_context, static_cast<int>(toe));
  };
  gateway->daemon_ = MHD_start_daemon(
      flags, 0, on_accept, gateway.get(), on_request, gateway.get(),  //
      MHD_OPTION_EXTERNAL_LOGGER, &LogMhd, &gateway->starting_,       //
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&address),    //
      MHD_OPTION_CONNECTION_TIMEOUT, idle_seconds,                    //
      MHD_OPTION_CONNECTION_LIMIT, limit,                             //
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,                          //
      // A request's head must fit in 16 KiB, as with civetweb before
      // (larger gets 431/414); also what each connection may hold.
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(16 << 10),  //
      MHD_OPTION_NOTIFY_COMPLETED, on_done, gateway.get(),                //
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, gateway.get(),         //
      MHD_OPTION_END);
  if (gateway->daemon_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("http_listen: cannot serve HTTP on ", o.listen));
  }
  gateway->starting_.store(false);
  const MHD_DaemonInfo* info =
      MHD_get_daemon_info(gateway->daemon_, MHD_DAEMON_INFO_BIND_PORT);
  gateway->port_ = info != nullptr ? info->port : 0;
  gateway->reaper_ = std::thread([g = gateway.get()] { g->Reap(); });
  return gateway;
}

HttpGateway::~HttpGateway() { Stop(); }

void HttpGateway::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  if (daemon_ == nullptr) return;
  // Cancel every call and stream; their callbacks resume their
  // connections, which libmicrohttpd needs before it can stop. Cancelled
  // outside mu_: a cancellation may run its callback at once.
  std::vector<std::shared_ptr<grpc::ClientContext>> calls;
  std::vector<std::shared_ptr<EventStream>> streams;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (Request* r : calls_) calls.push_back(r->ctx);
    for (EventStream* s : streams_) streams.push_back(s->shared_from_this());
  }
  for (auto& ctx : calls) ctx->TryCancel();
  for (auto& stream : streams) stream->Cancel();
  streams.clear();
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](HttpGateway* g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g->mu_) {
          return g->calls_.empty() && g->streams_.empty();
        },
        this));
  }
  {
    absl::MutexLock lock(&conn_mu_);
    reaper_stop_ = true;
  }
  if (reaper_.joinable()) reaper_.join();
  MHD_stop_daemon(daemon_);  // Closes every connection.
  daemon_ = nullptr;
}

bool HttpGateway::stopping() {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

absl::Status HttpGateway::Register(EventStream* stream) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("kanband is shutting down");
  const size_t cap = static_cast<size_t>(std::max(1, options_.max_event_streams));
  if (streams_.size() >= cap) {
    return absl::ResourceExhaustedError(absl::StrCat("event streams: ", streams_.size(),
                                                     " open (--http_max_event_streams)"));
  }
  streams_.insert(stream);
  return absl::OkStatus();
}

void HttpGateway::Unregister(EventStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

// ---- Connections --------------------------------------------------------------

int HttpGateway::OnAccept(void* cls, const sockaddr* addr, socklen_t) {
  auto* self = static_cast<HttpGateway*>(cls);
  const std::string address = AddressText(addr);
  absl::MutexLock lock(&self->conn_mu_);
  if (self->open_ >= self->options_.max_connections) {
    self->Refuse(address, "total",
                 absl::StrCat(self->open_, " connections open (--http_max_connections)"));
    return MHD_NO;
  }
  auto it = self->open_per_address_.find(address);
  if (it != self->open_per_address_.end() &&
      it->second >= self->options_.max_connections_per_peer) {
    self->Refuse(address, "per_peer",
                 absl::StrCat(it->second,
                              " connections open from it "
                              "(--http_max_connections_per_peer)"));
    return MHD_NO;
  }
  return MHD_YES;
}

void HttpGateway::OnConnection(void* cls, MHD_Connection* connection,
                               void** socket_context, int toe) {
  auto* self = static_cast<HttpGateway*>(cls);
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    auto* peer = new Peer();
    if (const MHD_ConnectionInfo* info =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD)) {
      peer->fd = info->connect_fd;
    }
    if (const MHD_ConnectionInfo* info =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) {
      peer->address = AddressText(info->client_addr);
    }
    peer->deadline = absl::Now() + self->options_.request_timeout;
    *socket_context = peer;
    absl::MutexLock lock(&self->conn_mu_);
    self->peers_.insert(peer);
    ++self->open_per_address_[peer->address];
    ++self->open_;
    return;
  }
  auto* peer = static_cast<Peer*>(*socket_context);
  if (peer == nullptr) return;
  {
    // Before libmicrohttpd closes the socket (see conn_mu_).
    absl::MutexLock lock(&self->conn_mu_);
    self->peers_.erase(peer);
    auto it = self->open_per_address_.find(peer->address);
    if (it != self->open_per_address_.end() && --it->second <= 0) {
      self->open_per_address_.erase(it);
    }
    --self->open_;
  }
  delete peer;
  *socket_context = nullptr;
}

void HttpGateway::Refuse(const std::string& peer, absl::string_view reason,
                         absl::string_view why) {
  if (options_.on_refused) options_.on_refused(reason);
  const absl::Time now = absl::Now();
  auto [it, inserted] = last_logged_.try_emplace(peer, now);
  if (!inserted) {
    if (now - it->second < absl::Minutes(1)) return;
    it->second = now;
  }
  if (last_logged_.size() > 10000) {  // Forget addresses not logged lately.
    absl::erase_if(last_logged_, [&](const auto& entry) {
      return now - entry.second >= absl::Minutes(1);
    });
  }
  LogWarning(absl::StrCat("http: ",
                          reason == "request_timeout" ? "closed a connection from "
                                                      : "refused a connection from ",
                          peer, ": ", why,
                          "; not logged again for this address for a minute"));
}

void HttpGateway::Reap() {
  absl::MutexLock lock(&conn_mu_);
  while (!reaper_stop_) {
    conn_mu_.AwaitWithTimeout(absl::Condition(&reaper_stop_), absl::Milliseconds(100));
    const absl::Time now = absl::Now();
    for (Peer* peer : peers_) {
      if (!peer->receiving || peer->shut || now < peer->deadline) continue;
      // Shut down, not closed: libmicrohttpd sees the end of the stream
      // and closes the connection itself, on its own thread.
      shutdown(peer->fd, SHUT_RDWR);
      peer->shut = true;
      Refuse(peer->address, "request_timeout",
             absl::StrCat("no complete request within --http_request_timeout (",
                          absl::FormatDuration(options_.request_timeout), ")"));
    }
  }
}

// ---- Requests -------------------------------------------------------------------

int HttpGateway::OnRequest(void* cls, MHD_Connection* connection, const char* url,
                           const char* method, const char*, const char* upload_data,
                           size_t* upload_data_size, void** con_cls) {
  auto* self = static_cast<HttpGateway*>(cls);
  auto* r = static_cast<Request*>(*con_cls);
  if (r == nullptr) {  // The headers are in.
    r = new Request();
    r->connection = connection;
    r->url = url != nullptr ? url : "";
    r->method = method != nullptr ? method : "";
    if (const MHD_ConnectionInfo* info =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT)) {
      r->peer = static_cast<Peer*>(info->socket_context);
    }
    *con_cls = r;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {  // More of the body.
    // Past the limit the rest is read and dropped, so that the client gets
    // its 413 (bounded by --http_request_timeout).
    if (!r->too_large) {
      r->body.append(upload_data, *upload_data_size);
      if (r->body.size() > self->options_.max_body_bytes) {
        r->too_large = true;
        r->body.clear();
        r->body.shrink_to_fit();
      }
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (!r->dispatched) {  // The whole request is in.
    r->dispatched = true;
    if (r->peer != nullptr) {
      absl::MutexLock lock(&self->conn_mu_);
      r->peer->receiving = false;
    }
    self->Dispatch(r);
    if (r->answered) Queue(r);
    return MHD_YES;
  }
  self->Finish(r);  // Resumed.
  return MHD_YES;
}

void HttpGateway::OnRequestDone(void* cls, MHD_Connection*, void** con_cls, int) {
  auto* self = static_cast<HttpGateway*>(cls);
  auto* r = static_cast<Request*>(*con_cls);
  if (r == nullptr) return;
  *con_cls = nullptr;
  if (r->stream) r->stream->Detach();
  if (r->peer != nullptr) {
    // A keep-alive connection may idle, then must send its next request.
    absl::MutexLock lock(&self->conn_mu_);
    r->peer->receiving = true;
    r->peer->deadline =
        absl::Now() + self->options_.idle_timeout + self->options_.request_timeout;
  }
  delete r;
}

void HttpGateway::Dispatch(Request* r) {
  if (r->url == "/api" || absl::StartsWith(r->url, "/api/")) {
    if (!CheckHost(r, loopback_only_)) return;
    return ServeApi(r);
  }
  if (!CheckHost(r, loopback_only_)) return;
  ServePage(r);
}

void HttpGateway::Finish(Request* r) {
  if (r->stream) return r->stream->Answer(r);
  if (r->answered) Queue(r);
}

template <typename Response, typename RequestMessage, typename StartFn>
void HttpGateway::Call(Request* r, RequestMessage request, StartFn start) {
  r->ctx = std::make_shared<grpc::ClientContext>();
  r->ctx->set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(options_.call_timeout));
  AddAuthorization(r->connection, /*allow_query_token=*/false, r->ctx.get());
  auto* message = new RequestMessage(std::move(request));
  r->call_request.reset(message);
  auto* response = new Response();
  r->call_response.reset(response);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return SendError(r, grpc::StatusCode::UNAVAILABLE, "kanband is shutting down");
    }
    calls_.insert(r);
  }
  MHD_suspend_connection(r->connection);  // Before the call: its callback resumes.
  start(r->ctx.get(), message, response, [this, r, response](grpc::Status status) {
    if (status.ok()) {
      SendJson(r, 200, ToJson(*response));
    } else {
      SendStatus(r, status, *r->ctx);
    }
    absl::MutexLock lock(&mu_);
    calls_.erase(r);
    MHD_resume_connection(r->connection);  // Under mu_: Stop waits for it.
  });
}

void HttpGateway::ServePage(Request* r) {
  const WebAsset* asset = FindWebAsset(r->url);
  if (asset == nullptr) return Answer(r, 404, "text/plain; charset=utf-8", "not found\n");
  if (r->method != "GET" && r->method != "HEAD") {
    return Answer(r, 405, "text/plain; charset=utf-8", "method not allowed\n",
                  {{"Allow", "GET, HEAD"}});
  }
  // libmicrohttpd leaves out the body of a HEAD answer itself.
  Answer(r, 200, asset->content_type, asset->body,
         {{"Cache-Control", "no-cache"},
          {"Content-Security-Policy",
           "default-src 'self'; style-src 'self'; script-src 'self'; "
           "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"},
          {"Referrer-Policy", "no-referrer"}});
}

void HttpGateway::ServeApi(Request* r) {
  MHD_Connection* conn = r->connection;
  const std::string& uri = r->url;
  absl::string_view path = uri;
  const std::string& method = r->method;
  if (!absl::ConsumePrefix(&path, kApiPrefix) || !(path.empty() || path.front() == '/')) {
    return SendError(
        r, grpc::StatusCode::NOT_FOUND,
        absl::StrCat("no such endpoint: ", uri, "; the API is under /api/v1/"));
  }
  // JSON only: a cross-site form or text/plain POST (which browsers send
  // without asking) is refused; a JSON one needs a CORS preflight, which the
  // door never grants.
  if (method == "POST") {
    const char* type = Header(conn, "Content-Type");
    if (type == nullptr ||
        !absl::StartsWithIgnoreCase(absl::StripLeadingAsciiWhitespace(type),
                                    "application/json")) {
      return SendError(r, grpc::StatusCode::INVALID_ARGUMENT,
                       "Content-Type: must be application/json", 415);
    }
  }
  std::vector<std::string> parts =
      absl::StrSplit(absl::StripPrefix(path, "/"), '/', absl::SkipEmpty());

  const auto wrong_method = [&](const char* allowed) {
    SendError(r, grpc::StatusCode::UNIMPLEMENTED,
              absl::StrCat(method, " ", uri, ": method not allowed; use ", allowed), 405,
              {{"Allow", allowed}});
  };

  const size_t n = parts.size();
  if (n == 1 && parts[0] == "events") {
    if (method != "GET") return wrong_method("GET");
    return ServeEvents(r);
  }
  if (n == 1 && parts[0] == "boards") {
    if (method != "GET") return wrong_method("GET");
    return Call<v1::ListBoardsResponse>(
        r, v1::ListBoardsRequest(),
        [this](grpc::ClientContext* ctx, const auto* req,
               v1::ListBoardsResponse* response, auto done) {
          kanban_->async()->ListBoards(ctx, req, response, std::move(done));
        });
  }
  if (n == 3 && parts[0] == "boards" && parts[2] == "tasks") {
    const std::string& board = parts[1];
    if (method == "GET") {
      v1::ListTasksRequest request;
      request.set_board(board);
      for (const std::string& value : QueryValues(conn, "status")) {
        for (absl::string_view name : absl::StrSplit(value, ',', absl::SkipEmpty())) {
          v1::Status status;
          if (!v1::Status_Parse(absl::AsciiStrToUpper(name), &status)) {
            return SendError(r, grpc::StatusCode::INVALID_ARGUMENT,
                             absl::StrCat("status: unknown status \"", name,
                                          "\" (TRIAGE, TODO, READY, RUNNING, BLOCKED, "
                                          "REVIEW, DONE, ARCHIVED)"));
          }
          request.add_statuses(status);
        }
      }
      if (auto v = QueryValue(conn, "assignee")) request.set_assignee(*v);
      if (auto v = QueryValue(conn, "label")) request.set_label(*v);
      if (auto v = QueryValue(conn, "page_token")) request.set_page_token(*v);
      if (auto v = QueryValue(conn, "page_size")) {
        int size = 0;
        if (!absl::SimpleAtoi(*v, &size)) {
          return SendError(r, grpc::StatusCode::INVALID_ARGUMENT,
                           "page_size: not a number");
        }
        request.set_page_size(size);
      }
      return Call<v1::ListTasksResponse>(
          r, std::move(request),
          [this](grpc::ClientContext* ctx, const auto* req,
                 v1::ListTasksResponse* response, auto done) {
            kanban_->async()->ListTasks(ctx, req, response, std::move(done));
          });
    }
    if (method == "POST") {
      v1::CreateTaskRequest request;
      if (!ParseBody(r, options_.max_body_bytes, &request)) return;
      if (!PathAgrees(r, "board", request.board(), board)) return;
      request.set_board(board);
      return Call<v1::Task>(r, std::move(request),
                            [this](grpc::ClientContext* ctx, const auto* req,
                                   v1::Task* response, auto done) {
                              kanban_->async()->CreateTask(ctx, req, response,
                                                           std::move(done));
                            });
    }
    return wrong_method("GET, POST");
  }
  if (n == 2 && parts[0] == "tasks" && absl::EndsWith(parts[1], ":move")) {
    if (method != "POST") return wrong_method("POST");
    const std::string id(absl::StripSuffix(parts[1], ":move"));
    v1::MoveTaskRequest request;
    if (!ParseBody(r, options_.max_body_bytes, &request)) return;
    if (!PathAgrees(r, "task_id", request.task_id(), id)) return;
    request.set_task_id(id);
    return Call<v1::Task>(
        r, std::move(request),
        [this](grpc::ClientContext* ctx, const auto* req, v1::Task* response, auto done) {
          kanban_->async()->MoveTask(ctx, req, response, std::move(done));
        });
  }
  if (n == 2 && parts[0] == "tasks") {
    if (method != "GET") return wrong_method("GET");
    v1::GetTaskRequest request;
    request.set_task_id(parts[1]);
    return Call<v1::Task>(
        r, std::move(request),
        [this](grpc::ClientContext* ctx, const auto* req, v1::Task* response, auto done) {
          kanban_->async()->GetTask(ctx, req, response, std::move(done));
        });
  }
  if (n == 3 && parts[0] == "tasks" && parts[2] == "comments") {
    if (method == "GET") {
      v1::ListCommentsRequest request;
      request.set_task_id(parts[1]);
      return Call<v1::ListCommentsResponse>(
          r, std::move(request),
          [this](grpc::ClientContext* ctx, const auto* req,
                 v1::ListCommentsResponse* response, auto done) {
            kanban_->async()->ListComments(ctx, req, response, std::move(done));
          });
    }
    if (method == "POST") {
      v1::AddCommentRequest request;
      if (!ParseBody(r, options_.max_body_bytes, &request)) return;
      if (!PathAgrees(r, "task_id", request.task_id(), parts[1])) return;
      request.set_task_id(parts[1]);
      return Call<v1::Comment>(r, std::move(request),
                               [this](grpc::ClientContext* ctx, const auto* req,
                                      v1::Comment* response, auto done) {
                                 kanban_->async()->AddComment(ctx, req, response,
                                                              std::move(done));
                               });
    }
    return wrong_method("GET, POST");
  }
  if (n == 1 && parts[0] == "workers") {
    if (method != "GET") return wrong_method("GET");
    v1::ListWorkersRequest request;
    if (auto v = QueryValue(conn, "board")) request.set_board(*v);
    return Call<v1::ListWorkersResponse>(
        r, std::move(request),
        [this](grpc::ClientContext* ctx, const auto* req,
               v1::ListWorkersResponse* response, auto done) {
          heartbeat_->async()->ListWorkers(ctx, req, response, std::move(done));
        });
  }
  SendError(r, grpc::StatusCode::NOT_FOUND,
            absl::StrCat("no such endpoint: ", method, " ", uri));
}

void HttpGateway::ServeEvents(Request* r) {
  MHD_Connection* conn = r->connection;
  v1::WatchEventsRequest request;
  if (auto v = QueryValue(conn, "board")) request.set_board(*v);
  for (const std::string& id : QueryValues(conn, "task_id")) request.add_task_ids(id);
  for (const std::string& kind : QueryValues(conn, "kind")) request.add_kinds(kind);
  // Where to start: a reconnecting browser's Last-Event-ID wins, so that it
  // resumes exactly after the last event (or bookmark) it received.
  const char* last_event_id = Header(conn, "Last-Event-ID");
  std::optional<std::string> after = QueryValue(conn, "after_seq");
  if (last_event_id != nullptr && *last_event_id != '\0') after = last_event_id;
  if (after.has_value()) {
    int64_t seq = 0;
    if (!absl::SimpleAtoi(*after, &seq)) {
      return SendError(r, grpc::StatusCode::INVALID_ARGUMENT,
                       last_event_id != nullptr ? "Last-Event-ID: not a number"
                                                : "after_seq: not a number");
    }
    request.set_after_seq(seq);
  } else if (std::optional<std::string> now = QueryValue(conn, "from_now");
             now.has_value() && (*now == "true" || *now == "1")) {
    request.set_from_now(true);
  }
  const int64_t keepalive_ms = absl::ToInt64Milliseconds(options_.keepalive);
  request.mutable_bookmark_interval()->set_seconds(keepalive_ms / 1000);
  request.mutable_bookmark_interval()->set_nanos(
      static_cast<int32_t>(keepalive_ms % 1000 * 1000000));

  auto stream = std::make_shared<EventStream>(
      this, conn, after.has_value() ? request.after_seq() : -1);
  stream->request = std::move(request);
  AddAuthorization(conn, /*allow_query_token=*/true, &stream->ctx);
  if (absl::Status s = Register(stream.get()); !s.ok()) {
    return SendError(r, static_cast<grpc::StatusCode>(s.code()), s.message());
  }
  // The first response (always a bookmark at least) shows the stream is
  // accepted; refusals before it are plain HTTP errors, except a compacted
  // resume point, which the page must see as an event to act on it.
  r->stream = stream;
  stream->Start();
}

}  // namespace kanban::service
