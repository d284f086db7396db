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

/// The ReLU-family dual on 8 lanes of AVX-512 with neither the divider nor a division in atan2:
///   r = 1/√(q1q2) and s = √det (det = q1q2 − c²) from the 14-bit estimate vrsqrt14 and one
///   fourth-order correction each (rsqrt_fma);
///   (σ, ρ) = (s·r, c·r) = (sin θ, cos θ) is a unit vector, so θ = atan2(s, c) is a rotation by a
///   tabulated angle and an arcsine series (angle_fma), with nothing to divide.
/// 39 floating-point instructions per vector (67 in all); on AVX-512 the time goes with the
/// floating-point count (docs/benchmarks.md, Kernels).
///
/// Every function works on N independent vectors at once, statement by statement (N ≤ 4): the
/// chain of one vector is ~100 cycles of latency, so one vector at a time leaves the FMA ports
/// idle; interleaved, the core overlaps the chains. Each lane goes through the same instructions
/// whatever N and its neighbours, so an entry's bits never depend on its batch. Needs a·b ∈
/// (1e-280, 1e280) (plain_lanes), so no estimate under- or overflows and the square roots'
/// arguments are ≥ 6e-295 (where not snapped, det ≥ 28ε·q1q2).
#define EMERGENT_LANES _Pragma("GCC unroll 4") for (int v = 0; v < N; ++v)

/// 1/√x (into inv, if want_inv) and √x (into root, if want_root) for x > 0 normal, on the lanes
/// of keep (root: 0 on the others; keep = nullptr: all lanes). From y = vrsqrt14(x), with
/// e = 1 − x·y², |e| < 2⁻¹⁴: 1/√x = y·(1 − e)^(−1/2) = y·(1 + e/2 + 3e²/8 + 5e³/16 + …) cut after
/// e³ (the rest < 0.28·e⁴ < 4e-18 relative), and √x = (x·y)·(the same factor). Both within ~1 ulp.
template <int N, bool want_inv, bool want_root>
__attribute__((always_inline)) inline void rsqrt_fma(const __m512d* x, const __mmask8* keep, __m512d* inv,
                                                     __m512d* root) {
  __m512d y[N] = {}, g[N] = {}, e[N] = {}, f[N] = {};
  EMERGENT_LANES {
    y[v] = keep ? _mm512_maskz_rsqrt14_pd(keep[v], x[v]) : _mm512_rsqrt14_pd(x[v]);
    g[v] = _mm512_mul_pd(x[v], y[v]);
  }
  EMERGENT_LANES e[v] = _mm512_fnmadd_pd(g[v], y[v], _mm512_set1_pd(1.0));
  EMERGENT_LANES f[v] = _mm512_fmadd_pd(e[v], _mm512_set1_pd(5.0 / 16), _mm512_set1_pd(3.0 / 8));
  EMERGENT_LANES f[v] = _mm512_fmadd_pd(e[v], f[v], _mm512_set1_pd(0.5));
  EMERGENT_LANES {
    if constexpr (want_inv) inv[v] = _mm512_fmadd_pd(_mm512_mul_pd(y[v], e[v]), f[v], y[v]);
    if constexpr (want_root) {
      const __m512d t = _mm512_fmadd_pd(_mm512_mul_pd(g[v], e[v]), f[v], g[v]);
      root[v] = keep ? _mm512_maskz_mov_pd(keep[v], t) : t;
    }
  }
}

/// Centres of the rotation in angle_fma: ψ_j = π/4 + asin(v_j/√2), v_j = (j − 7)/7, j = 0…14
/// (rounded to double; ψ_0 = 0 and ψ_14 = π/2 on the nose), with cos ψ_j and sin ψ_j of the
/// rounded ψ_j, correctly rounded (50-digit evaluation).
inline constexpr double kCentre[16] = {0.0,
                                       0.1342607043872596,
                                       0.2559278276219401,
                                       0.3694460764473408,
                                       0.4775110718254567,
                                       0.5819674231263652,
                                       0.6842103206138999,
                                       0.7853981633974483,
                                       0.8865860061809967,
                                       0.9888289036685314,
                                       1.0932852549694398,
                                       1.201350250347556,
                                       1.3148684991729565,
                                       1.436535622407637,
                                       1.5707963267948966,
                                       0.0};
inline constexpr double kCentreCos[16] = {1.0,
                                          0.991000562429415,
                                          0.9674288389512522,
                                          0.9325275098669583,
                                          0.8881415094326146,
                                          0.8353828367737614,
                                          0.7749184144140076,
                                          0.7071067811865476,
                                          0.6320612715568646,
                                          0.5496685510594755,
                                          0.459570080861186,
                                          0.3610989384383868,
                                          0.253143124665538,
                                          0.13385770528655785,
                                          6.123233995736766e-17,
                                          1.0};
inline constexpr double kCentreSin[16] = {0.0,
                                          0.13385770528655794,
                                          0.25314312466553796,
                                          0.3610989384383869,
                                          0.45957008086118595,
                                          0.5496685510594755,
                                          0.6320612715568646,
                                          0.7071067811865475,
                                          0.7749184144140074,
                                          0.8353828367737612,
                                          0.8881415094326145,
                                          0.9325275098669583,
                                          0.9674288389512522,
                                          0.991000562429415,
                                          1.0,
                                          0.0};

/// R(u) of asin x = x + x³·R(x²) on |x| ≤ 0.0691 (u = x²): the degree-4 economised Taylor
/// series of angle_fma's reduction (below), the one copy of its coefficients.
__attribute__((always_inline)) inline __m512d asin_tail(__m512d u) {
  __m512d r = _mm512_fmadd_pd(_mm512_set1_pd(0.022580599810781716), u, _mm512_set1_pd(0.030381071852033998));
  r = _mm512_fmadd_pd(r, u, _mm512_set1_pd(0.04464285863220822));
  r = _mm512_fmadd_pd(r, u, _mm512_set1_pd(0.07499999999911072));
  return _mm512_fmadd_pd(r, u, _mm512_set1_pd(0.16666666666666674));
}

/// The reduction of angle_fma and angle_q: the centre ψ_j nearest ψ (j from w = σ − |ρ| by a
/// rounding add) and x = sin(ψ − ψ_j) = σ·cos ψ_j − |ρ|·sin ψ_j, so that ψ = ψ_j + asin x.
template <int N>
__attribute__((always_inline)) inline void angle_reduction(const __m512d* sigma, const __m512d* arho, __m512d* base,
                                                           __m512d* x) {
  const __m512d psi_lo = _mm512_loadu_pd(kCentre), psi_hi = _mm512_loadu_pd(kCentre + 8);
  const __m512d cos_lo = _mm512_loadu_pd(kCentreCos), cos_hi = _mm512_loadu_pd(kCentreCos + 8);
  const __m512d sin_lo = _mm512_loadu_pd(kCentreSin), sin_hi = _mm512_loadu_pd(kCentreSin + 8);
  const __m512d magic = _mm512_set1_pd(6755399441055744.0 + 7.0);  // 1.5·2⁵² + 7: rounds to j in the low bits
  EMERGENT_LANES {
    const __m512d w = _mm512_sub_pd(sigma[v], arho[v]);
    const __m512i j = _mm512_castpd_si512(_mm512_fmadd_pd(w, _mm512_set1_pd(7.0), magic));
    base[v] = _mm512_permutex2var_pd(psi_lo, j, psi_hi);
    const __m512d cj = _mm512_permutex2var_pd(cos_lo, j, cos_hi), sj = _mm512_permutex2var_pd(sin_lo, j, sin_hi);
    x[v] = _mm512_fmsub_pd(sigma[v], cj, _mm512_mul_pd(arho[v], sj));
  }
}

/// ψ = atan2(σ, |ρ|) ∈ [0, π/2] of a unit vector (σ ≥ 0, σ² + ρ² = 1 to a few ulps). Since
/// σ − |ρ| = √2·sin(ψ − π/4), j = round(7(σ − |ρ|)) + 7 picks the centre ψ_j with |ψ − ψ_j| ≤
/// 0.0691 (one fma: 1.5·2⁵² + 7 + 7(σ − |ρ|) holds j in its low bits; one vpermt2pd per table).
/// Rotating by −ψ_j, sin(ψ − ψ_j) = σ·cos ψ_j − |ρ|·sin ψ_j = x, |x| ≤ 0.06905, and
/// ψ = ψ_j + asin x with asin x = x + x³·R(x²): R is the Taylor series Σ_{n≥1} c_n x^{2n−2},
/// c_n = (2n)!/(4ⁿ(n!)²(2n+1)), economised on [0, 0.0691²] to degree 4 by interpolation at
/// the Chebyshev nodes (50-digit arithmetic): relative error 4.6e-19, below the rounding. A
/// common scale error of (σ, ρ) only scales x, so it changes ψ by (scale − 1)·|ψ − ψ_j|.
/// ψ → 0 has centre ψ_0 = 0 exactly (x = σ), so small angles keep their relative accuracy.
template <int N>
__attribute__((always_inline)) inline void angle_fma(const __m512d* sigma, const __m512d* arho, __m512d* psi) {
  __m512d base[N] = {}, x[N] = {};
  angle_reduction<N>(sigma, arho, base, x);
  EMERGENT_LANES {
    const __m512d u = _mm512_mul_pd(x[v], x[v]);
    const __m512d r = asin_tail(u);
    psi[v] = _mm512_add_pd(base[v], _mm512_fmadd_pd(_mm512_mul_pd(x[v], u), r, x[v]));
  }
}

/// Q(u) = 1 + u·R(u), so that asin x = x·Q(x²) on |x| ≤ 0.0691: one fma and one rounding fewer
/// than x + x³·R(x²) where the caller multiplies by x inside an fma anyway (angle_q,
/// dual_rinv_close). Q ∈ [1, 1.0008], rounded to 0.5 ulp, so x·Q errs by ≤ 0.6 ulp of x.
__attribute__((always_inline)) inline __m512d asin_factor(__m512d u) {
  return _mm512_fmadd_pd(asin_tail(u), u, _mm512_set1_pd(1.0));
}

/// angle_fma with ψ = ψ_j + x·Q(x²) in one fma (asin_factor): the same reduction, one
/// instruction fewer per vector; ψ_0 = 0 keeps small angles relative-accurate (ψ = x·Q).
template <int N>
__attribute__((always_inline)) inline void angle_q(const __m512d* sigma, const __m512d* arho, __m512d* psi) {
  __m512d base[N] = {}, x[N] = {};
  angle_reduction<N>(sigma, arho, base, x);
  EMERGENT_LANES psi[v] = _mm512_fmadd_pd(x[v], asin_factor(_mm512_mul_pd(x[v], x[v])), base[v]);
}

/// Lanes whose arguments the vector dual takes as they are: q1, q2 > 0, c finite, q1·q2 ∈
/// (1e-280, 1e280) (which also makes q1 and q2 finite). The rest need ActivationDual's scalar
/// path (validation, zero variance, clamping). a > 0 and a·b > 1e-280 give b > 0; a·b < 1e280
/// excludes infinite a or b; the compares are chained through their masks.
__attribute__((always_inline)) inline __mmask8 plain_lanes(__m512d a, __m512d b, __m512d c) {
  const __m512d p = _mm512_mul_pd(a, b);
  __mmask8 ok = _mm512_cmp_pd_mask(a, _mm512_setzero_pd(), _CMP_GT_OQ);
  ok = _mm512_mask_cmp_pd_mask(ok, p, _mm512_set1_pd(1e-280), _CMP_GT_OQ);
  ok = _mm512_mask_cmp_pd_mask(ok, p, _mm512_set1_pd(1e280), _CMP_LT_OQ);
  return _mm512_mask_cmp_pd_mask(ok, _mm512_abs_pd(c), _mm512_set1_pd(std::numeric_limits<double>::infinity()),
                                 _CMP_LT_OQ);
}

/// dual_lanes (below) with r = 1/√(q1q2) given, e.g. as r1·r2 of per-pixel inverse roots (within
/// ~2.5 ulp instead of ~1): one square root fewer per vector. dual_lanes is this function after
/// its own r. Needs what dual_lanes needs, and r > 0 finite.
template <int N>
__attribute__((always_inline)) inline void dual_lanes_r(const __m512d* a, const __m512d* b, const __m512d* r, __m512d* c,
                                                        __m512d* tk, __m512d vab2, __m512d vd2, __m512d vcross) {
  const __m512d inv = _mm512_set1_pd(kInv2Pi), half = _mm512_set1_pd(0.5);
  const __m512d k0_up = _mm512_mul_pd(vab2, half), k0_down = _mm512_mul_pd(vcross, half);
  const __m512d d2 = _mm512_mul_pd(vd2, inv);  // and K1 = −d2 for c ≥ 0 (2ab − a² − b² = −(a − b)²)
  const __m512d sign = _mm512_set1_pd(-0.0);
  __m512d p[N] = {}, det[N] = {}, s[N] = {}, sigma[N] = {}, rho[N] = {}, psi[N] = {};
  __mmask8 over[N] = {}, open[N] = {};
  EMERGENT_LANES {
    p[v] = _mm512_mul_pd(a[v], b[v]);
    // q1q2 − c²: c² exact inside the fma, plus the rounding error of p (Dekker's TwoProduct).
    det[v] = _mm512_add_pd(_mm512_fnmadd_pd(c[v], c[v], p[v]), _mm512_fmsub_pd(a[v], b[v], p[v]));
    const __m512d cc = _mm512_mul_pd(c[v], c[v]), kp = _mm512_mul_pd(p[v], _mm512_set1_pd(kCollinearSquared));
    over[v] = _mm512_cmp_pd_mask(cc, kp, _CMP_GE_OQ);
    open[v] = _mm512_cmp_pd_mask(cc, kp, _CMP_NGE_UQ);  // = ~over, on the compare port
  }
  rsqrt_fma<N, false, true>(det, open, nullptr, s);  // s = 0 on snapped lanes
  EMERGENT_LANES {
    rho[v] = _mm512_andnot_pd(sign, _mm512_mul_pd(c[v], r[v]));
    sigma[v] = _mm512_mul_pd(s[v], r[v]);
    // Snapped lanes: c ← copysign(√(q1q2), c) (ternary logic: c's sign bit, the rest of √(q1q2)).
    c[v] = _mm512_castsi512_pd(_mm512_mask_ternarylogic_epi64(_mm512_castpd_si512(c[v]), over[v],
                                                                _mm512_castpd_si512(_mm512_mul_pd(p[v], r[v])),
                                                                _mm512_castpd_si512(sign), 0xE4));
  }
  angle_fma<N>(sigma, rho, psi);
  EMERGENT_LANES {
    const __mmask8 down = _mm512_cmp_pd_mask(c[v], _mm512_setzero_pd(), _CMP_LT_OQ);
    const __m512d t = _mm512_fnmadd_pd(d2, _mm512_mask_xor_pd(psi[v], down, psi[v], sign),
                                       _mm512_mask_blend_pd(down, k0_up, k0_down));
    c[v] = _mm512_fmadd_pd(c[v], t, _mm512_mul_pd(d2, s[v]));
    tk[v] = _mm512_mul_pd(tk[v], t);
  }
}

/// The dual on N vectors of plain arguments (q1, q2) = (a, b): c ← E[φ(u)φ(v)] at covariance c,
/// t ← t·E[φ'(u)φ'(v)]. The arithmetic of relu_family_dual() (activation_dual.cpp): the
/// determinant det = q1q2 − c² with exact products (fma), the collinear snap, θ = atan2(√det, c),
/// here θ = ψ for c ≥ 0 and π − ψ for c < 0 with ψ = atan2(σ, |ρ|) from angle_fma; then
/// (Cho & Saul 2009, Eq. 6)
///   E[φ'φ'] = [(a²+b²)(π−θ) + 2abθ]/(2π) = K0 + K1·ψ,   E[φφ] = (a−b)²√det/(2π) + c·E[φ'φ'],
///   (K0, K1) = ((a²+b²)/2, −(a−b)²/(2π)) for c ≥ 0,  (ab, (a−b)²/(2π)) for c < 0,
/// so π − θ is never formed by a subtraction (relu keeps its relative accuracy at θ → π).
/// Snapped lanes (c² ≥ kCollinearSquared·q1q2): √det = 0 (so ψ = 0: θ = 0 or π exactly) and
/// c ← copysign(√(q1q2), c), √(q1q2) = q1q2·r.
template <int N>
__attribute__((always_inline)) inline void dual_lanes(const __m512d* a, const __m512d* b, __m512d* c, __m512d* tk, __m512d vab2, __m512d vd2,
                       __m512d vcross) {
  __m512d p[N] = {}, r[N] = {};
  EMERGENT_LANES p[v] = _mm512_mul_pd(a[v], b[v]);
  rsqrt_fma<N, true, false>(p, nullptr, r, nullptr);
  dual_lanes_r<N>(a, b, r, c, tk, vab2, vd2, vcross);
}

/// Constants of dual_lanes_rinv for a family member with a ≠ b: μ = (a − b)²/(2π), and
/// κ = π·2ab/(a − b)², so that E[φ'φ'] = μ·(κ + τ) with τ = π − θ.
struct ScaledFamily {
  double mu = 1.0, kappa = 0.0;
};
inline ScaledFamily scaled_family(double d2, double cross) { return {d2 * kInv2Pi, kPi * cross / d2}; }

/// σ below which dual_lanes_rinv<N, false> hands the vectors back: 2⁻²² (σ² = 256ε), far above
/// the snap (σ² ≈ 32ε), so every lane it keeps is unsnapped whatever the rounding of σ.
inline constexpr double kOpenSigma = 1.0 / 4194304.0;

/// κ + τ at the centres of angle_fma for c ≥ 0 (τ = π − ψ_j), for dual_lanes_rinv<…, true>.
struct UpTable {
  __m512d lo, hi;
};
inline UpTable up_table(double kappa) {
  const __m512d up = _mm512_set1_pd(kappa + kPi);
  return {_mm512_sub_pd(up, _mm512_loadu_pd(kCentre)), _mm512_sub_pd(up, _mm512_loadu_pd(kCentre + 8))};
}

/// The dual of dual_lanes divided by μ (docs/conventions.md §2, Cho & Saul 2009, Eq. 6):
///   tk_out = tk·(κ + τ) = tk·E[φ'φ']/μ,   c_out = √det + c·(κ + τ) = E[φφ]/μ,
/// for the callers that fold μ into the linear map after it (the next conv, the readout). τ
/// comes without a subtraction of nearly equal terms: with ψ = atan2(σ, |ρ|) as in angle_fma,
/// τ = π − ψ for c ≥ 0 and ψ for c < 0, so κ + τ = (κ + π) − ψ or κ + ψ, and relu (κ = 0)
/// keeps its relative accuracy at θ → π.
/// rinv = 1/√(q1q2) comes from the caller, as the product of per-pixel 1/√q: no square root of
/// q1q2 here. √det = √(q1q2 − c²) (exact products, as in dual_lanes) from rsqrt_fma.
/// exact = false: no snap test; returns false, writing nothing, when some lane has σ < kOpenSigma
/// (√det not a number: snapped, c not finite, included), or c < 0 when nonneg; the caller then
/// calls exact = true, which gives those lanes' neighbours the same bits. exact = true: the
/// collinear snap of dual_lanes (c² ≥ kCollinearSquared·q1q2: √det = 0, c ← copysign(q1q2·rinv,
/// c)). nonneg (for covariances that are ≥ 0 but for rare exceptions, e.g. after a relu): the
/// lanes with c ≥ 0 take κ + τ = (κ + π − ψ_j) − asin x from `up` (up_table), one add fewer,
/// and no sign work in the common path. with_self (exact = false): the lanes of `self` are a
/// point against itself (c = q1 = q2 in the exact path); they skip the test and get the exact
/// path's snapped value, c_out = (q1q2·rinv)·(κ + π), tk_out = tk·(κ + π), bit for bit.
/// Arguments as for dual_lanes (plain_lanes); the lanes of one vector never mix.
/// What dual_rinv_open hands to dual_rinv_close: √det, (σ, |ρ|), c (snapped where exact) and,
/// with_self, q1q2·rinv.
template <int N>
struct RinvState {
  __m512d s[N], sigma[N], rho[N], cs[N], pr[N];
};

/// The first half of dual_lanes_rinv: √det, σ, ρ and (exact = false) the test; returns false
/// where dual_lanes_rinv would. Callers may run the second half (dual_rinv_close) of one group of
/// vectors beside the first half of the next: the two chains overlap.
template <int N, bool exact, bool nonneg = false, bool with_self = false>
__attribute__((always_inline)) inline bool dual_rinv_open(const __m512d* a, const __m512d* b, const __m512d* rinv,
                                                          const __m512d* c, RinvState<N>& st, __mmask8 self = 0) {
  const __m512d sign = _mm512_set1_pd(-0.0);
  __m512d p[N] = {}, det[N] = {};
  __mmask8 over[N] = {}, open[N] = {};
  EMERGENT_LANES {
    p[v] = _mm512_mul_pd(a[v], b[v]);
    det[v] = _mm512_add_pd(_mm512_fnmadd_pd(c[v], c[v], p[v]), _mm512_fmsub_pd(a[v], b[v], p[v]));
  }
  if constexpr (exact) {
    EMERGENT_LANES {
      const __m512d cc = _mm512_mul_pd(c[v], c[v]), kp = _mm512_mul_pd(p[v], _mm512_set1_pd(kCollinearSquared));
      over[v] = _mm512_cmp_pd_mask(cc, kp, _CMP_GE_OQ);
      open[v] = _mm512_cmp_pd_mask(cc, kp, _CMP_NGE_UQ);
    }
    rsqrt_fma<N, false, true>(det, open, nullptr, st.s);
  } else {
    rsqrt_fma<N, false, true>(det, nullptr, nullptr, st.s);
  }
  EMERGENT_LANES st.sigma[v] = _mm512_mul_pd(st.s[v], rinv[v]);
  if constexpr (!exact) {
    // Chained compares: lane l survives only if it passes in every vector.
    __mmask8 ok = with_self ? static_cast<__mmask8>(~self) : __mmask8(0xFF);
    EMERGENT_LANES {
      ok = _mm512_mask_cmp_pd_mask(ok, st.sigma[v], _mm512_set1_pd(kOpenSigma), _CMP_GE_OQ);
      if constexpr (nonneg) ok = _mm512_mask_cmp_pd_mask(ok, c[v], _mm512_setzero_pd(), _CMP_GE_OQ);
    }
    if (static_cast<__mmask8>(ok | (with_self ? self : 0)) != 0xFF) return false;
  }
  EMERGENT_LANES {
    const __m512d cr = _mm512_mul_pd(c[v], rinv[v]);
    st.rho[v] = nonneg && !exact ? cr : _mm512_andnot_pd(sign, cr);  // c ≥ 0 here unless exact
    if constexpr (exact || with_self) st.pr[v] = _mm512_mul_pd(p[v], rinv[v]);
    if constexpr (exact)
      st.cs[v] = _mm512_castsi512_pd(_mm512_mask_ternarylogic_epi64(
          _mm512_castpd_si512(c[v]), over[v], _mm512_castpd_si512(st.pr[v]), _mm512_castpd_si512(sign), 0xE4));
    else
      st.cs[v] = c[v];
  }
  return true;
}

/// The second half of dual_lanes_rinv: the angle, κ + τ and the outputs. accumulate: c_out and
/// tk_out hold sums the outputs are added to, c_out += √det + c·(κ + τ) and tk_out += tk·(κ + τ)
/// in one fma (a readout that sums the outputs over pixels: one rounding and one instruction fewer).
template <int N, bool exact, bool nonneg = false, bool with_self = false, bool accumulate = false>
__attribute__((always_inline)) inline void dual_rinv_close(const RinvState<N>& st, const __m512d* tk, __m512d* c_out,
                                                           __m512d* tk_out, __m512d kappa_up, __m512d kappa_down,
                                                           UpTable up = {}, __mmask8 self = 0) {
  __m512d tau[N] = {};
  if constexpr (nonneg) {
    // angle_fma's reduction with κ + π − ψ_j in place of ψ_j (c ≥ 0 lanes).
    const __m512d cos_lo = _mm512_loadu_pd(kCentreCos), cos_hi = _mm512_loadu_pd(kCentreCos + 8);
    const __m512d sin_lo = _mm512_loadu_pd(kCentreSin), sin_hi = _mm512_loadu_pd(kCentreSin + 8);
    const __m512d magic = _mm512_set1_pd(6755399441055744.0 + 7.0);
    __m512d base[N] = {}, x[N] = {}, centre[N] = {};
    EMERGENT_LANES {
      const __m512d w = _mm512_sub_pd(st.sigma[v], st.rho[v]);
      const __m512i j = _mm512_castpd_si512(_mm512_fmadd_pd(w, _mm512_set1_pd(7.0), magic));
      base[v] = _mm512_permutex2var_pd(up.lo, j, up.hi);
      const __m512d cj = _mm512_permutex2var_pd(cos_lo, j, cos_hi), sj = _mm512_permutex2var_pd(sin_lo, j, sin_hi);
      x[v] = _mm512_fmsub_pd(st.sigma[v], cj, _mm512_mul_pd(st.rho[v], sj));
      if constexpr (exact) centre[v] = _mm512_permutex2var_pd(_mm512_loadu_pd(kCentre), j, _mm512_loadu_pd(kCentre + 8));
    }
    EMERGENT_LANES {
      const __m512d q = asin_factor(_mm512_mul_pd(x[v], x[v]));
      tau[v] = _mm512_fnmadd_pd(x[v], q, base[v]);
      if constexpr (exact) {  // c < 0: κ + ψ, ψ = ψ_j + asin x as in angle_q
        const __mmask8 down = _mm512_cmp_pd_mask(st.cs[v], _mm512_setzero_pd(), _CMP_LT_OQ);
        const __m512d psi = _mm512_fmadd_pd(x[v], q, centre[v]);
        tau[v] = _mm512_mask_add_pd(tau[v], down, psi, kappa_down);
      }
    }
  } else {
    __m512d psi[N] = {};
    angle_q<N>(st.sigma, st.rho, psi);
    EMERGENT_LANES {
      const __mmask8 down = _mm512_cmp_pd_mask(st.cs[v], _mm512_setzero_pd(), _CMP_LT_OQ);
      tau[v] = _mm512_mask_add_pd(_mm512_sub_pd(kappa_up, psi[v]), down, psi[v], kappa_down);
    }
  }
  EMERGENT_LANES {
    if constexpr (accumulate) {
      __m512d value = _mm512_fmadd_pd(st.cs[v], tau[v], st.s[v]), t = tau[v];
      if constexpr (with_self && !exact) {
        value = _mm512_mask_mul_pd(value, self, st.pr[v], kappa_up);
        t = _mm512_mask_mov_pd(t, self, kappa_up);
      }
      c_out[v] = _mm512_add_pd(c_out[v], value);
      tk_out[v] = _mm512_fmadd_pd(tk[v], t, tk_out[v]);
    } else {
      c_out[v] = _mm512_fmadd_pd(st.cs[v], tau[v], st.s[v]);
      tk_out[v] = _mm512_mul_pd(tk[v], tau[v]);
      if constexpr (with_self && !exact) {
        c_out[v] = _mm512_mask_mul_pd(c_out[v], self, st.pr[v], kappa_up);
        tk_out[v] = _mm512_mask_mul_pd(tk_out[v], self, tk[v], kappa_up);
      }
    }
  }
}

/// dual_rinv_open, then dual_rinv_close (accumulate: see there).
template <int N, bool exact, bool nonneg = false, bool with_self = false, bool accumulate = false>
__attribute__((always_inline)) inline bool dual_lanes_rinv(const __m512d* a, const __m512d* b, const __m512d* rinv,
                                                           const __m512d* c, const __m512d* tk, __m512d* c_out,
                                                           __m512d* tk_out, __m512d kappa_up, __m512d kappa_down,
                                                           UpTable up = {}, __mmask8 self = 0) {
  RinvState<N> st;
  if (!dual_rinv_open<N, exact, nonneg, with_self>(a, b, rinv, c, st, self)) return false;
  dual_rinv_close<N, exact, nonneg, with_self, accumulate>(st, tk, c_out, tk_out, kappa_up, kappa_down, up, self);
  return true;
}

/// 1/√q on the lanes of q (positive normal values, as plain_lanes' rows give them): the inverse
/// root of rsqrt_fma, ~1 ulp. A caller that keeps r1 = 1/√q1 and r2 = 1/√q2 per pixel gives
/// dual_lanes_r their product instead of the root of every pair's q1·q2.
__attribute__((always_inline)) inline __m512d inverse_root(__m512d q) {
  __m512d r;
  rsqrt_fma<1, true, false>(&q, nullptr, &r, nullptr);
  return r;
}

#undef EMERGENT_LANES
}  // namespace family_simd
#pragma GCC diagnostic pop
#endif

}  // namespace emergent::detail
