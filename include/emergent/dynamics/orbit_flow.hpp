// Orbit-reduced gradient flow on a fully augmented training set (beyond Gerken & Kessel, ICML
// 2024, whose Lemma 5.1 is the starting point).
//
// On the orbit X_aug = {ρ_X(g)x_i} of N base points under an exact group G under which the
// kernels are invariant (Theorem 5.1 with a readout), the augmented Gram matrix is a G-matrix:
//   Θ(ρ(h)x_i, ρ(g)x_j) = Θ(x_i, ρ(h⁻¹g)x_j) =: T_{h⁻¹g}[i, j],   T_u = Θ(X, ρ(u)X),  T_uᵀ = T_{u⁻¹},
// i.e. Θ_aug = Σ_u L_u ⊗ T_u with L_u the right-regular permutation matrices. Every function of
// Θ_aug (Lemma 5.2) is again a G-matrix, which gives three exact routes:
//  * "averaged" (trivial ρ_Y, any exact group, mean only): targets constant on orbits live in the
//    G-invariant subspace, where Θ_aug acts as S = Σ_u T_u = |G|·Θ_G, Θ_G(x,x') = (1/|G|)Σ_g Θ(x,ρ(g)x').
//    With c = ηt/(|G|N k) on the augmented set, g(|G|μ; c) = g(μ; |G|c)/|G| and |G|c = ηt/(N k):
//    μ_t(x) = Θ_G(x,X)·Θ_G⁻¹(I − e^{−ηtΘ_G/(Nk)})·Y — the plain N-point flow of Θ_G with the SAME
//    η and t (no rescaling: the |G| more points and the |G| larger eigenvalues cancel). A diagonal
//    regularizer δ on Θ_aug becomes δ/|G| on Θ_G.
//  * "fourier" (abelian exact groups, any exact ρ_Y, mean and covariance): the characters χ
//    diagonalize every L_u (L_u φ_χ = χ(u)φ_χ, φ_χ[g] = χ(g)/√|G|), so Θ_aug is unitarily
//    equivalent to ⊕_χ B_χ with Hermitian N×N blocks B_χ = Σ_u χ(u)·T_u (the same for K). Blocks of
//    conjugate characters are complex conjugates, so one eigendecomposition serves both.
//  * "dense": GradientFlow on the explicit augmented set (approximate sets such as rot(K), kernels
//    that are not invariant, non-abelian groups when the covariance or a non-trivial ρ_Y is needed).
// Only readout/MLP architectures (scalar kernels per output, Θ ⊗ I_k) are handled.
#pragma once

#include <Eigen/Dense>
#include <string>
#include <string_view>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"

namespace emergent {

enum class OrbitRoute {
  Automatic,  ///< fastest exact route: fourier (abelian) > averaged (trivial ρ_Y, mean only) > dense
  Dense,      ///< GradientFlow on the explicit augmented set
  Averaged,   ///< group-averaged kernel on the N base points (trivial ρ_Y, mean only)
  Fourier,    ///< |G| Hermitian blocks of size N (abelian groups)
};
const char* to_string(OrbitRoute value);  ///< snake_case: automatic, dense, averaged, …
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
OrbitRoute parse_orbit_route(std::string_view text);

struct OrbitFlowOptions {
  KernelOptions kernel;
  /// η, diag_reg (added to Θ_aug as in the dense solve), rank_rtol (relative to λ_max(Θ_aug), default
  /// 10·|G|N·ε as the dense solve), threads.
  GradientFlowOptions flow;
  OrbitRoute route = OrbitRoute::Automatic;  ///< a forced route that does not apply throws
  /// Reduced routes need T_uᵀ = T_{u⁻¹} (the kernel invariance they rest on); the measured
  /// max|T_u − T_{u⁻¹}ᵀ| / max|T| above this sends Automatic to the dense route.
  double invariance_rtol = 1e-9;
  bool IsValid(std::string* error) const;
};

/// Mean and covariance of the ensemble trained on the full orbit (docs/conventions.md §3 on X_aug).
struct OrbitFlowResult {
  OrbitRoute route = OrbitRoute::Dense;
  std::string route_text;               ///< e.g. "fourier: 4 blocks of 100 (3 eigendecompositions)"
  std::vector<Eigen::MatrixXd> mean;    ///< per time, N_test × k
  std::vector<Eigen::MatrixXd> covariance;  ///< per time, N_test × N_test (empty unless asked)
  Eigen::Index augmented_size = 0;      ///< |G|·N
  Eigen::Index rank = 0;                ///< kept eigenvalues of Θ_aug (fourier/dense; averaged: of the invariant sector only)
  double max_eigenvalue = 0;            ///< λ_max(Θ_aug) (+ regularizer)
  double invariance_defect = 0;         ///< max|T_u − T_{u⁻¹}ᵀ| / max|T| (reduced routes; 0 for dense)
  double kernel_seconds = 0, solve_seconds = 0;
  Eigen::Index kernel_entries = 0;      ///< kernel entries (pairs) computed, train and test
  std::string to_string() const;
};

/// Train on the orbit of (train_x, train_y) under (rho_x, rho_y) and predict at test_x for the
/// given times (t ≥ 0, inf allowed). train_y is N × k with k = rho_y.dim() = arch.outputs().
/// Throws std::invalid_argument for mismatched shapes, spatial architectures, invalid options or
/// a forced route that does not apply (naming why).
OrbitFlowResult predict_augmented(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                  const Inputs& test_x, const Representation& rho_x, const Representation& rho_y,
                                  const std::vector<double>& times, bool covariance,
                                  const OrbitFlowOptions& options = {});

/// Characters of a finite abelian group from its composition table: chi[c][u] = index θ with
/// χ_c(u) = exp(2πiθ/|G|); character 0 is trivial. Throws std::invalid_argument if the table is
/// not abelian. Built by extending the characters of a growing subgroup H to ⟨H, g⟩.
std::vector<std::vector<int>> abelian_characters(const std::vector<std::vector<int>>& table);

/// True if the exact group's composition table is commutative.
bool is_abelian(const Representation& rho);

}  // namespace emergent
