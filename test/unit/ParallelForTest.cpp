// The runtime's thread pool for the kernels' parallel loops (runtime/ParallelFor.cpp): every task
// of a loop runs exactly once whatever the sizes, one failing task's status comes back, a loop
// inside a task and a loop from a second thread while the pool is busy go to the fallback
// (Halide's default pool in a program; a serial stand-in here, which counts its calls), and many
// loops in a row (the workers spinning, then sleeping between bursts) never lose one.
#include "runtime/ParallelFor.h"

#include <atomic>
#include <chrono>
#include <gtest/gtest.h>
#include <thread>
#include <vector>

namespace {

std::atomic<int> fallbackCalls{0};

} // namespace

// Halide's runtime, which a compiled program links: the default pool (serial here) and the hook.
extern "C" int halide_default_do_par_for(void* user_context, halide_task_t task, int min, int size,
                                         uint8_t* closure) {
  fallbackCalls.fetch_add(1);
  int result = 0;
  for (int i = min; i < min + size; ++i)
    if (int status = task(user_context, i, closure); status != 0)
      result = status;
  return result;
}
extern "C" halide_do_par_for_t halide_set_custom_do_par_for(halide_do_par_for_t) {
  return nullptr;
}

namespace gemma::rt {
namespace {

struct Counts {
  std::vector<std::atomic<int>> runs;
  explicit Counts(int n) : runs(static_cast<size_t>(n)) {}
};

int countTask(void*, int i, uint8_t* closure) {
  reinterpret_cast<Counts*>(closure)->runs[static_cast<size_t>(i)].fetch_add(1);
  return 0;
}

TEST(ParallelFor, EveryTaskRunsExactlyOnce) {
  for (int size : {0, 1, 2, 3, 7, 64, 1000, 4097}) {
    for (int min : {0, 5}) {
      Counts counts(min + size);
      ASSERT_EQ(parallelFor(nullptr, countTask, min, size, reinterpret_cast<uint8_t*>(&counts)), 0);
      for (int i = 0; i < min + size; ++i)
        EXPECT_EQ(counts.runs[static_cast<size_t>(i)].load(), i < min ? 0 : 1)
            << "task " << i << " of [" << min << ", " << min + size << ")";
    }
  }
}

TEST(ParallelFor, AFailingTaskStatusComesBack) {
  auto failAt17 = [](void*, int i, uint8_t*) { return i == 17 ? -3 : 0; };
  EXPECT_EQ(parallelFor(nullptr, failAt17, 0, 100, nullptr), -3);
  EXPECT_EQ(parallelFor(nullptr, failAt17, 18, 100, nullptr), 0);
}

TEST(ParallelFor, ALoopInsideATaskRunsOnTheFallback) {
  static std::atomic<int> inner{0};
  inner = 0;
  int before = fallbackCalls.load();
  auto outer = [](void*, int, uint8_t*) {
    return parallelFor(
        nullptr, [](void*, int, uint8_t*) { return inner.fetch_add(1), 0; }, 0, 10, nullptr);
  };
  EXPECT_EQ(parallelFor(nullptr, outer, 0, 8, nullptr), 0);
  EXPECT_EQ(inner.load(), 80);
  EXPECT_GE(fallbackCalls.load() - before, 8); // (and the outer loop too, with no workers)
}

TEST(ParallelFor, TwoThreadsLoopsAllComplete) {
  auto loops = [](int seed) {
    for (int round = 0; round < 200; ++round) {
      int size = 1 + (seed * 31 + round * 17) % 300;
      Counts counts(size);
      if (parallelFor(nullptr, countTask, 0, size, reinterpret_cast<uint8_t*>(&counts)) != 0)
        return false;
      for (auto& run : counts.runs)
        if (run.load() != 1)
          return false;
    }
    return true;
  };
  bool first = false, second = false;
  std::thread a([&] { first = loops(1); }), b([&] { second = loops(2); });
  a.join();
  b.join();
  EXPECT_TRUE(first);
  EXPECT_TRUE(second);
}

TEST(ParallelFor, BurstsAfterTheWorkersSleepLoseNoLoop) {
  for (int burst = 0; burst < 3; ++burst) {
    for (int loop = 0; loop < 2000; ++loop) {
      Counts counts(16);
      ASSERT_EQ(parallelFor(nullptr, countTask, 0, 16, reinterpret_cast<uint8_t*>(&counts)), 0);
      for (auto& run : counts.runs)
        ASSERT_EQ(run.load(), 1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20)); // past the workers' spin
  }
}

} // namespace
} // namespace gemma::rt
