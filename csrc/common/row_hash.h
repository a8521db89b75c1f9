// A 128-bit fingerprint of a float32 row, for grouping functions whose outputs are identical bit
// for bit. NaNs are folded to one canonical pattern first (SPEC: NaN equals NaN). Four 32-bit
// lanes, each a sum over elements of a mixed (bits, position) word, vectorize on the CPU and
// reduce the same way on any device; the lanes are then mixed into two 64-bit words.
#pragma once
#include <cstdint>

#include "common/aqf_hd.h"
#include "common/fastmath.h"

namespace aqf {

struct RowHash {
  uint64_t lo, hi;
};

AQF_CPU_CODE_BEGIN

AQF_HD AQF_INLINE uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

AQF_HD AQF_INLINE uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

AQF_HD AQF_INLINE uint32_t canonical_bits(float v) {
  return v != v ? 0x7fc00000u : static_cast<uint32_t>(fm::bits_of(v));
}

struct RowHashLanes {
  uint32_t l0 = 0, l1 = 0, l2 = 0, l3 = 0;

  AQF_HD void add(float v, uint32_t i) {
    const uint32_t w = canonical_bits(v);
    l0 += mix32(w ^ (i * 0x9e3779b1u));
    l1 += mix32((w + 0x7f4a7c15u) ^ (i * 0x85ebca77u + 0x165667b1u));
    l2 += mix32((w ^ 0x27d4eb2fu) + i * 0xc2b2ae3du);
    l3 += mix32(w * 0x2545f491u + (i ^ 0x61c88647u));
  }
  AQF_HD RowHash finish(uint32_t n) const {
    const uint64_t a = (uint64_t(l0) << 32) | l1;
    const uint64_t b = (uint64_t(l2) << 32) | l3;
    return {mix64(a ^ mix64(b + n)), mix64(b ^ mix64(a + 0x9e3779b97f4a7c15ull))};
  }
};

AQF_CPU_CODE_END
}  // namespace aqf
