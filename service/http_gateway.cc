#include "service/http_gateway.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/client_context.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "service/auth.h"
#include "service/http_status.h"
#include "service/log.h"
#include "service/web_assets.h"

namespace kanban::service {
namespace {

constexpr absl::string_view kApiPrefix = "/api/v1";

// ---- Requests ---------------------------------------------------------------

// Every value of query parameter `name`, URL-decoded, in order.
std::vector<std::string> QueryValues(const mg_request_info* ri, const char* name) {
  std::vector<std::string> values;
  if (ri->query_string == nullptr) return values;
  const size_t length = std::strlen(ri->query_string);
  std::string buffer(length + 1, '\0');  // A decoded value is never longer.
  for (int i = 0;; ++i) {
    const int n =
        mg_get_var2(ri->query_string, length, name, buffer.data(), buffer.size(), i);
    if (n < 0) break;
    values.emplace_back(buffer.data(), static_cast<size_t>(n));
  }
  return values;
}

std::optional<std::string> QueryValue(const mg_request_info* ri, const char* name) {
  std::vector<std::string> values = QueryValues(ri, name);
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
void AddAuthorization(mg_connection* conn, bool allow_query_token,
                      grpc::ClientContext* ctx) {
  std::string value;
  if (const char* header = mg_get_header(conn, "Authorization"); header != nullptr) {
    value = header;
  } else if (allow_query_token) {
    if (std::optional<std::string> token =
            QueryValue(mg_get_request_info(conn), "access_token");
        token.has_value() && !token->empty()) {
      value = absl::StrCat("Bearer ", *token);
    }
  }
  if (!value.empty() && IsPrintableAscii(value)) ctx->AddMetadata("authorization", value);
}

// The body, up to `limit` bytes; nullopt when it is longer.
std::optional<std::string> ReadBody(mg_connection* conn, size_t limit) {
  std::string body;
  char buffer[8192];
  for (;;) {
    const int n = mg_read(conn, buffer, sizeof(buffer));
    if (n <= 0) break;
    body.append(buffer, static_cast<size_t>(n));
    if (body.size() > limit) return std::nullopt;
  }
  return body;
}

// ---- Responses --------------------------------------------------------------

void Send(mg_connection* conn, int status, absl::string_view content_type,
          absl::string_view body,
          const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  mg_response_header_start(conn, status);
  mg_response_header_add(conn, "Content-Type", content_type.data(),
                         static_cast<int>(content_type.size()));
  const std::string length = absl::StrCat(body.size());
  mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  mg_response_header_add(conn, "X-Content-Type-Options", "nosniff", -1);
  for (const auto& [name, value] : headers) {
    mg_response_header_add(conn, name.c_str(), value.c_str(), -1);
  }
  mg_response_header_send(conn);
  if (!body.empty()) mg_write(conn, body.data(), body.size());
}

void SendJson(mg_connection* conn, int status, absl::string_view json,
              std::vector<std::pair<std::string, std::string>> headers = {}) {
  headers.emplace_back("Cache-Control", "no-store");
  Send(conn, status, "application/json", json, headers);
}

void SendError(mg_connection* conn, grpc::StatusCode code, absl::string_view message,
               int http_status = 0,
               std::vector<std::pair<std::string, std::string>> headers = {}) {
  SendJson(conn, http_status != 0 ? http_status : HttpStatusFor(code),
           ErrorJson(code, message), std::move(headers));
}

std::optional<std::string> Trailer(const grpc::ClientContext& ctx, const char* key) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find(key);
  if (it == trailers.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

// A failed call's status; UNAVAILABLE's retry pushback becomes Retry-After.
void SendStatus(mg_connection* conn, const grpc::Status& status,
                const grpc::ClientContext& ctx) {
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t ms = 0;
  if (std::optional<std::string> pushback = Trailer(ctx, "grpc-retry-pushback-ms");
      pushback.has_value() && absl::SimpleAtoi(*pushback, &ms) && ms >= 0) {
    headers.emplace_back("Retry-After", absl::StrCat((ms + 999) / 1000));
  }
  SendError(conn, status.error_code(), status.error_message(), 0, std::move(headers));
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

// A door listening on loopback answers only requests addressed to a
// loopback name: a web page whose own name an attacker pointed at 127.0.0.1
// (DNS rebinding) would otherwise be same-origin with the board. False
// after answering 403.
bool CheckHost(mg_connection* conn, bool loopback_only) {
  if (!loopback_only) return true;
  const char* header = mg_get_header(conn, "Host");
  const absl::string_view host = HostPart(header != nullptr ? header : "");
  if (IsLoopbackHost(host)) return true;
  SendError(conn, grpc::StatusCode::PERMISSION_DENIED,
            "Host: kanband's HTTP door listens on loopback and answers only requests "
            "addressed to localhost, 127.0.0.1 or [::1]",
            403);
  return false;
}

// Parses a request body (empty: the empty message). False after answering
// 400 or 413.
template <typename Message>
bool ParseBody(mg_connection* conn, size_t limit, Message* message) {
  std::optional<std::string> body = ReadBody(conn, limit);
  if (!body.has_value()) {
    SendError(conn, grpc::StatusCode::RESOURCE_EXHAUSTED,
              absl::StrCat("body: larger than ", limit, " bytes"), 413);
    return false;
  }
  if (absl::StripAsciiWhitespace(*body).empty()) return true;
  google::protobuf::util::Status parsed =
      google::protobuf::util::JsonStringToMessage(*body, message);
  if (!parsed.ok()) {
    SendError(conn, grpc::StatusCode::INVALID_ARGUMENT,
              absl::StrCat("body: not a JSON ", Message::descriptor()->name(), ": ",
                           std::string(parsed.message())));
    return false;
  }
  return true;
}

// A field given in both the path and the body must agree.
bool PathAgrees(mg_connection* conn, const char* field, absl::string_view in_body,
                absl::string_view in_path) {
  if (in_body.empty() || in_body == in_path) return true;
  SendError(conn, grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat(field, ": the body says \"", in_body, "\" but the path says \"",
                         in_path, "\""));
  return false;
}

// ---- Event streams ------------------------------------------------------------

// One chunk of the text/event-stream body; false once the client is gone.
bool WriteChunk(mg_connection* conn, absl::string_view text) {
  return mg_send_chunk(conn, text.data(), static_cast<unsigned>(text.size())) > 0;
}

std::string SseEvent(absl::string_view type, int64_t id, absl::string_view data) {
  std::string out;
  if (!type.empty()) absl::StrAppend(&out, "event: ", type, "\n");
  if (id >= 0) absl::StrAppend(&out, "id: ", id, "\n");
  // The JSON printer writes no newlines, so one data line is enough.
  absl::StrAppend(&out, "data: ", data, "\n\n");
  return out;
}

// The head of a text/event-stream response; its body goes in chunks.
void SendEventStreamHead(mg_connection* conn) {
  mg_response_header_start(conn, 200);
  mg_response_header_add(conn, "Content-Type", "text/event-stream", -1);
  mg_response_header_add(conn, "Cache-Control", "no-store", -1);
  mg_response_header_add(conn, "X-Accel-Buffering", "no", -1);  // nginx: no buffering.
  mg_response_header_add(conn, "Transfer-Encoding", "chunked", -1);
  mg_response_header_send(conn);
}

// Ends an event stream with `event: error` carrying `status` (and the
// oldest seq kept, for a compacted resume point), then the last chunk: the
// browser reconnects unless the page closes its EventSource.
void EndEventStream(mg_connection* conn, const grpc::Status& status,
                    const grpc::ClientContext& ctx) {
  std::optional<int64_t> oldest_seq;
  int64_t oldest = 0;
  if (std::optional<std::string> trailer = Trailer(ctx, "kanban-oldest-seq");
      trailer.has_value() && absl::SimpleAtoi(*trailer, &oldest)) {
    oldest_seq = oldest;
  }
  WriteChunk(
      conn, SseEvent("error", -1,
                     ErrorJson(status.error_code(), status.error_message(), oldest_seq)));
  mg_send_chunk(conn, "", 0);
}

// civetweb's own messages go to kanband's log, with any token in a URL
// masked: the log must never carry one.
int LogCivetweb(const mg_connection*, const char* message) {
  std::string text = message;
  for (size_t at = text.find("access_token="); at != std::string::npos;
       at = text.find("access_token=", at + 1)) {
    const size_t begin = at + std::strlen("access_token=");
    size_t end = text.find_first_of("& \"\r\n", begin);
    if (end == std::string::npos) end = text.size();
    text.replace(begin, end - begin, "REDACTED");
  }
  LogWarning(absl::StrCat("http: ", text));
  return 1;  // Handled: civetweb writes nothing itself.
}

// civetweb's listening_ports syntax for a host:port: names are not
// resolved, so "localhost" is 127.0.0.1; an empty host is every interface.
absl::StatusOr<std::string> CivetwebPorts(absl::string_view listen) {
  const size_t colon = listen.rfind(':');
  if (colon == absl::string_view::npos || colon + 1 == listen.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_listen: expected host:port, got \"", listen, "\""));
  }
  absl::string_view host = listen.substr(0, colon);
  absl::string_view port = listen.substr(colon + 1);
  int number = 0;
  if (!absl::SimpleAtoi(port, &number) || number < 0 || number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_listen: bad port in \"", listen, "\""));
  }
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty() || host == "0.0.0.0") return std::string(port);
  if (host.front() == '[' && !mg_check_feature(8)) {
    return absl::InvalidArgumentError(
        "http_listen: this civetweb was built without IPv6 support");
  }
  return absl::StrCat(host, ":", port);
}

// Connects to 127.0.0.1:`port` and hangs up at once.
void Knock(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  close(fd);
}

}  // namespace

HttpGateway::HttpGateway(Options options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      loopback_only_(IsLoopbackAddress(options_.listen)),
      channel_(std::move(channel)),
      kanban_(v1::KanbanService::NewStub(channel_)),
      heartbeat_(v1::HeartbeatService::NewStub(channel_)) {}

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(
    Options options, std::shared_ptr<grpc::Channel> channel) {
  absl::StatusOr<std::string> ports = CivetwebPorts(options.listen);
  if (!ports.ok()) return ports.status();
  std::unique_ptr<HttpGateway> gateway(
      new HttpGateway(std::move(options), std::move(channel)));
  const std::string threads = absl::StrCat(std::max(2, gateway->options_.threads));
  // No document_root: nothing is served from the file system. No access
  // log: URLs may carry tokens.
  const char* civet_options[] = {
      "listening_ports",   ports->c_str(), "num_threads", threads.c_str(),
      "enable_keep_alive", "yes",          nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  callbacks.log_message = LogCivetweb;
  mg_init_library(0);
  gateway->ctx_ = mg_start(&callbacks, gateway.get(), civet_options);
  if (gateway->ctx_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("http_listen: cannot serve HTTP on ", gateway->options_.listen));
  }
  mg_server_port bound[4];
  const int n = mg_get_server_ports(gateway->ctx_, 4, bound);
  gateway->port_ = n > 0 ? bound[0].port : 0;
  // 0.0.0.0 and 127.x also answer on 127.0.0.1 (see Stop).
  gateway->knock_ =
      ports->find(':') == std::string::npos || absl::StartsWith(*ports, "127.");
  // "/api" takes /api and /api/...; "/" takes every other path.
  mg_set_request_handler(gateway->ctx_, "/api", HandleApi, gateway.get());
  mg_set_request_handler(gateway->ctx_, "/", HandlePage, gateway.get());
  return gateway;
}

HttpGateway::~HttpGateway() { Stop(); }

void HttpGateway::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  if (ctx_ == nullptr) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    // Each stream's Read returns false, and its handler returns.
    for (grpc::ClientContext* ctx : streams_) ctx->TryCancel();
  }
  // civetweb's accept loop polls in 2 s quanta and mg_stop waits for it; a
  // connection wakes it early. Only loopback-reachable addresses can be
  // knocked on; elsewhere stopping just takes up to 2 s longer.
  std::atomic<bool> stopped{false};
  std::thread knocker;
  if (knock_) {
    knocker = std::thread([this, &stopped] {
      for (int i = 0; i < 20 && !stopped.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(i == 0 ? 10 : 100));
        if (!stopped.load()) Knock(port_);
      }
    });
  }
  mg_stop(ctx_);  // Waits for every handler.
  stopped.store(true);
  if (knocker.joinable()) knocker.join();
  ctx_ = nullptr;
}

absl::Status HttpGateway::Register(grpc::ClientContext* ctx) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("kanband is shutting down");
  const size_t cap = static_cast<size_t>(
      std::max(1, std::min(options_.max_event_streams, options_.threads - 2)));
  if (streams_.size() >= cap) {
    return absl::ResourceExhaustedError(absl::StrCat("event streams: ", streams_.size(),
                                                     " open (--http_max_event_streams)"));
  }
  streams_.insert(ctx);
  return absl::OkStatus();
}

void HttpGateway::Unregister(grpc::ClientContext* ctx) {
  absl::MutexLock lock(&mu_);
  streams_.erase(ctx);
}

int HttpGateway::HandlePage(mg_connection* conn, void* self) {
  if (!CheckHost(conn, static_cast<HttpGateway*>(self)->loopback_only_)) return 403;
  const mg_request_info* ri = mg_get_request_info(conn);
  const WebAsset* asset = FindWebAsset(ri->local_uri ? ri->local_uri : "");
  if (asset == nullptr) {
    Send(conn, 404, "text/plain; charset=utf-8", "not found\n");
    return 404;
  }
  if (std::strcmp(ri->request_method, "GET") != 0 &&
      std::strcmp(ri->request_method, "HEAD") != 0) {
    Send(conn, 405, "text/plain; charset=utf-8", "method not allowed\n",
         {{"Allow", "GET, HEAD"}});
    return 405;
  }
  Send(conn, 200, asset->content_type,
       std::strcmp(ri->request_method, "HEAD") == 0 ? "" : asset->body,
       {{"Cache-Control", "no-cache"},
        {"Content-Security-Policy",
         "default-src 'self'; style-src 'self'; script-src 'self'; "
         "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"},
        {"Referrer-Policy", "no-referrer"}});
  return 200;
}

int HttpGateway::HandleApi(mg_connection* conn, void* self) {
  auto* gateway = static_cast<HttpGateway*>(self);
  if (!CheckHost(conn, gateway->loopback_only_)) return 1;
  gateway->ServeApi(conn);
  return 1;  // Answered (civetweb uses the status it was sent).
}

void HttpGateway::ServeApi(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string uri = ri->local_uri ? ri->local_uri : "";
  absl::string_view path = uri;
  const std::string method = ri->request_method;
  if (!absl::ConsumePrefix(&path, kApiPrefix) || !(path.empty() || path.front() == '/')) {
    SendError(conn, grpc::StatusCode::NOT_FOUND,
              absl::StrCat("no such endpoint: ", uri, "; the API is under /api/v1/"));
    return;
  }
  // JSON only: a cross-site form or text/plain POST (which browsers send
  // without asking) is refused; a JSON one needs a CORS preflight, which the
  // door never grants.
  if (method == "POST") {
    const char* type = mg_get_header(conn, "Content-Type");
    if (type == nullptr ||
        !absl::StartsWithIgnoreCase(absl::StripLeadingAsciiWhitespace(type),
                                    "application/json")) {
      SendError(conn, grpc::StatusCode::INVALID_ARGUMENT,
                "Content-Type: must be application/json", 415);
      return;
    }
  }
  std::vector<std::string> parts =
      absl::StrSplit(absl::StripPrefix(path, "/"), '/', absl::SkipEmpty());

  // Unary calls: deadline, credentials, then the JSON answer or the error.
  const auto call = [&](auto invoke, auto* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoMilliseconds(options_.call_timeout));
    AddAuthorization(conn, /*allow_query_token=*/false, &ctx);
    grpc::Status status = invoke(&ctx);
    if (!status.ok()) return SendStatus(conn, status, ctx);
    SendJson(conn, 200, ToJson(*response));
  };
  const auto wrong_method = [&](const char* allowed) {
    SendError(conn, grpc::StatusCode::UNIMPLEMENTED,
              absl::StrCat(method, " ", uri, ": method not allowed; use ", allowed), 405,
              {{"Allow", allowed}});
  };

  const size_t n = parts.size();
  if (n == 1 && parts[0] == "events") {
    if (method != "GET") return wrong_method("GET");
    return ServeEvents(conn);
  }
  if (n == 1 && parts[0] == "boards") {
    if (method != "GET") return wrong_method("GET");
    v1::ListBoardsResponse response;
    return call(
        [&](grpc::ClientContext* ctx) {
          return kanban_->ListBoards(ctx, v1::ListBoardsRequest(), &response);
        },
        &response);
  }
  if (n == 3 && parts[0] == "boards" && parts[2] == "tasks") {
    const std::string& board = parts[1];
    if (method == "GET") {
      v1::ListTasksRequest request;
      request.set_board(board);
      for (const std::string& value : QueryValues(ri, "status")) {
        for (absl::string_view name : absl::StrSplit(value, ',', absl::SkipEmpty())) {
          v1::Status status;
          if (!v1::Status_Parse(absl::AsciiStrToUpper(name), &status)) {
            return SendError(conn, grpc::StatusCode::INVALID_ARGUMENT,
                             absl::StrCat("status: unknown status \"", name,
                                          "\" (TRIAGE, TODO, READY, RUNNING, BLOCKED, "
                                          "REVIEW, DONE, ARCHIVED)"));
          }
          request.add_statuses(status);
        }
      }
      if (auto v = QueryValue(ri, "assignee")) request.set_assignee(*v);
      if (auto v = QueryValue(ri, "label")) request.set_label(*v);
      if (auto v = QueryValue(ri, "page_token")) request.set_page_token(*v);
      if (auto v = QueryValue(ri, "page_size")) {
        int size = 0;
        if (!absl::SimpleAtoi(*v, &size)) {
          return SendError(conn, grpc::StatusCode::INVALID_ARGUMENT,
                           "page_size: not a number");
        }
        request.set_page_size(size);
      }
      v1::ListTasksResponse response;
      return call(
          [&](grpc::ClientContext* ctx) {
            return kanban_->ListTasks(ctx, request, &response);
          },
          &response);
    }
    if (method == "POST") {
      v1::CreateTaskRequest request;
      if (!ParseBody(conn, options_.max_body_bytes, &request)) return;
      if (!PathAgrees(conn, "board", request.board(), board)) return;
      request.set_board(board);
      v1::Task response;
      return call(
          [&](grpc::ClientContext* ctx) {
            return kanban_->CreateTask(ctx, request, &response);
          },
          &response);
    }
    return wrong_method("GET, POST");
  }
  if (n == 2 && parts[0] == "tasks" && absl::EndsWith(parts[1], ":move")) {
    if (method != "POST") return wrong_method("POST");
    const std::string id(absl::StripSuffix(parts[1], ":move"));
    v1::MoveTaskRequest request;
    if (!ParseBody(conn, options_.max_body_bytes, &request)) return;
    if (!PathAgrees(conn, "task_id", request.task_id(), id)) return;
    request.set_task_id(id);
    v1::Task response;
    return call(
        [&](grpc::ClientContext* ctx) {
          return kanban_->MoveTask(ctx, request, &response);
        },
        &response);
  }
  if (n == 2 && parts[0] == "tasks") {
    if (method != "GET") return wrong_method("GET");
    v1::GetTaskRequest request;
    request.set_task_id(parts[1]);
    v1::Task response;
    return call(
        [&](grpc::ClientContext* ctx) {
          return kanban_->GetTask(ctx, request, &response);
        },
        &response);
  }
  if (n == 3 && parts[0] == "tasks" && parts[2] == "comments") {
    if (method == "GET") {
      v1::ListCommentsRequest request;
      request.set_task_id(parts[1]);
      v1::ListCommentsResponse response;
      return call(
          [&](grpc::ClientContext* ctx) {
            return kanban_->ListComments(ctx, request, &response);
          },
          &response);
    }
    if (method == "POST") {
      v1::AddCommentRequest request;
      if (!ParseBody(conn, options_.max_body_bytes, &request)) return;
      if (!PathAgrees(conn, "task_id", request.task_id(), parts[1])) return;
      request.set_task_id(parts[1]);
      v1::Comment response;
      return call(
          [&](grpc::ClientContext* ctx) {
            return kanban_->AddComment(ctx, request, &response);
          },
          &response);
    }
    return wrong_method("GET, POST");
  }
  if (n == 1 && parts[0] == "workers") {
    if (method != "GET") return wrong_method("GET");
    v1::ListWorkersRequest request;
    if (auto v = QueryValue(ri, "board")) request.set_board(*v);
    v1::ListWorkersResponse response;
    return call(
        [&](grpc::ClientContext* ctx) {
          return heartbeat_->ListWorkers(ctx, request, &response);
        },
        &response);
  }
  SendError(conn, grpc::StatusCode::NOT_FOUND,
            absl::StrCat("no such endpoint: ", method, " ", uri));
}

void HttpGateway::ServeEvents(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  v1::WatchEventsRequest request;
  if (auto v = QueryValue(ri, "board")) request.set_board(*v);
  for (const std::string& id : QueryValues(ri, "task_id")) request.add_task_ids(id);
  for (const std::string& kind : QueryValues(ri, "kind")) request.add_kinds(kind);
  // Where to start: a reconnecting browser's Last-Event-ID wins, so that it
  // resumes exactly after the last event (or bookmark) it received.
  const char* last_event_id = mg_get_header(conn, "Last-Event-ID");
  std::optional<std::string> after = QueryValue(ri, "after_seq");
  if (last_event_id != nullptr && *last_event_id != '\0') after = last_event_id;
  if (after.has_value()) {
    int64_t seq = 0;
    if (!absl::SimpleAtoi(*after, &seq)) {
      return SendError(conn, grpc::StatusCode::INVALID_ARGUMENT,
                       last_event_id != nullptr ? "Last-Event-ID: not a number"
                                                : "after_seq: not a number");
    }
    request.set_after_seq(seq);
  } else if (std::optional<std::string> now = QueryValue(ri, "from_now");
             now.has_value() && (*now == "true" || *now == "1")) {
    request.set_from_now(true);
  }
  const int64_t keepalive_ms = absl::ToInt64Milliseconds(options_.keepalive);
  request.mutable_bookmark_interval()->set_seconds(keepalive_ms / 1000);
  request.mutable_bookmark_interval()->set_nanos(
      static_cast<int32_t>(keepalive_ms % 1000 * 1000000));

  grpc::ClientContext ctx;
  AddAuthorization(conn, /*allow_query_token=*/true, &ctx);
  if (absl::Status s = Register(&ctx); !s.ok()) {
    return SendError(conn, static_cast<grpc::StatusCode>(s.code()), s.message());
  }
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader =
      kanban_->WatchEvents(&ctx, request);
  v1::WatchEventsResponse response;
  // The first response (always a bookmark at least) shows the stream is
  // accepted; refusals before it are plain HTTP errors, except a compacted
  // resume point, which the page must see as an event to act on it.
  const bool started = reader->Read(&response);
  if (!started) {
    grpc::Status status = reader->Finish();
    Unregister(&ctx);
    if (status.error_code() != grpc::StatusCode::OUT_OF_RANGE) {
      return SendStatus(conn, status, ctx);
    }
    SendEventStreamHead(conn);
    EndEventStream(conn, status, ctx);
    return;
  }
  SendEventStreamHead(conn);

  // The browser waits this long before reconnecting.
  bool open = WriteChunk(conn, "retry: 1000\n\n");
  int64_t position = after.has_value() ? request.after_seq() : -1;
  do {
    std::string out;
    for (const v1::Event& event : response.events()) {
      absl::StrAppend(&out, SseEvent("", event.seq(), ToJson(event)));
      position = event.seq();
    }
    if (response.bookmark_seq() > position) {
      // Filtered-out events moved the position: resuming skips them.
      position = response.bookmark_seq();
      absl::StrAppend(&out,
                      SseEvent("bookmark", position,
                               absl::StrCat("{\"bookmarkSeq\":\"", position, "\"}")));
    } else if (response.events().empty()) {
      out = ": keep-alive\n\n";
    }
    open = open && WriteChunk(conn, out);
    if (!open) break;
  } while (reader->Read(&response));
  if (!open) ctx.TryCancel();  // The client went away.
  grpc::Status status = reader->Finish();
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    streams_.erase(&ctx);
  }
  if (!open) return;
  if (stopping) {
    status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "kanband is shutting down");
  }
  EndEventStream(conn, status, ctx);
}

}  // namespace kanban::service
