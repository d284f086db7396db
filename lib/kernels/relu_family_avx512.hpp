// The ReLU-family dual φ = a·min(x,0) + b·max(x,0) on 8 lanes of AVX-512 (internal). One
// definition for ActivationDual::apply (lib/kernels/activation_dual.cpp) and for the kernel
// engine's fused conv + activation rows (lib/kernels/kernel_pixels.cpp), so an entry gets the
// same bits on either path. Formulas: the arc-cosine kernel of order 1 (Cho & Saul 2009, Eq. 6),
// as documented at relu_family_dual() in activation_dual.cpp.
#pragma once

#include <limits>

#include "emergent/core/activation.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace emergent::detail {

/// Pairs with c² ≥ kCollinearSquared·q1q2 are taken as exactly collinear (the snap documented
/// in activation_dual.cpp and docs/conventions.md §2): the one threshold of every dual path.
inline constexpr double kCollinearSquared = (1.0 - 16.0 * std::numeric_limits<double>::epsilon()) *
                                            (1.0 - 16.0 * std::numeric_limits<double>::epsilon());

/// The constants of the ReLU-family dual: ab2 = a² + b², d2 = (a − b)², cross = 2ab.
struct FamilyCoefficients {
  double ab2 = 1.0, d2 = 1.0, cross = 0.0;
};

/// True (and the coefficients) when `act` is one of the ReLU family (identity, relu, abs,
/// leaky relu, (a, b)-relu), whose dual ActivationDual::apply evaluates in closed form.
bool relu_family_coefficients(const Activation& act, FamilyCoefficients* out);

#if defined(__AVX512F__)
// GCC 12 reports the deliberately undefined pass-through operand of the unmasked intrinsics
// (_mm512_undefined_pd) as uninitialized once they are unrolled (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
namespace family_simd {
constexpr double kPi = 3.14159265358979323846;
constexpr double kInv2Pi = 0.15915494309189533577;

/// The ReLU-family dual on 8 lanes of AVX-512, with the divider kept out of the loop: √x and
/// 1/x from the 14-bit estimates vrsqrt14/vrcp14 and two Newton steps each (Goldschmidt's form
/// for √x; the quotient corrected by its residual), which run on the FMA ports; θ = atan2(s, c)
/// by a table-centred argument reduction and a short series (atan2_upper_fma).
///
/// Every function works on N independent vectors at once, statement by statement (N ≤ 4): the
/// chain of one vector is ~140 cycles of latency for ~100 instructions, so one vector at a time
/// leaves the two FMA ports mostly idle; interleaved, the core overlaps the chains. Each lane
/// goes through the same instructions whatever N and its neighbours, so an entry's bits never
/// depend on its batch. Needs a·b ∈ (1e-280, 1e280) (plain_lanes), so no estimate under- or
/// overflows and the square root's argument is ≥ 6e-295 (not over: det ≥ 30ε·q1q2; over: q1q2).
#define EMERGENT_LANES _Pragma("GCC unroll 4") for (int v = 0; v < N; ++v)

template <int N>
__attribute__((always_inline)) inline void sqrt_fma(const __m512d* x, __m512d* g) {
  __m512d h[N] = {}, r[N] = {};
  EMERGENT_LANES {
    const __m512d y = _mm512_rsqrt14_pd(x[v]);
    g[v] = _mm512_mul_pd(x[v], y);
    h[v] = _mm512_mul_pd(_mm512_set1_pd(0.5), y);
  }
  EMERGENT_LANES r[v] = _mm512_fnmadd_pd(g[v], h[v], _mm512_set1_pd(0.5));
  EMERGENT_LANES g[v] = _mm512_fmadd_pd(g[v], r[v], g[v]), h[v] = _mm512_fmadd_pd(h[v], r[v], h[v]);
  EMERGENT_LANES r[v] = _mm512_fnmadd_pd(g[v], h[v], _mm512_set1_pd(0.5));
  EMERGENT_LANES g[v] = _mm512_fmadd_pd(g[v], r[v], g[v]);
  // Last correction on the residual x − g² (exact to the rounding of g).
  EMERGENT_LANES r[v] = _mm512_fnmadd_pd(g[v], g[v], x[v]);
  EMERGENT_LANES g[v] = _mm512_fmadd_pd(r[v], h[v], g[v]);
}

template <int N>
__attribute__((always_inline)) inline void div_fma(const __m512d* n, const __m512d* d, __m512d* q) {
  const __m512d one = _mm512_set1_pd(1.0);
  __m512d y[N] = {};
  EMERGENT_LANES y[v] = _mm512_rcp14_pd(d[v]);
  EMERGENT_LANES y[v] = _mm512_fmadd_pd(y[v], _mm512_fnmadd_pd(d[v], y[v], one), y[v]);
  EMERGENT_LANES y[v] = _mm512_fmadd_pd(y[v], _mm512_fnmadd_pd(d[v], y[v], one), y[v]);
  EMERGENT_LANES q[v] = _mm512_mul_pd(n[v], y[v]);
  EMERGENT_LANES q[v] = _mm512_fmadd_pd(_mm512_fnmadd_pd(d[v], q[v], n[v]), y[v], q[v]);
}

/// atan2(y, x) for y ≥ 0, hi = max(|x|, y) > 0. With r = lo/hi ∈ [0, 1] and the centre
/// t_k = k/8 nearest to r (k = 0…8, found from the 14-bit reciprocal estimate, so r is within
/// 1/16 + 2⁻¹⁴ of it): atan r = atan(k/8) + atan z, z = (lo − t_k·hi)/(hi + t_k·lo), |z| ≤ 0.0626,
/// and 7 terms of atan z = Σ (−1)^j z^{2j+1}/(2j+1) truncate below 1e-18 relative. k = 0 keeps
/// z = r (θ → 0 keeps its relative accuracy). atan(k/8) comes from a 9-entry table (correctly
/// rounded doubles) by one permute: 6 instructions for the reduction instead of a cascade of
/// compares and blends.
template <int N>
__attribute__((always_inline)) inline void atan2_upper_fma(const __m512d* y, const __m512d* x, __m512d* out) {
  __m512d lo[N] = {}, hi[N] = {}, t[N] = {}, base[N] = {}, num[N] = {}, den[N] = {}, z[N] = {};
  __mmask8 steep[N] = {};
  const __m512d magic = _mm512_set1_pd(6755399441055744.0);  // 1.5·2⁵²: adding it rounds to an integer in the low bits
  const __m512d table_lo = _mm512_setr_pd(0.0, 0.12435499454676144, 0.24497866312686414, 0.35877067027057225,
                                          0.4636476090008061, 0.5585993153435624, 0.6435011087932844,
                                          0.7188299996216245);
  const __m512d table_hi = _mm512_set1_pd(0.25 * kPi);  // atan(8/8)
  EMERGENT_LANES {
    const __m512d ax = _mm512_abs_pd(x[v]);
    steep[v] = _mm512_cmp_pd_mask(ax, y[v], _CMP_LT_OQ);
    lo[v] = _mm512_min_pd(ax, y[v]), hi[v] = _mm512_max_pd(ax, y[v]);
  }
  EMERGENT_LANES {
    const __m512d r = _mm512_mul_pd(lo[v], _mm512_rcp14_pd(hi[v]));
    const __m512d m = _mm512_fmadd_pd(r, _mm512_set1_pd(8.0), magic);  // low bits: k = round(8r)
    t[v] = _mm512_mul_pd(_mm512_sub_pd(m, magic), _mm512_set1_pd(0.125));
    base[v] = _mm512_permutex2var_pd(table_lo, _mm512_castpd_si512(m), table_hi);
  }
  EMERGENT_LANES num[v] = _mm512_fnmadd_pd(t[v], hi[v], lo[v]), den[v] = _mm512_fmadd_pd(t[v], lo[v], hi[v]);
  div_fma<N>(num, den, z);
  EMERGENT_LANES {
    const __m512d z2 = _mm512_mul_pd(z[v], z[v]);
    const __m512d x2 = _mm512_mul_pd(z2, z2), x4 = _mm512_mul_pd(x2, x2);
    auto pair = [&](double c0, double c1) { return _mm512_fmadd_pd(_mm512_set1_pd(c1), z2, _mm512_set1_pd(c0)); };
    const __m512d e0 = pair(1.0, -1.0 / 3), e1 = pair(1.0 / 5, -1.0 / 7), e2 = pair(1.0 / 9, -1.0 / 11);
    const __m512d f0 = _mm512_fmadd_pd(e1, x2, e0), f1 = _mm512_fmadd_pd(_mm512_set1_pd(1.0 / 13), x2, e2);
    const __m512d poly = _mm512_fmadd_pd(f1, x4, f0);
    out[v] = _mm512_fmadd_pd(z[v], poly, base[v]);
  }
  EMERGENT_LANES {
    const __m512d a = _mm512_mask_sub_pd(out[v], steep[v], _mm512_set1_pd(0.5 * kPi), out[v]);
    const __mmask8 left = _mm512_cmp_pd_mask(x[v], _mm512_setzero_pd(), _CMP_LT_OQ);
    out[v] = _mm512_mask_sub_pd(a, left, _mm512_set1_pd(kPi), a);
  }
}

/// Lanes whose arguments the vector dual takes as they are: q1, q2 > 0, c finite, q1·q2 ∈
/// (1e-280, 1e280) (which also makes q1 and q2 finite). The rest need ActivationDual's scalar
/// path (validation, zero variance, clamping).
__attribute__((always_inline)) inline __mmask8 plain_lanes(__m512d a, __m512d b, __m512d c) {
  const __m512d zero = _mm512_setzero_pd(), inf = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  const __m512d p = _mm512_mul_pd(a, b);
  __mmask8 ok = _mm512_cmp_pd_mask(a, zero, _CMP_GT_OQ) & _mm512_cmp_pd_mask(b, zero, _CMP_GT_OQ);
  ok &= _mm512_cmp_pd_mask(_mm512_abs_pd(c), inf, _CMP_LT_OQ) & _mm512_cmp_pd_mask(p, _mm512_set1_pd(1e-280), _CMP_GT_OQ);
  ok &= _mm512_cmp_pd_mask(p, _mm512_set1_pd(1e280), _CMP_LT_OQ);
  return ok;
}

/// The dual on N vectors of plain arguments (q1, q2) = (a, b): c ← E[φ(u)φ(v)] at covariance c,
/// t ← t·E[φ'(u)φ'(v)]. The arithmetic of relu_family_dual(): the determinant q1q2 − c² with
/// exact products (fma), the collinear snap, θ = atan2(√det, c).
template <int N>
__attribute__((always_inline)) inline void dual_lanes(const __m512d* a, const __m512d* b, __m512d* c, __m512d* tk, __m512d vab2, __m512d vd2,
                       __m512d vcross) {
  const __m512d pi = _mm512_set1_pd(kPi), inv = _mm512_set1_pd(kInv2Pi);
  const __m512d sign = _mm512_set1_pd(-0.0);
  __m512d arg[N] = {}, root[N] = {}, s[N] = {}, theta[N] = {};
  __mmask8 over[N] = {};
  EMERGENT_LANES {
    const __m512d p = _mm512_mul_pd(a[v], b[v]), cc = _mm512_mul_pd(c[v], c[v]);
    const __m512d raw = _mm512_add_pd(_mm512_sub_pd(p, cc),
                                      _mm512_sub_pd(_mm512_fmsub_pd(a[v], b[v], p), _mm512_fmsub_pd(c[v], c[v], cc)));
    const __m512d det = _mm512_max_pd(raw, _mm512_setzero_pd());
    over[v] = _mm512_cmp_pd_mask(cc, _mm512_mul_pd(p, _mm512_set1_pd(kCollinearSquared)), _CMP_GE_OQ);
    arg[v] = _mm512_mask_mov_pd(det, over[v], p);
  }
  sqrt_fma<N>(arg, root);
  EMERGENT_LANES {
    // copysign(root, c) where clamped
    c[v] = _mm512_mask_mov_pd(c[v], over[v], _mm512_or_pd(root[v], _mm512_and_pd(c[v], sign)));
    s[v] = _mm512_mask_mov_pd(root[v], over[v], _mm512_setzero_pd());
  }
  atan2_upper_fma<N>(s, c, theta);
  EMERGENT_LANES {
    const __m512d t = _mm512_fmadd_pd(vab2, _mm512_sub_pd(pi, theta[v]), _mm512_mul_pd(vcross, theta[v]));
    c[v] = _mm512_mul_pd(_mm512_fmadd_pd(vd2, s[v], _mm512_mul_pd(c[v], t)), inv);
    tk[v] = _mm512_mul_pd(tk[v], _mm512_mul_pd(t, inv));
  }
}
#undef EMERGENT_LANES
}  // namespace family_simd
#pragma GCC diagnostic pop
#endif

}  // namespace emergent::detail
