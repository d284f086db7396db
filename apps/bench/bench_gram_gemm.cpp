// The kernels' input-layer GEMM alone (lib/detail/packed_gram.hpp) against this machine's FMA
// peak: the upper-triangle 64 × 384 tiles the engine runs for an N × d Gram (docs/benchmarks.md,
// "MLP Gram: our packed AVX-512 Σ⁰ GEMM"), on 1 and 2 threads, and a register-only loop of
// independent 512-bit (and 256-bit) FMAs that measures how many FMA ports run per core.
//
//   bench_gram_gemm [N d]     (default 3000 784; CPU seconds, so a loaded machine inflates less)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <utility>
#include <vector>

#include "detail/packed_gram.hpp"

namespace {

double thread_cpu() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}
double process_cpu() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}
double wall() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// 12 independent accumulator chains per iteration (more than latency × ports), no memory.
void fma_peak() {
#if defined(__AVX512F__)
  const long n = 100000000;
  double best512 = 0, best256 = 0;
  for (int rep = 0; rep < 3; ++rep) {
    long m = n;
    double t = thread_cpu();
#define F(r) "vfmadd231pd %%zmm30, %%zmm31, %%" r "\n\t"
    __asm__ volatile(
        "vxorpd %%zmm30, %%zmm30, %%zmm30\n\tvxorpd %%zmm31, %%zmm31, %%zmm31\n\t"
        "1:\n\t" F("zmm0") F("zmm1") F("zmm2") F("zmm3") F("zmm4") F("zmm5") F("zmm6") F("zmm7") F("zmm8") F("zmm9")
            F("zmm10") F("zmm11") "dec %0\n\tjnz 1b\n\t"
        : "+r"(m)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm30", "xmm31");
#undef F
    best512 = std::max(best512, n * 12 * 16.0 / (thread_cpu() - t) / 1e9);
    m = n;
    t = thread_cpu();
#define F(r) "vfmadd231pd %%ymm14, %%ymm15, %%" r "\n\t"
    __asm__ volatile(
        "vxorpd %%ymm14, %%ymm14, %%ymm14\n\tvxorpd %%ymm15, %%ymm15, %%ymm15\n\t"
        "1:\n\t" F("ymm0") F("ymm1") F("ymm2") F("ymm3") F("ymm4") F("ymm5") F("ymm6") F("ymm7") F("ymm8") F("ymm9")
            F("ymm10") F("ymm11") "dec %0\n\tjnz 1b\n\t"
        : "+r"(m)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm14", "xmm15");
#undef F
    best256 = std::max(best256, n * 12 * 8.0 / (thread_cpu() - t) / 1e9);
  }
  std::printf("PEAK fma512_gflops_per_core=%.1f fma256_gflops_per_core=%.1f\n", best512, best256);
#else
  std::printf("PEAK skipped (not an AVX-512 build)\n");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  using emergent::detail::PackedRows;
  const long N = argc > 2 ? std::atol(argv[1]) : 3000, d = argc > 2 ? std::atol(argv[2]) : 784;
  const long T = 64, W = 384;  // the engine's tile (kTile × kTileCols)
  fma_peak();
  std::vector<double> x(static_cast<std::size_t>(N * d));
  std::mt19937_64 gen(1);
  std::normal_distribution<double> normal;
  for (double& v : x) v = normal(gen);
  const PackedRows p(x.data(), N, d, d);
  std::vector<std::pair<long, long>> tiles;
  double flops = 0;
  for (long bi = 0; bi * T < N; ++bi)
    for (long j0 = bi * T; j0 < N; j0 += W) {
      tiles.emplace_back(bi * T, j0);
      flops += 2.0 * ((std::min(T, N - bi * T) + 7) / 8 * 8) * ((std::min(W, N - j0) + 7) / 8 * 8) * d;
    }
  for (const int threads : {1, 2}) {
    double best_wall = 1e300, best_cpu = 1e300;
    for (int rep = 0; rep < 5; ++rep) {
      const double w = wall(), c = process_cpu();
#pragma omp parallel num_threads(threads)
      {
        std::vector<double> tile(static_cast<std::size_t>(T * W));
#pragma omp for schedule(dynamic, 1)
        for (std::size_t k = 0; k < tiles.size(); ++k)
          emergent::detail::packed_gram_tile(p, tiles[k].first, T, p, tiles[k].second, std::min(W, N - tiles[k].second),
                                             tile.data(), W);
      }
      best_wall = std::min(best_wall, wall() - w);
      best_cpu = std::min(best_cpu, process_cpu() - c);
    }
    std::printf("GEMM n=%ld d=%ld tiles=%zu threads=%d gflop=%.3f wall=%.4f cpu=%.4f gflops_wall=%.1f "
                "gflops_per_cpu_second=%.1f vectorized=%d\n",
                N, d, tiles.size(), threads, flops / 1e9, best_wall, best_cpu, flops / best_wall / 1e9,
                flops / best_cpu / 1e9, emergent::detail::packed_gram_vectorized() ? 1 : 0);
  }
  return 0;
}
