// The dual kernels of the pointwise nonlinearities of core/activation.hpp.
//
// For a Gaussian pair (u, v) ~ N(0, [[q1, c], [c, q2]]) the NNGP and NTK recursions of an
// activation φ need (Lee et al. 2018, Eq. 5; Jacot et al. 2018, Thm. 1; docs/conventions.md §2)
//   nngp      = E[φ(u) φ(v)]
//   ntk_scale = E[φ'(u) φ'(v)]          (Θ' = ntk_scale · Θ)
// Closed forms are used where they exist (formulas and citations in lib/kernels/activation_dual.cpp); the rest
// use a 2-D product rule on the Cholesky factor of the 2×2 covariance: by default an
// exponentially convergent trapezoidal rule with steps adapted to the variances (measured
// ≤ 1.2e-9 relative to √(E[φ(u)²]E[φ(v)²]) for q ≤ 100; beyond q ≈ 100 (tanh) / 400 (others)
// the node count is capped at 601 per dimension and the error grows, staying finite), or
// Gauss–Hermite of a given order on request (plain Gauss–Hermite needs ≫ 1000 nodes for 1e-8
// with tanh at q = 10: its error decays only like exp(−const·√n)).
#pragma once

#include <cstddef>
#include <memory>

#include "emergent/core/activation.hpp"
#include "emergent/kernels/quadrature.hpp"

namespace emergent {

/// E[φ(u)φ(v)] and E[φ'(u)φ'(v)] for one Gaussian pair.
struct DualValue {
  double nngp = 0.0;
  double ntk_scale = 0.0;
};

/// The largest Gauss–Hermite order (nodes per dimension) that ActivationDual and
/// KernelOptions::quadrature_order accept: the product rule costs order² activation evaluations
/// per kernel entry, so 400 (160,000 evaluations) is already far past the default's 1e-8 accuracy.
inline constexpr int kMaxQuadratureOrder = 400;

/// The dual kernel of an activation: maps (q1, q2, c) to DualValue.
/// Build once (quadrature nodes are computed in the constructor), then evaluate many times;
/// evaluation is thread-safe.
class ActivationDual {
 public:
  /// `quadrature_order` > 0: a Gauss–Hermite product rule of that many nodes per dimension for
  /// the activations without a closed form and for quadrature(); 0 (default): the adaptive
  /// trapezoidal rule described above (accurate to 1e-8 relative for q ≤ 100).
  /// Throws std::invalid_argument for an order outside 0..kMaxQuadratureOrder or non-finite slopes.
  explicit ActivationDual(const Activation& activation, int quadrature_order = 0);

  /// Dual kernel at covariance [[q1, c], [c, q2]]. Requires q1, q2 ≥ 0; c is clamped to
  /// |c| ≤ √(q1 q2) (round-off can push it over). Negative q within round-off
  /// (≥ −(1e-9·max(|q1|,|q2|,|c|) + 1e-14)) is taken as 0; otherwise, or for non-finite
  /// arguments, throws std::invalid_argument. Always finite.
  DualValue operator()(double q1, double q2, double c) const;

  /// Batched form of operator() for the kernel recursions: for i < n, with
  /// (q1_i, q2_i) = (q1[i·q1_step], q2[i·q2_step]) (a step of 0 broadcasts one value),
  ///   nngp[i] ← E[φ(u)φ(v)] at c = nngp[i],   ntk[i] ← ntk[i] · E[φ'(u)φ'(v)].
  /// The same numbers as operator() up to round-off (a few ulp; near θ = π the dual's own
  /// cancellation amplifies that); the ReLU family is vectorized (8 lanes with AVX-512, no
  /// divider). An entry's bits never depend on the rest of its batch or its position in it.
  void apply(std::size_t n, const double* q1, std::size_t q1_step, const double* q2, std::size_t q2_step,
             double* nngp, double* ntk) const;

  /// Forced 2-D quadrature, also for closed-form activations (used to cross-check them).
  DualValue quadrature(double q1, double q2, double c) const;

  const Activation& activation() const { return activation_; }
  int quadrature_order() const;  ///< Gauss–Hermite order, or 0 for the default trapezoidal rule

 private:
  Activation activation_;
  std::shared_ptr<const GaussHermiteRule> rule_;
};

}  // namespace emergent
