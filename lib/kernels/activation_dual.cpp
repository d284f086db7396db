// Dual kernels of the activations (include/emergent/kernels/activation_dual.hpp): closed forms
// with their citations, the batched ReLU-family path and the 2-D quadrature rules.
#include "emergent/kernels/activation_dual.hpp"

#include "kernels/relu_family_avx512.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace emergent {
namespace {
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kTwoOverSqrtPi = 1.12837916709551257390;
}  // namespace

// Dual kernels.
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kInv2Pi = 0.15915494309189533577;

std::shared_ptr<const GaussHermiteRule> cached_rule(int n) {
  static std::mutex mutex;
  static std::map<int, std::shared_ptr<const GaussHermiteRule>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[n];
  if (!slot) slot = std::make_shared<const GaussHermiteRule>(gauss_hermite(n));
  return slot;
}

/// Slopes (a, b) of φ(x) = a·min(x,0) + b·max(x,0) for the ReLU family.
void family_slopes(const Activation& act, double* a, double* b) {
  switch (act.kind) {
    case ActivationKind::Identity: *a = 1.0; *b = 1.0; return;
    case ActivationKind::Relu: *a = 0.0; *b = 1.0; return;
    case ActivationKind::Abs: *a = -1.0; *b = 1.0; return;
    case ActivationKind::LeakyRelu: *a = act.a; *b = 1.0; return;
    default: *a = act.a; *b = act.b; return;
  }
}

/// q1·q2 − c² without cancellation beyond what the inputs carry: the two products are split
/// exactly with fma (Dekker's TwoProduct), so for nearly collinear inputs (θ → 0) the
/// determinant keeps its relative accuracy with respect to the input rounding.
inline double gram_det(double q1, double q2, double c) {
  const double p = q1 * q2, ep = std::fma(q1, q2, -p);
  const double cc = c * c, ec = std::fma(c, c, -cc);
  return std::fmax(0.0, (p - cc) + (ep - ec));
}

/// In the kernel recursions (apply(), not operator(), which treats its arguments as exact), pairs
/// within 16 ulps of collinearity, c² ≥ (1 − 16ε)²·q1q2, are taken as exactly collinear
/// (c = ±√(q1q2), θ = 0 or π). Why: near c = ±1 the ReLU-family duals depend on √(1 − |c|), so one
/// ulp of round-off in c — inevitable for pairs collinear by construction (one input channel
/// through pixelwise layers, a layer norm, identical inputs) — becomes a 1e-8 error in θ and 1e-9
/// in Θ. A computed c that is genuinely this close to ±1 carries a few ulps of error anyway, so its
/// θ is uncertain by √(2·ulps·ε); the snap at most quadruples that (√16 = 4) and makes the
/// structural case exact (checked against a 50-digit evaluation, python/compare/mp_reference.py).
/// Smooth duals (erf, GELU, …) change by O(16ε) relative. Every branch of apply() (batched,
/// AVX-512, the per-entry fixups) uses this one threshold, so all kernel paths agree.
constexpr double kCollinearSquared = detail::kCollinearSquared;

/// Validated and clamped arguments: q ≥ 0, |c| ≤ √(q1 q2), det = q1 q2 − c² ≥ 0.
struct Cov {
  double q1, q2, c, det;
};

Cov sanitize(double q1, double q2, double c) {
  if (!std::isfinite(q1) || !std::isfinite(q2) || !std::isfinite(c))
    throw std::invalid_argument("ActivationDual: (q1, q2, c) = (" + std::to_string(q1) + ", " +
                                std::to_string(q2) + ", " + std::to_string(c) +
                                "), expected finite values");
  // Round-off allowance for variances that should be 0 (documented in the header).
  const double tol = 1e-9 * std::max({std::fabs(q1), std::fabs(q2), std::fabs(c)}) + 1e-14;
  if (q1 < -tol || q2 < -tol)
    throw std::invalid_argument("ActivationDual: variance q1 = " + std::to_string(q1) +
                                ", q2 = " + std::to_string(q2) + ", expected q1, q2 >= 0");
  Cov r{std::fmax(q1, 0.0), std::fmax(q2, 0.0), c, 0.0};
  const double p = r.q1 * r.q2;
  if (c * c >= p) {  // collinear or beyond (round-off): clamp to the Cauchy–Schwarz bound
    r.c = std::copysign(std::sqrt(p), c);
    r.det = 0.0;
  } else {
    r.det = gram_det(r.q1, r.q2, c);
  }
  return r;
}

/// φ = a·min(x,0) + b·max(x,0) = b·relu(x) − a·relu(−x). With the arc-cosine kernel of order 1
/// (Cho & Saul 2009, Eq. 6; θ = angle between u and v)
///   E[relu(u)relu(v)]  = (√(q1q2) sinθ + (π−θ) c)/(2π),  E[relu(u)relu(−v)] = the same at θ → π−θ, c → −c,
/// so   E[φ(u)φ(v)]   = [(a−b)² √(q1q2) sinθ + c((a²+b²)(π−θ) + 2abθ)]/(2π),
/// and  E[φ'(u)φ'(v)] = [(a²+b²)(π−θ) + 2abθ]/(2π)   (orthant probabilities (π−θ)/2π, θ/2π).
/// θ = atan2(√det, c) keeps full accuracy at θ ≈ 0 (acos would lose half the digits there);
/// θ and π − θ both come from ψ = atan2(√det, |c|) (θ = ψ or π − ψ as c ≥ 0 or c < 0), so π − θ
/// keeps it too at θ ≈ π (relu's E[φ'φ'] = (π − θ)/(2π) there).
/// Zero variance: u ≡ 0, φ'(0) = (a+b)/2 (see Activation::derivative), which is θ = π/2.
struct Angles {
  double theta, co;  // θ and π − θ
};
inline Angles angles(const Cov& k, double s) {
  const double psi = (k.q1 > 0 && k.q2 > 0) ? std::atan2(s, std::fabs(k.c)) : 0.5 * kPi;
  return k.c < 0 ? Angles{kPi - psi, psi} : Angles{psi, kPi - psi};
}

inline DualValue relu_family_dual(double a, double b, const Cov& k) {
  const double s = std::sqrt(k.det);
  const Angles g = angles(k, s);
  const double ab2 = a * a + b * b, d = a - b;
  const double t = ab2 * g.co + 2.0 * a * b * g.theta;
  return {(d * d * s + k.c * t) * kInv2Pi, t * kInv2Pi};
}

/// The relu member alone, branch-light (the hot path of deep ReLU kernels).
inline DualValue relu_dual(const Cov& k) {
  const double s = std::sqrt(k.det);
  const double co = angles(k, s).co;
  return {(s + co * k.c) * kInv2Pi, co * kInv2Pi};
}

/// erf (Williams 1997, Eq. 11): E[erf(u)erf(v)] = (2/π) asin(2c/√((1+2q1)(1+2q2))).
/// Its c-derivative (Price's theorem) gives E[φ'φ'] = (4/π)/√((1+2q1)(1+2q2) − 4c²), where the
/// radicand 1 + 2(q1+q2) + 4(q1q2 − c²) ≥ 1.
inline DualValue erf_dual(const Cov& k) {
  const double p = (1.0 + 2.0 * k.q1) * (1.0 + 2.0 * k.q2);
  const double r = std::clamp(2.0 * k.c / std::sqrt(p), -1.0, 1.0);
  const double rad = 1.0 + 2.0 * (k.q1 + k.q2) + 4.0 * k.det;
  return {(2.0 / kPi) * std::asin(r), (4.0 / kPi) / std::sqrt(rad)};
}

/// gelu φ(x) = xΦ(x). Write Φ(u) = P(g1 ≤ u) with g1 ~ N(0,1) and s_i = u_i − g_i; Gaussian
/// integration by parts on E[u v 1{s1≥0} 1{s2≥0}] (our derivation; the same kernel as
/// Tsuchida et al. 2021 and Neural Tangents' stax.Gelu) gives, with P = (1+q1)(1+q2),
/// D = P − c² = 1 + q1 + q2 + (q1q2 − c²) ≥ 1,
///   E[φ(u)φ(v)]   = c/4 + c·asin(c/√P)/(2π) + (q1q2·D + c²)/(2π P √D),
///   E[φ'(u)φ'(v)] = ∂/∂c of it (Price) = 1/4 + asin(c/√P)/(2π) + c((3+q1+q2)D + c²)/(2π P D^{3/2}).
inline DualValue gelu_dual(const Cov& k) {
  const double p = (1.0 + k.q1) * (1.0 + k.q2);
  const double d = 1.0 + k.q1 + k.q2 + k.det;
  const double as = std::asin(std::clamp(k.c / std::sqrt(p), -1.0, 1.0));
  const double sd = std::sqrt(d);
  const double nngp = 0.25 * k.c + k.c * as * kInv2Pi + (k.q1 * k.q2 * d + k.c * k.c) * kInv2Pi / (p * sd);
  const double ntk = 0.25 + as * kInv2Pi + k.c * ((3.0 + k.q1 + k.q2) * d + k.c * k.c) * kInv2Pi / (p * d * sd);
  return {nngp, ntk};
}

/// sin/cos from E[cos(u ± v)] = exp(−(q1 + q2 ∓ 2c)/2):
///   E[sin u sin v] = e^{−(q1+q2)/2} sinh c,  E[cos u cos v] = e^{−(q1+q2)/2} cosh c.
/// Evaluated as ½e^{−(q1+q2−2|c|)/2}(1 ∓ e^{−2|c|}) so that nothing overflows (q1+q2 ≥ 2|c|) and
/// sinh keeps its relative accuracy for small c (expm1).
inline void sin_cos_products(const Cov& k, double* ss, double* cc) {
  const double ac = std::fabs(k.c);
  const double base = 0.5 * std::exp(-0.5 * std::fmax(0.0, k.q1 + k.q2 - 2.0 * ac));
  const double em = std::expm1(-2.0 * ac);  // e^{−2|c|} − 1
  *ss = std::copysign(-base * em, k.c);
  *cc = base * (2.0 + em);
}

// ---- quadrature -------------------------------------------------------------------------------

/// φ and φ' in one evaluation (one transcendental call where possible).
struct Phi {
  ActivationKind kind;
  double a, b;  // ReLU-family slopes
  inline void operator()(double x, double* v, double* d) const {
    switch (kind) {
      case ActivationKind::Tanh: { const double t = std::tanh(x); *v = t; *d = 1.0 - t * t; return; }
      case ActivationKind::Sigmoid: {
        const double e = std::exp(-std::fabs(x)), s = (x >= 0 ? 1.0 : e) / (1.0 + e);
        *v = s; *d = s * (1.0 - s); return;
      }
      case ActivationKind::Softplus: {
        const double e = std::exp(-std::fabs(x));
        *v = std::fmax(x, 0.0) + std::log1p(e); *d = (x >= 0 ? 1.0 : e) / (1.0 + e); return;
      }
      case ActivationKind::Swish: {
        const double e = std::exp(-std::fabs(x)), s = (x >= 0 ? 1.0 : e) / (1.0 + e);
        *v = x * s; *d = s + x * s * (1.0 - s); return;
      }
      case ActivationKind::Erf:
        *v = std::erf(x); *d = kTwoOverSqrtPi * std::exp(-x * x); return;
      case ActivationKind::Gelu: {
        *v = x * 0.5 * std::erfc(-x * kInvSqrt2);
        *d = 0.5 * std::erfc(-x * kInvSqrt2) + x * kInvSqrt2Pi * std::exp(-0.5 * x * x); return;
      }
      case ActivationKind::Sin: *v = std::sin(x); *d = std::cos(x); return;
      case ActivationKind::Cos: *v = std::cos(x); *d = -std::sin(x); return;
      default:  // ReLU family, kink convention of Activation::derivative
        *v = x > 0 ? b * x : a * x;
        *d = x > 0 ? b : (x < 0 ? a : 0.5 * (a + b));
        return;
    }
  }
};

/// Cholesky factor of [[q1, c], [c, q2]] with q1 ≥ q2: u = l11 z1, v = l21 z1 + l22 z2.
struct Chol {
  double l11, l21, l22;
};

inline Chol cholesky(const Cov& k) {
  if (k.q1 <= 0) return {0.0, 0.0, std::sqrt(k.q2)};
  const double l11 = std::sqrt(k.q1);
  return {l11, k.c / l11, std::sqrt(k.det) / l11};
}

/// Swap so that q1 ≥ q2 (the duals are symmetric; this makes the quadrature exactly so, and
/// puts the larger scale on the outer variable).
inline Cov ordered(Cov k) {
  if (k.q1 < k.q2) std::swap(k.q1, k.q2);
  return k;
}

/// 2-D Gauss–Hermite product rule on the Cholesky factor.
DualValue gauss_hermite_2d(const Phi& phi, const GaussHermiteRule& rule, const Cov& k) {
  const Chol L = cholesky(ordered(k));
  const std::size_t n = rule.nodes.size();
  double nngp = 0.0, ntk = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    double fu, du;
    phi(L.l11 * rule.nodes[i], &fu, &du);
    const double m = L.l21 * rule.nodes[i];
    double sv = 0.0, sd = 0.0;
    for (std::size_t j = 0; j < n; ++j) {
      double fv, dv;
      phi(m + L.l22 * rule.nodes[j], &fv, &dv);
      sv += rule.weights[j] * fv;
      sd += rule.weights[j] * dv;
    }
    nngp += rule.weights[i] * fu * sv;
    ntk += rule.weights[i] * du * sd;
  }
  return {nngp, ntk};
}

// Product trapezoidal rule on the Cholesky factor (the default for tanh, sigmoid, softplus,
// swish). For an integrand analytic in the strip |Im z| < d and Gaussian-decaying, the
// trapezoidal rule of step h errs by ≈ exp(−2πd/h) (Trefethen & Weideman, SIAM Rev. 56 (2014),
// Thm. 5.1): exponential in the number of nodes, whereas Gauss–Hermite converges only like
// exp(−const·√n) and wastes most nodes in the tails. φ(σz) has its nearest singularity at
// distance d_φ/σ (tanh: π/2, logistic family: π), so the step is h = min(kStepGauss,
// kStepFraction·d_φ/σ) per dimension, σ its largest Cholesky coefficient.
constexpr double kTruncation = 9.0;     // |z| ≤ 9 in each coordinate and z1² + z2² ≤ 81 (mass < 3e-18)
constexpr double kStepGauss = 0.5;      // resolves the Gaussian itself: error ~ exp(−2π²/h²) ≈ 7e-35
constexpr double kStepFraction = 0.2;   // exp(−2π/0.2) ≈ 2e-14 nominal; measured ≤ 1e-10 (tests)
constexpr int kMaxHalfNodes = 300;      // ≤ 601 nodes per dimension: caps the cost per call

double singularity_distance(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::Sigmoid:
    case ActivationKind::Softplus:
    case ActivationKind::Swish: return kPi;  // poles of the logistic function at ±iπ
    default: return 0.5 * kPi;              // tanh poles at ±iπ/2; also used for the closed forms
  }
}

inline double trapezoid_step(double sigma, double d_phi) {
  double h = kStepGauss;
  if (sigma * h > kStepFraction * d_phi) h = kStepFraction * d_phi / sigma;
  return std::fmax(h, kTruncation / kMaxHalfNodes);
}

DualValue trapezoid_2d(const Phi& phi, double d_phi, const Cov& k) {
  const Chol L = cholesky(ordered(k));
  const double h1 = trapezoid_step(std::fmax(L.l11, std::fabs(L.l21)), d_phi);
  const double h2 = trapezoid_step(L.l22, d_phi);
  const int n1 = std::min(kMaxHalfNodes, int(kTruncation / h1));
  const int n2 = std::min(kMaxHalfNodes, int(kTruncation / h2));
  constexpr double kInvSqrt2PiLocal = 0.39894228040143267794;
  std::array<double, kMaxHalfNodes + 1> w2;  // inner weights, w2[|j|]; no heap per call
  for (int j = 0; j <= n2; ++j) {
    const double z = j * h2;
    w2[j] = h2 * kInvSqrt2PiLocal * std::exp(-0.5 * z * z);
  }
  double nngp = 0.0, ntk = 0.0;
  for (int i = -n1; i <= n1; ++i) {
    const double z1 = i * h1;
    const double w1 = h1 * kInvSqrt2PiLocal * std::exp(-0.5 * z1 * z1);
    double fu, du;
    phi(L.l11 * z1, &fu, &du);
    const double m = L.l21 * z1;
    const int jmax = std::min(n2, int(std::sqrt(std::fmax(0.0, kTruncation * kTruncation - z1 * z1)) / h2));
    double sv = 0.0, sd = 0.0;
    for (int j = -jmax; j <= jmax; ++j) {
      double fv, dv;
      phi(m + L.l22 * (j * h2), &fv, &dv);
      const double w = w2[j < 0 ? -j : j];
      sv += w * fv;
      sd += w * dv;
    }
    nngp += w1 * fu * sv;
    ntk += w1 * du * sd;
  }
  return {nngp, ntk};
}

Phi make_phi(const Activation& act) {
  double a = 0.0, b = 1.0;
  family_slopes(act, &a, &b);
  return {act.kind, a, b};
}

}  // namespace

ActivationDual::ActivationDual(const Activation& activation, int quadrature_order)
    : activation_(activation) {
  if (quadrature_order < 0 || quadrature_order > kMaxQuadratureOrder)
    throw std::invalid_argument("ActivationDual: quadrature_order = " +
                                std::to_string(quadrature_order) + ", expected 0 (default rule) or 1.." +
                                std::to_string(kMaxQuadratureOrder) + " Gauss–Hermite nodes");
  if (!std::isfinite(activation.a) || !std::isfinite(activation.b))
    throw std::invalid_argument("ActivationDual: slopes (a, b) = (" + std::to_string(activation.a) +
                                ", " + std::to_string(activation.b) + "), expected finite values");
  if (quadrature_order > 0) rule_ = cached_rule(quadrature_order);
}

int ActivationDual::quadrature_order() const {
  return rule_ ? static_cast<int>(rule_->nodes.size()) : 0;
}

DualValue ActivationDual::quadrature(double q1, double q2, double c) const {
  const Cov k = sanitize(q1, q2, c);
  const Phi phi = make_phi(activation_);
  if (rule_) return gauss_hermite_2d(phi, *rule_, k);
  return trapezoid_2d(phi, singularity_distance(activation_.kind), k);
}

DualValue ActivationDual::operator()(double q1, double q2, double c) const {
  const Cov k = sanitize(q1, q2, c);
  switch (activation_.kind) {
    case ActivationKind::Relu: return relu_dual(k);
    case ActivationKind::Identity: return {k.c, 1.0};
    case ActivationKind::Abs:
    case ActivationKind::LeakyRelu:
    case ActivationKind::AbRelu: {
      double a, b;
      family_slopes(activation_, &a, &b);
      return relu_family_dual(a, b, k);
    }
    case ActivationKind::Erf: return erf_dual(k);
    case ActivationKind::Gelu: return gelu_dual(k);
    case ActivationKind::Sin: { double ss, cc; sin_cos_products(k, &ss, &cc); return {ss, cc}; }
    case ActivationKind::Cos: { double ss, cc; sin_cos_products(k, &ss, &cc); return {cc, ss}; }
    default: {
      const Phi phi = make_phi(activation_);
      if (rule_) return gauss_hermite_2d(phi, *rule_, k);
      return trapezoid_2d(phi, singularity_distance(activation_.kind), k);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Batched duals. The ReLU family is the hot path of deep kernels; its scalar form spends most
// of its time in libm's atan2 and in per-call argument checks. Here the checks run once per
// batch and θ comes from a branch-free atan2 that the compiler vectorizes.
namespace {

/// atan2(y, x) for y ≥ 0 (so θ ∈ [0, π]), branch-free. With r = min(|x|,y)/max(|x|,y) ∈ [0, 1],
/// r > tan(π/8) is mapped to π/4 + atan((r−1)/(r+1)), leaving |z| ≤ tan(π/8) ≈ 0.414 for the
/// Taylor series atan z = Σ (−1)^j z^{2j+1}/(2j+1); 21 terms truncate at z^43/43 < 5e-18.
#pragma omp declare simd notinbranch
inline double atan2_upper(double y, double x) {
  constexpr double kTanPi8 = 0.41421356237309504880;
  const double ax = std::fabs(x);
  const double lo = ax < y ? ax : y, hi = ax < y ? y : ax;
  // One division, its operands selected first, so the loop has no branches:
  // z = r or (r−1)/(r+1) = (lo−hi)/(lo+hi).
  const double h = hi > 0 ? hi : 1.0;
  const bool reduce = lo > kTanPi8 * h;
  const double z = (reduce ? lo - hi : lo) / (reduce ? lo + hi : h);
  const double z2 = z * z;
  // Σ_j c_j z2^j, c_j = (−1)^j/(2j+1), j = 0 … 21, by Estrin's scheme: pairs, then pairs of
  // pairs in z2², z2⁴, … — a dependency chain of 5 multiply-adds instead of Horner's 21, which
  // made the batched duals latency-bound.
  static constexpr double coef[22] = {
      1.0,        -1.0 / 3,  1.0 / 5,  -1.0 / 7,  1.0 / 9,  -1.0 / 11, 1.0 / 13, -1.0 / 15,
      1.0 / 17,   -1.0 / 19, 1.0 / 21, -1.0 / 23, 1.0 / 25, -1.0 / 27, 1.0 / 29, -1.0 / 31,
      1.0 / 33,   -1.0 / 35, 1.0 / 37, -1.0 / 39, 1.0 / 41, -1.0 / 43};
  const double x2 = z2 * z2, x4 = x2 * x2, x8 = x4 * x4, x16 = x8 * x8;
  double e[11];
  for (int k = 0; k < 11; ++k) e[k] = coef[2 * k] + coef[2 * k + 1] * z2;
  const double f0 = e[0] + e[1] * x2, f1 = e[2] + e[3] * x2, f2 = e[4] + e[5] * x2, f3 = e[6] + e[7] * x2,
               f4 = e[8] + e[9] * x2, f5 = e[10];
  const double g0 = f0 + f1 * x4, g1 = f2 + f3 * x4, g2 = f4 + f5 * x4;
  const double p = (g0 + g1 * x8) + g2 * x16;
  double a = z * p + (reduce ? 0.25 * kPi : 0.0);
  a = ax < y ? 0.5 * kPi - a : a;
  return x < 0 ? kPi - a : a;
}

}  // namespace

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

/// sanitize() without the checks, for arguments known to be finite with q1, q2 > 0.
inline Cov clamped(double q1, double q2, double c) {
  Cov r{q1, q2, c, 0.0};
  const double p = q1 * q2;
  if (c * c >= kCollinearSquared * p) r.c = std::copysign(std::sqrt(p), c);
  else r.det = gram_det(q1, q2, c);
  return r;
}

inline bool plain_arguments(double a, double b, double c) {
  return (a > 0) & (b > 0) & (a < kInf) & (b < kInf) & (std::fabs(c) < kInf);
}

/// The ReLU family φ = a·min(x,0) + b·max(x,0) over a batch of plain arguments, vectorized:
/// the arithmetic of relu_family_dual() with θ from atan2_upper() and one square root (of the
/// determinant, or of q1·q2 where c is clamped to the Cauchy–Schwarz bound).
template <std::size_t s1, std::size_t s2>
void family_batch(std::size_t n, const double* q1, const double* q2, double* nngp, double* ntk, double ab2,
                  double d2, double cross) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) {
    const double a = q1[i * s1], b = q2[i * s2];
    double c = nngp[i];
    // sanitize() of the scalar path: clamp to Cauchy–Schwarz, exact products by fma.
    const double p = a * b, cc = c * c;
    const double raw = (p - cc) + (std::fma(a, b, -p) - std::fma(c, c, -cc));
    const double det = raw > 0 ? raw : 0.0;  // not fmax: it blocks vectorization (NaN rules)
    const bool over = cc >= kCollinearSquared * p;
    const double root = std::sqrt(over ? p : det);
    c = over ? std::copysign(root, c) : c;
    const double s = over ? 0.0 : root;
    // ψ = atan2(s, |c|) ∈ [0, π/2]; θ = ψ or π − ψ as c ≥ 0 or c < 0 (relu_family_dual()).
    const double psi = atan2_upper(s, std::fabs(c)), rest = kPi - psi;
    const double t = c < 0 ? ab2 * psi + cross * rest : ab2 * rest + cross * psi;
    nngp[i] = (d2 * s + c * t) * kInv2Pi;
    ntk[i] *= t * kInv2Pi;
  }
}

#if defined(__AVX512F__)
template <std::size_t s1, std::size_t s2>
void family_batch_avx512(std::size_t n, const double* q1, const double* q2, double* nngp, double* ntk, double ab2,
                         double d2, double cross) {
  const __m512d vab2 = _mm512_set1_pd(ab2), vd2 = _mm512_set1_pd(d2), vcross = _mm512_set1_pd(cross);
  // Four vectors of 8 entries at a time (their dependency chains overlap), then single vectors.
  auto step = [&](auto lanes, std::size_t i, __mmask8 m) __attribute__((always_inline)) {
    constexpr int N = decltype(lanes)::value;
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d av[N] = {}, bv[N] = {}, c[N] = {}, tk[N] = {};
    for (int v = 0; v < N; ++v) {
      const std::size_t k = i + 8 * static_cast<std::size_t>(v);
      const __m512d a = s1 == 0 ? _mm512_set1_pd(q1[0]) : _mm512_maskz_loadu_pd(m, q1 + k);
      const __m512d b = s2 == 0 ? _mm512_set1_pd(q2[0]) : _mm512_maskz_loadu_pd(m, q2 + k);
      // Unused lanes: a = b = 1, c = 0 (harmless arithmetic, never stored).
      av[v] = _mm512_mask_mov_pd(one, m, a), bv[v] = _mm512_mask_mov_pd(one, m, b);
      c[v] = _mm512_maskz_loadu_pd(m, nngp + k);
      tk[v] = _mm512_maskz_loadu_pd(m, ntk + k);
    }
    detail::family_simd::dual_lanes<N>(av, bv, c, tk, vab2, vd2, vcross);
    for (int v = 0; v < N; ++v) {
      const std::size_t k = i + 8 * static_cast<std::size_t>(v);
      _mm512_mask_storeu_pd(nngp + k, m, c[v]);
      _mm512_mask_storeu_pd(ntk + k, m, tk[v]);
    }
  };
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) step(std::integral_constant<int, 4>{}, i, 0xFF);
  for (; i < n; i += 8) step(std::integral_constant<int, 1>{}, i, n - i >= 8 ? __mmask8(0xFF) : __mmask8((1u << (n - i)) - 1));
}

/// How many of the entries fail family_plain() (below), 8 at a time: the lanes
/// family_simd::plain_lanes() does not take (the same test as the fused rows of the kernel engine).
/// The common case, none, costs one pass of loads and compares with the failures OR-ed into one
/// mask; only when some lane fails are they counted.
template <std::size_t s1, std::size_t s2>
std::size_t family_special_avx512(std::size_t n, const double* q1, const double* q2, const double* c) {
  const __m512d one = _mm512_set1_pd(1.0);
  auto lanes = [&](std::size_t i, __mmask8 m) __attribute__((always_inline)) {
    const __m512d a = s1 == 0 ? _mm512_set1_pd(q1[0]) : _mm512_mask_loadu_pd(one, m, q1 + i);
    const __m512d b = s2 == 0 ? _mm512_set1_pd(q2[0]) : _mm512_mask_loadu_pd(one, m, q2 + i);
    return static_cast<__mmask8>(m & ~detail::family_simd::plain_lanes(a, b, _mm512_maskz_loadu_pd(m, c + i)));
  };
  const std::size_t full = n / 8 * 8;
  __mmask8 any = 0;
  for (std::size_t i = 0; i < full; i += 8) any |= lanes(i, 0xFF);
  if (full < n) any |= lanes(full, static_cast<__mmask8>((1u << (n - full)) - 1));
  if (any == 0) return 0;
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; i += 8) {
    const __mmask8 m = n - i >= 8 ? __mmask8(0xFF) : __mmask8((1u << (n - i)) - 1);
    count += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(lanes(i, m))));
  }
  return count;
}
#endif

/// The entries the vectorized ReLU family takes: plain, with a·b where its estimates are exact.
inline bool family_plain(double a, double b, double c) {
#if defined(__AVX512F__)
  const double p = a * b;
  return plain_arguments(a, b, c) & (p > 1e-280) & (p < 1e280);
#else
  return plain_arguments(a, b, c);
#endif
}

/// A closed-form dual over a batch of plain arguments: the checks of sanitize() are hoisted.
template <class Dual>
void closed_batch(std::size_t n, const double* q1, std::size_t s1, const double* q2, std::size_t s2, double* nngp,
                  double* ntk, Dual dual) {
  for (std::size_t i = 0; i < n; ++i) {
    if (!plain_arguments(q1[i * s1], q2[i * s2], nngp[i])) continue;  // left to operator()
    const DualValue v = dual(clamped(q1[i * s1], q2[i * s2], nngp[i]));
    nngp[i] = v.nngp;
    ntk[i] *= v.ntk_scale;
  }
}
}  // namespace

void ActivationDual::apply(std::size_t n, const double* q1, std::size_t q1_step, const double* q2,
                           std::size_t q2_step, double* nngp, double* ntk) const {
  // Validation hoisted out of the evaluation loop: one branch-free pass counts the arguments
  // that need the scalar path's care (non-finite, zero or negative variance). Those are
  // evaluated by operator() (which validates and throws as documented), each on its own, so an
  // entry's bits never depend on the other entries of its batch.
  const bool family = activation_.kind == ActivationKind::Relu || activation_.kind == ActivationKind::Identity ||
                      activation_.kind == ActivationKind::Abs || activation_.kind == ActivationKind::LeakyRelu ||
                      activation_.kind == ActivationKind::AbRelu;
  auto plain = [family](double a, double b, double c) {
    return family ? family_plain(a, b, c) : plain_arguments(a, b, c);
  };
  std::size_t special = 0;
#if defined(__AVX512F__)
  if (family && q1_step <= 1 && q2_step <= 1) {
    if (q1_step == 1 && q2_step == 1) special = family_special_avx512<1, 1>(n, q1, q2, nngp);
    else if (q1_step == 0 && q2_step == 1) special = family_special_avx512<0, 1>(n, q1, q2, nngp);
    else if (q1_step == 1) special = family_special_avx512<1, 0>(n, q1, q2, nngp);
    else special = family_special_avx512<0, 0>(n, q1, q2, nngp);
  } else
#endif
    for (std::size_t i = 0; i < n; ++i) special += plain(q1[i * q1_step], q2[i * q2_step], nngp[i]) ? 0 : 1;
  struct Fixup {
    std::size_t i;
    double ntk;
    DualValue v;
  };
  std::vector<Fixup> fixups;
  if (special > 0) {
    fixups.reserve(special);
    for (std::size_t i = 0; i < n; ++i) {
      const double a = q1[i * q1_step], b = q2[i * q2_step];
      if (plain(a, b, nngp[i])) continue;
      double c = nngp[i];
      const double p = a * b;
      // Just past the Cauchy–Schwarz bound, which operator() clamps back with a zero determinant.
      if (p > 0 && p < kInf && c * c >= kCollinearSquared * p && c * c < p)
        c = std::copysign(std::nextafter(std::sqrt(p), kInf), c);
      fixups.push_back({i, ntk[i], (*this)(a, b, c)});  // throws for invalid arguments
    }
    if (fixups.size() == n) {  // nothing left for the batch
      for (const auto& f : fixups) nngp[f.i] = f.v.nngp, ntk[f.i] = f.ntk * f.v.ntk_scale;
      return;
    }
  }
  double slope_a = 0, slope_b = 1;
  switch (activation_.kind) {
    case ActivationKind::Relu:
    case ActivationKind::Identity:
    case ActivationKind::Abs:
    case ActivationKind::LeakyRelu:
    case ActivationKind::AbRelu: {
      family_slopes(activation_, &slope_a, &slope_b);
      const double ab2 = slope_a * slope_a + slope_b * slope_b, d2 = (slope_a - slope_b) * (slope_a - slope_b);
      const double cross = 2.0 * slope_a * slope_b;
#if defined(__AVX512F__)
      if (q1_step == 1 && q2_step == 1) family_batch_avx512<1, 1>(n, q1, q2, nngp, ntk, ab2, d2, cross);
      else if (q1_step == 0 && q2_step == 1) family_batch_avx512<0, 1>(n, q1, q2, nngp, ntk, ab2, d2, cross);
      else if (q1_step == 1 && q2_step == 0) family_batch_avx512<1, 0>(n, q1, q2, nngp, ntk, ab2, d2, cross);
      else if (q1_step == 0 && q2_step == 0) family_batch_avx512<0, 0>(n, q1, q2, nngp, ntk, ab2, d2, cross);
#else
      if (q1_step == 1 && q2_step == 1) family_batch<1, 1>(n, q1, q2, nngp, ntk, ab2, d2, cross);
      else if (q1_step == 0 && q2_step == 1) family_batch<0, 1>(n, q1, q2, nngp, ntk, ab2, d2, cross);
      else if (q1_step == 1 && q2_step == 0) family_batch<1, 0>(n, q1, q2, nngp, ntk, ab2, d2, cross);
      else if (q1_step == 0 && q2_step == 0) family_batch<0, 0>(n, q1, q2, nngp, ntk, ab2, d2, cross);
#endif
      else closed_batch(n, q1, q1_step, q2, q2_step, nngp, ntk, [&](const Cov& k) { return relu_family_dual(slope_a, slope_b, k); });
      break;
    }
    case ActivationKind::Erf: closed_batch(n, q1, q1_step, q2, q2_step, nngp, ntk, erf_dual); break;
    case ActivationKind::Gelu: closed_batch(n, q1, q1_step, q2, q2_step, nngp, ntk, gelu_dual); break;
    case ActivationKind::Sin:
      closed_batch(n, q1, q1_step, q2, q2_step, nngp, ntk, [](const Cov& k) {
        double ss, cc;
        sin_cos_products(k, &ss, &cc);
        return DualValue{ss, cc};
      });
      break;
    case ActivationKind::Cos:
      closed_batch(n, q1, q1_step, q2, q2_step, nngp, ntk, [](const Cov& k) {
        double ss, cc;
        sin_cos_products(k, &ss, &cc);
        return DualValue{cc, ss};
      });
      break;
    default: {  // quadrature: the rule dominates, the checks do not matter
      const Phi phi = make_phi(activation_);
      const double d_phi = singularity_distance(activation_.kind);
      const GaussHermiteRule* rule = rule_.get();
      closed_batch(n, q1, q1_step, q2, q2_step, nngp, ntk, [&](const Cov& k) {
        return rule ? gauss_hermite_2d(phi, *rule, k) : trapezoid_2d(phi, d_phi, k);
      });
    }
  }
  for (const auto& f : fixups) nngp[f.i] = f.v.nngp, ntk[f.i] = f.ntk * f.v.ntk_scale;
}

namespace detail {
bool relu_family_coefficients(const Activation& act, FamilyCoefficients* out) {
  switch (act.kind) {
    case ActivationKind::Relu:
    case ActivationKind::Identity:
    case ActivationKind::Abs:
    case ActivationKind::LeakyRelu:
    case ActivationKind::AbRelu: {
      double a = 0, b = 1;
      family_slopes(act, &a, &b);
      *out = {a * a + b * b, (a - b) * (a - b), 2.0 * a * b};
      return true;
    }
    default: return false;
  }
}
}  // namespace detail

}  // namespace emergent
