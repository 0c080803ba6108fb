// Command-line parsing for kanbanctl: flags declared per command (plus the
// global ones), accepted as `--flag value` or `--flag=value` anywhere on the
// line, and checked for type before any command runs.
#ifndef KANBAN_CLIENT_KANBANCTL_ARGS_H_
#define KANBAN_CLIENT_KANBANCTL_ARGS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kanban::client {

// What a flag's value must look like; checked while parsing.
enum class FlagKind {
  kBool,      // Takes no value: `--json`.
  kString,    // Any text.
  kInt32,     // A decimal integer that fits in 32 bits.
  kInt64,     // A decimal integer that fits in 64 bits.
  kSeconds,   // A positive decimal number of seconds: `2`, `0.5`.
  kDuration,  // A non-negative duration: `60s`, `100ms`, `1m30s`; a bare number
              // counts seconds.
};

// One accepted flag, named without the leading dashes.
struct FlagSpec {
  const char* name;
  FlagKind kind;
};

// The flags and positional arguments of one command line, already checked
// against their FlagSpecs. Repeating a flag keeps every value in order.
class ParsedArgs {
 public:
  void AddFlag(const std::string& name, std::string value);
  void AddPositional(std::string arg);

  // True when the flag appeared at least once.
  bool Has(absl::string_view name) const;
  // The last value given for the flag; `fallback` when absent.
  std::string Get(absl::string_view name, const std::string& fallback = "") const;
  // Every value given for the flag, in command-line order.
  std::vector<std::string> GetAll(absl::string_view name) const;
  // The last value as a number; nullopt when absent. Only call these for
  // flags declared kInt32 / kInt64 / kSeconds / kDuration (the parser
  // validated them).
  std::optional<int32_t> GetInt32(absl::string_view name) const;
  std::optional<int64_t> GetInt64(absl::string_view name) const;
  std::optional<double> GetSeconds(absl::string_view name) const;
  std::optional<absl::Duration> GetDuration(absl::string_view name) const;

  // Arguments that are not flags, in order, without the command name.
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>, std::less<>> flags_;
  std::vector<std::string> positional_;
};

// A parsed command line: `command` is empty when none was given.
struct CommandLine {
  std::string command;
  ParsedArgs args;
};

// Returns the flags of the named command, or nullptr when there is no such
// command.
using CommandFlagsLookup =
    std::function<const std::vector<FlagSpec>*(absl::string_view command)>;

// Parses `args` (argv without the program name). The first positional
// argument names the command; `global_flags` are accepted everywhere, the
// command's own flags only after its name. `-h` means `--help`, and `--`
// makes every later argument positional. Returns INVALID_ARGUMENT with a
// message fit for the user on an unknown command or flag, a missing value,
// or a value of the wrong kind.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                             const std::vector<FlagSpec>& global_flags,
                                             const CommandFlagsLookup& command_flags);

}  // namespace kanban::client

#endif  // KANBAN_CLIENT_KANBANCTL_ARGS_H_
