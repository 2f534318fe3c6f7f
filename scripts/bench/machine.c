/* The machine's limits, measured now (these machines are shared and noisy): read bandwidth of a
 * streaming sum over a buffer much larger than the caches, with one thread and with all, and the
 * fp32 FMA peak with all threads. Prints `read_bandwidth_1t_gbs X`, `read_bandwidth_gbs X`,
 * `fma_peak_gflops X` lines for scripts/bench.sh.
 *   cc -O3 -march=native -fopenmp machine.c -o machine */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static double bandwidth(const float* data, size_t count, int threads) {
  double best = 0;
  for (int trial = 0; trial < 5; ++trial) {
    double start = now();
    float total = 0;
    /* 64 partial sums (4 vectors): the loads, not the adds' latency, must be the limit. */
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      float partial[64] = {0};
#pragma omp for schedule(static)
      for (size_t block = 0; block < count / 64; ++block)
#pragma omp simd
        for (int l = 0; l < 64; ++l)
          partial[l] += data[block * 64 + l];
      for (int l = 0; l < 64; ++l)
        total += partial[l];
    }
    double seconds = now() - start;
    if (total == 42.0f)
      printf(" ");
    double rate = count * sizeof(float) / seconds / 1e9;
    best = rate > best ? rate : best;
  }
  return best;
}

static double fmaPeak(int threads) {
  const long iterations = 20000000;
  double start = now(), sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
  {
    /* 16 independent accumulators of 16 lanes: enough to hide the FMA latency. */
    float acc[16][16];
    memset(acc, 0, sizeof acc);
    float a = 1.0000001f, b = 1e-7f;
    for (long it = 0; it < iterations; ++it)
      for (int j = 0; j < 16; ++j)
#pragma omp simd
        for (int l = 0; l < 16; ++l)
          acc[j][l] = acc[j][l] * a + b;
    for (int j = 0; j < 16; ++j)
      for (int l = 0; l < 16; ++l)
        sink += acc[j][l];
  }
  double seconds = now() - start;
  if (sink == 42.0)
    printf(" ");
  return 2.0 * 16 * 16 * iterations * threads / seconds / 1e9;
}

int main(void) {
  size_t count = (size_t)1 << 28; /* 1 GiB of floats */
  /* In transparent huge pages where the kernel gives them, as the compiled programs hold their
   * weights (runtime/LoadedWeights.cpp): the ceiling the same memory allows. */
  float* data = aligned_alloc((size_t)2 << 20, count * sizeof(float));
  if (!data)
    return 1;
  madvise(data, count * sizeof(float), MADV_HUGEPAGE);
  int threads = omp_get_max_threads();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < count; ++i)
    data[i] = (float)(i & 7);
  printf("threads %d\n", threads);
  printf("read_bandwidth_1t_gbs %.2f\n", bandwidth(data, count, 1));
  printf("read_bandwidth_gbs %.2f\n", bandwidth(data, count, threads));
  printf("fma_peak_gflops %.1f\n", fmaPeak(threads));
  free(data);
  return 0;
}
