#include "cpu/select_cpu.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/thread_pool.h"

namespace aqf {
namespace {

constexpr int64_t kBlock = 4096;  // points per work item: the distance accumulator stays in L1

struct Farthest {
  float d2;
  int64_t index;
};

// Folds point c into min_d2 over one block and returns the block's farthest point.
Farthest update_block(const float* points, int64_t n, int64_t d, const float* centre, float* min_d2,
                      int64_t begin, int64_t end) {
  float acc[kBlock];
  const int64_t len = end - begin;
  std::fill(acc, acc + len, 0.0f);
  for (int64_t k = 0; k < d; ++k) {
    const float* row = points + k * n + begin;
    const float c = centre[k];
    for (int64_t i = 0; i < len; ++i) {
      const float diff = row[i] - c;
      acc[i] += diff * diff;
    }
  }
  float* m = min_d2 + begin;
  for (int64_t i = 0; i < len; ++i) m[i] = std::min(m[i], acc[i]);
  Farthest best{-1.0f, -1};
  for (int64_t i = 0; i < len; ++i) {
    if (m[i] > best.d2) best = {m[i], begin + i};  // strict: the lowest index wins a tie
  }
  return best;
}

// Adds one centre and returns the point now farthest from all centres.
Farthest add_centre(const float* points, int64_t n, int64_t d, int64_t c, float* min_d2,
                    std::vector<Farthest>& per_block) {
  std::vector<float> centre(d);
  for (int64_t k = 0; k < d; ++k) centre[k] = points[k * n + c];
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
  parallel_for(n_blocks, [&](int64_t b, int) {
    per_block[b] = update_block(points, n, d, centre.data(), min_d2, b * kBlock, std::min(n, (b + 1) * kBlock));
  });
  Farthest best{-1.0f, -1};
  for (const Farthest& f : per_block) {
    if (f.d2 > best.d2) best = f;  // blocks in index order: the lowest index wins a tie
  }
  return best;
}

}  // namespace

int64_t farthest_points_cpu(const float* points, int64_t n, int64_t d, const int64_t* seeds,
                            int64_t n_seeds, int64_t first, int64_t n_select, int64_t* out) {
  if (n_select <= 0 || n == 0) return 0;
  for (int64_t s = 0; s < n_seeds; ++s) {
    if (seeds[s] < 0 || seeds[s] >= n)
      throw std::invalid_argument("seed index " + std::to_string(seeds[s]) + " is outside the " +
                                  std::to_string(n) + " points");
  }
  if (n_seeds == 0 && (first < 0 || first >= n))
    throw std::invalid_argument("first index " + std::to_string(first) + " is outside the " + std::to_string(n) +
                                " points");
  std::vector<float> min_d2(n, std::numeric_limits<float>::infinity());
  std::vector<Farthest> per_block((n + kBlock - 1) / kBlock);
  int64_t chosen = 0;
  Farthest next{0.0f, first};
  if (n_seeds == 0) {
    out[chosen++] = first;
    next = add_centre(points, n, d, first, min_d2.data(), per_block);
  } else {
    for (int64_t s = 0; s < n_seeds; ++s) next = add_centre(points, n, d, seeds[s], min_d2.data(), per_block);
  }
  while (chosen < n_select && next.d2 > 0.0f) {
    out[chosen++] = next.index;
    next = add_centre(points, n, d, next.index, min_d2.data(), per_block);
  }
  return chosen;
}

}  // namespace aqf
