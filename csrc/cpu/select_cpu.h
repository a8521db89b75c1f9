// Farthest-point selection (greedy k-center) over a point cloud: each new point is the one
// farthest from every point chosen so far. The search uses it to choose which classes of a large
// space get Fisher features, so that they cover the output-feature space.
#pragma once
#include <cstdint>

namespace aqf {

// points: [d, n] float32, dimension-major (each dimension's n coordinates contiguous, so the
// distance loop runs over points and vectorizes); seeds: [n_seeds] indices already chosen; when
// n_seeds is 0 the first choice is `first`. Writes up to n_select new indices to out: [n_select]
// and returns how many it chose (fewer when every point coincides with a chosen one). Ties go
// to the lowest index, so the result does not depend on the number of threads.
int64_t farthest_points_cpu(const float* points, int64_t n, int64_t d, const int64_t* seeds,
                            int64_t n_seeds, int64_t first, int64_t n_select, int64_t* out);

}  // namespace aqf
