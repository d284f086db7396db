// Micro-benchmark of the ReLU-family dual on AVX-512 (lib/kernels/relu_family_avx512.hpp): CPU
// nanoseconds per entry of family_simd::dual_lanes<N> over arrays that stay in L1 (N = 1, 2, 4
// interleaved vectors), and of ActivationDual::apply on the same arrays (its validation pass and
// loads/stores included). Each lane computes (Σ', Θ') from (q1, q2, Σ, Θ) as in a kernel layer.
//
//   bench_dual [entries=512] [seconds per measurement=0.3]
//
// Output: one line per measurement, `DUAL impl=.. ns_per_entry=..` (best of 5 repeats, CPU time
// of this thread). Built against another copy of the header (e.g. an older commit's, with
// -I DIR), the same file measures that version: see docs/benchmarks.md.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "emergent/kernels/activation_dual.hpp"
#include "kernels/relu_family_avx512.hpp"

namespace {

double thread_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

struct Arrays {
  std::vector<double> q1, q2, c, t, c_out, t_out;
};

Arrays make_arrays(std::size_t n) {
  std::mt19937_64 gen(7);
  std::uniform_real_distribution<double> var(0.5, 2.0), rho(-1.0, 1.0);
  Arrays a;
  for (std::size_t i = 0; i < n; ++i) {
    const double q1 = var(gen), q2 = var(gen);
    a.q1.push_back(q1), a.q2.push_back(q2);
    a.c.push_back(rho(gen) * std::sqrt(q1 * q2)), a.t.push_back(var(gen));
  }
  a.c_out = a.c, a.t_out = a.t;
  return a;
}

#if defined(__AVX512F__)
/// One pass of dual_lanes<N> over the arrays (n a multiple of 8N), inputs kept, outputs separate.
template <int N>
__attribute__((noinline)) void lanes_pass(Arrays& a, std::size_t n) {
  const __m512d ab2 = _mm512_set1_pd(1.0), d2 = _mm512_set1_pd(1.0), cross = _mm512_setzero_pd();
  for (std::size_t i = 0; i < n; i += 8 * N) {
    __m512d q1[N], q2[N], c[N], t[N];
    for (int v = 0; v < N; ++v) {
      q1[v] = _mm512_loadu_pd(a.q1.data() + i + 8 * v), q2[v] = _mm512_loadu_pd(a.q2.data() + i + 8 * v);
      c[v] = _mm512_loadu_pd(a.c.data() + i + 8 * v), t[v] = _mm512_loadu_pd(a.t.data() + i + 8 * v);
    }
    emergent::detail::family_simd::dual_lanes<N>(q1, q2, c, t, ab2, d2, cross);
    for (int v = 0; v < N; ++v) {
      _mm512_storeu_pd(a.c_out.data() + i + 8 * v, c[v]);
      _mm512_storeu_pd(a.t_out.data() + i + 8 * v, t[v]);
    }
  }
}
#endif

template <class Pass>
double ns_per_entry(Pass pass, std::size_t n, double seconds) {
  double best = 1e300;
  for (int rep = 0; rep < 5; ++rep) {
    std::size_t passes = 0;
    const double start = thread_seconds();
    double now = start;
    while (now - start < seconds) {
      for (int k = 0; k < 64; ++k) pass();
      passes += 64;
      now = thread_seconds();
    }
    best = std::min(best, 1e9 * (now - start) / static_cast<double>(passes * n));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) / 32 * 32 : 512;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 0.3;
  Arrays a = make_arrays(n);
#if defined(__AVX512F__)
  std::printf("DUAL impl=dual_lanes<1> entries=%zu ns_per_entry=%.3f\n", n,
              ns_per_entry([&] { lanes_pass<1>(a, n); }, n, seconds));
  std::printf("DUAL impl=dual_lanes<2> entries=%zu ns_per_entry=%.3f\n", n,
              ns_per_entry([&] { lanes_pass<2>(a, n); }, n, seconds));
  std::printf("DUAL impl=dual_lanes<4> entries=%zu ns_per_entry=%.3f\n", n,
              ns_per_entry([&] { lanes_pass<4>(a, n); }, n, seconds));
#endif
  const emergent::ActivationDual relu(emergent::Activation::relu());
  // apply() works in place: each pass restores Σ and Θ first (a copy, ~0.1 ns per entry).
  std::printf("DUAL impl=ActivationDual::apply entries=%zu ns_per_entry=%.3f\n", n, ns_per_entry([&] {
    std::copy(a.c.begin(), a.c.end(), a.c_out.begin());
    std::copy(a.t.begin(), a.t.end(), a.t_out.begin());
    relu.apply(n, a.q1.data(), 1, a.q2.data(), 1, a.c_out.data(), a.t_out.data());
  }, n, seconds));
  return 0;
}
