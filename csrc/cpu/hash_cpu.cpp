#include "cpu/hash_cpu.h"
#include "cpu/kernels.h"

#include "cpu/thread_pool.h"

namespace aqf {
namespace AQF_CPU_KERNELS_NS {  // compiled once per CPU level: cpu/kernels.h

RowHash hash_row(const float* row, int64_t n, bool* finite) {
  // Lane sums are order-independent, so the loop vectorizes; finiteness folds in alongside.
  uint32_t l0 = 0, l1 = 0, l2 = 0, l3 = 0;
  int nonfinite = 0;
  for (int64_t i = 0; i < n; ++i) {
    RowHashLanes one;
    one.add(row[i], static_cast<uint32_t>(i));
    l0 += one.l0;
    l1 += one.l1;
    l2 += one.l2;
    l3 += one.l3;
    nonfinite |= (canonical_bits(row[i]) & 0x7f800000u) == 0x7f800000u;
  }
  *finite = nonfinite == 0;
  RowHashLanes lanes;
  lanes.l0 = l0;
  lanes.l1 = l1;
  lanes.l2 = l2;
  lanes.l3 = l3;
  return lanes.finish(static_cast<uint32_t>(n));
}

void hash_rows_cpu(const float* rows, int64_t n_rows, int64_t n, RowHash* hashes, uint8_t* finite) {
  const int64_t chunk = 64;
  parallel_for((n_rows + chunk - 1) / chunk, [&](int64_t c, int) {
    const int64_t end = std::min(n_rows, (c + 1) * chunk);
    for (int64_t r = c * chunk; r < end; ++r) {
      bool fin;
      hashes[r] = hash_row(rows + r * n, n, &fin);
      finite[r] = fin;
    }
  });
}

}  // namespace AQF_CPU_KERNELS_NS
}  // namespace aqf
