// A persistent pool of worker threads for the CPU kernels. parallel_for hands out items by an
// atomic counter, so uneven items balance themselves; small jobs run inline on the caller.
#pragma once
#include <cstdint>
#include <functional>

namespace aqf {

// Number of threads the CPU kernels use: AQF_NUM_THREADS if set, else the hardware threads.
int num_threads();
void set_num_threads(int n);

// Calls fn(item, thread_index) for item in [0, n_items); thread_index < num_threads().
// Exceptions thrown by fn are rethrown on the caller (the first one wins).
void parallel_for(int64_t n_items, const std::function<void(int64_t, int)>& fn);

}  // namespace aqf
