// Printing a scenario's result: a ghz-like text summary, or one JSON object
// with ghz's `-O json` field names (durations in nanoseconds) plus kanban's
// own fields (check_rps, ratio_to_check, scenario figures).
#ifndef KANBAN_CLIENT_BENCH_REPORT_H_
#define KANBAN_CLIENT_BENCH_REPORT_H_

#include <string>
#include <vector>

#include "client/bench/stats.h"

namespace kanban::bench {

// A scenario figure beyond ghz's: `json` is its JSON value (a number, or a
// quoted string), `text` how the summary prints it.
struct Extra {
  std::string key;
  std::string json;
  std::string text;
};
Extra NumberExtra(const std::string& key, double value, const std::string& text);
Extra StringExtra(const std::string& key, const std::string& value);

struct Result {
  std::string scenario;
  std::string setup;  // One line: server, mode, load.
  Summary summary;
  bool has_check = false;  // Health/Check with the same load was run.
  Summary check;
  std::vector<Extra> extras;
  // Problems that make the run a failure besides non-OK calls (say, a
  // watcher that missed events).
  std::vector<std::string> problems;

  double ratio_to_check() const;
  // True when every call was OK, something completed, and no problems.
  bool passed() const;
};

// The ghz-style text summary.
std::string FormatText(const Result& result);

// `result` as one JSON object, without a trailing newline.
std::string FormatJson(const Result& result);

// JSON string literal for `s` (quotes included).
std::string JsonQuote(const std::string& s);

// "12.34 ms" / "1.23 s" / "456 us", as ghz prints durations.
std::string HumanDuration(absl::Duration d);

}  // namespace kanban::bench

#endif  // KANBAN_CLIENT_BENCH_REPORT_H_
