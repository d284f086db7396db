// The pixel-diagonal path of the kernel engine: convolutions (any filter and padding) and
// activations, then flatten, without avgpools. A conv moves both pixels of a pair by the same tap,
// so offset 0 (a == b) is conserved and the flatten readout (1/P)·Σ_a Σ_aa needs only the P
// diagonal pairs (Novak et al. 2019 Sec. 3; Arora et al. 2019):
//   Σ'_aa = W²/(FH·FW)·Σ_taps Σ_{a+s, a+s} + B²,   Θ'_aa = Σ'_aa + W²/(FH·FW)·Σ_taps Θ_{a+s, a+s},
// then the activation's dual at (q1_a, q2_a, Σ_aa) (docs/conventions.md §2).
//
// Eight partner points x_j run in the 8 lanes of a vector against one point x_i: every map is
// pixel-major with the partners innermost ([pixel][8]) and a ring of zeros (or of the wrapped map,
// for circular convs) around it, so a window sum is aligned vector adds of neighbouring pixels,
// q2 (the partners' pixel variances) is one load and q1 one broadcast. A conv followed by a
// ReLU-family activation runs in one pass per output row, four pixels at a time: the window sum
// (for 3×3 the column sums of the three input rows, in registers; other filters an H pass into
// one row first), the update and the dual (family_simd::dual_lanes, the arithmetic of
// ActivationDual::apply) in registers. The levels of the recursion are made row by row (rows
// route) or, with circular convs, as whole maps (maps route): DiagonalWorkspace. Lanes the
// vector dual does not take (zero variance, extreme magnitudes) go through ActivationDual::apply
// one by one; other activations, and builds without AVX-512, take ActivationDual::apply on the 8
// lanes of a pixel.
// Scaled rows (rows route, a 3×3 conv and one ReLU-family activation with a ≠ b): the rows hold
// Σ/μ and Θ/μ, μ = (a − b)²/(2π), folded into the next conv's W²/9 and the readout, and the dual
// is family_simd::dual_lanes_rinv with 1/√(q1q2) = (1/√q1)·(1/√q2) from the per-point 1/√q of
// the records (Engine::rinv_): no square root of q1q2 and no snap test on the common path, the
// c ≥ 0 form after the first conv, the first conv's window sums from the inputs (one channel),
// and the window sums of the next four pixels beside the duals of the current four.
// Each lane's arithmetic is its own, so an entry's bits depend neither on its group, nor on the
// thread count or the memory cap.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <tuple>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "detail/parallel.hpp"
#include "kernels/kernel_engine.hpp"
#include "kernels/relu_family_avx512.hpp"

namespace emergent::detail {
namespace {

constexpr int kL = DiagonalWorkspace::kLanes;
constexpr Eigen::Index kRowsPerUnit = 32;  // rows x_i per scheduling unit (one group of partners)

inline int wrap(int i, int n) { return ((i % n) + n) % n; }

// The position of pixel (h, w) of a map in a workspace array (in doubles).
inline std::size_t at(const DiagonalWorkspace& ws, int h, int w) {
  return (static_cast<std::size_t>(h + ws.halo) * ws.ld + static_cast<std::size_t>(w + ws.halo)) * kL;
}

// After writing the h × w interior of an array, its ring of zeros is still the ring of a map
// at least as large; otherwise the write went over it.
inline void note_interior(int* ring, int h, int w) {
  if (ring[0] < h || ring[1] < w) ring[0] = ring[1] = -1;
}

// The halo of an h × w map before a conv reads it: zeros (kept from an earlier fill when `ring`
// says so) or, for a circular conv, the map wrapped around both axes.
void prepare_halo(const DiagonalWorkspace& ws, double* a, int* ring, int h, int w, bool circular) {
  const int B = ws.halo;
  if (B == 0) return;
  if (!circular && ring[0] == h && ring[1] == w) return;
  for (int r = -B; r < h + B; ++r) {
    const bool inside_row = r >= 0 && r < h;
    for (int c = -B; c < w + B; ++c) {
      if (inside_row && c >= 0 && c < w) {
        c = w - 1;  // skip the interior
        continue;
      }
      double* dst = a + at(ws, r, c);
      if (circular) {
        const double* src = a + at(ws, wrap(r, h), wrap(c, w));
        for (int l = 0; l < kL; ++l) dst[l] = src[l];
      } else {
        for (int l = 0; l < kL; ++l) dst[l] = 0.0;
      }
    }
  }
  ring[0] = circular ? -1 : h;
  ring[1] = circular ? -1 : w;
}

#if defined(__AVX512F__)
// One output row of a conv and the ReLU-family dual after it (conv = true: h/g are the H-pass
// rows of Σ/Θ, the W pass sums `taps` neighbours), or the dual alone on a row of a map (conv =
// false: h/g are the row of Σ/Θ itself, updated in place).
struct LaneRow {
  const double* h;
  const double* g;
  double* so;
  double* to;
  const double* q1;  // x_i's variances along the row
  const double* q2;  // the partners' variances along the row, [pixel][8]
  int taps;
  bool t_zero;  // Θ is zero (first conv): Θ' = Σ'
  const double* rs[3];  // 3×3 convs: the three input rows of Σ and Θ (from column −1), summed in registers
  const double* rt[3];
  __m512d scale, b2, ab2, d2, cross;
  __mmask8 self, wanted;
  bool bounded;  // every q1 and q2 in [1e-139, 1e139]: plain_lanes reduces to a finite covariance
  const ActivationDual* dual;
};

// plain_lanes when q1, q2 ∈ [1e-139, 1e139] (so q1, q2 > 0 and q1·q2 ∈ (1e-280, 1e280)): c finite.
__attribute__((always_inline)) inline __mmask8 finite_lanes(__m512d c) {
#if defined(__AVX512DQ__)
  return static_cast<__mmask8>(~_mm512_fpclass_pd_mask(c, 0x99));  // not NaN, not ±∞
#else
  return _mm512_cmp_pd_mask(_mm512_abs_pd(c), _mm512_set1_pd(std::numeric_limits<double>::infinity()), _CMP_LT_OQ);
#endif
}

template <int N, bool conv, int kTaps, bool t_zero, bool direct = false>
__attribute__((always_inline)) inline void lane_pixels(const LaneRow& r, int p) {
  __m512d a[N] = {}, b[N] = {}, sv[N] = {}, tv[N] = {};
  __mmask8 ok[N] = {};
  bool rare = false;
  const int taps = kTaps > 0 ? kTaps : r.taps;
  if (direct) {  // 3×3: the column sums (a + b) + c of the N + 2 columns, then the window, in registers
    __m512d cs[N + 2] = {}, ct[N + 2] = {};
    const std::size_t c0 = static_cast<std::size_t>(p) * kL;
#pragma GCC unroll 6
    for (int k = 0; k < N + 2; ++k) {
      const std::size_t c = c0 + static_cast<std::size_t>(k) * kL;
      cs[k] = _mm512_add_pd(_mm512_add_pd(_mm512_load_pd(r.rs[0] + c), _mm512_load_pd(r.rs[1] + c)),
                            _mm512_load_pd(r.rs[2] + c));
      if (!t_zero)
        ct[k] = _mm512_add_pd(_mm512_add_pd(_mm512_load_pd(r.rt[0] + c), _mm512_load_pd(r.rt[1] + c)),
                              _mm512_load_pd(r.rt[2] + c));
    }
#pragma GCC unroll 4
    for (int v = 0; v < N; ++v) {
      sv[v] = _mm512_fmadd_pd(_mm512_add_pd(_mm512_add_pd(cs[v], cs[v + 1]), cs[v + 2]), r.scale, r.b2);
      tv[v] = t_zero ? sv[v]
                     : _mm512_fmadd_pd(_mm512_add_pd(_mm512_add_pd(ct[v], ct[v + 1]), ct[v + 2]), r.scale, sv[v]);
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) {
    const std::size_t o = static_cast<std::size_t>(p + v) * kL;
    if (direct) {
    } else if (conv) {
      const double* h = r.h + o;
      __m512d hsum = _mm512_load_pd(h);
#pragma GCC unroll 4
      for (int sw = 1; sw < taps; ++sw) hsum = _mm512_add_pd(hsum, _mm512_load_pd(h + sw * kL));
      sv[v] = _mm512_fmadd_pd(hsum, r.scale, r.b2);
      if (t_zero) {
        tv[v] = sv[v];
      } else {
        const double* g = r.g + o;
        __m512d gsum = _mm512_load_pd(g);
#pragma GCC unroll 4
        for (int sw = 1; sw < taps; ++sw) gsum = _mm512_add_pd(gsum, _mm512_load_pd(g + sw * kL));
        tv[v] = _mm512_fmadd_pd(gsum, r.scale, sv[v]);
      }
    } else {
      sv[v] = _mm512_load_pd(r.h + o);
      tv[v] = _mm512_load_pd(r.g + o);
    }
    a[v] = _mm512_set1_pd(r.q1[p + v]);
    b[v] = _mm512_load_pd(r.q2 + o);
    sv[v] = _mm512_mask_mov_pd(sv[v], r.self, a[v]);  // a pixel against itself: exactly collinear
    ok[v] = r.bounded ? finite_lanes(sv[v]) : family_simd::plain_lanes(a[v], b[v], sv[v]);
    rare |= (r.wanted & ~ok[v]) != 0;
  }
  if (__builtin_expect(rare, 0)) {  // zero variance, extreme magnitudes: the scalar path
    for (int v = 0; v < N; ++v) {
      const std::size_t o = static_cast<std::size_t>(p + v) * kL;
      _mm512_store_pd(r.so + o, sv[v]);
      _mm512_store_pd(r.to + o, tv[v]);
      const unsigned fix = r.wanted & ~ok[v];
      for (int l = 0; l < kL; ++l)
        if (fix >> l & 1u) r.dual->apply(1, r.q1 + p + v, 0, r.q2 + o + l, 0, r.so + o + l, r.to + o + l);
      ok[v] |= static_cast<__mmask8>(~r.wanted);  // the lanes nobody reads take the vector result
    }
  }
  family_simd::dual_lanes<N>(a, b, sv, tv, r.ab2, r.d2, r.cross);
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) {
    const std::size_t o = static_cast<std::size_t>(p + v) * kL;
    if (rare) {
      _mm512_mask_store_pd(r.so + o, ok[v], sv[v]);
      _mm512_mask_store_pd(r.to + o, ok[v], tv[v]);
    } else {
      _mm512_store_pd(r.so + o, sv[v]);
      _mm512_store_pd(r.to + o, tv[v]);
    }
  }
}

// One output row of a 3×3 conv and the ReLU-family activation after it, written divided by μ
// (Level::scaled): the window sums of lane_pixels<direct>, then dual_lanes_rinv with 1/√(q1q2) =
// (1/√q1)·(1/√q2) from the per-point 1/√q of the records. The row's vector constants (W²/9·λ_in,
// B², κ + π, κ) travel as arguments, in registers.
struct ScaledRow {
  const double* rs[3];  // the three input rows of Σ/λ_in and Θ/λ_in, from column −1
  const double* rt[3];
  const double* xs[3];  // products: the three input rows of x_i and of the group, from column −1
  const double* xg[3];
  double* so;
  double* to;
  double* acc;  // a row of the last level: the readout's sums (4 vectors of Σ, then 4 of Θ), added to in
                // place of so/to (dual_lanes_rinv's accumulate); nullptr otherwise
  const double* q1;  // x_i's variances along the row and their 1/√q
  const double* r1;
  const double* q2;  // the partners', [pixel][8]
  const double* r2;
  __mmask8 self, wanted;
  bool bounded;  // every q1 and q2 in [1e-139, 1e139]
  bool quick;    // bounded: the vectors may skip the lane checks
  double inv_mu;
  const ActivationDual* dual;
};

// The column sums (a + b) + c of the three input rows at input column k − 1 (rows from column −1).
__attribute__((always_inline)) inline __m512d column_sum(const double* const* rows, int k) {
  const std::size_t c = static_cast<std::size_t>(k) * kL;
  return _mm512_add_pd(_mm512_add_pd(_mm512_load_pd(rows[0] + c), _mm512_load_pd(rows[1] + c)),
                       _mm512_load_pd(rows[2] + c));
}

// The same of Σ⁰ = x_a·x'_a (one channel), from the inputs: x₀x'₀ + x₁x'₁ + x₂x'₂ by two fmas.
__attribute__((always_inline)) inline __m512d product_sum(const double* const* xs, const double* const* xg, int k) {
  const std::size_t c = static_cast<std::size_t>(k) * kL;
  __m512d acc = _mm512_mul_pd(_mm512_set1_pd(xs[0][k]), _mm512_load_pd(xg[0] + c));
  acc = _mm512_fmadd_pd(_mm512_set1_pd(xs[1][k]), _mm512_load_pd(xg[1] + c), acc);
  return _mm512_fmadd_pd(_mm512_set1_pd(xs[2][k]), _mm512_load_pd(xg[2] + c), acc);
}

// Column k of the row's Σ input: from the inputs (products) or from the Σ rows.
template <bool products>
__attribute__((always_inline)) inline __m512d sigma_column(const ScaledRow& r, int k) {
  if constexpr (products) return product_sum(r.xs, r.xg, k);
  else return column_sum(r.rs, k);
}

// Σ' and Θ' of pixels p … p + N − 1 from the column sums cs/ct[0 … N + 1] of input columns
// p − 1 … p + N, and the per-pixel inputs of the dual. Neighbouring pixels share the sum of their
// two common columns, P = cs[2m + 1] + cs[2m + 2]: pixel p + 2m gets cs[2m] + P, pixel p + 2m + 1
// gets P + cs[2m + 3] (a pixel's grouping depends only on its place in the row).
template <int N, bool t_zero>
__attribute__((always_inline)) inline void window_sums(__m512d scale, __m512d b2, const __m512d* cs, const __m512d* ct,
                                                       __m512d* sv, __m512d* tv) {
#pragma GCC unroll 2
  for (int m = 0; 2 * m < N; ++m) {
    const __m512d ps = _mm512_add_pd(cs[2 * m + 1], cs[2 * m + 2]);
    sv[2 * m] = _mm512_fmadd_pd(_mm512_add_pd(cs[2 * m], ps), scale, b2);
    if (2 * m + 1 < N) sv[2 * m + 1] = _mm512_fmadd_pd(_mm512_add_pd(ps, cs[2 * m + 3]), scale, b2);
    if (t_zero) {
      tv[2 * m] = sv[2 * m];
      if (2 * m + 1 < N) tv[2 * m + 1] = sv[2 * m + 1];
    } else {
      const __m512d pt = _mm512_add_pd(ct[2 * m + 1], ct[2 * m + 2]);
      tv[2 * m] = _mm512_fmadd_pd(_mm512_add_pd(ct[2 * m], pt), scale, sv[2 * m]);
      if (2 * m + 1 < N) tv[2 * m + 1] = _mm512_fmadd_pd(_mm512_add_pd(pt, ct[2 * m + 3]), scale, sv[2 * m + 1]);
    }
  }
}

// The per-pixel inputs of the dual: q1 (broadcast), q2 and 1/√(q1q2) = (1/√q1)·(1/√q2).
template <int N>
__attribute__((always_inline)) inline void dual_inputs(const ScaledRow& r, int p, __m512d* a, __m512d* b, __m512d* rr) {
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) {
    const std::size_t o = static_cast<std::size_t>(p + v) * kL;
    a[v] = _mm512_set1_pd(r.q1[p + v]);
    b[v] = _mm512_load_pd(r.q2 + o);
    rr[v] = _mm512_mul_pd(_mm512_set1_pd(r.r1[p + v]), _mm512_load_pd(r.r2 + o));
  }
}

// The constants of a scaled row, in registers: W²/9·λ_in, B², κ + π, κ, and κ + π − ψ_j.
struct ScaledConstants {
  __m512d scale, b2, kappa_up, kappa_down;
  family_simd::UpTable up;
};

// Vectors that dual_lanes_rinv<N, false> handed back (a snapped or special lane among them), and
// every vector of a row that may not skip the checks: the lane checks of lane_pixels, then the
// exact dual (the same bits on the open lanes). Recomputes its inputs from the rows, so the
// common path keeps them in registers.
template <int N, bool t_zero, bool nonneg, bool products, bool sum>
__attribute__((noinline)) void scaled_rare(const ScaledRow& r, int p, const ScaledConstants& k) {
  __m512d cs[N + 2] = {}, ct[N + 2] = {};
  for (int m = 0; m < N + 2; ++m) {
    cs[m] = sigma_column<products>(r, p + m);
    if (!t_zero) ct[m] = column_sum(r.rt, p + m);
  }
  __m512d sv[N] = {}, tv[N] = {}, a[N] = {}, b[N] = {}, rr[N] = {}, co[N] = {}, to[N] = {};
  window_sums<N, t_zero>(k.scale, k.b2, cs, ct, sv, tv);
  dual_inputs<N>(r, p, a, b, rr);
  __mmask8 ok[N] = {};
  bool rare = false;
  for (int v = 0; v < N; ++v) {
    sv[v] = _mm512_mask_mov_pd(sv[v], r.self, a[v]);  // a pixel against itself: exactly collinear
    ok[v] = r.bounded ? finite_lanes(sv[v]) : family_simd::plain_lanes(a[v], b[v], sv[v]);
    rare |= (r.wanted & ~ok[v]) != 0;
  }
  if (rare) {  // zero variance, extreme magnitudes: the scalar path, then divided by μ like the rest
    for (int v = 0; v < N; ++v) {
      const std::size_t o = static_cast<std::size_t>(p + v) * kL;
      _mm512_store_pd(r.so + o, sv[v]);
      _mm512_store_pd(r.to + o, tv[v]);
      const unsigned fix = r.wanted & ~ok[v];
      for (int l = 0; l < kL; ++l)
        if (fix >> l & 1u) {
          r.dual->apply(1, r.q1 + p + v, 0, r.q2 + o + l, 0, r.so + o + l, r.to + o + l);
          r.so[o + l] *= r.inv_mu;
          r.to[o + l] *= r.inv_mu;
        }
      ok[v] |= static_cast<__mmask8>(~r.wanted);
    }
  }
  if constexpr (sum) {
    // The lanes the vector dual takes are summed as the common path sums them; the ones
    // ActivationDual::apply made add their outputs.
    for (int v = 0; v < N; ++v) co[v] = _mm512_load_pd(r.acc + v * kL), to[v] = _mm512_load_pd(r.acc + (4 + v) * kL);
    __m512d cs_sum[N] = {}, ts_sum[N] = {};
    for (int v = 0; v < N; ++v) cs_sum[v] = co[v], ts_sum[v] = to[v];
    family_simd::dual_lanes_rinv<N, true, nonneg, false, true>(a, b, rr, sv, tv, cs_sum, ts_sum, k.kappa_up,
                                                               k.kappa_down, k.up);
    for (int v = 0; v < N; ++v) {
      const std::size_t o = static_cast<std::size_t>(p + v) * kL;
      const __mmask8 fixed = static_cast<__mmask8>(~ok[v]);
      if (fixed) {
        cs_sum[v] = _mm512_mask_add_pd(cs_sum[v], fixed, co[v], _mm512_load_pd(r.so + o));
        ts_sum[v] = _mm512_mask_add_pd(ts_sum[v], fixed, to[v], _mm512_load_pd(r.to + o));
      }
      _mm512_store_pd(r.acc + v * kL, cs_sum[v]);
      _mm512_store_pd(r.acc + (4 + v) * kL, ts_sum[v]);
    }
  } else {
    family_simd::dual_lanes_rinv<N, true, nonneg>(a, b, rr, sv, tv, co, to, k.kappa_up, k.kappa_down, k.up);
    for (int v = 0; v < N; ++v) {
      const std::size_t o = static_cast<std::size_t>(p + v) * kL;
      _mm512_mask_store_pd(r.so + o, ok[v], co[v]);
      _mm512_mask_store_pd(r.to + o, ok[v], to[v]);
    }
  }
}

// Σ' and Θ' of the N pixels from p; carry_s/t hold the column sums of input columns p − 1 and p
// on entry and of p + N − 1 and p + N on return (carried from one group to the next).
template <int N, bool t_zero, bool products>
__attribute__((always_inline)) inline void scaled_windows(const ScaledRow& r, int p, const ScaledConstants& k,
                                                          __m512d* carry_s, __m512d* carry_t, __m512d* sv,
                                                          __m512d* tv) {
  __m512d cs[N + 2] = {}, ct[N + 2] = {};
  cs[0] = carry_s[0], cs[1] = carry_s[1];
  if (!t_zero) ct[0] = carry_t[0], ct[1] = carry_t[1];
#pragma GCC unroll 4
  for (int m = 2; m < N + 2; ++m) {
    cs[m] = sigma_column<products>(r, p + m);
    if (!t_zero) ct[m] = column_sum(r.rt, p + m);
  }
  carry_s[0] = cs[N], carry_s[1] = cs[N + 1];
  if (!t_zero) carry_t[0] = ct[N], carry_t[1] = ct[N + 1];
  window_sums<N, t_zero>(k.scale, k.b2, cs, ct, sv, tv);
}

// The dual of the N pixels from p, their Σ' and Θ' in sv/tv, into the output rows.
template <int N, bool t_zero, bool nonneg, bool products, bool with_self, bool sum>
__attribute__((always_inline)) inline void scaled_duals(const ScaledRow& r, int p, const ScaledConstants& k,
                                                        const __m512d* sv, const __m512d* tv) {
  __m512d a[N] = {}, b[N] = {}, rr[N] = {}, co[N] = {}, to[N] = {};
  dual_inputs<N>(r, p, a, b, rr);
  if constexpr (sum) {  // the last level: added to the readout's sums, not stored
#pragma GCC unroll 4
    for (int v = 0; v < N; ++v) co[v] = _mm512_load_pd(r.acc + v * kL), to[v] = _mm512_load_pd(r.acc + (4 + v) * kL);
    if (__builtin_expect(family_simd::dual_lanes_rinv<N, false, nonneg, with_self, true>(
                             a, b, rr, sv, tv, co, to, k.kappa_up, k.kappa_down, k.up, r.self),
                         1)) {
#pragma GCC unroll 4
      for (int v = 0; v < N; ++v) {
        _mm512_store_pd(r.acc + v * kL, co[v]);
        _mm512_store_pd(r.acc + (4 + v) * kL, to[v]);
      }
      return;
    }
    scaled_rare<N, t_zero, nonneg, products, true>(r, p, k);
    return;
  }
  if (__builtin_expect(family_simd::dual_lanes_rinv<N, false, nonneg, with_self>(a, b, rr, sv, tv, co, to, k.kappa_up,
                                                                                  k.kappa_down, k.up, r.self),
                       1)) {
#pragma GCC unroll 4
    for (int v = 0; v < N; ++v) {
      const std::size_t o = static_cast<std::size_t>(p + v) * kL;
      _mm512_store_pd(r.so + o, co[v]);
      _mm512_store_pd(r.to + o, to[v]);
    }
    return;
  }
  scaled_rare<N, t_zero, nonneg, products, false>(r, p, k);
}

// nonneg: the covariances come from a ReLU-family activation (Σ ≥ 0 but for rare exceptions).
// Software-pipelined: the window sums of the next four pixels are made beside the duals of the
// current four, so the dual's long dependency chain does not wait for them.
// Software-pipelined: the window sums of the next four pixels are made beside the duals of the
// current four, so the dual's long dependency chain does not wait for them. (A third stage, the
// dual's second half of the previous four beside the first half of the current ones, was
// slower: the carried state spills.)
template <bool t_zero, bool nonneg, bool products, bool with_self, bool sum>
void scaled_row_of(const ScaledRow& r, int n, const ScaledConstants& constants) {
  static_assert(t_zero || !products, "Σ⁰ from the inputs comes with Θ⁰ = 0");
  const ScaledConstants k = constants;  // a local copy: the row's stores cannot alias it
  int p = 0;
  if (r.quick) {
    __m512d carry_s[2] = {sigma_column<products>(r, 0), sigma_column<products>(r, 1)}, carry_t[2] = {};
    if (!t_zero) carry_t[0] = column_sum(r.rt, 0), carry_t[1] = column_sum(r.rt, 1);
    __m512d sv[4] = {}, tv[4] = {};
    if (n >= 4) scaled_windows<4, t_zero, products>(r, 0, k, carry_s, carry_t, sv, tv);
    for (; p + 8 <= n; p += 4) {
      __m512d nsv[4] = {}, ntv[4] = {};
      scaled_windows<4, t_zero, products>(r, p + 4, k, carry_s, carry_t, nsv, ntv);
      scaled_duals<4, t_zero, nonneg, products, with_self, sum>(r, p, k, sv, tv);
      for (int v = 0; v < 4; ++v) sv[v] = nsv[v], tv[v] = ntv[v];
    }
    if (p + 4 <= n) {
      scaled_duals<4, t_zero, nonneg, products, with_self, sum>(r, p, k, sv, tv);
      p += 4;
    }
    switch (n - p) {
      case 3:
        scaled_windows<3, t_zero, products>(r, p, k, carry_s, carry_t, sv, tv);
        scaled_duals<3, t_zero, nonneg, products, with_self, sum>(r, p, k, sv, tv);
        break;
      case 2:
        scaled_windows<2, t_zero, products>(r, p, k, carry_s, carry_t, sv, tv);
        scaled_duals<2, t_zero, nonneg, products, with_self, sum>(r, p, k, sv, tv);
        break;
      case 1:
        scaled_windows<1, t_zero, products>(r, p, k, carry_s, carry_t, sv, tv);
        scaled_duals<1, t_zero, nonneg, products, with_self, sum>(r, p, k, sv, tv);
        break;
      default: break;
    }
  } else {  // unbounded variances: the same groups of pixels as above, so the same sums
    for (; p + 4 <= n; p += 4) scaled_rare<4, t_zero, nonneg, products, sum>(r, p, k);
    switch (n - p) {
      case 3: scaled_rare<3, t_zero, nonneg, products, sum>(r, p, k); break;
      case 2: scaled_rare<2, t_zero, nonneg, products, sum>(r, p, k); break;
      case 1: scaled_rare<1, t_zero, nonneg, products, sum>(r, p, k); break;
      default: break;
    }
  }
}

// x_i among the partners (its lanes get the snapped self value in the common path) or not.
template <bool t_zero, bool nonneg, bool products = false>
void scaled_row(const ScaledRow& r, int n, const ScaledConstants& k) {
  if (r.acc) {
    if (r.self) scaled_row_of<t_zero, nonneg, products, true, true>(r, n, k);
    else scaled_row_of<t_zero, nonneg, products, false, true>(r, n, k);
  } else {
    if (r.self) scaled_row_of<t_zero, nonneg, products, true, false>(r, n, k);
    else scaled_row_of<t_zero, nonneg, products, false, false>(r, n, k);
  }
}

// By value: a local copy the row's stores cannot alias, so its constants stay in registers.
template <bool conv, int kTaps, bool t_zero, bool direct>
void lane_row_of(const LaneRow row, int n) {
  int p = 0;
  for (; p + 4 <= n; p += 4) lane_pixels<4, conv, kTaps, t_zero, direct>(row, p);
  switch (n - p) {
    case 3: lane_pixels<3, conv, kTaps, t_zero, direct>(row, p); break;
    case 2: lane_pixels<2, conv, kTaps, t_zero, direct>(row, p); break;
    case 1: lane_pixels<1, conv, kTaps, t_zero, direct>(row, p); break;
    default: break;
  }
}

template <bool conv, int kTaps, bool direct = false>
void lane_row(const LaneRow& r, int n) {
  if (conv && r.t_zero) lane_row_of<conv, kTaps, true, direct>(r, n);
  else lane_row_of<conv, kTaps, false, direct>(r, n);
}

LaneRow lane_row_setup(const FamilyCoefficients& f, const ActivationDual& dual, unsigned self, unsigned wanted,
                       bool bounded) {
  LaneRow r{};
  r.bounded = bounded;
  r.ab2 = _mm512_set1_pd(f.ab2);
  r.d2 = _mm512_set1_pd(f.d2);
  r.cross = _mm512_set1_pd(f.cross);
  r.self = static_cast<__mmask8>(self);
  r.wanted = static_cast<__mmask8>(wanted);
  r.dual = &dual;
  return r;
}
#endif

// hs[k] = Σ_{sh < taps} rows[sh][k] for k < n doubles: the H pass of one output row.
inline void column_sums(const double* const* rows, int taps, std::size_t n, double* hs) {
#if defined(__AVX512F__)
  if (taps == 3) {
    const double* a = rows[0];
    const double* b = rows[1];
    const double* c = rows[2];
    for (std::size_t k = 0; k < n; k += kL)
      _mm512_store_pd(hs + k, _mm512_add_pd(_mm512_add_pd(_mm512_load_pd(a + k), _mm512_load_pd(b + k)),
                                            _mm512_load_pd(c + k)));
    return;
  }
#endif
  std::copy(rows[0], rows[0] + n, hs);
  for (int sh = 1; sh < taps; ++sh) {
    const double* src = rows[sh];
#pragma omp simd
    for (std::size_t k = 0; k < n; ++k) hs[k] += src[k];
  }
}

// The per-pair constants of one x_i against a group, and the row operations both routes share.
class PairRows {
 public:
  PairRows(const Plan& plan, DiagonalWorkspace& ws, const double* r1, const double* rinv1, unsigned self,
           unsigned wanted, bool bounded)
      : plan_(plan), ws_(ws), r1_(r1), rinv1_(rinv1), self_(self), wanted_(wanted), bounded_(bounded) {}

  // Output row o of conv `op` (an Wo-pixel row at so/to) from the input rows it reads,
  // ws.taps_s/ws.taps_t (from input column −before; Θ zero: t_zero; the rows hold Σ/λ_in and
  // Θ/λ_in), and the activation `act` after it in the same pass when it is of the ReLU family
  // (AVX-512); returns whether it did the activation. scaled: a 3×3 conv whose rows are written
  // divided by μ (Level::scaled, scaled_row).
  bool conv_row(const SpatialOp& op, const SpatialOp* act, bool t_zero, int o, double* so, double* to,
                double lambda_in = 1.0, const DiagonalWorkspace::Level* scaled = nullptr) const {
    const int Wo = op.aw.n_out, Fw = op.aw.filter, Fh = op.ah.filter;
    const double scale = op.w2 / (Fh * Fw) * lambda_in, b2 = op.b2;
#if defined(__AVX512F__)
    if (scaled) {
      ScaledRow r;
      for (int k = 0; k < 3; ++k) r.rs[k] = ws_.taps_s[k], r.rt[k] = ws_.taps_t[k];
      r.so = so;
      r.to = to;
      r.acc = nullptr;
      const std::size_t q0 = static_cast<std::size_t>(act->q_offset) + static_cast<std::size_t>(o) * Wo;
      r.q1 = r1_ + q0;
      r.r1 = rinv1_ + q0;
      r.q2 = ws_.q + q0 * kL;
      r.r2 = ws_.rq + q0 * kL;
      r.self = static_cast<__mmask8>(self_);
      r.wanted = static_cast<__mmask8>(wanted_);
      r.bounded = bounded_;
      r.quick = bounded_;
      r.inv_mu = scaled->inv_mu;
      r.dual = &plan_.duals[act->dual];
      const ScaledConstants k{_mm512_set1_pd(scale), _mm512_set1_pd(b2), _mm512_set1_pd(scaled->kappa + family_simd::kPi),
                              _mm512_set1_pd(scaled->kappa), family_simd::up_table(scaled->kappa)};
      // After the first conv (Θ ≠ 0) the covariances come from an activation of the family:
      // nonneg. The first conv's come from the inputs and take either sign.
      if (t_zero && ws_.products) {
        for (int sh = 0; sh < 3; ++sh) {
          const std::size_t row0 = static_cast<std::size_t>(o - op.ah.before + sh + ws_.halo) * ws_.xld +
                                   static_cast<std::size_t>(ws_.halo - op.aw.before);
          r.xs[sh] = ws_.xi + row0;
          r.xg[sh] = ws_.xp + row0 * kL;
        }
        scaled_row<true, false, true>(r, Wo, k);
      } else if (t_zero) {
        scaled_row<true, false>(r, Wo, k);
      } else {
        scaled_row<false, true>(r, Wo, k);
      }
      return true;
    }
    FamilyCoefficients family;
    const bool fuse = act && relu_family_coefficients(plan_.duals[act->dual].activation(), &family);
    const bool direct = fuse && Fh == 3 && Fw == 3;
#else
    const bool direct = false;
    (void)scaled;
#endif
    if (!direct) {  // the H pass into one row
      const std::size_t n = static_cast<std::size_t>(Wo + Fw - 1) * kL;  // the input columns one output row reads
      column_sums(ws_.taps_s.data(), Fh, n, ws_.hs);
      if (!t_zero) column_sums(ws_.taps_t.data(), Fh, n, ws_.ht);
    }
#if defined(__AVX512F__)
    if (fuse) {
      LaneRow lr = lane_row_setup(family, plan_.duals[act->dual], self_, wanted_, bounded_);
      lr.h = ws_.hs;
      lr.g = ws_.ht;
      lr.taps = Fw;
      lr.t_zero = t_zero;
      lr.scale = _mm512_set1_pd(scale);
      lr.b2 = _mm512_set1_pd(b2);
      lr.so = so;
      lr.to = to;
      lr.q1 = r1_ + act->q_offset + static_cast<std::size_t>(o) * Wo;
      lr.q2 = ws_.q + (static_cast<std::size_t>(act->q_offset) + static_cast<std::size_t>(o) * Wo) * kL;
      if (direct) {
        for (int k = 0; k < 3; ++k) lr.rs[k] = ws_.taps_s[k], lr.rt[k] = ws_.taps_t[k];
        lane_row<true, 3, true>(lr, Wo);
      } else if (Fw == 3) {
        lane_row<true, 3>(lr, Wo);
      } else {
        lane_row<true, 0>(lr, Wo);
      }
      return true;
    }
#else
    (void)act;
    (void)o;
#endif
    // W pass and Σ' = W²·𝒞[Σ] + B², Θ' = Σ' + W²·𝒞[Θ].
    for (int p = 0; p < Wo; ++p) {
      const double* hp = ws_.hs + static_cast<std::size_t>(p) * kL;
      const double* gp = ws_.ht + static_cast<std::size_t>(p) * kL;
      double* sp = so + static_cast<std::size_t>(p) * kL;
      double* tp = to + static_cast<std::size_t>(p) * kL;
#pragma omp simd
      for (int l = 0; l < kL; ++l) {
        double hsum = hp[l], gsum = t_zero ? 0.0 : gp[l];
        for (int sw = 1; sw < Fw; ++sw) {
          hsum += hp[sw * kL + l];
          if (!t_zero) gsum += gp[sw * kL + l];
        }
        const double sv = hsum * scale + b2;
        sp[l] = sv;
        tp[l] = sv + gsum * scale;
      }
    }
    return false;
  }

#if defined(__AVX512F__)
  // The fields of a scaled row of level `lv` (conv `op`, activation `act`) that do not change
  // from row to row (the row pointers are those of row 0), and its vector constants.
  void scaled_level(const DiagonalWorkspace::Level& lv, const DiagonalWorkspace::Level& in, const SpatialOp& op,
                    const SpatialOp& act, ScaledRow* r, ScaledConstants* k) const {
    const std::size_t q0 = static_cast<std::size_t>(act.q_offset);
    r->q1 = r1_ + q0;
    r->r1 = rinv1_ + q0;
    r->q2 = ws_.q + q0 * kL;
    r->r2 = ws_.rq + q0 * kL;
    r->self = static_cast<__mmask8>(self_);
    r->wanted = static_cast<__mmask8>(wanted_);
    r->bounded = bounded_;
    r->quick = bounded_;
    r->inv_mu = lv.inv_mu;
    r->dual = &plan_.duals[act.dual];
    *k = ScaledConstants{_mm512_set1_pd(op.w2 / (op.ah.filter * op.aw.filter) * in.lambda), _mm512_set1_pd(op.b2),
                         _mm512_set1_pd(lv.kappa + family_simd::kPi), _mm512_set1_pd(lv.kappa),
                         family_simd::up_table(lv.kappa)};
  }
#endif

  // Activation `op` on row h (W pixels) of its input map, in place.
  void activation_row(const SpatialOp& op, int h, int W, double* srow, double* trow) const {
    const ActivationDual& dual = plan_.duals[op.dual];
    const double* q1 = r1_ + op.q_offset + static_cast<std::size_t>(h) * W;
    const double* q2 = ws_.q + (static_cast<std::size_t>(op.q_offset) + static_cast<std::size_t>(h) * W) * kL;
#if defined(__AVX512F__)
    FamilyCoefficients family;
    if (relu_family_coefficients(dual.activation(), &family)) {
      LaneRow lr = lane_row_setup(family, dual, self_, wanted_, bounded_);
      lr.h = lr.so = srow;
      lr.g = lr.to = trow;
      lr.q1 = q1;
      lr.q2 = q2;
      lane_row<false, 1>(lr, W);
      return;
    }
#endif
    for (int w = 0; w < W; ++w) {
      double* sp = srow + static_cast<std::size_t>(w) * kL;
      for (int l = 0; l < kL; ++l)
        if (self_ >> l & 1u) sp[l] = q1[w];  // a pixel against itself: exactly collinear
      dual.apply(kL, q1 + w, 0, q2 + static_cast<std::size_t>(w) * kL, 1, sp, trow + static_cast<std::size_t>(w) * kL);
    }
  }

  // Σ⁰ on row h of the input map: Σ⁰_aa = x_a·x'_a / C.
  void input_row(const double* x, int h, double* srow) const {
    const int W = plan_.in_w, C = plan_.in_c;
    const double inv = 1.0 / C;
#if defined(__AVX512F__)
    // Locals: the vector stores may alias any member (__m512d is may_alias).
    const double* a = x + static_cast<std::size_t>(h) * W * C;
    const double* b = ws_.x + static_cast<std::size_t>(h) * W * C * kL;
    if (C == 1) {
      for (int w = 0; w < W; ++w)
        _mm512_store_pd(srow + static_cast<std::size_t>(w) * kL,
                        _mm512_mul_pd(_mm512_set1_pd(a[w]), _mm512_load_pd(b + static_cast<std::size_t>(w) * kL)));
      return;
    }
    const __m512d vinv = _mm512_set1_pd(inv);
    for (int w = 0; w < W; ++w) {
      const double* aw = a + static_cast<std::size_t>(w) * C;
      const double* bw = b + static_cast<std::size_t>(w) * C * kL;
      __m512d acc = _mm512_mul_pd(_mm512_set1_pd(aw[0]), _mm512_load_pd(bw));
      for (int c = 1; c < C; ++c) acc = _mm512_fmadd_pd(_mm512_set1_pd(aw[c]), _mm512_load_pd(bw + c * kL), acc);
      _mm512_store_pd(srow + static_cast<std::size_t>(w) * kL, _mm512_mul_pd(acc, vinv));
    }
#else
    for (int w = 0; w < W; ++w) {
      const std::size_t p = static_cast<std::size_t>(h) * W + w;
      const double* a = x + p * C;
      const double* b = ws_.x + p * C * kL;
      double* sp = srow + static_cast<std::size_t>(w) * kL;
      for (int l = 0; l < kL; ++l) {
        double acc = 0;
        for (int c = 0; c < C; ++c) acc += a[c] * b[c * kL + l];
        sp[l] = acc * inv;
      }
    }
#endif
  }

 private:
  const Plan& plan_;
  DiagonalWorkspace& ws_;
  const double* r1_;
  const double* rinv1_;
  unsigned self_, wanted_;
  bool bounded_;
};

// All pixel variances of a record in [1e-139, 1e139] (see finite_lanes).
bool bounded_record(const double* q, std::size_t n) {
  bool ok = true;
  for (std::size_t k = 0; k < n; ++k) ok &= q[k] >= 1e-139 && q[k] <= 1e139;
  return ok;
}

// The rows route: level l's row r is made when the next level needs it, from the rows of level
// l − 1 it reads (rows outside the map read the zero row).
class RowPipeline {
 public:
  RowPipeline(const Plan& plan, DiagonalWorkspace& ws, const PairRows& pair, const double* x)
      : plan_(plan), ws_(ws), pair_(pair), x_(x) {
#if defined(__AVX512F__)
    for (std::size_t l = 1; l < ws_.levels.size() && l < kScaledLevels; ++l) {
      const DiagonalWorkspace::Level& lv = ws_.levels[l];
      if (!lv.scaled) continue;
      pair_.scaled_level(lv, ws_.levels[l - 1], plan_.spatial[static_cast<std::size_t>(lv.conv)],
                         plan_.spatial[static_cast<std::size_t>(lv.acts_begin)], &scaled_[l], &constants_[l]);
      scaled_[l].acc = l + 1 == ws_.levels.size() ? acc_ : nullptr;  // the last level: summed as it is made
      summed_ = summed_ || scaled_[l].acc;
    }
#endif
  }

  void run(double* ss, double* st) {
    const int last = static_cast<int>(ws_.levels.size()) - 1;
    const DiagonalWorkspace::Level& out = ws_.levels.back();
#if defined(__AVX512F__)
    if (!ws_.scaled_steps.empty()) {
      run_steps(ss, st);
      return;
    }
    // Four accumulators each (the adds' latency), in a fixed order: the same bits for every x_i.
    std::fill(acc_, acc_ + 8 * kL, 0.0);
    for (const auto& [l, r] : ws_.steps) {
      produce(l, r);
      if (l != last || summed_) continue;
      readout(row(out.s, out, r), row(out.t, out, r), out.w);
    }
    sums(ss, st);
#else
    for (int l = 0; l < kL; ++l) ss[l] = st[l] = 0.0;
    for (const auto& [l, r] : ws_.steps) {
      produce(l, r);
      if (l != last) continue;
      const double* srow = row(out.s, out, r);
      const double* trow = row(out.t, out, r);
      for (int w = 0; w < out.w; ++w) {
#pragma omp simd
        for (int l = 0; l < kL; ++l) ss[l] += srow[w * kL + l], st[l] += trow[w * kL + l];
      }
    }
#endif
    if (out.scaled)
      for (int l = 0; l < kL; ++l) ss[l] *= out.lambda, st[l] *= out.lambda;
  }

 private:
  // Column 0 of row r of a level (its ring slot; halo columns on either side).
  double* row(double* base, const DiagonalWorkspace::Level& lv, int r) const {
    // The usual ring sizes by constant divisors (a division by a variable costs ~25 cycles).
    const int slot = lv.cap == 3 ? r % 3 : lv.cap == 1 ? 0 : lv.cap == 2 ? r & 1 : r % lv.cap;
    return base + (static_cast<std::size_t>(slot) * ws_.ld + ws_.halo) * kL;
  }

#if defined(__AVX512F__)
  // Row r of a scaled level: the 3×3 conv and its activation (scaled_row) from the fields made
  // once per pair.
  void produce_scaled(int l, int r, const DiagonalWorkspace::Level& lv) {
    const DiagonalWorkspace::Level& in = ws_.levels[static_cast<std::size_t>(l) - 1];
    const SpatialOp& op = plan_.spatial[static_cast<std::size_t>(lv.conv)];
    const int bh = op.ah.before, bw = op.aw.before;
    ScaledRow row_fields = scaled_[static_cast<std::size_t>(l)];
    const std::size_t shift = static_cast<std::size_t>(r) * static_cast<std::size_t>(lv.w);
    row_fields.q1 += shift;
    row_fields.r1 += shift;
    row_fields.q2 += shift * kL;
    row_fields.r2 += shift * kL;
    row_fields.so = row(lv.s, lv, r);
    row_fields.to = row(lv.t, lv, r);
    const ScaledConstants& k = constants_[static_cast<std::size_t>(l)];
    if (l == 1 && ws_.products) {
      for (int sh = 0; sh < 3; ++sh) {
        const std::size_t row0 = static_cast<std::size_t>(r - bh + sh + ws_.halo) * ws_.xld +
                                 static_cast<std::size_t>(ws_.halo - bw);
        row_fields.xs[sh] = ws_.xi + row0;
        row_fields.xg[sh] = ws_.xp + row0 * kL;
      }
      scaled_row<true, false, true>(row_fields, lv.w, k);
      return;
    }
    for (int sh = 0; sh < 3; ++sh) {
      const int ir = r - bh + sh;
      const bool inside = ir >= 0 && ir < in.h;
      row_fields.rs[sh] = inside ? row(in.s, in, ir) - static_cast<std::size_t>(bw) * kL : ws_.zero;
      row_fields.rt[sh] = inside ? row(in.t, in, ir) - static_cast<std::size_t>(bw) * kL : ws_.zero;
    }
    if (l == 1 && in.acts_begin == in.acts_end) scaled_row<true, false>(row_fields, lv.w, k);  // Θ⁰ = 0
    else scaled_row<false, true>(row_fields, lv.w, k);
  }
#endif

#if defined(__AVX512F__)
  // run() from the steps made once (DiagonalWorkspace::scaled_steps): the same rows, row fields
  // and readout as produce()/produce_scaled, without finding them again for every x_i.
  void run_steps(double* ss, double* st) {
    std::fill(acc_, acc_ + 8 * kL, 0.0);
    const std::size_t count = ws_.scaled_steps.size();
    for (std::size_t i = 0; i < count; ++i) {
      const DiagonalWorkspace::ScaledStep& step = ws_.scaled_steps[i];
      if (step.kind < 0) {
        produce(ws_.steps[i].first, ws_.steps[i].second);
      } else {
        ScaledRow r = scaled_[static_cast<std::size_t>(step.level)];
        r.q1 += step.q0;
        r.r1 += step.q0;
        r.q2 += step.q0 * kL;
        r.r2 += step.q0 * kL;
        r.so = step.so;
        r.to = step.to;
        const ScaledConstants& k = constants_[static_cast<std::size_t>(step.level)];
        if (step.kind == 1) {
          for (int sh = 0; sh < 3; ++sh) r.xs[sh] = step.in_s[sh], r.xg[sh] = step.in_t[sh];
          scaled_row<true, false, true>(r, step.n, k);
        } else {
          for (int sh = 0; sh < 3; ++sh) r.rs[sh] = step.in_s[sh], r.rt[sh] = step.in_t[sh];
          if (step.kind == 2) scaled_row<true, false>(r, step.n, k);
          else scaled_row<false, true>(r, step.n, k);
        }
      }
      if (step.last && !summed_) readout(step.so, step.to, step.n);
    }
    sums(ss, st);
    const DiagonalWorkspace::Level& out = ws_.levels.back();
    if (out.scaled)
      for (int l = 0; l < kL; ++l) ss[l] *= out.lambda, st[l] *= out.lambda;
  }

  // The readout of one last-level row into acc_: four sums per output, pixel w into sum w mod 4
  // (the order the summed rows add their groups of four in).
  void readout(const double* srow, const double* trow, int w_count) {
    __m512d s4[4], t4[4];
    for (int k = 0; k < 4; ++k) s4[k] = _mm512_load_pd(acc_ + k * kL), t4[k] = _mm512_load_pd(acc_ + (4 + k) * kL);
    int w = 0;
    for (; w + 4 <= w_count; w += 4)
      for (int k = 0; k < 4; ++k) {
        s4[k] = _mm512_add_pd(s4[k], _mm512_load_pd(srow + (w + k) * kL));
        t4[k] = _mm512_add_pd(t4[k], _mm512_load_pd(trow + (w + k) * kL));
      }
    for (int k = 0; w < w_count; ++w, ++k) {
      s4[k] = _mm512_add_pd(s4[k], _mm512_load_pd(srow + w * kL));
      t4[k] = _mm512_add_pd(t4[k], _mm512_load_pd(trow + w * kL));
    }
    for (int k = 0; k < 4; ++k) _mm512_store_pd(acc_ + k * kL, s4[k]), _mm512_store_pd(acc_ + (4 + k) * kL, t4[k]);
  }

  // The readout's totals, (a0 + a1) + (a2 + a3) per output, in a fixed order.
  void sums(double* ss, double* st) const {
    __m512d s4[4], t4[4];
    for (int k = 0; k < 4; ++k) s4[k] = _mm512_load_pd(acc_ + k * kL), t4[k] = _mm512_load_pd(acc_ + (4 + k) * kL);
    _mm512_storeu_pd(ss, _mm512_add_pd(_mm512_add_pd(s4[0], s4[1]), _mm512_add_pd(s4[2], s4[3])));
    _mm512_storeu_pd(st, _mm512_add_pd(_mm512_add_pd(t4[0], t4[1]), _mm512_add_pd(t4[2], t4[3])));
  }
#endif

  void produce(int l, int r) {
    DiagonalWorkspace::Level& lv = ws_.levels[static_cast<std::size_t>(l)];
#if defined(__AVX512F__)
    if (lv.scaled && static_cast<std::size_t>(l) < kScaledLevels) {
      produce_scaled(l, r, lv);
      return;
    }
#endif
    double* srow = row(lv.s, lv, r);
    double* trow = row(lv.t, lv, r);
    int act = lv.acts_begin;
    if (l == 0) {
      pair_.input_row(x_, r, srow);
      if (act < lv.acts_end) std::fill(trow, trow + static_cast<std::size_t>(lv.w) * kL, 0.0);  // Θ⁰ = 0
    } else {
      const DiagonalWorkspace::Level& in = ws_.levels[static_cast<std::size_t>(l) - 1];
      const SpatialOp& op = plan_.spatial[static_cast<std::size_t>(lv.conv)];
      const int Fh = op.ah.filter, bh = op.ah.before, bw = op.aw.before;
      const bool t_zero = l == 1 && in.acts_begin == in.acts_end;  // Θ⁰ = 0 and no activation on it
      for (int sh = 0; sh < Fh; ++sh) {
        const int ir = r - bh + sh;
        const bool inside = ir >= 0 && ir < in.h;
        ws_.taps_s[sh] = inside ? row(in.s, in, ir) - static_cast<std::size_t>(bw) * kL : ws_.zero;
        ws_.taps_t[sh] = inside ? row(in.t, in, ir) - static_cast<std::size_t>(bw) * kL : ws_.zero;
      }
      const SpatialOp* next = act < lv.acts_end ? &plan_.spatial[static_cast<std::size_t>(act)] : nullptr;
      if (pair_.conv_row(op, next, t_zero, r, srow, trow, in.lambda, lv.scaled ? &lv : nullptr)) ++act;
    }
    for (; act < lv.acts_end; ++act)
      pair_.activation_row(plan_.spatial[static_cast<std::size_t>(act)], r, lv.w, srow, trow);
  }

  const Plan& plan_;
  DiagonalWorkspace& ws_;
  const PairRows& pair_;
  const double* x_;
#if defined(__AVX512F__)
  static constexpr std::size_t kScaledLevels = 8;  // deeper levels take conv_row's scaled branch
  ScaledRow scaled_[kScaledLevels];                 // set for the scaled levels only
  ScaledConstants constants_[kScaledLevels];
  alignas(64) double acc_[8 * kL];  // the readout's sums (RowPipeline::readout, ScaledRow::acc)
  bool summed_ = false;             // the last level's rows add themselves to acc_ as they are made
#endif
};

}  // namespace

DiagonalWorkspace::DiagonalWorkspace(const Plan& plan) {
  for (const auto& op : plan.spatial)
    if (op.kind == OpKind::Affine) {
      for (const Axis* a : {&op.ah, &op.aw}) halo = std::max({halo, a->before, a->filter - 1 - a->before});
      taps = std::max(taps, op.ah.filter);
      rows_route = rows_route && !op.ah.circular;
    }
  ld = plan.in_w + 2 * halo;
  rows = plan.in_h + 2 * halo;
  // Levels: Σ⁰ and the activations right on it, then each conv and the activations after it.
  Level lv;
  lv.h = plan.in_h;
  lv.w = plan.in_w;
  for (int k = 0; k < static_cast<int>(plan.spatial.size()); ++k) {
    const SpatialOp& op = plan.spatial[static_cast<std::size_t>(k)];
    if (op.kind == OpKind::Activation) {
      if (lv.acts_begin == lv.acts_end) lv.acts_begin = k;
      lv.acts_end = k + 1;
      continue;
    }
    lv.cap = op.ah.filter;
    levels.push_back(lv);
    lv = Level{};
    lv.conv = k;
    lv.acts_begin = lv.acts_end = k + 1;
    lv.h = op.ah.n_out;
    lv.w = op.aw.n_out;
  }
  levels.push_back(lv);
#if defined(__AVX512F__)
  // Rows divided by μ: a 3×3 conv and one ReLU-family activation with a ≠ b, fused
  // (scaled_row); the next conv or the readout multiplies by λ = μ.
  for (Level& l : levels) {
    if (!rows_route || l.conv < 0 || l.acts_end != l.acts_begin + 1) continue;
    const SpatialOp& op = plan.spatial[static_cast<std::size_t>(l.conv)];
    FamilyCoefficients family;
    if (op.ah.filter != 3 || op.aw.filter != 3 ||
        !relu_family_coefficients(plan.duals[plan.spatial[static_cast<std::size_t>(l.acts_begin)].dual].activation(),
                                  &family) ||
        !(family.d2 > 0))
      continue;
    const family_simd::ScaledFamily sf = family_simd::scaled_family(family.d2, family.cross);
    l.scaled = true;
    l.lambda = sf.mu;
    l.inv_mu = 1.0 / sf.mu;
    l.kappa = sf.kappa;
  }
#endif
  products = rows_route && plan.in_c == 1 && levels.size() > 1 && levels[1].scaled &&
             levels[0].acts_begin == levels[0].acts_end;
  xld = plan.in_w + 2 * halo;
  // The order in which the rows route makes the rows (level l's row r needs the rows of level
  // l − 1 that its conv reads; Σ⁰ rows are not made when the first conv reads the inputs).
  std::vector<int> made(levels.size(), 0);
  std::function<void(int, int)> make = [&](int l, int upto) {
    while (made[static_cast<std::size_t>(l)] <= upto) {
      const int r = made[static_cast<std::size_t>(l)]++;
      if (l > 0 && !(products && l == 1)) {
        const SpatialOp& op = plan.spatial[static_cast<std::size_t>(levels[static_cast<std::size_t>(l)].conv)];
        make(l - 1, std::min(levels[static_cast<std::size_t>(l) - 1].h - 1, r - op.ah.before + op.ah.filter - 1));
      }
      steps.emplace_back(l, r);
    }
  };
  if (rows_route)
    for (int r = 0; r < levels.back().h; ++r) make(static_cast<int>(levels.size()) - 1, r);
  taps_s.resize(static_cast<std::size_t>(taps));
  taps_t.resize(static_cast<std::size_t>(taps));
  store.assign(doubles(plan), 0.0);
  double* next = store.data();
  auto carve = [&](std::size_t n) {
    const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(next);
    double* view = reinterpret_cast<double*>((p + 63) & ~std::uintptr_t(63));
    next = view + n;
    return view;
  };
  const std::size_t row = static_cast<std::size_t>(ld) * kL;
  if (rows_route) {
    for (auto& l : levels) l.s = carve(static_cast<std::size_t>(l.cap) * row), l.t = carve(static_cast<std::size_t>(l.cap) * row);
    zero = carve(row);
  } else {
    const std::size_t map = static_cast<std::size_t>(rows) * row;
    for (int k = 0; k < 2; ++k) s[k] = carve(map), t[k] = carve(map);
  }
  hs = carve(row);
  ht = carve(row);
  x = carve(static_cast<std::size_t>(plan.in_h) * plan.in_w * plan.in_c * kL);
  q = carve(static_cast<std::size_t>(plan.record) * kL);
  rq = carve(static_cast<std::size_t>(plan.record) * kL);
  const std::size_t padded = static_cast<std::size_t>(plan.in_h + 2 * halo) * static_cast<std::size_t>(xld);
  xp = carve(padded * kL);  // zero halo from store's zeros; the interiors are written per group / point
  xi = carve(padded);
#if defined(__AVX512F__)
  // The steps with their rows (RowPipeline::run_steps), when some level is scaled and all are
  // below RowPipeline's kScaledLevels (deeper ones take conv_row's scaled branch).
  bool any = false;
  for (std::size_t l = 1; l < levels.size(); ++l) any = any || levels[l].scaled;
  if (rows_route && any && levels.size() <= 8) {
    const int last = static_cast<int>(levels.size()) - 1;
    auto slot_row = [&](const Level& lv, int r) {
      return (static_cast<std::size_t>(r % lv.cap) * ld + static_cast<std::size_t>(halo)) * kL;
    };
    for (const auto& [l, r] : steps) {
      const Level& lv = levels[static_cast<std::size_t>(l)];
      ScaledStep st{};
      st.level = l;
      st.n = lv.w;
      st.last = l == last;
      st.so = lv.s + slot_row(lv, r);
      st.to = lv.t + slot_row(lv, r);
      st.kind = -1;
      if (l > 0 && lv.scaled) {
        const Level& in = levels[static_cast<std::size_t>(l) - 1];
        const SpatialOp& op = plan.spatial[static_cast<std::size_t>(lv.conv)];
        const int bh = op.ah.before, bw = op.aw.before;
        st.q0 = static_cast<std::size_t>(r) * static_cast<std::size_t>(lv.w);
        st.kind = l == 1 && products ? 1 : l == 1 && in.acts_begin == in.acts_end ? 2 : 0;  // as produce_scaled
        for (int sh = 0; sh < 3; ++sh) {
          if (st.kind == 1) {
            const std::size_t row0 = static_cast<std::size_t>(r - bh + sh + halo) * xld + static_cast<std::size_t>(halo - bw);
            st.in_s[sh] = xi + row0;
            st.in_t[sh] = xp + row0 * kL;
          } else {
            const int ir = r - bh + sh;
            const bool inside = ir >= 0 && ir < in.h;
            st.in_s[sh] = inside ? in.s + slot_row(in, ir) - static_cast<std::size_t>(bw) * kL : zero;
            st.in_t[sh] = inside ? in.t + slot_row(in, ir) - static_cast<std::size_t>(bw) * kL : zero;
          }
        }
      }
      scaled_steps.push_back(st);
    }
  }
#endif
}

std::size_t DiagonalWorkspace::doubles(const Plan& plan) {
  int halo = 0, convs = 0, cap = 0;
  bool rows = true;
  for (const auto& op : plan.spatial)
    if (op.kind == OpKind::Affine) {
      for (const Axis* a : {&op.ah, &op.aw}) halo = std::max({halo, a->before, a->filter - 1 - a->before});
      rows = rows && !op.ah.circular;
      cap += op.ah.filter;
      ++convs;
    }
  const std::size_t row = static_cast<std::size_t>(plan.in_w + 2 * halo) * kL;
  const std::size_t maps = rows ? 2 * static_cast<std::size_t>(cap + 1 + 1) * row  // level rings (last: 1 row), zero row
                                : 4 * static_cast<std::size_t>(plan.in_h + 2 * halo) * row;
  return maps + 2 * row + static_cast<std::size_t>(plan.in_h) * plan.in_w * plan.in_c * kL +
         2 * static_cast<std::size_t>(plan.record) * kL +
         static_cast<std::size_t>(plan.in_h + 2 * halo) * static_cast<std::size_t>(plan.in_w + 2 * halo) * (kL + 1) +
         (2 * convs + 11) * 8;  // each view aligned to 64 bytes
}

bool Engine::uses_diagonal() const {
  return plan_.pixel_stage && plan_.readout == Readout::Flatten && !plan_.pooled;
}

DiagonalWorkspace Engine::diagonal_workspace() const { return DiagonalWorkspace(plan_); }

std::size_t Engine::diagonal_workspace_bytes() const { return sizeof(double) * DiagonalWorkspace::doubles(plan_); }

void Engine::diagonal_group(Eigen::Index j0, DiagonalWorkspace& ws) const {
  const std::size_t features = static_cast<std::size_t>(plan_.in_h) * plan_.in_w * plan_.in_c;
  const std::size_t record = static_cast<std::size_t>(plan_.record);
  ws.group = j0;
  ws.lanes = static_cast<int>(std::min<Eigen::Index>(kL, n2_ - j0));
  for (int l = 0; l < kL; ++l) {
    if (l < ws.lanes) {
      const Eigen::Index point = second(j0 + l);
      const double* x = row_of(point);
      const double* r = this->record(point);
      const double* ri = rinv_.data() + static_cast<std::size_t>(point) * record;
      for (std::size_t k = 0; k < features; ++k) ws.x[k * kL + l] = x[k];
      for (std::size_t e = 0; e < record; ++e) ws.q[e * kL + l] = r[e], ws.rq[e * kL + l] = ri[e];
    } else {  // no partner: a zero image with unit variances, finite all the way
      for (std::size_t k = 0; k < features; ++k) ws.x[k * kL + l] = 0.0;
      for (std::size_t e = 0; e < record; ++e) ws.q[e * kL + l] = ws.rq[e * kL + l] = 1.0;
    }
  }
  ws.bounded = bounded_record(ws.q, record * kL);
  if (ws.products)  // the inputs again, with the zero halo around them
    for (int h = 0; h < plan_.in_h; ++h)
      std::copy(ws.x + static_cast<std::size_t>(h) * plan_.in_w * kL, ws.x + static_cast<std::size_t>(h + 1) * plan_.in_w * kL,
                ws.xp + (static_cast<std::size_t>(h + ws.halo) * ws.xld + ws.halo) * kL);
}

void Engine::diagonal_entries(Eigen::Index i, unsigned wanted, DiagonalWorkspace& ws, double* s_out,
                              double* t_out) const {
  const double* x = row_of(i);
  const double* r1 = record(i);
  unsigned self = 0;
  for (int l = 0; l < ws.lanes; ++l)
    if (same_point(i, second(ws.group + l))) self |= 1u << l;
  const bool bounded = ws.bounded && bounded_[static_cast<std::size_t>(i)];
  const PairRows pair(plan_, ws, r1, rinv_.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(plan_.record),
                      self, wanted, bounded);
  double ss[kL], st[kL];
  int H = plan_.in_h, W = plan_.in_w;
  if (ws.rows_route) {
    if (ws.products)
      for (int h = 0; h < H; ++h)
        std::copy(x + static_cast<std::size_t>(h) * W, x + static_cast<std::size_t>(h + 1) * W,
                  ws.xi + static_cast<std::size_t>(h + ws.halo) * ws.xld + ws.halo);
    RowPipeline(plan_, ws, pair, x).run(ss, st);
    H = ws.levels.back().h;
    W = ws.levels.back().w;
  } else {
    // Maps route: whole maps, the halo filled before each conv.
    int cur = 0;
    for (int h = 0; h < H; ++h) pair.input_row(x, h, ws.s[0] + at(ws, h, 0));
    for (int h = 0; h < H; ++h) std::fill(ws.t[0] + at(ws, h, 0), ws.t[0] + at(ws, h, W), 0.0);
    note_interior(ws.ring_s[0], H, W);
    note_interior(ws.ring_t[0], H, W);
    bool t_zero = true;
    const std::size_t nops = plan_.spatial.size();
    for (std::size_t k = 0; k < nops; ++k) {
      const SpatialOp& op = plan_.spatial[k];
      double* S = ws.s[cur];
      double* T = ws.t[cur];
      if (op.kind == OpKind::Affine) {
        const Axis& ah = op.ah;
        const Axis& aw = op.aw;
        const int Ho = ah.n_out, Wo = aw.n_out, Fh = ah.filter;
        prepare_halo(ws, S, ws.ring_s[cur], H, W, ah.circular);
        if (!t_zero) prepare_halo(ws, T, ws.ring_t[cur], H, W, ah.circular);
        const SpatialOp* act = k + 1 < nops && plan_.spatial[k + 1].kind == OpKind::Activation ? &plan_.spatial[k + 1]
                                                                                            : nullptr;
        bool fused = false;
        for (int o = 0; o < Ho; ++o) {
          for (int sh = 0; sh < Fh; ++sh) {
            ws.taps_s[sh] = S + at(ws, o - ah.before + sh, -aw.before);
            ws.taps_t[sh] = T + at(ws, o - ah.before + sh, -aw.before);
          }
          fused = pair.conv_row(op, act, t_zero, o, ws.s[1 - cur] + at(ws, o, 0), ws.t[1 - cur] + at(ws, o, 0));
        }
        note_interior(ws.ring_s[1 - cur], Ho, Wo);
        note_interior(ws.ring_t[1 - cur], Ho, Wo);
        cur = 1 - cur;
        H = Ho;
        W = Wo;
        t_zero = false;
        if (fused) ++k;  // its activation is done
      } else if (op.kind == OpKind::Activation) {
        for (int h = 0; h < H; ++h) pair.activation_row(op, h, W, S + at(ws, h, 0), T + at(ws, h, 0));
        t_zero = false;
      }
    }
    // Flatten: the sum over the pixel diagonal.
    for (int l = 0; l < kL; ++l) ss[l] = st[l] = 0.0;
    for (int h = 0; h < H; ++h)
      for (int w = 0; w < W; ++w) {
        const double* sp = ws.s[cur] + at(ws, h, w);
        const double* tp = ws.t[cur] + at(ws, h, w);
#pragma omp simd
        for (int l = 0; l < kL; ++l) ss[l] += sp[l], st[l] += tp[l];
      }
  }
  // The mean over the pixels, then the tail per lane.
  const double m = static_cast<double>(H) * W;
  for (int l = 0; l < kL; ++l)
    if (wanted >> l & 1u) std::tie(s_out[l], t_out[l]) = tail_pair(i, second(ws.group + l), ss[l] / m, st[l] / m);
}

std::size_t Engine::diagonal_block(Eigen::Index r0, Eigen::Index r1, Eigen::Index c0, const DiagonalOutput& out,
                                   const std::function<void(std::size_t, std::size_t)>& progress) {
  struct Unit { Eigen::Index j0, i0, i1; };
  std::vector<Unit> units;
  std::size_t total = 0;
  for (Eigen::Index j0 = c0; j0 < n2_; j0 += kL) {
    const Eigen::Index lanes = std::min<Eigen::Index>(kL, n2_ - j0);
    const Eigen::Index end = symmetric_ ? std::min(r1, j0 + lanes) : r1;  // symmetric: only j ≥ i
    for (Eigen::Index i0 = r0; i0 < end; i0 += kRowsPerUnit) units.push_back({j0, i0, std::min(end, i0 + kRowsPerUnit)});
    for (Eigen::Index i = r0; i < end; ++i)
      total += static_cast<std::size_t>(symmetric_ ? j0 + lanes - std::max(i, j0) : lanes);
  }
  if (bounded_.empty()) {
    const std::size_t record = static_cast<std::size_t>(plan_.record);
    bounded_.resize(static_cast<std::size_t>(point_count()));
    rinv_.resize(static_cast<std::size_t>(point_count()) * record);
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (Eigen::Index p = 0; p < point_count(); ++p) {
      const double* q = this->record(p);
      bounded_[static_cast<std::size_t>(p)] = bounded_record(q, record);
      double* r = rinv_.data() + static_cast<std::size_t>(p) * record;
      for (std::size_t e = 0; e < record; ++e) r[e] = 1.0 / std::sqrt(q[e]);  // inf or NaN where q ≤ 0: plain_lanes refuses those
    }
  }
  std::atomic<std::size_t> done{0};
  ProgressThrottle throttle;
  detail::ParallelErrors errors;
#pragma omp parallel num_threads(threads_)
  {
    DiagonalWorkspace ws = diagonal_workspace();
#pragma omp for schedule(dynamic, 1)
    for (std::size_t u = 0; u < units.size(); ++u) {
      errors.run(static_cast<long long>(u), [&] {
        const Unit& unit = units[u];
        if (ws.group != unit.j0) diagonal_group(unit.j0, ws);
        double s[kL], t[kL];
        std::size_t entries = 0;
        for (Eigen::Index i = unit.i0; i < unit.i1; ++i) {
          unsigned wanted = (1u << ws.lanes) - 1;
          if (symmetric_ && i > unit.j0) wanted &= ~((1u << (i - unit.j0)) - 1);
          diagonal_entries(i, wanted, ws, s, t);
          for (int l = 0; l < ws.lanes; ++l) {
            if (!(wanted >> l & 1u)) continue;
            const Eigen::Index j = unit.j0 + l;
            const std::size_t k = static_cast<std::size_t>(i - out.r0) * out.row_step +
                                  static_cast<std::size_t>(j - out.c0) * out.col_step;
            out.nngp[k] = s[l];
            out.ntk[k] = t[l];
            if (out.mirror && i != j) {
              const std::size_t mk = static_cast<std::size_t>(j - out.r0) * out.row_step +
                                     static_cast<std::size_t>(i - out.c0) * out.col_step;
              out.nngp[mk] = s[l];
              out.ntk[mk] = t[l];
            }
            ++entries;
          }
        }
        done += entries;
        if (progress && throttle.due()) progress(done.load(), total);
      });
    }
  }
  errors.rethrow();
  return units.size();
}

}  // namespace emergent::detail
