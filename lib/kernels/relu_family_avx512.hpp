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
namespace family_simd {
constexpr double kPi = 3.14159265358979323846;
constexpr double kInv2Pi = 0.15915494309189533577;

/// family_batch() on 8 lanes of AVX-512, with the divider kept out of the loop: √x and 1/x
/// from the 14-bit estimates vrsqrt14/vrcp14 and two Newton steps each (Goldschmidt's form
/// for √x; the quotient corrected by its residual), which run on the FMA ports. θ = atan2(s, c)
/// takes a finer argument reduction than atan2_upper(): with r = lo/hi ∈ [0, 1] and the
/// nearest of the centres t_k = tan(kπ/12), k = 0…3, atan r = atan t_k + atan z with
/// z = (lo − t_k·hi)/(hi + t_k·lo), |z| ≤ tan(π/24) ≈ 0.132 (one division, operands selected),
/// so 9 terms of the series atan z = Σ (−1)^j z^{2j+1}/(2j+1) truncate below 1e-17 relative;
/// k = 0 keeps z = r, so θ → 0 keeps its relative accuracy. The tail of a batch runs masked
/// through the same instructions: an entry's bits never depend on its position in the batch.
/// Needs a·b ∈ (1e-280, 1e280) (family_plain), so no estimate under- or overflows.
inline __m512d sqrt_fma(__m512d x) {
  const __m512d y = _mm512_rsqrt14_pd(x);
  __m512d g = _mm512_mul_pd(x, y), h = _mm512_mul_pd(_mm512_set1_pd(0.5), y);
  __m512d r = _mm512_fnmadd_pd(g, h, _mm512_set1_pd(0.5));
  g = _mm512_fmadd_pd(g, r, g);
  h = _mm512_fmadd_pd(h, r, h);
  r = _mm512_fnmadd_pd(g, h, _mm512_set1_pd(0.5));
  g = _mm512_fmadd_pd(g, r, g);
  // Last correction on the residual x − g² (exact to the rounding of g).
  const __m512d e = _mm512_fnmadd_pd(g, g, x);
  g = _mm512_fmadd_pd(e, h, g);
  // Below 1e-300 (subnormal arguments) the estimates are not trusted: the exact square root.
  const __mmask8 tiny = _mm512_cmp_pd_mask(x, _mm512_set1_pd(1e-300), _CMP_LT_OQ) &
                        _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_GT_OQ);
  if (tiny) g = _mm512_mask_sqrt_pd(g, tiny, x);
  return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_GT_OQ), g);  // √0 = 0
}

inline __m512d div_fma(__m512d n, __m512d d) {
  __m512d y = _mm512_rcp14_pd(d);
  const __m512d one = _mm512_set1_pd(1.0);
  y = _mm512_fmadd_pd(y, _mm512_fnmadd_pd(d, y, one), y);
  y = _mm512_fmadd_pd(y, _mm512_fnmadd_pd(d, y, one), y);
  const __m512d q = _mm512_mul_pd(n, y);
  return _mm512_fmadd_pd(_mm512_fnmadd_pd(d, q, n), y, q);
}

/// atan2(y, x) for y ≥ 0, hi = max(|x|, y) > 0.
inline __m512d atan2_upper_fma(__m512d y, __m512d x) {
  const __m512d ax = _mm512_abs_pd(x);
  const __mmask8 steep = _mm512_cmp_pd_mask(ax, y, _CMP_LT_OQ);
  const __m512d lo = _mm512_min_pd(ax, y), hi = _mm512_max_pd(ax, y);
  // Interval boundaries tan(π/24), tan(π/8), tan(5π/24); centres tan(kπ/12) and their atan.
  const __mmask8 k1 = _mm512_cmp_pd_mask(lo, _mm512_mul_pd(_mm512_set1_pd(0.13165249758739585347), hi), _CMP_GT_OQ);
  const __mmask8 k2 = _mm512_cmp_pd_mask(lo, _mm512_mul_pd(_mm512_set1_pd(0.41421356237309504880), hi), _CMP_GT_OQ);
  const __mmask8 k3 = _mm512_cmp_pd_mask(lo, _mm512_mul_pd(_mm512_set1_pd(0.76732698797896034292), hi), _CMP_GT_OQ);
  __m512d t = _mm512_maskz_mov_pd(k1, _mm512_set1_pd(0.2679491924311227));
  __m512d base = _mm512_maskz_mov_pd(k1, _mm512_set1_pd(0.2617993877991494));  // atan of that double
  t = _mm512_mask_mov_pd(t, k2, _mm512_set1_pd(0.5773502691896257));
  base = _mm512_mask_mov_pd(base, k2, _mm512_set1_pd(0.5235987755982988));
  t = _mm512_mask_mov_pd(t, k3, _mm512_set1_pd(1.0));
  base = _mm512_mask_mov_pd(base, k3, _mm512_set1_pd(0.25 * kPi));
  const __m512d z = div_fma(_mm512_fnmadd_pd(t, hi, lo), _mm512_fmadd_pd(t, lo, hi));
  const __m512d z2 = _mm512_mul_pd(z, z);
  const __m512d x2 = _mm512_mul_pd(z2, z2), x4 = _mm512_mul_pd(x2, x2), x8 = _mm512_mul_pd(x4, x4);
  auto pair = [&](double c0, double c1) { return _mm512_fmadd_pd(_mm512_set1_pd(c1), z2, _mm512_set1_pd(c0)); };
  const __m512d e0 = pair(1.0, -1.0 / 3), e1 = pair(1.0 / 5, -1.0 / 7), e2 = pair(1.0 / 9, -1.0 / 11),
                e3 = pair(1.0 / 13, -1.0 / 15);
  const __m512d f0 = _mm512_fmadd_pd(e1, x2, e0), f1 = _mm512_fmadd_pd(e3, x2, e2);
  const __m512d poly = _mm512_fmadd_pd(_mm512_set1_pd(1.0 / 17), x8, _mm512_fmadd_pd(f1, x4, f0));
  __m512d a = _mm512_fmadd_pd(z, poly, base);
  a = _mm512_mask_sub_pd(a, steep, _mm512_set1_pd(0.5 * kPi), a);
  const __mmask8 left = _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_LT_OQ);
  return _mm512_mask_sub_pd(a, left, _mm512_set1_pd(kPi), a);
}


/// Lanes whose arguments the vector dual takes as they are: q1, q2 > 0 and finite, c finite,
/// q1·q2 ∈ (1e-280, 1e280) (so no estimate under- or overflows). The rest need ActivationDual's
/// scalar path (validation, zero variance, clamping).
inline __mmask8 plain_lanes(__m512d a, __m512d b, __m512d c) {
  const __m512d zero = _mm512_setzero_pd(), inf = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  const __m512d p = _mm512_mul_pd(a, b);
  __mmask8 ok = _mm512_cmp_pd_mask(a, zero, _CMP_GT_OQ) & _mm512_cmp_pd_mask(b, zero, _CMP_GT_OQ);
  ok &= _mm512_cmp_pd_mask(a, inf, _CMP_LT_OQ) & _mm512_cmp_pd_mask(b, inf, _CMP_LT_OQ);
  ok &= _mm512_cmp_pd_mask(_mm512_abs_pd(c), inf, _CMP_LT_OQ) & _mm512_cmp_pd_mask(p, _mm512_set1_pd(1e-280), _CMP_GT_OQ);
  ok &= _mm512_cmp_pd_mask(p, _mm512_set1_pd(1e280), _CMP_LT_OQ);
  return ok;
}

/// The dual on 8 lanes of plain arguments (q1, q2) = (a, b): c ← E[φ(u)φ(v)] at covariance c,
/// t ← t·E[φ'(u)φ'(v)]. The arithmetic of relu_family_dual(): the determinant q1q2 − c² with
/// exact products (fma), the collinear snap, θ = atan2(√det, c).
inline void dual_lanes(__m512d a, __m512d b, __m512d& c, __m512d& tk, __m512d vab2, __m512d vd2, __m512d vcross) {
  const __m512d pi = _mm512_set1_pd(kPi), inv = _mm512_set1_pd(kInv2Pi);
  const __m512d sign = _mm512_set1_pd(-0.0);
  const __m512d p = _mm512_mul_pd(a, b), cc = _mm512_mul_pd(c, c);
  const __m512d raw = _mm512_add_pd(_mm512_sub_pd(p, cc),
                                    _mm512_sub_pd(_mm512_fmsub_pd(a, b, p), _mm512_fmsub_pd(c, c, cc)));
  const __m512d det = _mm512_max_pd(raw, _mm512_setzero_pd());
  const __mmask8 over = _mm512_cmp_pd_mask(cc, _mm512_mul_pd(p, _mm512_set1_pd(kCollinearSquared)), _CMP_GE_OQ);
  const __m512d root = sqrt_fma(_mm512_mask_mov_pd(det, over, p));
  // copysign(root, c) where clamped
  c = _mm512_mask_mov_pd(c, over, _mm512_or_pd(root, _mm512_and_pd(c, sign)));
  const __m512d s = _mm512_mask_mov_pd(root, over, _mm512_setzero_pd());
  const __m512d theta = atan2_upper_fma(s, c);
  const __m512d t = _mm512_fmadd_pd(vab2, _mm512_sub_pd(pi, theta), _mm512_mul_pd(vcross, theta));
  c = _mm512_mul_pd(_mm512_fmadd_pd(vd2, s, _mm512_mul_pd(c, t)), inv);
  tk = _mm512_mul_pd(tk, _mm512_mul_pd(t, inv));
}
}  // namespace family_simd
#endif

}  // namespace emergent::detail
