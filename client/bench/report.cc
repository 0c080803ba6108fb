#include "client/bench/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace kanban::bench {
namespace {

std::string JsonNumber(double v) {
  if (v != v || v > 1e300 || v < -1e300) return "0";  // NaN, inf: not JSON.
  return absl::StrFormat("%.6g", v);
}

// ghz's fields of `s`, without the braces.
std::string GhzFields(const Summary& s) {
  std::vector<std::string> fields;
  fields.push_back(absl::StrCat("\"count\":", s.count));
  fields.push_back(absl::StrCat("\"total\":", absl::ToInt64Nanoseconds(s.total)));
  fields.push_back(absl::StrCat("\"average\":", absl::ToInt64Nanoseconds(s.average)));
  fields.push_back(absl::StrCat("\"fastest\":", absl::ToInt64Nanoseconds(s.fastest)));
  fields.push_back(absl::StrCat("\"slowest\":", absl::ToInt64Nanoseconds(s.slowest)));
  fields.push_back(absl::StrFormat("\"rps\":%.2f", s.rps));
  std::vector<std::string> items;
  for (const auto& [text, n] : s.errors)
    items.push_back(absl::StrCat(JsonQuote(text), ":", n));
  fields.push_back(
      absl::StrCat("\"errorDistribution\":{", absl::StrJoin(items, ","), "}"));
  items.clear();
  for (const auto& [code, n] : s.status_codes) {
    items.push_back(absl::StrCat(JsonQuote(code), ":", n));
  }
  fields.push_back(
      absl::StrCat("\"statusCodeDistribution\":{", absl::StrJoin(items, ","), "}"));
  items.clear();
  for (const auto& [p, d] : s.latency_distribution) {
    items.push_back(absl::StrCat("{\"percentage\":", p,
                                 ",\"latency\":", absl::ToInt64Nanoseconds(d), "}"));
  }
  fields.push_back(
      absl::StrCat("\"latencyDistribution\":[", absl::StrJoin(items, ","), "]"));
  items.clear();
  for (const Bucket& b : s.histogram) {
    items.push_back(absl::StrCat("{\"mark\":", JsonNumber(absl::ToDoubleSeconds(b.mark)),
                                 ",\"count\":", b.count,
                                 ",\"frequency\":", JsonNumber(b.frequency), "}"));
  }
  fields.push_back(absl::StrCat("\"histogram\":[", absl::StrJoin(items, ","), "]"));
  return absl::StrJoin(fields, ",");
}

void AppendSummary(const Summary& s, std::string* out) {
  absl::StrAppendFormat(out,
                        "Summary:\n"
                        "  Count:\t\t%d\n"
                        "  Total:\t\t%s\n"
                        "  Slowest:\t\t%s\n"
                        "  Fastest:\t\t%s\n"
                        "  Average:\t\t%s\n"
                        "  Requests/sec:\t%.2f\n\n",
                        s.count, HumanDuration(s.total), HumanDuration(s.slowest),
                        HumanDuration(s.fastest), HumanDuration(s.average), s.rps);
  if (!s.histogram.empty()) {
    out->append("Response time histogram:\n");
    int64_t most = 1;
    for (const Bucket& b : s.histogram) most = std::max(most, b.count);
    for (const Bucket& b : s.histogram) {
      const int bar = static_cast<int>(40 * b.count / most);
      std::string bars;
      for (int i = 0; i < bar; ++i) bars += "\u220e";
      absl::StrAppendFormat(out, "  %.3f [%d]\t|%s\n", absl::ToDoubleMilliseconds(b.mark),
                            b.count, bars);
    }
    out->append("\nLatency distribution:\n");
    for (const auto& [p, d] : s.latency_distribution) {
      absl::StrAppendFormat(out, "  %d %% in %s\n", p, HumanDuration(d));
    }
    out->append("\n");
  }
  out->append("Status code distribution:\n");
  for (const auto& [code, n] : s.status_codes) {
    absl::StrAppendFormat(out, "  [%s]\t%d responses\n", code, n);
  }
  if (!s.errors.empty()) {
    out->append("\nError distribution:\n");
    for (const auto& [text, n] : s.errors)
      absl::StrAppendFormat(out, "  [%d]\t%s\n", n, text);
  }
}

}  // namespace

Extra NumberExtra(const std::string& key, double value, const std::string& text) {
  return Extra{key, JsonNumber(value), text};
}

Extra StringExtra(const std::string& key, const std::string& value) {
  return Extra{key, JsonQuote(value), value};
}

double Result::ratio_to_check() const {
  return has_check && check.rps > 0 ? summary.rps / check.rps : 0;
}

bool Result::passed() const {
  const bool all_ok =
      summary.ok() == summary.count && summary.count > 0 && summary.rps > 0;
  const bool check_ok = !has_check || (check.ok() == check.count && check.count > 0);
  return all_ok && check_ok && problems.empty();
}

std::string HumanDuration(absl::Duration d) {
  if (d >= absl::Seconds(1)) return absl::StrFormat("%.2f s", absl::ToDoubleSeconds(d));
  if (d >= absl::Microseconds(100)) {
    return absl::StrFormat("%.2f ms", absl::ToDoubleMilliseconds(d));
  }
  return absl::StrFormat("%.2f us", absl::ToDoubleMicroseconds(d));
}

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string FormatText(const Result& r) {
  std::string out = absl::StrCat("kanban-bench ", r.scenario, ": ", r.setup, "\n\n");
  AppendSummary(r.summary, &out);
  if (!r.extras.empty()) {
    out.append("\nScenario figures:\n");
    for (const Extra& e : r.extras) {
      // JSON keys say their unit ("_ns"); the text already does.
      absl::StrAppendFormat(&out, "  %s:\t%s\n", absl::StripSuffix(e.key, "_ns"), e.text);
    }
  }
  if (r.has_check) {
    absl::StrAppendFormat(
        &out,
        "\ngrpc.health.v1.Health/Check, same server, same load:\n"
        "  Count:\t\t%d (%d OK)\n"
        "  Requests/sec:\t%.2f\n"
        "  Latency:\t\tp50 %s, p99 %s\n"
        "  Ratio %s / Check:\t%.3f\n",
        r.check.count, r.check.ok(), r.check.rps, HumanDuration(r.check.Percentile(0.5)),
        HumanDuration(r.check.Percentile(0.99)), r.scenario, r.ratio_to_check());
  }
  for (const std::string& p : r.problems) absl::StrAppend(&out, "\nPROBLEM: ", p, "\n");
  return out;
}

std::string FormatJson(const Result& r) {
  std::string out =
      absl::StrCat("{\"name\":", JsonQuote("kanban-bench " + r.scenario),
                   ",\"scenario\":", JsonQuote(r.scenario),
                   ",\"setup\":", JsonQuote(r.setup), ",", GhzFields(r.summary));
  if (r.has_check) {
    absl::StrAppend(&out, ",\"check_rps\":", absl::StrFormat("%.2f", r.check.rps),
                    ",\"ratio_to_check\":", JsonNumber(r.ratio_to_check()),
                    ",\"check\":{", GhzFields(r.check), "}");
  }
  for (const Extra& e : r.extras)
    absl::StrAppend(&out, ",", JsonQuote(e.key), ":", e.json);
  std::vector<std::string> problems;
  for (const std::string& p : r.problems) problems.push_back(JsonQuote(p));
  absl::StrAppend(&out, ",\"problems\":[", absl::StrJoin(problems, ","), "]",
                  ",\"passed\":", r.passed() ? "true" : "false", "}");
  return out;
}

}  // namespace kanban::bench
