// A tiny HTTP/1.1 client over a raw socket, for tests of kanband's HTTP door:
// one request per connection ("Connection: close"), chunked bodies decoded,
// and a reader for text/event-stream responses that hands out one
// Server-Sent Event at a time. Loopback (127.0.0.1) only; no TLS, no
// redirects. Not thread-safe: one object per thread.
#ifndef KANBAN_TESTS_SUPPORT_HTTP_CLIENT_H_
#define KANBAN_TESTS_SUPPORT_HTTP_CLIENT_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kanban::testing {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // Names in lowercase.
  std::string body;                            // Chunked encoding removed.
  // The value of header `name` (lowercase), or "".
  std::string Header(const std::string& name) const;
};

// Sends one request to 127.0.0.1:`port` and reads the whole response.
// UNAVAILABLE when the connection fails, DEADLINE_EXCEEDED after `timeout`,
// INTERNAL for a response that is not HTTP. A non-empty `source` (another
// loopback address, "127.0.0.2") is the client's own address, so that a
// test can be a second client as the server sees it.
absl::StatusOr<HttpResponse> HttpFetch(int port, const std::string& method,
                                       const std::string& target,
                                       const HttpHeaders& headers = {},
                                       const std::string& body = "",
                                       absl::Duration timeout = absl::Seconds(30),
                                       const std::string& source = "");

// A TCP connection to 127.0.0.1:`port` from `source` (as HttpFetch; ""
// lets the kernel choose): the descriptor, for tests that speak HTTP
// badly on purpose. The caller closes it.
absl::StatusOr<int> ConnectLoopback(int port, const std::string& source = "");

// One Server-Sent Event: the fields of one blank-line-terminated block.
struct SseEvent {
  std::string event;              // "" for the default ("message").
  std::optional<std::string> id;  // Set when the block had an id: line.
  std::string data;               // data: lines joined with "\n".
};

// A GET whose response is read as it arrives.
class SseStream {
 public:
  // Sends the request and reads the response head. Errors as HttpFetch.
  static absl::StatusOr<std::unique_ptr<SseStream>> Open(
      int port, const std::string& target, const HttpHeaders& headers = {},
      absl::Duration timeout = absl::Seconds(30), const std::string& source = "");
  // Any request, read the same way (HttpFetch uses it).
  static absl::StatusOr<std::unique_ptr<SseStream>> OpenRequest(
      int port, const std::string& method, const std::string& target,
      const HttpHeaders& headers, const std::string& body, absl::Duration timeout,
      const std::string& source = "");
  ~SseStream();  // Closes the connection.

  int status() const { return status_; }
  const std::map<std::string, std::string>& headers() const { return headers_; }

  // The next event; nullopt when the body ended (ended() is then true) or
  // nothing came within `timeout`. Comment lines (": ...") are counted,
  // not returned.
  std::optional<SseEvent> Next(absl::Duration timeout = absl::Seconds(30));
  bool ended() const { return ended_; }
  int comments() const { return comments_; }
  // The whole body read so far when the response is not a stream (errors).
  std::string RestOfBody(absl::Duration timeout = absl::Seconds(30));

 private:
  SseStream() = default;
  // Reads more bytes into the decoded body; false on end, error or timeout.
  bool Fill(absl::Time deadline);

  int fd_ = -1;
  int status_ = 0;
  std::map<std::string, std::string> headers_;
  bool chunked_ = false;
  long long remaining_ = -1;  // Content-Length left, when not chunked; -1: to EOF.
  std::string raw_;           // Bytes read but not yet decoded.
  std::string body_;          // Decoded body not yet parsed into events.
  bool ended_ = false;
  int comments_ = 0;
};

}  // namespace kanban::testing

#endif  // KANBAN_TESTS_SUPPORT_HTTP_CLIENT_H_
