// Server-made task ids: 26 lowercase Crockford base32 characters, a 48-bit
// millisecond timestamp followed by 80 random bits, so ids sort by creation
// time and do not collide in practice (the UNIQUE index catches it if they do).
#ifndef KANBAN_STORAGE_IDS_H_
#define KANBAN_STORAGE_IDS_H_

#include <string>

#include "absl/random/random.h"
#include "absl/time/time.h"

namespace kanban::storage {

// Not thread-safe in `gen`: each thread passes its own generator.
std::string NewTaskId(absl::Time now, absl::BitGen& gen);

}  // namespace kanban::storage

#endif  // KANBAN_STORAGE_IDS_H_
