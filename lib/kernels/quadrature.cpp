// Gauss–Hermite rules for E[f(Z)], Z ~ N(0,1).
//
// Nodes: eigenvalues of the Jacobi matrix of the physicists' Hermite polynomials (Golub & Welsch
// 1969) as starting points, polished by Newton's method on the three-term recurrence of the
// orthonormal polynomials p̃_k (DLMF 18.9.1; p̃_n' = √(2n) p̃_{n−1}). Weights from the
// Christoffel numbers w_i = 1/(n p̃_{n−1}(x_i)²) (DLMF 3.5.iv), which, unlike eigenvector
// components, keep full relative accuracy in the tails. The recurrence is rescaled by powers of
// two so that it cannot overflow for n ≤ 1000 (|x| up to ≈ 45).
#include "emergent/kernels/quadrature.hpp"

#include <Eigen/Eigenvalues>
#include <cmath>
#include <stdexcept>
#include <string>

namespace emergent {
namespace {

// Orthonormal recurrence at x. Returns p̃_n(x) and p̃_{n−1}(x) as mantissas sharing the binary
// exponent `exp2` (true value = mantissa · 2^exp2).
struct Recurrence {
  double pn = 0.0, pnm1 = 0.0;
  long exp2 = 0;
};

Recurrence recur(int n, double x) {
  Recurrence r;
  double pm1 = 0.0;
  double p = 0.75112554446494248286;  // π^{-1/4}
  for (int k = 0; k < n; ++k) {
    const double next = x * std::sqrt(2.0 / (k + 1)) * p - std::sqrt(double(k) / (k + 1)) * pm1;
    pm1 = p;
    p = next;
    if (std::fabs(p) > 0x1p200) {  // rescale both terms exactly
      p = std::ldexp(p, -200);
      pm1 = std::ldexp(pm1, -200);
      r.exp2 += 200;
    }
  }
  r.pn = p;
  r.pnm1 = pm1;
  return r;
}

}  // namespace

GaussHermiteRule gauss_hermite(int n) {
  if (n < 1 || n > 1000)
    throw std::invalid_argument("gauss_hermite: n = " + std::to_string(n) +
                                ", expected 1 <= n <= 1000");
  // Starting values: Golub–Welsch eigenvalues (physicists' weight e^{-x²}).
  Eigen::VectorXd x(n);
  if (n == 1) {
    x(0) = 0.0;
  } else {
    Eigen::VectorXd diag = Eigen::VectorXd::Zero(n), sub(n - 1);
    for (int k = 1; k < n; ++k) sub(k - 1) = std::sqrt(k / 2.0);
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es;
    es.computeFromTridiagonal(diag, sub, Eigen::EigenvaluesOnly);
    x = es.eigenvalues();  // ascending
  }
  GaussHermiteRule rule;
  rule.nodes.resize(n);
  rule.weights.resize(n);
  const double sqrt2n = std::sqrt(2.0 * n);
  for (int i = 0; i < n; ++i) {
    double xi = x(i);
    for (int it = 0; it < 20; ++it) {  // Newton: the step p̃_n/p̃_n' is scale-free
      const Recurrence r = recur(n, xi);
      const double dx = r.pn / (sqrt2n * r.pnm1);
      xi -= dx;
      if (std::fabs(dx) <= 1e-16 * (1.0 + std::fabs(xi))) break;
    }
    const Recurrence r = recur(n, xi);
    // w = 1/(n p̃_{n−1}²) for ∫e^{-x²}; divided by √π for the normal expectation.
    const double log_abs = std::log(std::fabs(r.pnm1)) + r.exp2 * std::log(2.0);
    rule.nodes[i] = xi;
    rule.weights[i] = std::exp(-std::log(double(n)) - 2.0 * log_abs) / std::sqrt(M_PI);
  }
  // Enforce the exact symmetry of the rule (x ↔ −x) and scale to the standard normal.
  for (int i = 0; i < n / 2; ++i) {
    const int j = n - 1 - i;
    const double xm = 0.5 * (rule.nodes[j] - rule.nodes[i]);
    const double wm = 0.5 * (rule.weights[i] + rule.weights[j]);
    rule.nodes[i] = -xm;
    rule.nodes[j] = xm;
    rule.weights[i] = rule.weights[j] = wm;
  }
  if (n % 2 == 1) rule.nodes[n / 2] = 0.0;
  for (double& z : rule.nodes) z *= M_SQRT2;
  return rule;
}

}  // namespace emergent
