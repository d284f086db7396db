// Results of the numerical theorem checks (kernel_transform.hpp, lemmas.hpp,
// ensemble_equivariance.hpp): every checked identity is a CheckResult tagged with the statement
// it checks, the quantity compared, the inputs and the training time, so callers select parts by
// these fields, never by their display names.
#pragma once

#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace emergent {

/// The statement of Gerken & Kessel (ICML 2024) a part checks.
enum class Theorem {
  KernelTransform51,  ///< Theorem 5.1: Θ and K transform with ρ_K
  Lemma51,            ///< Lemma 5.1: on an augmented set g permutes the rows, Θ and K commute with it
  Lemma52,            ///< Lemma 5.2: the permutation commutes with spectral functions g_t(Θ)
  Ensemble52,         ///< Theorem 5.2: the ensemble mean and covariance are equivariant at every t
};
const char* to_string(Theorem value);  ///< kernel_transform_5_1, lemma_5_1, lemma_5_2, ensemble_5_2
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
Theorem parse_theorem(std::string_view text);

/// What a part compares.
enum class Quantity {
  RowPermutation,  ///< distance of ρ_X(g)x_r to the row σ_g(r) it is matched with
  Nngp,            ///< K
  Ntk,             ///< Θ
  SpectralFilter,  ///< g_t(Θ) = V·diag((1 − e^{−cλ})/λ)·Vᵀ
  Mean,            ///< ensemble mean μ_t
  Covariance,      ///< ensemble covariance Σ_t
};
const char* to_string(Quantity value);  ///< row_permutation, nngp, ntk, spectral_filter, mean, covariance
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
Quantity parse_quantity(std::string_view text);

/// On which inputs a part compares its quantity.
enum class InputSet {
  Given,      ///< the inputs passed to check_theorem_5_1, all pairs but the collinear ones
  Train,      ///< the training set (Lemmas 5.1/5.2), all pairs but the collinear ones
  Collinear,  ///< pairs x' = c·x of the given or training inputs (√ε allowance of kinked activations)
  Test,       ///< the test inputs of Theorem 5.2
  Noise,      ///< off-manifold Gaussian inputs of Theorem 5.2
};
const char* to_string(InputSet value);  ///< given, train, collinear, test, noise
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
InputSet parse_input_set(std::string_view text);

/// "No training time": the time of a part that does not depend on one.
inline constexpr double kNoTime = std::numeric_limits<double>::quiet_NaN();

/// Largest violation of one identity for one group element.
struct ElementViolation {
  int element = 0;
  std::string label;
  double violation = 0;  ///< max-abs entry difference
};

/// One checked identity: holds iff max_violation ≤ tolerance.
struct CheckResult {
  Theorem theorem = Theorem::KernelTransform51;
  Quantity quantity = Quantity::Ntk;
  InputSet inputs = InputSet::Given;
  double time = kNoTime;         ///< training time t (inf allowed), NaN if the part has none
  bool holds = false;
  double max_violation = 0;      ///< absolute, over all elements and entries
  double scale = 0;              ///< max |entry| of the quantity compared
  double tolerance = 0;          ///< absolute
  std::string tolerance_rule;    ///< how the tolerance was derived
  int worst_element = 0;
  std::vector<ElementViolation> elements;
  bool has_time() const { return !std::isnan(time); }
  /// Display name made from the fields, e.g. "NTK", "Lemma 5.2 g_t(Θ), t=30", "mean t=inf noise".
  std::string name() const;
  double relative_violation() const { return scale > 0 ? max_violation / scale : max_violation; }
  std::string to_string() const;
};

/// A theorem is several identities (NNGP and NTK, means and covariances at several times…).
struct TheoremResult {
  std::string theorem;           ///< display title, e.g. "Theorem 5.1 (c4, …)"
  bool holds = false;            ///< every part holds
  std::string status;            ///< notes: group not exact, rows not permuted, …
  std::vector<CheckResult> parts;
  /// The part comparing quantity on inputs at time (kNoTime for parts without one; inf allowed);
  /// nullptr if there is none.
  const CheckResult* find(Quantity quantity, InputSet inputs, double time = kNoTime) const;
  /// As find, but throws std::out_of_range naming the fields when there is no such part.
  const CheckResult& part(Quantity quantity, InputSet inputs, double time = kNoTime) const;
  double max_ratio() const;      ///< max over parts of violation / tolerance
  std::string to_string() const;
};

}  // namespace emergent
