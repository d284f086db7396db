// The ReLU-family dual divided by μ with 1/√(q1q2) given (family_simd::dual_lanes_rinv, the
// pixel-diagonal path's dual; lib/kernels/relu_family_avx512.hpp): accuracy against an
// extended-precision closed form, and the bit-identity of its common and exact halves on which
// the path's layout independence rests.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "emergent/core/activation.hpp"
#include "emergent/core/random.hpp"
#include "kernels/relu_family_avx512.hpp"

#if defined(__AVX512F__)
using emergent::Activation;
using namespace emergent::detail;

namespace {
constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr long double kPiL = 3.141592653589793238462643383279502884L;

// The closed form (Cho & Saul 2009, Eq. 6) in x87 long double, written independently of the
// vector code: det from exact double-double products, θ and π − θ each from its own atan2l;
// snapped pairs (c² ≥ (1 − 16ε)²·q1q2 in double, docs/conventions.md §2) exactly collinear.
// Returns E[φφ], E[φ'φ'] and the sums of the magnitudes of their terms (the error scale).
struct Reference {
  long double nngp, ntk, nngp_scale, ntk_scale;
};
Reference closed_form(double a, double b, double q1, double q2, double c) {
  const double p = q1 * q2, ep = std::fma(q1, q2, -p), cc = c * c, ec = std::fma(c, c, -cc);
  const bool snap = cc >= (1 - 16 * kEps) * (1 - 16 * kEps) * p;
  const long double pl = static_cast<long double>(p) + ep;
  const long double det = snap ? 0.0L : (static_cast<long double>(p) - cc) + (static_cast<long double>(ep) - ec);
  const long double cl = snap ? std::copysign(std::sqrt(pl), static_cast<long double>(c)) : c;
  const long double s = std::sqrt(det), psi = std::atan2(s, std::fabs(cl));
  const long double theta = cl < 0 ? kPiL - psi : psi, rest = cl < 0 ? psi : kPiL - psi;
  const long double al = a, bl = b, ab2 = al * al + bl * bl, d2 = (al - bl) * (al - bl), cross = 2 * al * bl;
  const long double t = (ab2 * rest + cross * theta) / (2 * kPiL);
  const long double tau = (ab2 * rest + std::fabs(cross) * theta) / (2 * kPiL);
  return {d2 * s / (2 * kPiL) + cl * t, t, d2 * s / (2 * kPiL) + std::fabs(cl) * tau, tau};
}

double one_over_root(double q) { return 1.0 / std::sqrt(q); }

// 8 lanes through the common half (falling back to the exact one as the kernel does).
template <bool nonneg>
void scaled_dual(const double* q1, const double* q2, const double* c, const double* tk, double kappa, double* c_out,
                 double* tk_out, bool* common) {
  alignas(64) double r[8];
  for (int l = 0; l < 8; ++l) r[l] = one_over_root(q1[l]) * one_over_root(q2[l]);
  const __m512d a[1] = {_mm512_loadu_pd(q1)}, b[1] = {_mm512_loadu_pd(q2)}, rr[1] = {_mm512_load_pd(r)};
  const __m512d cv[1] = {_mm512_loadu_pd(c)}, tv[1] = {_mm512_loadu_pd(tk)};
  const __m512d ku = _mm512_set1_pd(kappa + family_simd::kPi), kd = _mm512_set1_pd(kappa);
  const family_simd::UpTable up = family_simd::up_table(kappa);
  __m512d co[1], to[1];
  *common = family_simd::dual_lanes_rinv<1, false, nonneg>(a, b, rr, cv, tv, co, to, ku, kd, up);
  if (!*common) family_simd::dual_lanes_rinv<1, true, nonneg>(a, b, rr, cv, tv, co, to, ku, kd, up);
  _mm512_storeu_pd(c_out, co[0]);
  _mm512_storeu_pd(tk_out, to[0]);
}

struct Inputs {
  std::vector<double> q1, q2, c;
};
// (q1, q2, c) over the magnitudes the path takes (q ∈ [1e-139, 1e139]), c near 0, negative,
// anywhere, nearly collinear (1 − |ρ| from 1e-2 down to a few ulps, both sides of the snap) and
// at c² = q1q2 up to round-off; the kind changes from one vector of 8 to the next, so that some
// vectors take the common half and others the exact one.
Inputs random_inputs(std::size_t n, std::uint64_t stream) {
  emergent::NormalStream rng(2026, stream);
  Inputs in{std::vector<double>(n), std::vector<double>(n), std::vector<double>(n)};
  for (std::size_t i = 0; i < n; ++i) {
    const double u0 = rng.uniform(4 * i), u1 = rng.uniform(4 * i + 1), u2 = rng.uniform(4 * i + 2);
    const double sign = rng.uniform(4 * i + 3) < 0.5 ? -1.0 : 1.0;
    const double span = i % 2 ? 69.0 : 3.0;
    in.q1[i] = std::pow(10.0, span * (2 * u0 - 1));
    in.q2[i] = std::pow(10.0, span * (2 * u1 - 1));
    double rho = 2 * u2 - 1;
    switch (i / 8 % 6) {
      case 1: rho = sign * std::pow(10.0, -20 * u2); break;
      case 2: rho = sign * (1 - std::pow(10.0, -2 - 13 * u2)); break;
      case 3: rho = sign * (1 - std::floor(40 * u2) * kEps); break;
      case 4: rho = i % 2 ? 0.0 : sign; break;
      default: break;
    }
    in.c[i] = rho * std::sqrt(in.q1[i] * in.q2[i]);
  }
  return in;
}
}  // namespace

TEST_CASE("the scaled ReLU-family dual (1/sqrt(q) per pixel) agrees with an extended-precision closed form to 1e-15") {
  const Activation acts[] = {Activation::relu(), Activation::abs(), Activation::leaky_relu(0.1),
                             Activation::abrelu(-0.4, 1.7), Activation::abrelu(0.3, -1.2)};
  const std::size_t n = 6000;
  const Inputs in = random_inputs(n, 31);
  std::vector<double> tk(n);
  for (std::size_t i = 0; i < n; ++i) tk[i] = 0.5 + static_cast<double>(i % 7) / 7;
  for (const auto& act : acts) {
    CAPTURE(act.name());
    FamilyCoefficients f;
    REQUIRE(relu_family_coefficients(act, &f));
    // (a, b) back from (a² + b², (a − b)², 2ab): a + b and a − b up to a common sign, which the dual ignores.
    const double sum = std::sqrt(f.ab2 + f.cross), diff = std::sqrt(f.d2), a = (sum - diff) / 2, b = (sum + diff) / 2;
    const family_simd::ScaledFamily sf = family_simd::scaled_family(f.d2, f.cross);
    for (int nonneg = 0; nonneg < 2; ++nonneg) {
      CAPTURE(nonneg);
      // The c ≥ 0 form gets c ≥ 0 in two vectors of three (as after a relu), either sign in the rest.
      std::vector<double> cn = in.c;
      if (nonneg)
        for (std::size_t i = 0; i < n; ++i)
          if (i / 8 % 3 != 0) cn[i] = std::fabs(cn[i]);
      double worst_nngp = 0, worst_ntk = 0, worst_relu_ntk = 0;
      std::size_t common = 0, exact = 0;
      for (std::size_t i = 0; i < n; i += 8) {
        double co[8], to[8];
        bool fast = false;
        if (nonneg) scaled_dual<true>(&in.q1[i], &in.q2[i], &cn[i], &tk[i], sf.kappa, co, to, &fast);
        else scaled_dual<false>(&in.q1[i], &in.q2[i], &cn[i], &tk[i], sf.kappa, co, to, &fast);
        (fast ? common : exact) += 8;
        for (int l = 0; l < 8; ++l) {
          const Reference r = closed_form(a, b, in.q1[i + l], in.q2[i + l], cn[i + l]);
          const long double mu = sf.mu;
          worst_nngp = std::max(worst_nngp, static_cast<double>(std::fabs(mu * co[l] - r.nngp) / r.nngp_scale));
          worst_ntk = std::max(worst_ntk, static_cast<double>(std::fabs(mu * to[l] - tk[i + l] * r.ntk) /
                                                              (tk[i + l] * r.ntk_scale)));
          if (a == 0 && r.ntk > 0)  // relu: (π − θ)/(2π) itself, θ → π included
            worst_relu_ntk = std::max(worst_relu_ntk, static_cast<double>(std::fabs(mu * to[l] / (tk[i + l] * r.ntk) - 1)));
        }
      }
      MESSAGE(act.name() << std::string(nonneg ? " (c >= 0 form)" : "") << ": worst NNGP " << worst_nngp << ", NTK " << worst_ntk
                         << "; " << common << " lanes common, " << exact << " exact");
      CHECK(worst_nngp <= 1e-15);
      CHECK(worst_ntk <= 1e-15);
      CHECK(worst_relu_ntk <= 1e-15);
      CHECK(common > 0);
      CHECK(exact > 0);
    }
  }
}

TEST_CASE("the scaled dual: the common half gives the exact half's bits, x against itself included") {
  // The pixel-diagonal path sends a vector to the exact half when any of its lanes needs it, so
  // every lane must come out the same either way; lanes of a point against itself (c = q1 = q2
  // in the exact half) get the snapped value in the common half.
  emergent::NormalStream rng(77, 3);
  std::size_t compared = 0, differ = 0;
  for (double kappa : {0.0, 0.9, -1.5707963267948966}) {
    const __m512d ku = _mm512_set1_pd(kappa + family_simd::kPi), kd = _mm512_set1_pd(kappa);
    const family_simd::UpTable up = family_simd::up_table(kappa);
    for (std::uint64_t it = 0; it < 4000; ++it) {
      alignas(64) double q[8], q2[8], c[8], t[8], r[8];
      for (int l = 0; l < 8; ++l) {
        const std::uint64_t k = 8 * (8 * it + static_cast<std::uint64_t>(l));
        q[l] = std::pow(10.0, 6 * rng.uniform(k) - 3);
        q2[l] = std::pow(10.0, 6 * rng.uniform(k + 1) - 3);
        c[l] = (2 * rng.uniform(k + 2) - 0.4) * std::sqrt(q[l] * q2[l]);  // mostly c ≥ 0, some c < 0
        t[l] = 0.1 + rng.uniform(k + 3);
      }
      const __mmask8 self = static_cast<__mmask8>(static_cast<unsigned>(256 * rng.uniform(64 * it + 7)) & 0xFF);
      for (int l = 0; l < 8; ++l)
        if (self >> l & 1) q2[l] = q[l];
      for (int l = 0; l < 8; ++l) r[l] = one_over_root(q[l]) * one_over_root(q2[l]);
      const __m512d a[1] = {_mm512_load_pd(q)}, b[1] = {_mm512_load_pd(q2)}, rr[1] = {_mm512_load_pd(r)};
      const __m512d cv[1] = {_mm512_load_pd(c)}, tv[1] = {_mm512_load_pd(t)};
      const __m512d cx[1] = {_mm512_mask_mov_pd(cv[0], self, a[0])};  // the exact half's self lanes
      __m512d co[1], to[1], ce[1], te[1];
      for (int form = 0; form < 2; ++form) {
        const bool common = form ? family_simd::dual_lanes_rinv<1, false, true, true>(a, b, rr, cv, tv, co, to, ku, kd, up, self)
                                 : family_simd::dual_lanes_rinv<1, false, false, true>(a, b, rr, cv, tv, co, to, ku, kd, up, self);
        if (form) family_simd::dual_lanes_rinv<1, true, true>(a, b, rr, cx, tv, ce, te, ku, kd, up);
        else family_simd::dual_lanes_rinv<1, true, false>(a, b, rr, cx, tv, ce, te, ku, kd, up);
        if (!common) continue;
        alignas(64) double x1[8], x2[8], y1[8], y2[8];
        _mm512_store_pd(x1, co[0]), _mm512_store_pd(x2, ce[0]), _mm512_store_pd(y1, to[0]), _mm512_store_pd(y2, te[0]);
        for (int l = 0; l < 8; ++l) {
          ++compared;
          if (std::memcmp(x1 + l, x2 + l, 8) != 0 || std::memcmp(y1 + l, y2 + l, 8) != 0) ++differ;
        }
      }
    }
  }
  MESSAGE(compared << " lanes compared");
  CHECK(compared > 20000);
  CHECK(differ == 0);
}

TEST_CASE("angle_q: atan2 of a unit vector to an ulp, small angles relative, beside angle_fma") {
  // ψ = ψ_j + x·Q(x²) (asin_factor) against atan2l of the same (σ, |ρ|) in long double, over
  // ψ ∈ [0, π/2] with angles down to 1e-300 (ψ_0 = 0: relative accuracy); and within 2 ulp of
  // angle_fma's ψ_j + (x + x³R(x²)), the same reduction rounded once more.
  emergent::NormalStream rng(91, 5);
  double worst = 0, worst_small = 0, worst_vs_fma = 0;
  std::size_t small = 0;
  for (std::uint64_t it = 0; it < 3000; ++it) {
    alignas(64) double sg[8], rh[8], qa[8], fa[8];
    for (int l = 0; l < 8; ++l) {
      const std::uint64_t k = 2 * (8 * it + static_cast<std::uint64_t>(l));
      // Half the lanes uniform in angle, half log-uniform down to 1e-300 (σ tiny) or near π/2.
      const double u = rng.uniform(k), v = rng.uniform(k + 1);
      const double psi = l < 4 ? u * (kPiL / 2) : l < 6 ? std::pow(10.0, -300 * v) : kPiL / 2 - std::pow(10.0, -16 * v);
      sg[l] = std::sin(psi);
      rh[l] = std::cos(psi);
    }
    const __m512d sv[1] = {_mm512_load_pd(sg)}, rv[1] = {_mm512_load_pd(rh)};
    __m512d pq[1], pf[1];
    family_simd::angle_q<1>(sv, rv, pq);
    family_simd::angle_fma<1>(sv, rv, pf);
    _mm512_store_pd(qa, pq[0]);
    _mm512_store_pd(fa, pf[0]);
    for (int l = 0; l < 8; ++l) {
      const long double want = std::atan2(static_cast<long double>(sg[l]), static_cast<long double>(rh[l]));
      const double rel = static_cast<double>(std::fabs((qa[l] - want) / want));
      worst = std::max(worst, rel);
      if (want < 1e-3L) worst_small = std::max(worst_small, rel), ++small;
      worst_vs_fma = std::max(worst_vs_fma, std::fabs(qa[l] - fa[l]) / std::fabs(fa[l]));
    }
  }
  MESSAGE("angle_q: worst relative " << worst << " (small angles " << worst_small << ", " << small
                                      << " lanes), vs angle_fma " << worst_vs_fma);
  CHECK(small > 3000);
  CHECK(worst <= 2.5 * kEps);
  CHECK(worst_small <= 1.5 * kEps);
  CHECK(worst_vs_fma <= 2 * kEps);
  // asin_factor: asin x = x·Q(x²) on |x| ≤ 0.0691 against asinl.
  double worst_asin = 0;
  for (int k = 0; k <= 2000; ++k) {
    const double x = 0.0691 * (k - 1000) / 1000.0 + (k == 1000 ? 1e-200 : 0.0);
    alignas(64) double q[8];
    _mm512_store_pd(q, family_simd::asin_factor(_mm512_set1_pd(x * x)));
    const long double want = std::asin(static_cast<long double>(x));
    worst_asin = std::max(worst_asin, static_cast<double>(std::fabs((x * q[0] - want) / want)));
  }
  MESSAGE("asin_factor: worst relative " << worst_asin);
  CHECK(worst_asin <= 1.5 * kEps);
}
#endif
