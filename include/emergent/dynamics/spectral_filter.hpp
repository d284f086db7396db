// The spectral filter of closed-form gradient flow under MSE (docs/conventions.md §3): on an
// eigenvalue λ of Θ(X,X), Θ⁻¹T_t acts as g_t(λ) = (1 − e^{−sλ})/λ with s = η·t/(N·k)
// (Lee et al. 2019, Eq. 15). Shared by the dense flow, the orbit-reduced flow and the theorem checks.
#pragma once

#include <cmath>

namespace emergent {

/// g_t(λ) = (1 − e^{−sλ})/λ for λ ≥ 0 and s = η·t/(N·k) ≥ 0 (docs/conventions.md §3).
/// Limits: g = 0 at s = 0, g → s as λ → 0 (so λ = 0 is allowed for finite s), g = 1/λ at s = ∞.
/// Near sλ → 0 a series replaces expm1 (relative error ≤ (sλ)⁴/120 < 1e-21).
inline double spectral_filter(double lambda, double s) {
  if (s == 0.0) return 0.0;
  if (std::isinf(s)) return 1.0 / lambda;
  const double x = s * lambda;
  if (x < 1e-5) return s * (1.0 - 0.5 * x * (1.0 - x / 3.0 * (1.0 - 0.25 * x)));
  return -std::expm1(-x) / lambda;
}

}  // namespace emergent
