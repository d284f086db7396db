// Continuous groups (Gerken & Kessel, ICML 2024, "Emergent Equivariance in Deep Ensembles", the
// section on continuous groups): training with the finite subgroup B = C_k ⊂ G = SO(2) makes the
// infinite ensemble exactly B-invariant and approximately G-invariant,
//   |f̄_t(ρ_X(g)x) − f̄_t(x)| ≤ κ·C_t(x),   κ = max_g min_{b∈B} ‖ρ_X(g) − ρ_X(b)‖ = 2 sin(π/2k).
// Setting: vector inputs x ∈ ℝ^{2m}, rot2(k) rotating every coordinate pair (docs/conventions.md §5), MLP
// architectures (their kernels depend on x·x', ‖x‖, ‖x'‖ only, so they are O(d)-invariant),
// invariant targets (ρ_Y trivial), ensemble mean μ_t(x) = Θ(x,X)Θ⁻¹T_tY on the C_k-augmented set.
// C_t(x) is computed from the kernel along the orbit of x; the derivation and every assumption is in
// docs/continuous_bound_derivation.md. The true worst case over the continuous orbit is measured by
// a dense scan refined with Brent's method, so bound/measured is the tightness of the bound.
//
// The second part is the finite-ensemble form: for a finite group acting on inputs, the
// M-member violation f̂_t(ρ_X(g)x) − f̂_t(x) is N(μ_t(gx) − μ_t(x), S/M), S = s·I_k with
// s = Σ_t(gx,gx) + Σ_t(x,x) − 2Σ_t(gx,x) (bounds.hpp); invariance_violation_variances gives s.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"

namespace emergent {

/// κ = max_θ min_{j} ‖R(θ) − R(2πj/k)‖₂ = 2 sin(π/(2k)) for C_k ⊂ SO(2) acting by rot2(k) on ℝ^{2m}
/// (the operator norm of R(φ) − I is 2|sin(φ/2)|, and the farthest angle is π/k). k ≥ 1.
double rot2_kappa(int k);

/// Apply the rotation by angle θ to every consecutive coordinate pair of x (as rot2: counter-clockwise,
/// (x₀, x₁) ↦ (cos θ·x₀ − sin θ·x₁, sin θ·x₀ + cos θ·x₁)). x.size() must be even.
Eigen::VectorXd rotate_pairs(const Eigen::VectorXd& x, double theta);

/// The largest value of a function on an interval, found by a dense scan refined by Brent's method.
struct IntervalMaximum {
  double value = -std::numeric_limits<double>::infinity();  ///< max of scan and refinements
  double argmax = 0.0;
  double scan_value = -std::numeric_limits<double>::infinity();  ///< max over the scan alone
  int evaluations = 0;
};
struct IntervalMaximumOptions {
  int scan_points = 256;  ///< equally spaced points on [lo, hi] (both ends included), ≥ 3
  int refine = 8;         ///< at most this many local maxima of the scan are refined, ≥ 0
  int bits = 26;          ///< Brent's relative precision of the abscissa in bits, 8..26 (Boost caps it at
                          ///< half the mantissa: a smooth maximum is flat to √ε)
  int max_iterations = 200;
  bool IsValid(std::string* error) const;
};
/// Dense scan, then boost::math::tools::brent_find_minima on −f in [x_{i−1}, x_{i+1}] around the
/// `refine` largest local maxima of the scan. The result is ≥ every scanned value by construction.
IntervalMaximum maximize_on_interval(const std::function<double(double)>& f, double lo, double hi,
                                     const IntervalMaximumOptions& options = {});

struct ContinuousBoundOptions {
  int order = 4;  ///< k: training set augmented by rot2(k) = C_k (k ≥ 1)
  /// Training times (t ≥ 0, +∞ allowed), in gradient-descent steps as docs/conventions.md §3.
  std::vector<double> times = {std::numeric_limits<double>::infinity()};
  GradientFlowOptions flow;
  KernelOptions kernel;
  /// How the true worst case over the orbit is measured: scan of one period [0, 2π/k].
  IntervalMaximumOptions scan;
  /// Gauss–Legendre nodes on [0, π] for the SO(2) orbit averages Θ_G (≥ 8); the quadrature error
  /// is estimated as the difference to the rule with half as many nodes and added to the bound.
  int quadrature_nodes = 64;
  /// Relative error of one kernel entry, used in the round-off allowance; 0 = 64·ε for closed-form
  /// activations, 4e-9 if one needs quadrature (activation.hpp quotes ≤ 1.2e-9).
  double kernel_rtol = 0.0;
  bool IsValid(std::string* error) const;
};

/// Bound and measured worst case for one test point and one time.
struct ContinuousBoundPoint {
  Eigen::Index test_index = 0;
  double time = 0.0;
  double kappa = 0.0;              ///< 2 sin(π/2k)
  double lipschitz_constant = 0.0; ///< C_t(x): paper_bound = κ·C_t(x)
  double paper_bound = 0.0;        ///< κ·C_t(x) = ‖f_⊥‖·√(2(F(q) − F(q cos(π/k)))) (derivation §4)
  double fourier_bound = 0.0;      ///< ‖f_⊥‖·2√(Θ_B(x,x) − Θ_G(x,x)) (derivation §5)
  double roundoff = 0.0;           ///< allowance for floating point: evaluation of μ_t, kernel error, and
                                   ///< the part of the computed Θ⁻¹T_tY that is not constant on orbits
  double bound = 0.0;              ///< min(paper_bound, fourier_bound) + roundoff: never below measured
  double measured = 0.0;           ///< max over θ of ‖μ_t(R(θ)x) − μ_t(x)‖₂ (scan + Brent)
  double measured_scan = 0.0;      ///< the scan alone
  double worst_angle = 0.0;        ///< θ ∈ [0, 2π/k] of the measured maximum
  double ratio = 0.0;              ///< bound/measured (+∞ if measured is 0)
  double f_norm = 0.0;             ///< ‖f‖_Θ: RKHS norm of the mean (all outputs)
  double f_perp_norm = 0.0;        ///< ‖f − P_G f‖_Θ: its part that is not SO(2)-invariant
};

struct ContinuousBoundResult {
  int order = 0;
  double kappa = 0.0;
  Eigen::Index train_size = 0;     ///< N (before augmentation)
  Eigen::Index augmented_size = 0; ///< k·N
  std::vector<double> times;
  /// points[t·N_test + i]: time-major.
  std::vector<ContinuousBoundPoint> points;
  SpectralSummary spectral;        ///< of Θ on the augmented set
  double quadrature_error = 0.0;   ///< estimated absolute error of the orbit averages Θ_G
  double max_ratio = 0.0, min_ratio = 0.0;  ///< over points with measured > 0
  std::string to_string() const;   ///< one line for logs
  const ContinuousBoundPoint& at(std::size_t time_index, Eigen::Index test_index) const;
};

/// The ensemble mean trained on the C_k-augmented training set, with everything the bound needs.
/// train_x (N, 2m) vectors, train_y (N, outputs) invariant targets. Throws std::invalid_argument
/// (SpecError for an architecture that is not an MLP: only dense layers and activations).
class ContinuousGroupBound {
 public:
  ContinuousGroupBound(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                       const ContinuousBoundOptions& options);

  /// μ_t(R(θ)x) − μ_t(x), one row per angle (outputs columns), at time index `time_index` of options.times.
  Eigen::MatrixXd violation(const Eigen::VectorXd& x, std::size_t time_index, const std::vector<double>& angles) const;

  /// Bound and measured worst case for every test point and time.
  ContinuousBoundResult run(const Inputs& test_x) const;

  const ContinuousBoundOptions& options() const { return options_; }
  const SpectralSummary& spectral() const { return flow_.summary(); }
  double quadrature_error() const { return quadrature_error_; }

 private:
  struct Prepared;  // the augmented set and its kernels
  ContinuousGroupBound(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                       const ContinuousBoundOptions& options, const Prepared& prepared);
  static Prepared prepare(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                          const ContinuousBoundOptions& options);
  Eigen::MatrixXd cross_ntk(const RowMatrix& points) const;      // Θ(points, X_aug)

  Architecture arch_;
  ContinuousBoundOptions options_;
  Inputs train_;                   // N originals
  Inputs augmented_;               // k·N, row g·N + i = R(2πg/k)x_i
  GradientFlow flow_;
  std::vector<Eigen::MatrixXd> alpha_;   // per time: Θ⁻¹T_tY on the augmented set (kN × outputs)
  std::vector<Eigen::MatrixXd> alpha_orbit_;  // per time: α averaged over each orbit (N × outputs)
  Eigen::MatrixXd theta_b_;        // Θ_B(x_i,x_j) = (1/k)Σ_l Θ(R(β_l)x_i, x_j), N×N
  Eigen::MatrixXd theta_g_;        // Θ_G(x_i,x_j) = (1/2π)∫Θ(R(θ)x_i, x_j)dθ, N×N
  double quadrature_error_ = 0.0;
  double kernel_rtol_ = 0.0;
  double train_diag_max_ = 0.0;    // max_i Θ(x_i,x_i): |Θ(y,x_i)| ≤ √(Θ(y,y)·this)
  std::vector<double> f_norm2_, f_perp_norm2_;  // per time, summed over outputs (derivation §3)
  std::vector<double> alpha_abs_;  // per time: Σ_j ‖α_j‖₂ over the augmented rows (round-off allowance)
  std::vector<double> alpha_asym_; // per time: Σ_j ‖α_j − ᾱ_orbit(j)‖₂, the round-off that breaks B-invariance
};

/// One call: ContinuousGroupBound(arch, train_x, train_y, options).run(test_x).
ContinuousBoundResult continuous_group_bound(const Architecture& arch, const Inputs& train_x,
                                             const RowMatrix& train_y, const Inputs& test_x,
                                             const ContinuousBoundOptions& options = {});

// The finite subgroups of SO(3) (covering angle, Haar rotations, their bound) are in so3_bound.hpp.

// ---- finite ensembles: the law of the invariance violation ---------------------------------------

/// The M-member violation f̂_t(ρ_X(g)x) − ρ_Y(g)f̂_t(x) ~ N(mean, S/M) in the NTK limit, for one
/// test point, one group element and one time. The outputs of one member are independent with
/// covariance Σ_t per output, so S = (Σ_t(gx,gx) + Σ_t(x,x))·I_k − Σ_t(gx,x)·(ρ_Y(g) + ρ_Y(g)ᵀ),
/// which is s·I_k with s = Σ_t(gx,gx) + Σ_t(x,x) − 2Σ_t(gx,x) for invariant targets (ρ_Y trivial).
struct ViolationLaw {
  Eigen::Index test_index = 0;
  int element = 0;
  double time = 0.0;
  double variance = 0.0;           ///< the largest eigenvalue of S, clipped at 0 (s for trivial ρ_Y)
  Eigen::MatrixXd covariance;      ///< S (k × k), eigenvalues clipped at 0
  Eigen::VectorXd mean;            ///< μ_t(gx) − ρ_Y(g)μ_t(x) (0 up to round-off with augmentation by the group)
};

struct ViolationLawOptions {
  std::vector<double> times = {std::numeric_limits<double>::infinity()};
  GradientFlowOptions flow;
  KernelOptions kernel;
  bool IsValid(std::string* error) const;
};

/// For every test point, group element of `group` and time (order: time-major, then test point,
/// then element). `augment` (may be null) augments the training set (ρ_Y trivial) before training.
/// Works for any architecture with a readout (or an MLP) on the inputs' shape.
std::vector<ViolationLaw> invariance_violation_laws(const Architecture& arch, const Inputs& train_x,
                                                    const RowMatrix& train_y, const Inputs& test_x,
                                                    const Representation& group, const Representation* augment,
                                                    const ViolationLawOptions& options = {});

/// The same for equivariant targets: `group_output` is ρ_Y for `group` (measured), and
/// `augment_output` ρ_Y for `augment` (the targets' transformation on the augmented set); each
/// has its input group's size and the targets' dimension.
std::vector<ViolationLaw> equivariance_violation_laws(const Architecture& arch, const Inputs& train_x,
                                                      const RowMatrix& train_y, const Inputs& test_x,
                                                      const Representation& group, const Representation& group_output,
                                                      const Representation* augment,
                                                      const Representation* augment_output,
                                                      const ViolationLawOptions& options = {});

}  // namespace emergent
