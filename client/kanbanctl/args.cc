#include "client/kanbanctl/args.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kanban::client {
namespace {

// "-" alone is a positional argument (it means stdin for --body-file), and
// so is anything that looks like a negative number.
bool IsFlag(const std::string& arg) {
  return arg.size() > 1 && arg[0] == '-' &&
         !std::isdigit(static_cast<unsigned char>(arg[1]));
}

// "60s", "1m30s", "0" or a bare number of seconds; nullopt for anything
// else, negative and infinite durations included.
std::optional<absl::Duration> ParseDurationValue(const std::string& value) {
  absl::Duration duration;
  double seconds;
  if (absl::SimpleAtod(value, &seconds) && std::isfinite(seconds)) {
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(value, &duration)) {
    return std::nullopt;
  }
  if (duration < absl::ZeroDuration() || duration == absl::InfiniteDuration()) {
    return std::nullopt;
  }
  return duration;
}

absl::Status CheckValue(absl::string_view name, FlagKind kind, const std::string& value) {
  bool ok = true;
  const char* expected = "";
  switch (kind) {
    case FlagKind::kBool:
    case FlagKind::kString:
      return absl::OkStatus();
    case FlagKind::kInt32: {
      int32_t parsed;
      ok = absl::SimpleAtoi(value, &parsed);
      expected = "a 32-bit integer";
      break;
    }
    case FlagKind::kInt64: {
      int64_t parsed;
      ok = absl::SimpleAtoi(value, &parsed);
      expected = "an integer";
      break;
    }
    case FlagKind::kSeconds: {
      double parsed;
      ok = absl::SimpleAtod(value, &parsed) && std::isfinite(parsed) && parsed > 0;
      expected = "a positive number of seconds";
      break;
    }
    case FlagKind::kDuration: {
      std::optional<absl::Duration> parsed = ParseDurationValue(value);
      ok = parsed.has_value();
      expected = "a duration such as 60s, 100ms or 1m30s";
      break;
    }
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, ": \"", value, "\" is not ", expected));
}

const FlagSpec* FindFlag(const std::vector<FlagSpec>& flags, absl::string_view name) {
  auto it = std::find_if(flags.begin(), flags.end(),
                         [&](const FlagSpec& f) { return name == f.name; });
  return it == flags.end() ? nullptr : &*it;
}

// One pass over the arguments; the command's flags become acceptable once
// its name has been seen.
class CommandLineParser {
 public:
  CommandLineParser(const std::vector<std::string>& args,
                    const std::vector<FlagSpec>& global_flags,
                    const CommandFlagsLookup& command_flags)
      : args_(args), accepted_(global_flags), command_flags_(command_flags) {}

  absl::StatusOr<CommandLine> Parse() {
    bool only_positional = false;
    for (next_ = 0; next_ < args_.size();) {
      const std::string& arg = args_[next_++];
      absl::Status status;
      if (!only_positional && arg == "--") {
        only_positional = true;
      } else if (only_positional || !IsFlag(arg)) {
        status = TakePositional(arg);
      } else {
        status = TakeFlag(arg);
      }
      if (!status.ok()) return status;
    }
    return std::move(line_);
  }

 private:
  absl::Status TakePositional(const std::string& arg) {
    if (!line_.command.empty()) {
      line_.args.AddPositional(arg);
      return absl::OkStatus();
    }
    const std::vector<FlagSpec>* own = command_flags_(arg);
    if (own == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown command \"", arg, "\""));
    }
    line_.command = arg;
    accepted_.insert(accepted_.end(), own->begin(), own->end());
    return absl::OkStatus();
  }

  // "--name=value", "--name value" (taking the next argument) or "--name".
  absl::Status TakeFlag(const std::string& arg) {
    // Single-dash spellings other than -h are not accepted.
    const bool long_form = arg[1] == '-' || arg == "-h";
    const std::string body = arg == "-h" ? "help" : arg.substr(2);
    const size_t equals = body.find('=');
    const std::string name = body.substr(0, equals);
    const FlagSpec* spec = long_form ? FindFlag(accepted_, name) : nullptr;
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag ", arg.substr(0, arg.find('=')),
          line_.command.empty() ? "" : absl::StrCat(" for \"", line_.command, "\"")));
    }
    std::string value;
    if (spec->kind == FlagKind::kBool) {
      if (equals != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " does not take a value"));
      }
    } else if (equals != std::string::npos) {
      value = body.substr(equals + 1);
    } else if (next_ < args_.size()) {
      value = args_[next_++];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
    if (absl::Status s = CheckValue(name, spec->kind, value); !s.ok()) return s;
    line_.args.AddFlag(name, std::move(value));
    return absl::OkStatus();
  }

  const std::vector<std::string>& args_;
  std::vector<FlagSpec> accepted_;
  const CommandFlagsLookup& command_flags_;
  size_t next_ = 0;  // Index of the next argument to read.
  CommandLine line_;
};

}  // namespace

void ParsedArgs::AddFlag(const std::string& name, std::string value) {
  flags_[name].push_back(std::move(value));
}

void ParsedArgs::AddPositional(std::string arg) { positional_.push_back(std::move(arg)); }

bool ParsedArgs::Has(absl::string_view name) const {
  return flags_.find(name) != flags_.end();
}

std::string ParsedArgs::Get(absl::string_view name, const std::string& fallback) const {
  auto it = flags_.find(name);
  return it == flags_.end() ? fallback : it->second.back();
}

std::vector<std::string> ParsedArgs::GetAll(absl::string_view name) const {
  auto it = flags_.find(name);
  return it == flags_.end() ? std::vector<std::string>{} : it->second;
}

std::optional<int32_t> ParsedArgs::GetInt32(absl::string_view name) const {
  int32_t value = 0;
  if (!Has(name) || !absl::SimpleAtoi(Get(name), &value)) return std::nullopt;
  return value;
}

std::optional<int64_t> ParsedArgs::GetInt64(absl::string_view name) const {
  int64_t value = 0;
  if (!Has(name) || !absl::SimpleAtoi(Get(name), &value)) return std::nullopt;
  return value;
}

std::optional<double> ParsedArgs::GetSeconds(absl::string_view name) const {
  double value = 0;
  if (!Has(name) || !absl::SimpleAtod(Get(name), &value)) return std::nullopt;
  return value;
}

std::optional<absl::Duration> ParsedArgs::GetDuration(absl::string_view name) const {
  if (!Has(name)) return std::nullopt;
  return ParseDurationValue(Get(name));
}

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                             const std::vector<FlagSpec>& global_flags,
                                             const CommandFlagsLookup& command_flags) {
  return CommandLineParser(args, global_flags, command_flags).Parse();
}

}  // namespace kanban::client
