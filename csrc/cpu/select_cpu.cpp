#include "cpu/select_cpu.h"
#include "cpu/kernels.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/thread_pool.h"

namespace aqf {
namespace AQF_CPU_KERNELS_NS {  // compiled once per CPU level: cpu/kernels.h
namespace {

constexpr int64_t kBlock = 2048;  // points per block: the distance accumulator stays in L1

struct Farthest {
  float d2;
  int64_t index;  // the caller's index of the point
};

// Farther first; of equal distances, the lower index: the choice does not depend on the order of
// the blocks or on the threads.
bool farther(const Farthest& a, const Farthest& b) { return a.d2 > b.d2 || (a.d2 == b.d2 && a.index < b.index); }

// The points reordered so that each block of kBlock is compact (a k-d tree's leaf order: split
// at the median of the widest dimension until a part fits a block), dimension-major, with each
// block's bounding box. A new centre then updates only the blocks its distance can reach.
struct Blocks {
  int64_t n, d, n_blocks;
  std::vector<int64_t> order;  // [n]: caller's index of each reordered point
  std::vector<float> coords;   // [d, n] reordered
  std::vector<float> lo, hi;   // [n_blocks, d]
};

void split(const float* points, int64_t n, int64_t d, int64_t* begin, int64_t* end) {
  const int64_t count = end - begin;
  if (count <= kBlock) return;
  int64_t widest = 0;
  float widest_span = -1.0f;
  for (int64_t k = 0; k < d; ++k) {
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (int64_t* p = begin; p != end; ++p) {
      lo = std::min(lo, points[k * n + *p]);
      hi = std::max(hi, points[k * n + *p]);
    }
    if (hi - lo > widest_span) widest_span = hi - lo, widest = k;
  }
  // Split on a multiple of kBlock so that every block but the last is full.
  const int64_t half = ((count / 2 + kBlock - 1) / kBlock) * kBlock;
  int64_t* mid = begin + std::min(half, count);
  const float* axis = points + widest * n;
  std::nth_element(begin, mid, end, [axis](int64_t a, int64_t b) { return axis[a] < axis[b] || (axis[a] == axis[b] && a < b); });
  split(points, n, d, begin, mid);
  split(points, n, d, mid, end);
}

Blocks make_blocks(const float* points, int64_t n, int64_t d) {
  Blocks b{n, d, (n + kBlock - 1) / kBlock, std::vector<int64_t>(n), std::vector<float>(d * n), {}, {}};
  std::iota(b.order.begin(), b.order.end(), int64_t(0));
  split(points, n, d, b.order.data(), b.order.data() + n);
  b.lo.assign(b.n_blocks * d, std::numeric_limits<float>::infinity());
  b.hi.assign(b.n_blocks * d, -std::numeric_limits<float>::infinity());
  for (int64_t k = 0; k < d; ++k) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = points[k * n + b.order[i]];
      b.coords[k * n + i] = v;
      float& lo = b.lo[(i / kBlock) * d + k];
      float& hi = b.hi[(i / kBlock) * d + k];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  return b;
}

// Folds the centre into min_d2 over block `blk` and returns the block's farthest point.
Farthest update_block(const Blocks& b, const float* centre, float* min_d2, int64_t blk) {
  float acc[kBlock];
  const int64_t begin = blk * kBlock, len = std::min(b.n, begin + kBlock) - begin;
  std::fill(acc, acc + len, 0.0f);
  for (int64_t k = 0; k < b.d; ++k) {
    const float* row = b.coords.data() + k * b.n + begin;
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
    const Farthest f{m[i], b.order[begin + i]};
    if (farther(f, best)) best = f;
  }
  return best;
}

// A lower bound of the squared distance from the centre to any point of block `blk`, shrunk by a
// margin far above the rounding of the distances themselves, so that a skipped block is one whose
// every point would have kept its min_d2.
float block_bound(const Blocks& b, const float* centre, int64_t blk) {
  float s = 0.0f;
  for (int64_t k = 0; k < b.d; ++k) {
    const float c = centre[k], lo = b.lo[blk * b.d + k], hi = b.hi[blk * b.d + k];
    const float gap = c < lo ? lo - c : (c > hi ? c - hi : 0.0f);
    s += gap * gap;
  }
  return s * (1.0f - 1e-4f);
}

// Adds the point at reordered position p as a centre; returns the point now farthest from all.
Farthest add_centre(const Blocks& b, int64_t p, float* min_d2, std::vector<Farthest>& per_block) {
  std::vector<float> centre(b.d);
  for (int64_t k = 0; k < b.d; ++k) centre[k] = b.coords[k * b.n + p];
  parallel_for(b.n_blocks, [&](int64_t blk, int) {
    if (block_bound(b, centre.data(), blk) > per_block[blk].d2) return;  // no point gets closer
    per_block[blk] = update_block(b, centre.data(), min_d2, blk);
  });
  Farthest best{-1.0f, -1};
  for (const Farthest& f : per_block) {
    if (farther(f, best)) best = f;
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
  const Blocks b = make_blocks(points, n, d);
  std::vector<int64_t> position(n);  // caller's index -> reordered position
  for (int64_t i = 0; i < n; ++i) position[b.order[i]] = i;
  std::vector<float> min_d2(n, std::numeric_limits<float>::infinity());
  std::vector<Farthest> per_block(b.n_blocks, Farthest{std::numeric_limits<float>::infinity(), -1});
  int64_t chosen = 0;
  Farthest next{0.0f, first};
  if (n_seeds == 0) {
    out[chosen++] = first;
    next = add_centre(b, position[first], min_d2.data(), per_block);
  } else {
    for (int64_t s = 0; s < n_seeds; ++s) next = add_centre(b, position[seeds[s]], min_d2.data(), per_block);
  }
  while (chosen < n_select && next.d2 > 0.0f) {
    out[chosen++] = next.index;
    next = add_centre(b, position[next.index], min_d2.data(), per_block);
  }
  return chosen;
}

}  // namespace AQF_CPU_KERNELS_NS
}  // namespace aqf
