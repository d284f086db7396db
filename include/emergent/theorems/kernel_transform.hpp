// Theorem 5.1 of Gerken & Kessel, "Emergent Equivariance in Deep Ensembles" (ICML 2024), checked
// numerically: the NNGP K and the NTK Θ transform covariantly, Θ(ρ_X(g)x, ρ_X(g)x') =
// ρ_K(g)Θ(x,x')ρ_K(g)ᵀ, with a tolerance derived from the round-off of the kernel recursion.
#pragma once

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/check_result.hpp"

namespace emergent {

struct EquivarianceCheckOptions {
  KernelOptions kernel;
  /// Multiplies the derived round-off bound; ≥ 1. The bound is 2·ε·ops·scale, ops counting
  /// the additions that the kernel recursion performs per entry (see kernel_roundoff_ops).
  double safety = 4.0;
  bool IsValid(std::string* error) const;
};

/// Number of floating-point operations accumulated into one kernel entry, the conditioning
/// factor of the kernel tolerance: input dot product (C), the transform (blocks, for matrix
/// groups), per conv the filter taps, per activation 16 (closed forms) or the quadrature
/// nodes, flatten P, gap P².
double kernel_roundoff_ops(const Architecture& arch, const ExampleShape& shape, const Representation* rho);

/// Theorem 5.1: Θ(ρ_X(g)x, ρ_X(g)x') = ρ_K(g)Θ(x,x')ρ_K(g)ᵀ and the same for K, for every g.
/// With a readout or for MLPs ρ_K is trivial (invariance); without readout ρ_K(g) is the
/// pixel action of rho_x on both pixel indices (the output map must keep the input's size).
/// Parts (Theorem::KernelTransform51): Nngp and Ntk on InputSet::Given, and with kinked
/// activations Ntk on InputSet::Collinear.
TheoremResult check_theorem_5_1(const Architecture& arch, const Inputs& x1, const Inputs& x2,
                                const Representation& rho_x, const EquivarianceCheckOptions& options = {});
TheoremResult check_theorem_5_1(const Architecture& arch, const Inputs& x, const Representation& rho_x,
                                const EquivarianceCheckOptions& options = {});

}  // namespace emergent
