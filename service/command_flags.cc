#include "service/command_flags.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kanban::service {

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseCommandFlags(
    int argc, char** argv, int first) {
  std::vector<std::pair<std::string, std::string>> flags;
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", arg));
    }
    const size_t eq = arg.find('=');
    std::string name =
        arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    std::replace(name.begin(), name.end(), '_', '-');
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
    flags.emplace_back(std::move(name), std::move(value));
  }
  return flags;
}

}  // namespace kanban::service
