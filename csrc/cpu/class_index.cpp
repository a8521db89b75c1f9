// ClassIndex (cpu/hash_cpu.h): map bookkeeping, built once, outside the per-level kernels.
#include "cpu/hash_cpu.h"

namespace aqf {

void ClassIndex::assign(const RowHash* hashes, int64_t count, int64_t* ids) {
  for (int64_t r = 0; r < count; ++r) {
    auto it = map_.emplace(hashes[r], static_cast<int64_t>(map_.size())).first;
    ids[r] = it->second;
  }
}

}  // namespace aqf
