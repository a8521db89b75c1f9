// Fingerprints of float32 rows and their grouping into classes of identical rows.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common/row_hash.h"

namespace aqf {

// The fingerprint of one row, and whether all its values are finite.
RowHash hash_row(const float* row, int64_t n, bool* finite);

// rows: [n_rows, n]; hashes: [n_rows] out; finite: [n_rows] out.
void hash_rows_cpu(const float* rows, int64_t n_rows, int64_t n, RowHash* hashes, uint8_t* finite);

// Assigns class ids in order of first appearance, across successive calls (streaming).
class ClassIndex {
 public:
  // ids: [count] out
  void assign(const RowHash* hashes, int64_t count, int64_t* ids);
  int64_t n_classes() const { return static_cast<int64_t>(map_.size()); }

 private:
  struct Hasher {
    size_t operator()(const RowHash& h) const { return static_cast<size_t>(h.lo); }
  };
  struct Equal {
    bool operator()(const RowHash& a, const RowHash& b) const { return a.lo == b.lo && a.hi == b.hi; }
  };
  std::unordered_map<RowHash, int64_t, Hasher, Equal> map_;
};

}  // namespace aqf
