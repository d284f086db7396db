// Activations and their dual kernels: exact identities, limits, and comparisons with independent
// integrations (Boost.Math adaptive Gauss–Kronrod), with tolerances taken from the reference's own
// error estimate or from the measured convergence of the rule under test.
#include <doctest/doctest.h>

#include <algorithm>
#include <boost/math/quadrature/gauss_kronrod.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "emergent/kernels/activation_dual.hpp"
#include "emergent/kernels/quadrature.hpp"
#include "emergent/core/random.hpp"

using emergent::Activation;
using emergent::ActivationDual;
using emergent::ActivationKind;
using emergent::DualValue;

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kEps = std::numeric_limits<double>::epsilon();

double normal_pdf(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2.0 * kPi); }
double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

/// Adaptive Gauss–Kronrod on [lo, hi]; *err receives Boost's error estimate.
template <class F>
double gk(F f, double lo, double hi, double* err, double tol = 1e-14) {
  double e = 0.0;
  const double v = boost::math::quadrature::gauss_kronrod<double, 31>::integrate(f, lo, hi, 20, tol, &e);
  if (err) *err += e;
  return v;
}

struct Ref {
  DualValue v;
  double err_nngp = 0.0, err_ntk = 0.0;
};

/// Independent evaluation for φ = a·min(x,0) + b·max(x,0): condition on z1 (u = √q1 z1) and use
/// E[relu(v)|z1] = μΦ(μ/s) + sϕ(μ/s), E[1{v>0}|z1] = Φ(μ/s) with μ = (c/√q1) z1,
/// s² = q2 − c²/q1; the remaining 1-D integral is split at the kink z1 = 0.
Ref relu_family_reference(double a, double b, double q1, double q2, double c) {
  const double l11 = std::sqrt(q1), l21 = c / l11, l22 = std::sqrt(q2 - c * c / q1);
  auto R = [&](double mu) { return mu * normal_cdf(mu / l22) + l22 * normal_pdf(mu / l22); };
  auto phi = [&](double x) { return x > 0 ? b * x : a * x; };
  auto dphi = [&](double x) { return x > 0 ? b : a; };
  auto f_nngp = [&](double z) {
    const double mu = l21 * z;
    return normal_pdf(z) * phi(l11 * z) * (b * R(mu) - a * R(-mu));
  };
  auto f_ntk = [&](double z) {
    const double mu = l21 * z;
    return normal_pdf(z) * dphi(l11 * z) * (b * normal_cdf(mu / l22) + a * normal_cdf(-mu / l22));
  };
  Ref r;
  r.v.nngp = gk(f_nngp, -40.0, 0.0, &r.err_nngp) + gk(f_nngp, 0.0, 40.0, &r.err_nngp);
  r.v.ntk_scale = gk(f_ntk, -40.0, 0.0, &r.err_ntk) + gk(f_ntk, 0.0, 40.0, &r.err_ntk);
  return r;
}

/// Nested adaptive Gauss–Kronrod over the Cholesky coordinates (z1, z2) of (u, v), split where
/// u = 0 and where v = 0 (the steep regions of saturating activations). Independent of the
/// library's rules; its own error estimate is returned.
Ref nested_reference(const Activation& act, double q1, double q2, double c) {
  const double l11 = std::sqrt(q1), l21 = c / l11, l22 = std::sqrt(std::max(0.0, q2 - c * c / q1));
  Ref r;
  auto inner = [&](double z1, bool deriv, double* err) {
    const double m = l21 * z1;
    auto g = [&](double z2) {
      const double v = m + l22 * z2;
      return normal_pdf(z2) * (deriv ? act.derivative(v) : act.value(v));
    };
    const double split = std::clamp(-m / l22, -12.0, 12.0);
    return gk(g, -12.0, split, err, 1e-12) + gk(g, split, 12.0, err, 1e-12);
  };
  for (int deriv = 0; deriv < 2; ++deriv) {
    double err = 0.0;
    auto f = [&](double z1) {
      const double u = l11 * z1;
      return normal_pdf(z1) * (deriv ? act.derivative(u) : act.value(u)) * inner(z1, deriv, &err);
    };
    double outer_err = 0.0;
    const double val = gk(f, -12.0, 0.0, &outer_err, 1e-12) + gk(f, 0.0, 12.0, &outer_err, 1e-12);
    // inner errors are accumulated over all outer nodes; weight them by the largest pdf·|φ|
    // they can be multiplied with (crude but an upper bound for |φ| ≤ 1+|x|).
    const double total = outer_err + err * 24.0 * (1.0 + l11 * 12.0) * normal_pdf(0.0) / 31.0;
    if (deriv) { r.v.ntk_scale = val; r.err_ntk = total; } else { r.v.nngp = val; r.err_nngp = total; }
  }
  return r;
}

/// Product trapezoid over the Cholesky coordinates, |z| ≤ 10, steps `fraction`·min(0.5, d/σ)
/// with d = 0.2π/2 (tanh) or 0.2π — written independently of the library's rule.
DualValue fine_trapezoid(const Activation& act, double q1, double q2, double c, double fraction) {
  if (q1 < q2) std::swap(q1, q2);
  const double l11 = std::sqrt(q1), l21 = c / l11, l22 = std::sqrt(std::max(0.0, q2 - c * c / q1));
  const double d = 0.2 * (act.kind == ActivationKind::Tanh ? kPi / 2 : kPi);
  const double h1 = fraction * std::min(0.5, d / l11), h2 = fraction * std::min(0.5, d / std::max(l22, 1e-300));
  const int n1 = int(10.0 / h1), n2 = int(10.0 / h2);
  std::vector<double> fv(2 * n2 + 1);
  DualValue r;
  for (int i = -n1; i <= n1; ++i) {
    const double z1 = i * h1, w1 = h1 * normal_pdf(z1);
    double sv = 0.0, sd = 0.0;
    for (int j = -n2; j <= n2; ++j) {
      const double z2 = j * h2, w2 = h2 * normal_pdf(z2), v = l21 * z1 + l22 * z2;
      sv += w2 * act.value(v);
      sd += w2 * act.derivative(v);
    }
    r.nngp += w1 * act.value(l11 * z1) * sv;
    r.ntk_scale += w1 * act.derivative(l11 * z1) * sd;
  }
  return r;
}

/// 1-D reference for the diagonal E[φ(u)²], E[φ'(u)²], u ~ N(0, q).
DualValue diagonal_reference(const Activation& act, double q, double* err) {
  const double s = std::sqrt(q);
  auto f = [&](double z) { const double y = act.value(s * z); return normal_pdf(z) * y * y; };
  auto g = [&](double z) { const double y = act.derivative(s * z); return normal_pdf(z) * y * y; };
  DualValue d;
  d.nngp = gk(f, -40.0, 0.0, err) + gk(f, 0.0, 40.0, err);
  d.ntk_scale = gk(g, -40.0, 0.0, err) + gk(g, 0.0, 40.0, err);
  return d;
}

/// Cauchy–Schwarz scales √(E[φ(u)²]E[φ(v)²]) and √(E[φ'(u)²]E[φ'(v)²]): "relative" accuracy of a
/// dual kernel is measured against these (the kernel itself may vanish, e.g. odd φ at c = 0).
DualValue scales(const ActivationDual& dual, double q1, double q2) {
  const DualValue a = dual(q1, q1, q1), b = dual(q2, q2, q2);
  return {std::sqrt(a.nngp * b.nngp), std::sqrt(a.ntk_scale * b.ntk_scale)};
}

std::vector<Activation> all_activations() {
  return {Activation::identity(), Activation::relu(), Activation::abs(), Activation::leaky_relu(0.1),
          Activation::abrelu(-0.5, 2.0), Activation::of(ActivationKind::Erf),
          Activation::of(ActivationKind::Gelu), Activation::of(ActivationKind::Sin),
          Activation::of(ActivationKind::Cos), Activation::of(ActivationKind::Tanh),
          Activation::of(ActivationKind::Sigmoid), Activation::of(ActivationKind::Softplus),
          Activation::of(ActivationKind::Swish)};
}

/// (q1, q2, ρ) grid, ρ = c/√(q1q2), including near-collinear and anti-collinear inputs.
struct Case { double q1, q2, rho; };
std::vector<Case> grid(double qmax) {
  std::vector<Case> out;
  const double qs[] = {0.01, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0};
  const double rhos[] = {-0.999, -0.5, 0.0, 0.3, 0.9, 0.999};
  for (double q1 : qs)
    for (double q2 : qs)
      if (q1 <= qmax && q2 <= qmax && q2 <= q1)
        for (double r : rhos) out.push_back({q1, q2, r});
  return out;
}

// The slopes (a, b) of a ReLU-family activation φ = a·min(x,0) + b·max(x,0), written out per kind
// for the tests' independent closed forms.
std::pair<double, double> family_slopes(const Activation& act) {
  switch (act.kind) {
    case ActivationKind::Relu: return {0.0, 1.0};
    case ActivationKind::Abs: return {-1.0, 1.0};
    case ActivationKind::LeakyRelu: return {act.a, 1.0};
    case ActivationKind::Identity: return {1.0, 1.0};
    default: return {act.a, act.b};
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_CASE("gauss_hermite integrates polynomials exactly and its weights sum to 1") {
  for (int n : {1, 2, 3, 5, 10, 21, 64, 150, 400, 1000}) {
    CAPTURE(n);
    const auto rule = emergent::gauss_hermite(n);
    REQUIRE(rule.nodes.size() == std::size_t(n));
    REQUIRE(rule.weights.size() == std::size_t(n));
    double sum = 0.0;
    for (double w : rule.weights) { CHECK(w >= 0.0); sum += w; }
    CHECK(sum == doctest::Approx(1.0).epsilon(50 * kEps));
    for (int i = 1; i < n; ++i) CHECK(rule.nodes[i] > rule.nodes[i - 1]);
    // E[Z^{2k}] = (2k−1)!!, odd moments 0, exact for degree ≤ 2n − 1 (rounding grows with
    // the size of the terms, Σ w_i z_i^{2k} ≤ max z^{2k}; only k ≤ 12 is checked).
    double dfact = 1.0;
    for (int k = 1; 2 * k <= 2 * n - 1 && k <= 12; ++k) {
      dfact *= (2 * k - 1);
      double even = 0.0, odd = 0.0, abs_terms = 0.0;
      for (int i = 0; i < n; ++i) {
        even += rule.weights[i] * std::pow(rule.nodes[i], 2 * k);
        odd += rule.weights[i] * std::pow(rule.nodes[i], 2 * k - 1);
        abs_terms += rule.weights[i] * std::fabs(std::pow(rule.nodes[i], 2 * k - 1));
      }
      CAPTURE(k);
      CHECK(even == doctest::Approx(dfact).epsilon(200 * kEps * (k + 1)));
      CHECK(std::fabs(odd) <= 10 * kEps * abs_terms);
    }
  }
  // An n-point rule is not exact at degree 2n: E[Z^2] with n = 1 gives 0, not 1.
  CHECK(emergent::gauss_hermite(1).nodes[0] == 0.0);
  CHECK_THROWS_AS(emergent::gauss_hermite(0), std::invalid_argument);
  CHECK_THROWS_AS(emergent::gauss_hermite(1001), std::invalid_argument);
}

TEST_CASE("names follow the architecture spec") {
  CHECK(Activation::relu().name() == "relu");
  CHECK(Activation::identity().name() == "identity");
  CHECK(Activation::abs().name() == "abs");
  CHECK(Activation::leaky_relu(0.1).name() == "leaky_relu(0.1)");
  CHECK(Activation::abrelu(-1, 1).name() == "abrelu(-1, 1)");
  CHECK(Activation::abrelu(0.25, 2.5).name() == "abrelu(0.25, 2.5)");
  CHECK(Activation::of(ActivationKind::Tanh).name() == "tanh");
  CHECK(Activation::of(ActivationKind::Gelu).name() == "gelu");
  CHECK(Activation::of(ActivationKind::Softplus).name() == "softplus");
  CHECK(Activation::of(ActivationKind::Swish).name() == "swish");
  CHECK(Activation::of(ActivationKind::Sigmoid).name() == "sigmoid");
  for (const auto& act : all_activations())
    CHECK(act.closed_form() == !(act.kind == ActivationKind::Tanh || act.kind == ActivationKind::Sigmoid ||
                                 act.kind == ActivationKind::Softplus || act.kind == ActivationKind::Swish));
}

TEST_CASE("derivative matches central finite differences of value") {
  const double xs[] = {-3.1, -1.0, -0.37, -1e-3, 2e-3, 0.41, 1.3, 4.2};
  for (const auto& act : all_activations()) {
    CAPTURE(act.name());
    for (double x : xs) {
      CAPTURE(x);
      // Central differences err by h²|φ'''|/6; with h = 1e-5 and |φ'''| ≲ 10 that is ≲ 2e-10,
      // plus rounding ~ eps|φ|/h ≲ 1e-10.
      const double h = 1e-5;
      const double fd = (act.value(x + h) - act.value(x - h)) / (2 * h);
      CHECK(act.derivative(x) == doctest::Approx(fd).epsilon(1e-9).scale(1.0));
    }
  }
  // Kink convention: the mean slope (a+b)/2.
  CHECK(Activation::relu().derivative(0.0) == 0.5);
  CHECK(Activation::identity().derivative(0.0) == 1.0);
  CHECK(Activation::abs().derivative(0.0) == 0.0);
  CHECK(Activation::abrelu(-0.5, 2.0).derivative(0.0) == 0.75);
}

TEST_CASE("abrelu reduces to relu, leaky_relu, abs and identity") {
  struct Pair { Activation special, general; };
  const Pair pairs[] = {{Activation::relu(), Activation::abrelu(0, 1)},
                        {Activation::leaky_relu(0.2), Activation::abrelu(0.2, 1)},
                        {Activation::abs(), Activation::abrelu(-1, 1)},
                        {Activation::identity(), Activation::abrelu(1, 1)}};
  for (const auto& p : pairs) {
    CAPTURE(p.special.name());
    for (double x : {-2.0, -0.5, 0.0, 0.7, 3.0}) {
      CHECK(p.special.value(x) == p.general.value(x));
      CHECK(p.special.derivative(x) == p.general.derivative(x));
    }
    const ActivationDual ds(p.special), dg(p.general);
    for (const auto& k : grid(10.0)) {
      const double c = k.rho * std::sqrt(k.q1 * k.q2);
      const DualValue a = ds(k.q1, k.q2, c), b = dg(k.q1, k.q2, c);
      const double tol = 8 * kEps * (k.q1 + k.q2);
      CHECK(std::fabs(a.nngp - b.nngp) <= tol);
      CHECK(std::fabs(a.ntk_scale - b.ntk_scale) <= 8 * kEps);
    }
  }
}

TEST_CASE("identity dual is (c, 1); zero inputs give φ(0)² and φ'(0)²") {
  const ActivationDual id(Activation::identity());
  for (const auto& k : grid(100.0)) {
    const double c = k.rho * std::sqrt(k.q1 * k.q2);
    const DualValue d = id(k.q1, k.q2, c);
    CHECK(d.nngp == c);
    CHECK(d.ntk_scale == 1.0);
  }
  for (const auto& act : all_activations()) {
    CAPTURE(act.name());
    const ActivationDual dual(act);
    const DualValue z = dual(0.0, 0.0, 0.0);
    const double f0 = act.value(0.0), d0 = act.derivative(0.0);
    CHECK(z.nngp == doctest::Approx(f0 * f0).epsilon(1e-14).scale(1.0));
    CHECK(z.ntk_scale == doctest::Approx(d0 * d0).epsilon(1e-14).scale(1.0));
    // One zero input: u ≡ 0, so E[φ(u)φ(v)] = φ(0)·E[φ(v)] and E[φ'(0)φ'(v)] likewise.
    double err = 0.0;
    const double q = 2.0, s = std::sqrt(q);
    const double ef = gk([&](double z) { return normal_pdf(z) * act.value(s * z); }, -40, 0, &err) +
                      gk([&](double z) { return normal_pdf(z) * act.value(s * z); }, 0, 40, &err);
    const double ed = gk([&](double z) { return normal_pdf(z) * act.derivative(s * z); }, -40, 0, &err) +
                      gk([&](double z) { return normal_pdf(z) * act.derivative(s * z); }, 0, 40, &err);
    for (const DualValue& d : {dual(0.0, q, 0.0), dual(q, 0.0, 0.0)}) {
      CHECK(d.nngp == doctest::Approx(f0 * ef).epsilon(1e-9).scale(1.0));
      CHECK(d.ntk_scale == doctest::Approx(d0 * ed).epsilon(1e-9).scale(1.0));
    }
  }
}

TEST_CASE("ReLU-family closed forms agree with a 1-D adaptive integral of the conditional mean") {
  const Activation acts[] = {Activation::relu(), Activation::abs(), Activation::leaky_relu(0.1),
                             Activation::abrelu(-0.5, 2.0), Activation::abrelu(0.3, -1.2)};
  for (const auto& act : acts) {
    CAPTURE(act.name());
    const ActivationDual dual(act);
    const auto [a, b] = family_slopes(act);
    for (const auto& k : grid(100.0)) {
      const double c = k.rho * std::sqrt(k.q1 * k.q2);
      CAPTURE(k.q1); CAPTURE(k.q2); CAPTURE(k.rho);
      const Ref r = relu_family_reference(a, b, k.q1, k.q2, c);
      const DualValue d = dual(k.q1, k.q2, c);
      const DualValue s = scales(dual, k.q1, k.q2);
      CHECK(std::fabs(d.nngp - r.v.nngp) <= 10 * r.err_nngp + 64 * kEps * s.nngp);
      CHECK(std::fabs(d.ntk_scale - r.v.ntk_scale) <= 10 * r.err_ntk + 64 * kEps * s.ntk_scale);
    }
  }
}

TEST_CASE("closed forms agree with high-order 2-D Gauss-Hermite within its measured convergence") {
  // Smooth activations: GH converges fast, so |Q(n) − Q(n/2)| bounds the error of Q(n/2) and,
  // generously, of Q(n). Non-smooth ReLU family: slow algebraic convergence (the kink), so the
  // tolerance is 3× the last observed change (an error decreasing at least like 1/n).
  for (const auto& act : all_activations()) {
    if (!act.closed_form()) continue;
    CAPTURE(act.name());
    const ActivationDual exact(act), lo(act, 100), hi(act, 200);
    const bool smooth = act.kind == ActivationKind::Erf || act.kind == ActivationKind::Gelu ||
                        act.kind == ActivationKind::Sin || act.kind == ActivationKind::Cos ||
                        act.kind == ActivationKind::Identity;
    for (const auto& k : grid(3.0)) {
      // Nearly collinear ReLU inputs make the inner integrand a near-step in z1: GH then
      // converges erratically (no usable error estimate); the 1-D reference above covers them.
      if (!smooth && std::fabs(k.rho) > 0.95) continue;
      const double c = k.rho * std::sqrt(k.q1 * k.q2);
      CAPTURE(k.q1); CAPTURE(k.q2); CAPTURE(k.rho);
      const DualValue e = exact(k.q1, k.q2, c), a = lo.quadrature(k.q1, k.q2, c),
                      b = hi.quadrature(k.q1, k.q2, c);
      const DualValue s = scales(exact, k.q1, k.q2);
      const double f = smooth ? 1.0 : 3.0;
      CHECK(std::fabs(e.nngp - b.nngp) <= f * std::fabs(a.nngp - b.nngp) + 1e-13 * s.nngp);
      CHECK(std::fabs(e.ntk_scale - b.ntk_scale) <= f * std::fabs(a.ntk_scale - b.ntk_scale) + 1e-13 * s.ntk_scale);
    }
  }
}

TEST_CASE("closed forms agree with the default (trapezoidal) forced quadrature") {
  // Smooth closed forms: the default rule is accurate to ~1e-10 of the scale (q ≤ 10).
  for (auto kind : {ActivationKind::Erf, ActivationKind::Gelu, ActivationKind::Sin, ActivationKind::Cos}) {
    const Activation act = Activation::of(kind);
    CAPTURE(act.name());
    const ActivationDual dual(act);
    for (const auto& k : grid(10.0)) {
      const double c = k.rho * std::sqrt(k.q1 * k.q2);
      CAPTURE(k.q1); CAPTURE(k.q2); CAPTURE(k.rho);
      const DualValue e = dual(k.q1, k.q2, c), q = dual.quadrature(k.q1, k.q2, c);
      const DualValue s = scales(dual, k.q1, k.q2);
      CHECK(std::fabs(e.nngp - q.nngp) <= 1e-8 * s.nngp);
      CHECK(std::fabs(e.ntk_scale - q.ntk_scale) <= 1e-8 * s.ntk_scale);
    }
  }
}

TEST_CASE("quadrature activations are accurate to 1e-8 relative for variances up to 100") {
  for (auto kind : {ActivationKind::Tanh, ActivationKind::Sigmoid, ActivationKind::Softplus,
                    ActivationKind::Swish}) {
    const Activation act = Activation::of(kind);
    CAPTURE(act.name());
    const ActivationDual dual(act);
    double worst = 0.0;
    for (const auto& k : grid(100.0)) {
      // keep the run time modest: q = 100 (≈ 600 nodes per dimension) only at one correlation
      if (k.rho == -0.5 || k.rho == 0.3 || (k.q1 >= 100 && k.rho != 0.9)) continue;
      const double c = k.rho * std::sqrt(k.q1 * k.q2);
      CAPTURE(k.q1); CAPTURE(k.q2); CAPTURE(k.rho);
      const DualValue d = dual(k.q1, k.q2, c);
      // Higher-order reference: the test's own product trapezoid at 0.5× the library's step
      // (exponential convergence: its error is roughly the library's squared), and at 0.7× to
      // measure that it has converged.
      const DualValue r = fine_trapezoid(act, k.q1, k.q2, c, 0.5);
      const DualValue r2 = fine_trapezoid(act, k.q1, k.q2, c, 0.7);
      const DualValue s = scales(dual, k.q1, k.q2);
      REQUIRE(std::fabs(r.nngp - r2.nngp) < 1e-11 * s.nngp);  // the reference has converged
      REQUIRE(std::fabs(r.ntk_scale - r2.ntk_scale) < 1e-11 * s.ntk_scale);
      const double en = std::fabs(d.nngp - r.nngp) / s.nngp;
      const double et = std::fabs(d.ntk_scale - r.ntk_scale) / s.ntk_scale;
      CHECK(en <= 1e-8);
      CHECK(et <= 1e-8);
      worst = std::max({worst, en, et});
    }
    MESSAGE(act.name() << ": worst relative error vs fine trapezoid (q <= 100): " << worst);
    // Independent of the trapezoid idea: nested adaptive Gauss–Kronrod at a few points.
    for (const Case& k : {Case{1.0, 0.5, 0.3}}) {
      const double c = k.rho * std::sqrt(k.q1 * k.q2);
      CAPTURE(k.q1); CAPTURE(k.q2); CAPTURE(k.rho);
      const DualValue d = dual(k.q1, k.q2, c);
      const Ref r = nested_reference(act, k.q1, k.q2, c);
      const DualValue s = scales(dual, k.q1, k.q2);
      REQUIRE(r.err_nngp < 1e-8 * s.nngp);  // tight enough to judge 1e-8
      REQUIRE(r.err_ntk < 1e-8 * s.ntk_scale);
      CHECK(std::fabs(d.nngp - r.v.nngp) <= 1e-8 * s.nngp + 10 * r.err_nngp);
      CHECK(std::fabs(d.ntk_scale - r.v.ntk_scale) <= 1e-8 * s.ntk_scale + 10 * r.err_ntk);
    }
  }
}

TEST_CASE("the diagonal E[φ(u)²], E[φ'(u)²] agrees with a 1-D adaptive rule") {
  for (const auto& act : all_activations()) {
    CAPTURE(act.name());
    const ActivationDual dual(act);
    for (double q : {1e-6, 0.05, 0.5, 1.0, 4.0, 10.0, 50.0}) {
      CAPTURE(q);
      double err = 0.0;
      const DualValue r = diagonal_reference(act, q, &err);
      const DualValue d = dual(q, q, q);
      const double tol = act.closed_form() ? 64 * kEps : 1e-8;
      CHECK(std::fabs(d.nngp - r.nngp) <= 10 * err + tol * r.nngp);
      CHECK(std::fabs(d.ntk_scale - r.ntk_scale) <= 10 * err + tol * r.ntk_scale);
    }
  }
}

TEST_CASE("duals are symmetric in (q1, q2)") {
  for (const auto& act : all_activations()) {
    CAPTURE(act.name());
    const ActivationDual dual(act);
    for (const auto& k : grid(30.0)) {
      const double c = k.rho * std::sqrt(k.q1 * k.q2);
      const DualValue a = dual(k.q1, k.q2, c), b = dual(k.q2, k.q1, c);
      const DualValue s = scales(dual, k.q1, k.q2);
      CHECK(std::fabs(a.nngp - b.nngp) <= 16 * kEps * s.nngp);
      CHECK(std::fabs(a.ntk_scale - b.ntk_scale) <= 16 * kEps * s.ntk_scale);
    }
  }
}

TEST_CASE("edge cases are finite and continuous") {
  for (const auto& act : all_activations()) {
    CAPTURE(act.name());
    const ActivationDual dual(act);
    const double big = 1e8, tiny = 1e-12;
    const double cases[][3] = {
        {0, 0, 0}, {0, 1, 0}, {1, 0, 0}, {1, 1, 1}, {1, 1, -1}, {2, 3, std::sqrt(6.0)},
        {2, 3, std::sqrt(6.0) * (1 + 1e-15)},  // round-off beyond Cauchy–Schwarz: clamped
        {1, 1, 1 - 1e-15}, {1, 1, -1 + 1e-15}, {big, big, big}, {big, big, big * (1 - 1e-12)},
        {big, big, 0}, {big, tiny, 0}, {big, tiny, 1e-2}, {tiny, tiny, tiny}, {tiny, tiny, 0},
        {-1e-17, 1, 0}, {1, -1e-17, 0}, {-1e-17, -1e-17, 0}, {4, 4, 4 * (1 - 1e-9)}};
    for (const auto& k : cases) {
      CAPTURE(k[0]); CAPTURE(k[1]); CAPTURE(k[2]);
      const DualValue d = dual(k[0], k[1], k[2]);
      CHECK(std::isfinite(d.nngp));
      CHECK(std::isfinite(d.ntk_scale));
      const DualValue q = dual.quadrature(k[0], k[1], k[2]);
      CHECK(std::isfinite(q.nngp));
      CHECK(std::isfinite(q.ntk_scale));
    }
    // x1 == x2 equals the nearly-collinear value in the limit (continuity at cos θ = 1).
    const DualValue at = dual(4, 4, 4), near = dual(4, 4, 4 * (1 - 1e-12));
    const DualValue s = scales(dual, 4, 4);
    CHECK(std::fabs(at.nngp - near.nngp) <= 1e-8 * s.nngp);
    CHECK(std::fabs(at.ntk_scale - near.ntk_scale) <= 1e-5 * s.ntk_scale);  // relu: O(θ) = O(√(1e-12))
    CHECK_THROWS_AS(dual(std::nan(""), 1, 0), std::invalid_argument);
    CHECK_THROWS_AS(dual(-0.1, 1, 0), std::invalid_argument);
    CHECK_THROWS_AS(dual(1, 1, std::numeric_limits<double>::infinity()), std::invalid_argument);
  }
  CHECK_THROWS_AS(ActivationDual(Activation::relu(), -1), std::invalid_argument);
  CHECK_THROWS_AS(ActivationDual(Activation::leaky_relu(std::nan("")), 0), std::invalid_argument);
}

TEST_CASE("relu keeps its accuracy for nearly collinear inputs") {
  // θ from atan2(√(q1q2 − c²), c) with an fma-exact determinant: compare with the angle computed
  // from 1 − ρ (exact by Sterbenz for ρ ∈ [1/2, 1]) via θ = 2 asin(√((1−ρ)/2)).
  const ActivationDual dual(Activation::relu());
  for (double gap : {1e-4, 1e-8, 1e-12, 1e-15}) {
    const double rho = 1.0 - gap;
    const double theta = 2.0 * std::asin(std::sqrt((1.0 - rho) / 2.0));
    const DualValue d = dual(1.0, 1.0, rho);
    CAPTURE(gap);
    CHECK(d.ntk_scale == doctest::Approx((kPi - theta) / (2 * kPi)).epsilon(4 * kEps));
    CHECK(d.nngp == doctest::Approx((std::sin(theta) + (kPi - theta) * rho) / (2 * kPi)).epsilon(4 * kEps));
    // 1 − ntk = θ/(2π) + 1/2 must keep relative accuracy in θ: check θ itself.
    CHECK((0.5 - d.ntk_scale) * 2 * kPi == doctest::Approx(theta).epsilon(1e-9 / std::sqrt(gap) * kEps * 1e8));
  }
}

TEST_CASE("sin and cos duals are finite and exact for large arguments") {
  const ActivationDual s(Activation::of(ActivationKind::Sin)), c(Activation::of(ActivationKind::Cos));
  // E[sin u sin v] + E[cos u cos v] = E[cos(u − v)] = exp(−(q1 + q2 − 2c)/2).
  for (const auto& k : grid(100.0)) {
    const double cv = k.rho * std::sqrt(k.q1 * k.q2);
    const double lhs = s(k.q1, k.q2, cv).nngp + c(k.q1, k.q2, cv).nngp;
    CHECK(lhs == doctest::Approx(std::exp(-(k.q1 + k.q2 - 2 * cv) / 2)).epsilon(1e-13));
  }
  const DualValue d = c(1e8, 1e8, 1e8);  // u = v: E[cos² u] = (1 + e^{−2q})/2
  CHECK(d.nngp == doctest::Approx(0.5).epsilon(1e-15));
}

TEST_CASE("batched duals (ActivationDual::apply) equal the scalar form for every stride pattern") {
  // The ReLU family takes a vectorized path with its own atan2; everything else, and arguments
  // that need care (zero variance), go through operator(). Both must agree to round-off.
  emergent::NormalStream rng(77, 3);
  const std::size_t n = 4000;
  std::vector<double> q1(n), q2(n), c(n);
  for (std::size_t i = 0; i < n; ++i) {
    q1[i] = std::exp(2 * rng.normal(3 * i));
    q2[i] = std::exp(2 * rng.normal(3 * i + 1));
    double rho = std::tanh(2 * rng.normal(3 * i + 2));
    if (i % 7 == 0) rho = 1 - 1e-13 * (i % 5);   // nearly and exactly collinear
    if (i % 11 == 0) rho = -1 + 1e-11 * (i % 3);  // nearly anti-collinear
    c[i] = rho * std::sqrt(q1[i] * q2[i]);
  }
  for (const auto& act : {emergent::Activation::relu(), emergent::Activation::abs(), emergent::Activation::leaky_relu(0.2),
                          emergent::Activation::abrelu(-0.4, 1.7), emergent::Activation::identity(),
                          emergent::Activation::of(emergent::ActivationKind::Erf),
                          emergent::Activation::of(emergent::ActivationKind::Gelu),
                          emergent::Activation::of(emergent::ActivationKind::Sin),
                          emergent::Activation::of(emergent::ActivationKind::Cos)}) {
    CAPTURE(act.name());
    const emergent::ActivationDual dual(act);
    for (std::size_t s1 : {0, 1})
      for (std::size_t s2 : {0, 1}) {
        std::vector<double> s(n), t(n, 1.5);
        for (std::size_t i = 0; i < n; ++i) {  // keep |c| ≤ √(q1 q2) for the broadcast values
          const double a = q1[i * s1], b = q2[i * s2];
          s[i] = c[i] / std::sqrt(q1[i] * q2[i]) * std::sqrt(a * b);
        }
        const std::vector<double> c0 = s;
        dual.apply(n, q1.data(), s1, q2.data(), s2, s.data(), t.data());
        double worst = 0;
        std::size_t snapped = 0;
        for (std::size_t i = 0; i < n; ++i) {
          // apply() takes pairs within 16 ulps of collinearity as collinear (the rule of
          // docs/conventions.md §2, written out here); operator() treats c as exact, so it gets a
          // c just past the Cauchy–Schwarz bound, which it clamps with a zero determinant.
          const double p = q1[i * s1] * q2[i * s2], lim = (1 - 16 * kEps) * (1 - 16 * kEps);
          const bool snap = c0[i] * c0[i] >= lim * p && c0[i] * c0[i] < p;
          const double ci = snap ? std::copysign(std::nextafter(std::sqrt(p), 1e300), c0[i]) : c0[i];
          snapped += snap ? 1 : 0;
          const auto v = dual(q1[i * s1], q2[i * s2], ci);
          const double scale = std::sqrt(q1[i * s1] * q2[i * s2]);
          worst = std::max({worst, std::abs(v.nngp - s[i]) / scale, std::abs(1.5 * v.ntk_scale - t[i])});
        }
        CHECK(worst < 4e-15);
        if (s1 == 1 && s2 == 1) CHECK(snapped > 0);  // the exactly collinear rho = 1 entries
      }
  }
  // Zero variance falls back to the scalar path (θ = π/2 convention) without NaN.
  const emergent::ActivationDual relu(emergent::Activation::relu());
  double qa[2] = {0.0, 1.0}, qb[2] = {2.0, 2.0}, s[2] = {0.0, 0.5}, t[2] = {1.0, 1.0};
  relu.apply(2, qa, 1, qb, 1, s, t);
  CHECK(s[0] == relu(0.0, 2.0, 0.0).nngp);
  CHECK(t[0] == relu(0.0, 2.0, 0.0).ntk_scale);
  CHECK(std::isfinite(s[1]));
}

TEST_CASE("batched duals: an entry's value does not depend on the rest of its batch") {
  // The validation is hoisted out of the loop; entries that need the scalar path's care are
  // evaluated on their own, so a zero variance elsewhere in the batch changes no other bit.
  for (const auto& act : {emergent::Activation::relu(), emergent::Activation::abrelu(-0.4, 1.7),
                          emergent::Activation::of(emergent::ActivationKind::Erf),
                          emergent::Activation::of(emergent::ActivationKind::Tanh)}) {
    CAPTURE(act.name());
    const emergent::ActivationDual dual(act);
    const std::size_t n = 37;
    std::vector<double> q1(n), q2(n), c(n);
    for (std::size_t i = 0; i < n; ++i) {
      q1[i] = 0.3 + 0.1 * i;
      q2[i] = 1.7 - 0.02 * i;
      c[i] = std::sin(0.7 * i) * std::sqrt(q1[i] * q2[i]);
    }
    std::vector<double> s = c, t(n, 2.0);
    dual.apply(n, q1.data(), 1, q2.data(), 1, s.data(), t.data());
    std::vector<double> q1z = q1, cz = c;
    q1z[5] = 0.0;
    cz[5] = 0.0;
    std::vector<double> sz = cz, tz(n, 2.0);
    dual.apply(n, q1z.data(), 1, q2.data(), 1, sz.data(), tz.data());
    for (std::size_t i = 0; i < n; ++i) {
      CAPTURE(i);
      if (i == 5) {
        CHECK(sz[i] == dual(0.0, q2[i], 0.0).nngp);
        CHECK(tz[i] == 2.0 * dual(0.0, q2[i], 0.0).ntk_scale);
      } else {
        CHECK(sz[i] == s[i]);
        CHECK(tz[i] == t[i]);
      }
    }
    // Invalid arguments still throw as operator() does.
    std::vector<double> qbad = q1;
    qbad[9] = -1.0;
    std::vector<double> sb = c, tb(n, 1.0);
    CHECK_THROWS_AS(dual.apply(n, qbad.data(), 1, q2.data(), 1, sb.data(), tb.data()), std::invalid_argument);
  }
}

namespace {
/// Independent evaluation of the ReLU-family closed form (Cho & Saul 2009, Eq. 6; the formula
/// documented at relu_family_dual() in activation_dual.cpp) in x87 extended precision (64-bit
/// significand): det = q1q2 − c² from the exact double-double products (fma), then sqrtl and
/// atan2l, so the reference carries ~1e-19 relative error even for nearly collinear pairs.
/// Pairs that ActivationDual::apply snaps (c² ≥ (1 − 16ε)²·q1q2 in double, docs/conventions.md
/// §2) are evaluated exactly collinear: c = ±√(q1q2), θ = 0 or π. Returns (Σ', Θ'/t) and, for
/// the error measure, the scales (a−b)²√det/(2π) + |c|·τ and τ = [(a²+b²)(π−θ) + |2ab|θ]/(2π):
/// the sums of the magnitudes of the terms (each output's condition with respect to the terms).
struct LongRef {
  long double nngp, ntk, nngp_scale, ntk_scale;
};
LongRef family_long_double(double a, double b, double q1, double q2, double c) {
  constexpr long double pi = 3.141592653589793238462643383279502884L;
  const double p = q1 * q2, ep = std::fma(q1, q2, -p), cc = c * c, ec = std::fma(c, c, -cc);
  const double lim = (1 - 16 * kEps) * (1 - 16 * kEps);
  const bool snap = cc >= lim * p;
  const long double pl = static_cast<long double>(p) + ep;
  const long double det = snap ? 0.0L : (static_cast<long double>(p) - cc) + (static_cast<long double>(ep) - ec);
  const long double cl = snap ? std::copysign(std::sqrt(pl), static_cast<long double>(c)) : c;
  // θ and π − θ each from an atan2 of its own (π − θ for c < 0 is atan2(√det, −c)), so neither
  // carries the cancellation of a subtraction from π.
  const long double s = std::sqrt(det), psi = std::atan2(s, std::fabs(cl));
  const long double theta = cl < 0 ? pi - psi : psi, co_theta = cl < 0 ? psi : pi - psi;
  const long double al = a, bl = b, ab2 = al * al + bl * bl, d2 = (al - bl) * (al - bl), cross = 2 * al * bl;
  const long double t = (ab2 * co_theta + cross * theta) / (2 * pi);
  const long double tau = (ab2 * co_theta + std::fabs(cross) * theta) / (2 * pi);
  return {d2 * s / (2 * pi) + cl * t, t, d2 * s / (2 * pi) + std::fabs(cl) * tau, tau};
}
}  // namespace

TEST_CASE("batched ReLU-family duals agree with an extended-precision closed form to 1e-15") {
  // Random (q1, q2, c) over the magnitudes the vector path takes (q1q2 ∈ (1e-278, 1e278)),
  // with c near 0, negative, anywhere, nearly collinear (1 − |ρ| from 1e-2 down to a few ulps,
  // both sides of the snap threshold) and at c² = q1q2 or just past it by round-off.
  const Activation acts[] = {Activation::relu(), Activation::abs(), Activation::leaky_relu(0.1),
                             Activation::abrelu(-0.4, 1.7), Activation::abrelu(0.3, -1.2), Activation::identity()};
  emergent::NormalStream rng(2026, 12);
  const std::size_t n = 6000;
  std::vector<double> q1(n), q2(n), c(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double u0 = rng.uniform(4 * i), u1 = rng.uniform(4 * i + 1), u2 = rng.uniform(4 * i + 2);
    const double u3 = rng.uniform(4 * i + 3);
    // Magnitudes: half of the pairs within a few decades of 1, the rest over the whole range.
    const double span = i % 2 ? 139.0 : 3.0;
    q1[i] = std::pow(10.0, span * (2 * u0 - 1));
    q2[i] = std::pow(10.0, span * (2 * u1 - 1));
    const double sign = u3 < 0.5 ? -1.0 : 1.0;
    double rho = 2 * u2 - 1;                                          // anywhere
    switch (i % 6) {
      case 1: rho = sign * std::pow(10.0, -20 * u2); break;          // c ≈ 0, both signs
      case 2: rho = sign * (1 - std::pow(10.0, -2 - 13 * u2)); break;  // nearly collinear
      case 3: rho = sign * (1 - std::floor(40 * u2) * kEps); break;  // around the snap (16 ulps)
      case 4: rho = i % 12 == 4 ? 0.0 : sign; break;                  // c = 0 or c² = q1q2 (± round-off)
      default: break;
    }
    c[i] = rho * std::sqrt(q1[i] * q2[i]);
  }
  for (const auto& act : acts) {
    CAPTURE(act.name());
    const ActivationDual dual(act);
    const auto [a, b] = family_slopes(act);
    std::vector<double> s = c, t(n, 1.25);
    dual.apply(n, q1.data(), 1, q2.data(), 1, s.data(), t.data());
    double worst_nngp = 0, worst_ntk = 0, worst_ntk_relative = 0, worst_scalar = 0;
    std::size_t snapped = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const LongRef r = family_long_double(a, b, q1[i], q2[i], c[i]);
      const bool snap = c[i] * c[i] >= (1 - 16 * kEps) * (1 - 16 * kEps) * (q1[i] * q2[i]);
      snapped += snap ? 1 : 0;
      if (!snap) {  // the scalar form (operator(), no snap) on the same closed form
        const DualValue d = dual(q1[i], q2[i], c[i]);
        worst_scalar = std::max({worst_scalar, static_cast<double>(std::fabs(d.nngp - r.nngp) / r.nngp_scale),
                                 static_cast<double>(std::fabs(d.ntk_scale - r.ntk) / r.ntk_scale)});
      }
      worst_nngp = std::max(worst_nngp, static_cast<double>(std::fabs(s[i] - r.nngp) / r.nngp_scale));
      worst_ntk = std::max(worst_ntk, static_cast<double>(std::fabs(t[i] - 1.25L * r.ntk) / (1.25L * r.ntk_scale)));
      if (a == 0 && r.ntk == 0) CHECK(t[i] == 0.0);  // θ = π exactly (snapped, c < 0)
      else if (a == 0) worst_ntk_relative = std::max(worst_ntk_relative, static_cast<double>(std::fabs(t[i] / (1.25L * r.ntk) - 1)));
    }
    MESSAGE(act.name() << ": worst NNGP " << worst_nngp << ", NTK " << worst_ntk << " (relative to the terms)");
    CHECK(worst_nngp <= 1e-15);
    CHECK(worst_ntk <= 1e-15);
    // relu (a = 0): E[φ'φ'] = (π − θ)/(2π) itself to 1e-15, also at θ → π (no π − θ cancellation).
    CHECK(worst_ntk_relative <= 1e-15);
    CHECK(worst_scalar <= 1e-15);
    CHECK(snapped > n / 12);
  }
}

TEST_CASE("batched ReLU-family duals: the same bits alone, in a group of four vectors, or in a tail") {
  // ActivationDual::apply runs four interleaved vectors of 8 where it can and single vectors for
  // the rest: each entry must come out bit-identical whichever way it went.
  const ActivationDual dual(Activation::abrelu(-0.4, 1.7));
  const std::size_t n = 77;  // two groups of 32, then a vector and a partial vector
  std::vector<double> q1(n), q2(n), c(n);
  for (std::size_t i = 0; i < n; ++i) {
    q1[i] = 0.2 + 0.05 * i, q2[i] = 3.0 - 0.03 * i;
    c[i] = std::cos(1.3 * i) * std::sqrt(q1[i] * q2[i]);
  }
  std::vector<double> s = c, t(n, 0.7);
  dual.apply(n, q1.data(), 1, q2.data(), 1, s.data(), t.data());
  for (std::size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    double si = c[i], ti = 0.7;
    dual.apply(1, &q1[i], 1, &q2[i], 1, &si, &ti);
    CHECK(si == s[i]);
    CHECK(ti == t[i]);
  }
}
