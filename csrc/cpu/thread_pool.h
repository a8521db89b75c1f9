// A persistent pool of worker threads for the CPU kernels. parallel_for hands out items by an
// atomic counter, so uneven items balance themselves; small jobs run inline on the caller.
#pragma once
#include <cstdint>
#include <functional>

namespace aqf {

// Number of threads the CPU kernels use: AQF_NUM_THREADS if set, else the hardware threads.
int num_threads();
void set_num_threads(int n);

// Whether kernels called from the calling thread run all their items on it, leaving the pool idle:
// for a thread that is one of several parallel workers already, which would otherwise queue its
// kernels behind the other workers' on the one pool. Per thread, off by default; returns the
// previous setting.
bool set_calling_thread_only(bool on);

// Calls fn(item, thread_index) for item in [0, n_items); thread_index < num_threads().
// Exceptions thrown by fn are rethrown on the caller (the first one wins).
void parallel_for(int64_t n_items, const std::function<void(int64_t, int)>& fn);

}  // namespace aqf
