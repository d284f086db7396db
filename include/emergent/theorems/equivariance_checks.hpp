// Numerical checks of the emergent-equivariance results of Gerken & Kessel, "Emergent Equivariance
// in Deep Ensembles" (ICML 2024): Theorem 5.1 (kernels transform covariantly), Lemmas 5.1/5.2 (on
// an augmented training set every g permutes the rows, and the permutation commutes with Θ, K and
// any spectral function of Θ) and Theorem 5.2 (the ensemble mean and covariance are equivariant
// at every training time).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/symmetry/representation.hpp"

namespace emergent {

// ---- Theorem checks ----------------------------------------------------------------------

/// Largest violation of one identity for one group element.
struct ElementViolation {
  int element = 0;
  std::string label;
  double violation = 0;  ///< max-abs entry difference
};

/// One checked identity: holds iff max_violation ≤ tolerance.
struct CheckResult {
  std::string name;              ///< e.g. "Theorem 5.1 NTK"
  bool holds = false;
  double max_violation = 0;      ///< absolute, over all elements and entries
  double scale = 0;              ///< max |entry| of the quantity compared
  double tolerance = 0;          ///< absolute
  std::string tolerance_rule;    ///< how the tolerance was derived
  int worst_element = 0;
  std::vector<ElementViolation> elements;
  double relative_violation() const { return scale > 0 ? max_violation / scale : max_violation; }
  std::string to_string() const;
};

/// A theorem is several identities (NNGP and NTK, means and covariances at several times…).
struct TheoremResult {
  std::string theorem;
  bool holds = false;            ///< every part holds
  std::string status;            ///< notes: group not exact, rows not permuted, …
  std::vector<CheckResult> parts;
  const CheckResult& part(std::string_view name) const;  ///< throws std::out_of_range
  double max_ratio() const;      ///< max over parts of violation / tolerance
  std::string to_string() const;
};

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
/// Parts "NNGP" and "NTK".
TheoremResult check_theorem_5_1(const Architecture& arch, const Inputs& x1, const Inputs& x2,
                                const Representation& rho_x, const EquivarianceCheckOptions& options = {});
TheoremResult check_theorem_5_1(const Architecture& arch, const Inputs& x, const Representation& rho_x,
                                const EquivarianceCheckOptions& options = {});

struct LemmaCheckOptions {
  EquivarianceCheckOptions equivariance;
  double learning_rate = 1.0;            ///< η of g_t
  int outputs = 1;                       ///< k in ηt/(N·k)
  std::vector<double> times = {1.0, 100.0};  ///< t for g_t(Θ) (finite, ≥ 0)
  bool IsValid(std::string* error) const;
};

/// Lemmas 5.1/5.2 on a training set X: for each g, σ_g maps row r to the row equal to ρ_X(g)x_r
/// (nearest row); parts "row permutation" (max distance of ρ(g)x_r to its row; fails on sets
/// that are not augmented), "Lemma 5.1 NNGP"/"Lemma 5.1 NTK" (Θ[σr, σs] = Θ[r, s], with pixel
/// indices moved by ρ_K for spatial kernels) and "Lemma 5.2 g_t(Θ), t=…" for
/// g_t(Θ) = V·diag((1 − e^{−ηtλ/(Nk)})/λ)·Vᵀ computed here with Eigen.
TheoremResult check_lemmas_5_1_5_2(const Architecture& arch, const Inputs& train_x, const Representation& rho_x,
                                   const LemmaCheckOptions& options = {});

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
/// requested t, on test_x ("test") and on noise ("noise"), using GradientFlow. train_y is
/// (N, k) with a readout, (N, H·W·k) without (then rows are (example, pixel) pairs with k
/// outputs). The tolerance is safety × (round-off measured by recomputing with the training rows
/// reversed + kernel round-off propagated through g_t). Parts "mean t=… test", "covariance t=… noise", ….
TheoremResult check_theorem_5_2(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                const Inputs& test_x, const Representation& rho_x, const Representation& rho_y,
                                const Theorem52Options& options = {});

}  // namespace emergent
