#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace aqf {
namespace {

int default_threads() {
  if (const char* env = std::getenv("AQF_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// Waits on cv until pred() holds. Through wait_for, which libstdc++ implements in its headers
// (pthread_cond_clockwait), not condition_variable::wait(lock), which GCC 12's libstdc++ exports
// under a new symbol version (GLIBCXX_3.4.30): the module then loads with the libstdc++ of older
// distributions, as its manylinux tag promises.
template <class Pred>
void wait_for_condition(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Pred pred) {
  while (!pred()) cv.wait_for(lock, std::chrono::hours(1));
}

// A kernel that calls parallel_for from inside a pool worker runs its items inline instead of
// waiting on the pool it is part of.
thread_local bool inside_pool = false;
thread_local bool calling_thread_only = false;

class Pool {
 public:
  explicit Pool(int n_threads) : n_threads_(n_threads) {
    for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  int size() const { return n_threads_; }

  void run(int64_t n_items, const std::function<void(int64_t, int)>& fn) {
    std::lock_guard<std::mutex> one_job_at_a_time(job_mutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &fn;
      n_items_ = n_items;
      next_.store(0);
      error_ = nullptr;
      active_ = n_threads_ - 1;
      ++generation_;
    }
    wake_.notify_all();
    work(0);
    inside_pool = false;
    std::unique_lock<std::mutex> lock(mutex_);
    wait_for_condition(done_, lock, [this] { return active_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work(int thread_index) {
    inside_pool = true;
    for (int64_t i = next_.fetch_add(1); i < n_items_; i = next_.fetch_add(1)) {
      try {
        (*job_)(i, thread_index);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
        next_.store(n_items_);  // stop handing out items
      }
    }
  }

  void worker_loop(int thread_index) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wait_for_condition(wake_, lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
      }
      work(thread_index);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--active_ == 0) done_.notify_one();
    }
  }

  const int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex job_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t n_items_ = 0;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;
  int active_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
};

std::mutex pool_mutex;
std::unique_ptr<Pool> pool;
int requested_threads = 0;

Pool& get_pool() {
  std::lock_guard<std::mutex> lock(pool_mutex);
  if (!pool) pool = std::make_unique<Pool>(requested_threads > 0 ? requested_threads : default_threads());
  return *pool;
}

}  // namespace

int num_threads() { return get_pool().size(); }

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(pool_mutex);
  requested_threads = std::max(1, n);
  pool.reset();
}

bool set_calling_thread_only(bool on) {
  const bool before = calling_thread_only;
  calling_thread_only = on;
  return before;
}

void parallel_for(int64_t n_items, const std::function<void(int64_t, int)>& fn) {
  if (n_items <= 0) return;
  if (calling_thread_only || inside_pool || n_items == 1 || get_pool().size() == 1) {
    for (int64_t i = 0; i < n_items; ++i) fn(i, 0);
    return;
  }
  get_pool().run(n_items, fn);
}

}  // namespace aqf
