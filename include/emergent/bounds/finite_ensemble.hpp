// How far a finite deep ensemble is from its infinite-ensemble limit (Gerken & Kessel, ICML 2024,
// "Emergent Equivariance in Deep Ensembles", the lemma on finite ensembles). See docs/bounds.md.
//
// In the NTK limit the M members are i.i.d. Gaussian processes at every training time t, so the
// deviation of the M-member mean f̂_t(x) from the infinite-ensemble mean f̄_t(x) is exactly
//   f̂_t(x) − f̄_t(x) ~ N(0, Σ_t(x,x)/M)
// and the invariance violation f̂_t(ρ_X(g)x) − ρ_Y(g)f̂_t(x) is exactly N(0, S/M) with
//   S = Σ_t(gx,gx) + ρ_YΣ_t(x,x)ρ_Yᵀ − ρ_YΣ_t(x,gx) − Σ_t(gx,x)ρ_Yᵀ   (k×k).
// Everything below depends on (S, M, δ) only through the law of ‖v‖², v ~ N(0, S), evaluated at
// x = M·δ²: P(‖v/√M‖ > δ) = P(Σ_i λ_i(S)·Z_i² > M·δ²), Z_i i.i.d. N(0,1).
//
// Three kinds of numbers are reported, and the names say which is which:
//   exact_*   the probability (or its inverse) of the Gaussian law above, to ~1e-13 relative;
//   paper_*   the paper's Mills-ratio bound √(2/π)(σ/δ)exp(−δ²/2σ²), one output only;
//   union_*, chernoff_*, upper_bound   simple valid upper bounds for k > 1 outputs.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <string_view>

namespace emergent {

// ---------------------------------------------------------------------------------------------
// Building blocks.

/// log erfc(x), accurate where erfc(x) underflows (x ≳ 26.5): a continued fraction for the
/// scaled complement erfc(x)·e^{x²} beyond x = 25.
double log_erfc(double x);

/// Tail status of the exact computation for k > 1 outputs.
enum class TailStatus {
  Ok,            ///< truncation error ≤ relative_tolerance · probability (a rigorous bound)
  NotConverged,  ///< max_terms reached: probability is a lower bound, error_bound is rigorous
};
const char* to_string(TailStatus value);  ///< snake_case: ok, not_converged
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
TailStatus parse_tail_status(std::string_view text);

struct ChiSquareMixtureOptions {
  /// Ruben's series stops once its rigorous truncation bound is ≤ relative_tolerance · sum.
  double relative_tolerance = 1e-14;
  /// Cap on the terms of Ruben's series (each costs O(k), ~0.1 µs·k). The series needs about
  /// (λ_max/λ_min)·log(1/(tolerance·P)) terms, so an S with λ_max/λ_min ≳ 1e5 may hit it; the
  /// result is then a rigorous bracket [probability, probability + error_bound] (NotConverged).
  /// Raising rank_rtol drops negligible eigen-directions instead.
  std::int64_t max_terms = 4'000'000;
  /// Eigenvalues ≤ rank_rtol·λ_max are exact zeros (round-off of a singular S); 0: 64·k·ε.
  double rank_rtol = 0.0;
  /// An eigenvalue < −psd_rtol·λ_max means S is no covariance: std::invalid_argument.
  double psd_rtol = 1e-10;
  /// Largest |S − Sᵀ| / max|S| accepted.
  double symmetry_rtol = 1e-10;

  /// True if the options make sense; otherwise false with the reason in *error.
  bool IsValid(std::string* error) const;
};

/// P(Σ_i w_i·Z_i² > x) for weights w_i > 0 (zeros are dropped) and Z_i i.i.d. N(0,1).
struct ChiSquareMixtureTail {
  TailStatus status = TailStatus::Ok;
  double probability = 0.0;      ///< may underflow to 0; log_probability does not
  double log_probability = 0.0;  ///< natural log (−∞ only for an exact zero)
  double error_bound = 0.0;      ///< absolute, rigorous: 0 ≤ true − probability ≤ error_bound
  std::int64_t terms = 0;        ///< terms of Ruben's series summed (1: closed form)
};

/// Exact tail of a generalized chi-square Σ w_i χ²₁ by Ruben's (1962) mixture representation
/// Σ_j c_j·P(χ²_{r+2j} > x/β), β = min w: every term is positive, so the far tail keeps full
/// relative accuracy, and the remainder is bounded by a Chernoff bound on Σ_{i>j} c_i.
/// One weight: erfc(√(x/2w)); all weights equal: the χ²_r tail itself.
ChiSquareMixtureTail chi_square_mixture_tail(const Eigen::VectorXd& weights, double x,
                                             const ChiSquareMixtureOptions& options = {});

// ---------------------------------------------------------------------------------------------
// One output: |f̂_t(x) − f̄_t(x)| with Var = Σ_t(x,x)/M (also the k = 1 invariance violation).

/// Probability that an M-member ensemble mean deviates by more than δ.
struct EnsembleDeviation {
  double sigma = 0.0;                  ///< √(variance/M)
  double exact_probability = 0.0;      ///< erfc(δ/(σ√2)): exact in the NTK limit
  double log_exact_probability = 0.0;  ///< natural log, accurate in the far tail
  double paper_bound = 0.0;            ///< √(2/π)(σ/δ)e^{−δ²/2σ²} ≥ exact (may exceed 1)
  double log_paper_bound = 0.0;
};
/// variance = Σ_t(x,x) ≥ 0, members M ≥ 1, delta δ > 0.
EnsembleDeviation ensemble_deviation(double variance, std::int64_t members, double delta);

/// δ at which the probability equals p, for M members.
struct EnsembleDelta {
  double exact_delta = 0.0;  ///< σ√2·erfc⁻¹(p)
  double paper_delta = 0.0;  ///< the paper bound equals p (Lambert-W equation, solved by TOMS 748)
};
EnsembleDelta ensemble_delta(double variance, std::int64_t members, double probability);

/// Whether a smallest member count was representable.
enum class MembersStatus {
  Ok,       ///< members is the smallest integer M whose probability (or bound) is ≤ p
  TooMany,  ///< the answer exceeds 2⁵³: members = 0, members_real still holds the threshold
};
const char* to_string(MembersStatus value);  ///< snake_case: ok, too_many
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
MembersStatus parse_members_status(std::string_view text);

struct MemberCount {
  MembersStatus status = MembersStatus::Ok;
  std::int64_t members = 0;  ///< smallest M that passes: M − 1 fails (or M = 1)
  double members_real = 0;   ///< the continuous threshold M* (members = max(1, ⌈M*⌉) up to round-off)
};

struct MinMembers {
  MemberCount exact;  ///< from the exact probability
  MemberCount paper;  ///< from the paper's bound (k > 1: its union over eigen-directions)
  MemberCount upper;  ///< from the tightest reported upper bound (k = 1: the paper's bound)
};
/// Smallest M with P(|f̂ − f̄| > δ) ≤ p, exactly and by the paper's bound (upper = paper).
MinMembers ensemble_min_members(double variance, double delta, double probability);

// ---------------------------------------------------------------------------------------------
// k outputs: the invariance violation v ~ N(0, S/M), S the k×k matrix above (given as input).

struct ViolationProbability {
  Eigen::Index outputs = 0;          ///< k
  Eigen::Index rank = 0;             ///< eigenvalues of S kept (> rank_rtol·λ_max)
  Eigen::VectorXd eigenvalues;       ///< of S, ascending, negatives from round-off clipped to 0
  TailStatus status = TailStatus::Ok;
  double exact_probability = 0.0;    ///< P(‖v‖ > δ), Ruben's series (k = 1: erfc)
  double log_exact_probability = 0.0;
  double error_bound = 0.0;          ///< absolute bound on the truncation error of exact_probability
  std::int64_t terms = 0;
  double union_bound = 0.0;          ///< r·erfc(δ/√(2·tr S/M)): union over eigen-directions
  double chernoff_bound = 0.0;       ///< inf_s E[e^{s‖v‖²}]e^{−sδ²}
  double upper_bound = 0.0;          ///< min(union, Chernoff, 1)
  double paper_bound = 0.0;          ///< the paper's bound with σ² = tr S/M, times r (a union over
                                     ///< the r eigen-directions); rank 1: exactly the paper's bound
};
/// S k×k symmetric PSD (round-off tolerated per options), members M ≥ 1, delta δ > 0.
ViolationProbability violation_probability(const Eigen::MatrixXd& S, std::int64_t members, double delta,
                                           const ChiSquareMixtureOptions& options = {});

struct ViolationDelta {
  double exact_delta = 0.0;  ///< P(‖v‖ > δ) = p (TOMS 748 on log P)
  double paper_delta = 0.0;  ///< paper_bound(δ) = p
  double upper_delta = 0.0;  ///< upper_bound(δ) = p: a δ that is guaranteed to suffice
  TailStatus status = TailStatus::Ok;  ///< worst status of the tail evaluations
};
ViolationDelta violation_delta(const Eigen::MatrixXd& S, std::int64_t members, double probability,
                               const ChiSquareMixtureOptions& options = {});

/// Smallest M with P(‖v‖ > δ) ≤ p, exactly and by the bounds of ViolationProbability.
MinMembers violation_min_members(const Eigen::MatrixXd& S, double delta, double probability,
                                 const ChiSquareMixtureOptions& options = {});

}  // namespace emergent
