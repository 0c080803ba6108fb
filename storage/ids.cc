#include "storage/ids.h"

#include <cstdint>

namespace kanban::storage {

std::string NewTaskId(absl::Time now, absl::BitGen& gen) {
  static constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
  uint64_t millis = static_cast<uint64_t>(absl::ToUnixMillis(now)) & ((1ULL << 48) - 1);
  uint64_t random_high = absl::Uniform<uint64_t>(gen) & ((1ULL << 16) - 1);
  uint64_t random_low = absl::Uniform<uint64_t>(gen);
  // 128 bits as (hi: 64, lo: 64); emitted 5 bits at a time, 26 characters
  // cover 130 bits, the top two of which are zero.
  unsigned __int128 value = (static_cast<unsigned __int128>(millis) << 80) |
                            (static_cast<unsigned __int128>(random_high) << 64) |
                            random_low;
  std::string id(26, '0');
  for (int i = 25; i >= 0; --i) {
    id[i] = kAlphabet[static_cast<int>(value & 31)];
    value >>= 5;
  }
  return id;
}

}  // namespace kanban::storage
