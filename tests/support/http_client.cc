#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace kanban::testing {
namespace {

// Waits until `fd` is readable or `deadline` passes; false on timeout.
bool WaitReadable(int fd, absl::Time deadline) {
  for (;;) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(ms));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

absl::StatusOr<int> ConnectLoopback(int port, const std::string& source) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (!source.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (inet_pton(AF_INET, source.c_str(), &local.sin_addr) != 1 ||
        bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      close(fd);
      return absl::InternalError(
          absl::StrCat("bind ", source, ": ", std::strerror(errno)));
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("connect 127.0.0.1:", port, ": ", std::strerror(error)));
  }
  return fd;
}

absl::StatusOr<std::unique_ptr<SseStream>> SseStream::Open(int port,
                                                           const std::string& target,
                                                           const HttpHeaders& headers,
                                                           absl::Duration timeout,
                                                           const std::string& source) {
  return OpenRequest(port, "GET", target, headers, "", timeout, source);
}

absl::StatusOr<std::unique_ptr<SseStream>> SseStream::OpenRequest(
    int port, const std::string& method, const std::string& target,
    const HttpHeaders& headers, const std::string& body, absl::Duration timeout,
    const std::string& source) {
  const absl::Time deadline = absl::Now() + timeout;
  std::unique_ptr<SseStream> s(new SseStream());
  absl::StatusOr<int> fd = ConnectLoopback(port, source);
  if (!fd.ok()) return fd.status();
  s->fd_ = *fd;
  // Host and, for a body, Content-Type: application/json unless given.
  bool has_host = false, has_type = false;
  for (const auto& [name, value] : headers) {
    has_host |= absl::EqualsIgnoreCase(name, "Host");
    has_type |= absl::EqualsIgnoreCase(name, "Content-Type");
  }
  std::string request = absl::StrCat(method, " ", target, " HTTP/1.1\r\n");
  if (!has_host) absl::StrAppend(&request, "Host: 127.0.0.1:", port, "\r\n");
  if (!has_type && method == "POST") {
    absl::StrAppend(&request, "Content-Type: application/json\r\n");
  }
  absl::StrAppend(&request, "Connection: close\r\n");
  for (const auto& [name, value] : headers)
    absl::StrAppend(&request, name, ": ", value, "\r\n");
  if (!body.empty() || method == "POST") {
    absl::StrAppend(&request, "Content-Length: ", body.size(), "\r\n");
  }
  absl::StrAppend(&request, "\r\n", body);
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n =
        send(s->fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return absl::UnavailableError("send failed");
    sent += static_cast<size_t>(n);
  }
  // The head.
  size_t end;
  while ((end = s->raw_.find("\r\n\r\n")) == std::string::npos) {
    if (!WaitReadable(s->fd_, deadline)) {
      return absl::DeadlineExceededError("no response head in time");
    }
    char buffer[4096];
    const ssize_t n = recv(s->fd_, buffer, sizeof(buffer), 0);
    if (n <= 0) return absl::InternalError(absl::StrCat("connection closed: ", s->raw_));
    s->raw_.append(buffer, static_cast<size_t>(n));
  }
  const std::string head = s->raw_.substr(0, end);
  s->raw_.erase(0, end + 4);
  std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
  std::vector<std::string> status_line =
      absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  if (status_line.size() < 2 || !absl::StartsWith(status_line[0], "HTTP/1.") ||
      !absl::SimpleAtoi(status_line[1], &s->status_)) {
    return absl::InternalError(absl::StrCat("not HTTP: ", lines[0]));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    s->headers_[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  s->chunked_ = absl::AsciiStrToLower(s->headers_["transfer-encoding"]) == "chunked";
  if (auto it = s->headers_.find("content-length");
      !s->chunked_ && it != s->headers_.end()) {
    if (!absl::SimpleAtoi(it->second, &s->remaining_)) s->remaining_ = -1;
  }
  if (method == "HEAD") s->remaining_ = 0;
  return s;
}

SseStream::~SseStream() {
  if (fd_ >= 0) close(fd_);
}

bool SseStream::Fill(absl::Time deadline) {
  for (;;) {
    // Decode what raw_ holds.
    if (!chunked_) {
      if (!raw_.empty()) {
        size_t take = raw_.size();
        if (remaining_ >= 0)
          take = std::min<size_t>(take, static_cast<size_t>(remaining_));
        body_.append(raw_, 0, take);
        raw_.erase(0, take);
        if (remaining_ >= 0) remaining_ -= static_cast<long long>(take);
        if (remaining_ == 0) ended_ = true;
        return true;
      }
      if (remaining_ == 0) {
        ended_ = true;
        return false;
      }
    } else {
      bool decoded = false;
      for (;;) {
        const size_t line_end = raw_.find("\r\n");
        if (line_end == std::string::npos) break;
        unsigned long size = std::strtoul(raw_.substr(0, line_end).c_str(), nullptr, 16);
        if (size == 0) {
          ended_ = true;
          raw_.clear();
          return decoded;
        }
        if (raw_.size() < line_end + 2 + size + 2) break;
        body_.append(raw_, line_end + 2, size);
        raw_.erase(0, line_end + 2 + size + 2);
        decoded = true;
      }
      if (decoded) return true;
    }
    if (ended_ || !WaitReadable(fd_, deadline)) return false;
    char buffer[8192];
    const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n <= 0) {
      ended_ = true;
      return false;
    }
    raw_.append(buffer, static_cast<size_t>(n));
  }
}

std::optional<SseEvent> SseStream::Next(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    // One block: up to the first blank line.
    size_t end;
    while ((end = body_.find("\n\n")) != std::string::npos) {
      const std::string block = body_.substr(0, end);
      body_.erase(0, end + 2);
      SseEvent event;
      bool any = false;
      for (absl::string_view line : absl::StrSplit(block, '\n')) {
        if (absl::StartsWith(line, ":")) {
          ++comments_;
          continue;
        }
        const size_t colon = line.find(':');
        absl::string_view field = line.substr(0, colon);
        absl::string_view value =
            colon == absl::string_view::npos ? "" : line.substr(colon + 1);
        absl::ConsumePrefix(&value, " ");
        if (field == "event") {
          event.event = std::string(value);
        } else if (field == "id") {
          event.id = std::string(value);
        } else if (field == "data") {
          if (any && !event.data.empty()) event.data += "\n";
          event.data += std::string(value);
        } else {
          continue;  // retry: and unknown fields.
        }
        any = true;
      }
      if (any) return event;
    }
    if (!Fill(deadline)) return std::nullopt;
  }
}

std::string SseStream::RestOfBody(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!ended_ && Fill(deadline)) {
  }
  std::string out = std::move(body_);
  body_.clear();
  return out;
}

absl::StatusOr<HttpResponse> HttpFetch(int port, const std::string& method,
                                       const std::string& target,
                                       const HttpHeaders& headers,
                                       const std::string& body, absl::Duration timeout,
                                       const std::string& source) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<std::unique_ptr<SseStream>> stream =
      SseStream::OpenRequest(port, method, target, headers, body, timeout, source);
  if (!stream.ok()) return stream.status();
  HttpResponse response;
  response.status = (*stream)->status();
  response.headers = (*stream)->headers();
  response.body = (*stream)->RestOfBody(deadline - absl::Now());
  return response;
}

}  // namespace kanban::testing
