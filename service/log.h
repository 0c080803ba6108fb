// kanband's one logging approach: one line per message on stderr, with a UTC
// timestamp and a level; either human-readable text (the default) or one
// JSON object per line (--log_format=json) for log shippers. Library code
// below service/ returns statuses and never logs. Thread-safe: each line is
// written with a single write(2).
#ifndef KANBAN_SERVICE_LOG_H_
#define KANBAN_SERVICE_LOG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace kanban::service {

enum class LogLevel { kDebug, kInfo, kWarning, kError };
enum class LogFormat { kText, kJson };

// Set once at start, before other threads log. Default: kText.
void SetLogFormat(LogFormat format);
// "text" or "json"; false for anything else.
bool ParseLogFormat(absl::string_view text, LogFormat* format);

// A structured field: text as `key=value` in text lines, a JSON member in
// JSON lines (a number when made from a number).
struct LogField {
  LogField(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  LogField(std::string k, const char* v) : key(std::move(k)), value(v) {}
  LogField(std::string k, int64_t v);
  LogField(std::string k, double v);
  std::string key;
  std::string value;
  bool number = false;
};

void Log(LogLevel level, absl::string_view message,
         const std::vector<LogField>& fields = {});
inline void LogInfo(absl::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarning(absl::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogError(absl::string_view m) { Log(LogLevel::kError, m); }

// Sends gRPC's own log lines (gpr_log) through Log, so that JSON logs stay
// one object per line. Call once at start.
void RouteGrpcLogs();

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_LOG_H_
