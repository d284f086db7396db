// Theorem 5.2 of Gerken & Kessel (ICML 2024), checked numerically: the mean and covariance of
// the infinite ensemble trained by gradient flow on an augmented set are equivariant at every
// training time, on and off the data manifold.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/check_result.hpp"

namespace emergent {

struct Theorem52Options {
  KernelOptions kernel;
  GradientFlowOptions flow;
  std::vector<double> times = {1.0, 100.0, std::numeric_limits<double>::infinity()};
  bool augment = true;          ///< train on the full orbit (the theorem's hypothesis)
  int noise_inputs = 3;         ///< off-manifold test inputs: N(0, s²) entries, s = RMS of train_x
  std::uint64_t seed = 1;
  double safety = 4.0;          ///< multiplies the measured/derived round-off, ≥ 1
  bool IsValid(std::string* error) const;
};

/// Theorem 5.2: μ_t(ρ_X(g)x) = ρ_Y(g)μ_t(x) and Σ_t(ρ_X(g)x, ρ_X(g)x') = ρ_K Σ_t ρ_Kᵀ at every
/// requested t, on test_x (InputSet::Test) and on noise (InputSet::Noise), using GradientFlow.
/// train_y is (N, k) with a readout, (N, H·W·k) without (then rows are (example, pixel) pairs
/// with k outputs). The tolerance is safety × (round-off measured by recomputing with the
/// training rows reversed + kernel round-off propagated through g_t). Parts
/// (Theorem::Ensemble52): Quantity::Mean and Quantity::Covariance per time and input set.
TheoremResult check_theorem_5_2(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                const Inputs& test_x, const Representation& rho_x, const Representation& rho_y,
                                const Theorem52Options& options = {});

}  // namespace emergent
