// Gauss–Hermite quadrature for Gaussian expectations.
#pragma once

#include <vector>

namespace emergent {

/// n-point rule for E[f(Z)], Z ~ N(0, 1):  E[f(Z)] ≈ Σ_i weights[i] · f(nodes[i]).
/// (Physicists' Hermite nodes t_i scaled as z_i = √2 t_i, weights w_i/√π, so Σ weights = 1.)
struct GaussHermiteRule {
  std::vector<double> nodes;
  std::vector<double> weights;
};

/// Build the n-point rule (n ≥ 1) by Newton iteration on the orthonormal Hermite recurrence.
/// Throws std::invalid_argument for n < 1 or n > 1000.
GaussHermiteRule gauss_hermite(int n);

}  // namespace emergent
