// kanband's one logging approach: one line per message on stderr, with a UTC
// timestamp and a level. Library code below service/ returns statuses and
// never logs. Thread-safe: each line is written with a single write(2).
#ifndef KANBAN_SERVICE_LOG_H_
#define KANBAN_SERVICE_LOG_H_

#include "absl/strings/string_view.h"

namespace kanban::service {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

void Log(LogLevel level, absl::string_view message);
inline void LogInfo(absl::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarning(absl::string_view m) { Log(LogLevel::kWarning, m); }
inline void LogError(absl::string_view m) { Log(LogLevel::kError, m); }

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_LOG_H_
