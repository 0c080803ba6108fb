// The arguments of kanband's subcommands (`kanband token create`,
// `kanband migrate`): --name=value or --name value, nothing else.
#ifndef KANBAN_SERVICE_COMMAND_FLAGS_H_
#define KANBAN_SERVICE_COMMAND_FLAGS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace kanban::service {

// The flags in argv[first..argc), in order, as (name, value); '_' in a name
// reads as '-'. INVALID_ARGUMENT for an argument that is not a flag or a
// flag without a value.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseCommandFlags(
    int argc, char** argv, int first);

}  // namespace kanban::service

#endif  // KANBAN_SERVICE_COMMAND_FLAGS_H_
