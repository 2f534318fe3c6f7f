#include "runtime/ParallelFor.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <immintrin.h>
#include <mutex>
#include <thread>
#include <vector>

namespace gemma::rt {

namespace {

// One parallel loop: its tasks claimed one at a time from `next`; `pending` counts the workers
// that have not yet finished with it (the loop's caller returns, and the job goes away, only
// after every worker has).
struct Job {
  void* userContext;
  halide_task_t task;
  uint8_t* closure;
  int end;
  std::atomic<int> next;
  std::atomic<int> result{0};
  std::atomic<int> pending;

  void run() {
    for (int i = next.fetch_add(1, std::memory_order_relaxed); i < end;
         i = next.fetch_add(1, std::memory_order_relaxed)) {
      int status = task(userContext, i, closure);
      if (status != 0) {
        int none = 0;
        result.compare_exchange_strong(none, status);
      }
    }
  }
};

thread_local bool insideTask = false;

class Pool {
public:
  Pool() {
    int threads = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* env = std::getenv("HL_NUM_THREADS"))
      threads = std::atoi(env);
    threads = std::max(1, std::min(threads, 256));
    for (int i = 1; i < threads; ++i)
      workers_.emplace_back([this] { work(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (std::thread& worker : workers_)
      worker.join();
  }

  int run(void* userContext, halide_task_t task, int min, int size, uint8_t* closure) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || workers_.empty())
      return halide_default_do_par_for(userContext, task, min, size, closure);
    Job job;
    job.userContext = userContext;
    job.task = task;
    job.closure = closure;
    job.end = min + size;
    job.next.store(min, std::memory_order_relaxed);
    job.pending.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    job_.store(&job, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst); // publishes the job
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    insideTask = true;
    job.run();
    insideTask = false;
    while (job.pending.load(std::memory_order_acquire) > 0)
      _mm_pause();
    return job.result.load(std::memory_order_relaxed);
  }

private:
  void work() {
    insideTask = true; // a loop inside a task runs on Halide's pool
    // The generation the pool was made at (a worker may start after the first loop is out).
    uint64_t seen = 0;
    while (true) {
      // Spin for the next loop a while (a decode step's loops come every few microseconds), then
      // sleep until one comes.
      auto start = std::chrono::steady_clock::now();
      for (int spins = 0; generation_.load(std::memory_order_acquire) == seen; ++spins) {
        _mm_pause();
        if (stop_.load(std::memory_order_relaxed))
          return;
        if (spins % 256 == 0 && std::chrono::steady_clock::now() - start > kSpin) {
          std::unique_lock<std::mutex> lock(mutex_);
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          wake_.wait(lock, [&] {
            return generation_.load(std::memory_order_seq_cst) != seen || stop_.load();
          });
          sleepers_.fetch_sub(1, std::memory_order_seq_cst);
          if (stop_.load())
            return;
          break;
        }
      }
      seen = generation_.load(std::memory_order_acquire);
      Job* job = job_.load(std::memory_order_relaxed);
      job->run();
      job->pending.fetch_sub(1, std::memory_order_release); // the last touch of the job
    }
  }

  static constexpr std::chrono::milliseconds kSpin{2};
  std::vector<std::thread> workers_;
  std::mutex busy_;  // one loop at a time (another thread's loop goes to Halide's pool)
  std::mutex mutex_; // the sleepers' condition
  std::condition_variable wake_;
  std::atomic<Job*> job_{nullptr};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

} // namespace

int parallelFor(void* userContext, halide_task_t task, int min, int size, uint8_t* closure) {
  if (insideTask)
    return halide_default_do_par_for(userContext, task, min, size, closure);
  if (size <= 0)
    return 0;
  if (size == 1)
    return task(userContext, min, closure);
  static Pool pool;
  return pool.run(userContext, task, min, size, closure);
}

void installParallelFor() {
  static const bool installed = [] {
    halide_set_custom_do_par_for(parallelFor);
    return true;
  }();
  (void)installed;
}

} // namespace gemma::rt
