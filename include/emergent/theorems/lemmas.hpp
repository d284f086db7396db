// Lemmas 5.1/5.2 of Gerken & Kessel (ICML 2024), checked numerically: on an augmented training
// set every g permutes the rows, and the permutation commutes with Θ, K and any spectral
// function g_t(Θ) of Θ.
#pragma once

#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/check_result.hpp"
#include "emergent/theorems/kernel_transform.hpp"

namespace emergent {

struct LemmaCheckOptions {
  EquivarianceCheckOptions equivariance;
  double learning_rate = 1.0;            ///< η of g_t
  int outputs = 1;                       ///< k in ηt/(N·k)
  std::vector<double> times = {1.0, 100.0};  ///< t for g_t(Θ) (finite, ≥ 0)
  bool IsValid(std::string* error) const;
};

/// Lemmas 5.1/5.2 on a training set X: for each g, σ_g maps row r to the row equal to ρ_X(g)x_r
/// (nearest row). Parts: Quantity::RowPermutation (max distance of ρ(g)x_r to its row; fails
/// on sets that are not augmented), Lemma 5.1 Nngp/Ntk on InputSet::Train (Θ[σr, σs] = Θ[r, s],
/// with pixel indices moved by ρ_K for spatial kernels; Ntk also on InputSet::Collinear with
/// kinked activations) and Lemma 5.2 Quantity::SpectralFilter at each time, for
/// g_t(Θ) = V·diag((1 − e^{−ηtλ/(Nk)})/λ)·Vᵀ computed here with Eigen.
TheoremResult check_lemmas_5_1_5_2(const Architecture& arch, const Inputs& train_x, const Representation& rho_x,
                                   const LemmaCheckOptions& options = {});

}  // namespace emergent
