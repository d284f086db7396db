// Closed-form gradient flow of infinitely wide ensembles under MSE (docs/conventions.md §3), as
// Neural Tangents' predict.gradient_descent_mse_ensemble and predict.gp_inference.
//
// Loss ½·(1/(N·k))·Σ_i ‖f(x_i) − y_i‖², learning rate η, time t in gradient-descent steps; with
// Θ = Θ(X,X) (+ diag_reg·I) and T_t = I − exp(−ηtΘ/(N·k)) (Lee et al. 2019, "Wide Neural
// Networks of Any Depth Evolve as Linear Models Under Gradient Descent", Eqs. 14–16):
//   mean        μ_t(x)     = Θ(x,X)·Θ⁻¹T_t·Y
//   covariance  Σ_t(x,x')  = K(x,x') + Θ(x,X)Θ⁻¹T_t·K(X,X)·T_tΘ⁻¹Θ(X,x')
//                            − [Θ(x,X)Θ⁻¹T_t·K(X,x') + (x ↔ x')ᵀ]
// Every function of Θ is applied in the eigenbasis of Θ, computed once per training set. The k
// outputs share one kernel (Θ ⊗ I_k, NT's trace_axes): Y is N×k, never a kN×kN matrix.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace emergent {

/// How trustworthy a spectral decomposition of a kernel matrix is (most severe wins).
enum class SpectralStatus {
  Ok,                       ///< positive definite, condition ≤ Options::ill_conditioned
  RankDeficient,            ///< eigenvalues ≤ the rank threshold (e.g. duplicated inputs): exact zeros
  IllConditioned,           ///< kept eigenvalues span more than Options::ill_conditioned: t → ∞ loses digits
  ZeroKernel,               ///< no eigenvalue above the threshold: every prediction stays at its prior
  NotPositiveSemidefinite,  ///< an eigenvalue < −psd_rtol·λ_max: clipped to 0, but the input is no kernel
};
const char* to_string(SpectralStatus value);  ///< snake_case: ok, rank_deficient, ill_conditioned, …
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
SpectralStatus parse_spectral_status(std::string_view text);

/// What the eigendecomposition of a (regularized) kernel matrix found.
struct SpectralSummary {
  SpectralStatus status = SpectralStatus::Ok;
  Eigen::Index size = 0;              ///< N
  double regularizer = 0.0;           ///< absolute diagonal added (diag_reg or diag_reg·tr/N)
  double min_eigenvalue = 0.0;        ///< smallest eigenvalue of the input matrix, before clipping
  double max_eigenvalue = 0.0;        ///< largest eigenvalue of the input matrix
  double condition = 0.0;             ///< λ_max/λ_min of the regularized, clipped matrix (∞ if singular)
  double effective_condition = 0.0;   ///< λ_max / smallest kept eigenvalue (what t = ∞ divides by)
  double rank_threshold = 0.0;        ///< absolute: regularized eigenvalues ≤ it count as exactly 0
  Eigen::Index rank = 0;              ///< eigenvalues kept (used at every t, pseudo-inverse at t = ∞)
  Eigen::Index clipped_negative = 0;  ///< negative eigenvalues set to 0 (round-off of a PSD matrix)
  double most_negative = 0.0;         ///< most negative eigenvalue before clipping (0 if none)
  std::string to_string() const;      ///< one line for logs
};

/// How GradientFlow factored K̃ = V_Rᵀ·K(X,X)·V_R (the NNGP kernel in the kept eigenbasis of Θ)
/// for the covariance: pivoted Cholesky K̃[π, π] = L·Lᵀ + [0 0; 0 S], stopped once every
/// remaining pivot is ≤ `tolerance` (Higham 2002 §10.3; docs/conventions.md §3). The remainder
/// S is dropped when max |S_ij| ≤ 4·tolerance (round-off of a PSD K̃, whose S is PSD with
/// diagonal ≤ tolerance); otherwise K̃ is not PSD to round-off and is used densely, so the
/// covariance is the formula's for any symmetric K(X,X).
struct CovarianceFactorSummary {
  /// Ok (full rank), RankDeficient (rank < size, remainder dropped), ZeroKernel (rank 0,
  /// dropped), NotPositiveSemidefinite (dense: K(X,X) is not PSD to round-off).
  SpectralStatus status = SpectralStatus::Ok;
  Eigen::Index size = 0;          ///< r, the kept eigenvectors of Θ (0: no K(X,X) given)
  Eigen::Index rank = 0;          ///< columns of L
  double tolerance = 0.0;         ///< absolute: r·ε·max diag K̃ (LAPACK dpstrf's default)
  double remainder = 0.0;         ///< max |S_ij| (0 if rank = size)
  bool dense = false;             ///< remainder > 4·tolerance: K̃ used densely, L not used
  std::string to_string() const;  ///< one line for logs
};

struct GradientFlowOptions {
  /// η > 0: gradient-descent step size; time t counts steps, so only η·t matters.
  double learning_rate = 1.0;
  /// ≥ 0: added to the diagonal of Θ(X,X) (K(X,X) for the NNGP posterior) before the
  /// eigendecomposition; test–train kernels are left alone (as NT).
  double diag_reg = 0.0;
  /// true: the diagonal is diag_reg·tr(Θ)/N (NT's diag_reg_absolute_scale=False).
  bool diag_reg_relative = false;
  /// Regularized eigenvalues ≤ rank_rtol·λ_max are treated as exact zeros at every t (their
  /// directions carry round-off only; at t = ∞ this is the pseudo-inverse). 0: 10·N·ε, a
  /// margin above SciPy pinvh's N·ε so that exactly duplicated inputs are always caught.
  double rank_rtol = 0.0;
  /// Negative eigenvalues with |λ| ≤ psd_rtol·λ_max are round-off; larger ones set the status
  /// NotPositiveSemidefinite (all negative eigenvalues are clipped to 0 either way).
  double psd_rtol = 1e-8;
  /// Effective condition number above which the status is IllConditioned.
  double ill_conditioned = 1e10;
  /// Largest |A − Aᵀ| / max|A| accepted for the symmetric inputs (otherwise invalid_argument).
  double symmetry_rtol = 1e-10;
  /// OpenMP threads (members and time points); 0: the OpenMP default. Results do not depend on it.
  int threads = 0;

  /// True if the options make sense; otherwise false with the reason in *error.
  bool IsValid(std::string* error) const;
};

/// The summary of a symmetric kernel matrix's spectrum from its eigenvalues (ascending) and its
/// trace, by the rules GradientFlow and NngpPosterior apply: negative eigenvalues clipped to 0,
/// diag_reg added if `regularize` (relative: ·tr/N), eigenvalues ≤ rank_rtol·λ_max dropped (the
/// kept ones are the last `rank`), then the status. For eigensolvers that run elsewhere
/// (distributed/ ScaLAPACK), so that every solver drops the same directions.
SpectralSummary summarize_spectrum(const Eigen::VectorXd& ascending_eigenvalues, double trace,
                                   const GradientFlowOptions& options, bool regularize = true);

/// Samples of linearized infinite-width members, stored C-order with shape
/// (members, times, n_test, outputs).
struct LinearizedEnsemble {
  Eigen::Index members = 0, times = 0, n_test = 0, outputs = 0;
  std::vector<double> values;
  SpectralSummary prior;  ///< eigendecomposition of the joint NNGP kernel on train ∪ test

  std::size_t index(Eigen::Index member, Eigen::Index time, Eigen::Index i, Eigen::Index j) const {
    return ((static_cast<std::size_t>(member) * times + time) * n_test + i) * outputs + j;
  }
  double operator()(Eigen::Index member, Eigen::Index time, Eigen::Index i, Eigen::Index j) const {
    return values[index(member, time, i, j)];
  }
  std::vector<std::size_t> shape() const {
    return {static_cast<std::size_t>(members), static_cast<std::size_t>(times),
            static_cast<std::size_t>(n_test), static_cast<std::size_t>(outputs)};
  }
};

/// The gradient flow of one training set: Θ(X,X) is eigendecomposed once in the constructor;
/// every query then takes any vector of times (t ≥ 0, +∞ allowed) and costs one projection of
/// its test kernels onto the eigenbasis plus, per time, diagonal scalings and a small product.
///
/// Θ⁻¹T_t = V·g_t(Λ)·Vᵀ with g_t(λ) = (1 − e^{−ηtλ/(Nk)})/λ (expm1; the series near λ·t → 0 with
/// limit ηt/(Nk)); g_∞(λ) = 1/λ. Directions with eigenvalue ≤ the rank threshold are dropped at
/// every t: for a PSD kernel Θ(x,X)v = 0 whenever vᵀΘv = 0, so they contribute exactly nothing,
/// and dropping them at all t makes t → ∞ continuous (exact duplicates stay finite and exact).
///
/// Arguments: Θ(X,X) N×N symmetric, K(X,X) N×N symmetric (may be empty if no covariance or
/// members are asked for), Y N×k. Throws std::invalid_argument naming the argument on a
/// shape mismatch, a non-finite entry, asymmetry beyond symmetry_rtol or invalid options.
class GradientFlow {
 public:
  GradientFlow(const Eigen::MatrixXd& ntk_train_train, const Eigen::MatrixXd& nngp_train_train,
               const Eigen::MatrixXd& y_train, const GradientFlowOptions& options = {});

  const SpectralSummary& summary() const { return summary_; }
  /// The factorization of K̃ behind covariance() (size 0 without K(X,X)).
  const CovarianceFactorSummary& covariance_factor() const { return factor_summary_; }
  const GradientFlowOptions& options() const { return options_; }
  Eigen::Index train_size() const { return y_.rows(); }
  Eigen::Index outputs() const { return y_.cols(); }

  /// μ_t(x) (Lee et al. 2019 Eqs. 14–16, the mean): one N_test×k matrix per time.
  /// ntk_test_train = Θ(x,X), N_test×N.
  std::vector<Eigen::MatrixXd> mean(const std::vector<double>& times,
                                    const Eigen::MatrixXd& ntk_test_train) const;

  /// Σ_t(x,x') (Lee et al. 2019 Eqs. 14–16; the formula of docs/conventions.md §3): one N_test×N_test
  /// matrix per time, the same for every output. Exactly symmetric, PSD up to round-off.
  /// With A = Θ(x,X)·V_R·g_t(Λ) and K̃ = L·Lᵀ (pivoted, covariance_factor()), the quadratic
  /// term A·K̃·Aᵀ is the Gram matrix of the triangular product A·L: m·r² + m²·r flops per time
  /// instead of 2·m·r² + 2·m²·r. nngp_test_train = K(x,X) N_test×N, nngp_test_test = K(x,x)
  /// N_test×N_test.
  std::vector<Eigen::MatrixXd> covariance(const std::vector<double>& times,
                                          const Eigen::MatrixXd& ntk_test_train,
                                          const Eigen::MatrixXd& nngp_test_train,
                                          const Eigen::MatrixXd& nngp_test_test) const;

  /// Mean on the training inputs, f_t(X) = Θ(X,X)·Θ_reg⁻¹T_t·Y (= T_t·Y without diag_reg;
  /// Lee et al. 2019 Eqs. 14–16 at x = X): one N×k matrix per time. With diag_reg > 0 this is
  /// the regularized model evaluated at X (= mean(times, Θ(X,X))), not NT's x_test=None output
  /// T_t·Y (the flow under Θ + δI itself).
  std::vector<Eigen::MatrixXd> train_mean(const std::vector<double>& times) const;

  /// Training loss of the mean, ½·(1/(N·k))·‖f_t(X) − Y‖² (docs/conventions.md §3), per time.
  std::vector<double> train_loss(const std::vector<double>& times) const;

  /// One linearized member from a given initialization (Lee et al. 2019 §2.2, the linearized
  /// network in function space): f_t(x) = f_0(x) + Θ(x,X)Θ⁻¹T_t·(Y − f_0(X)). f0_train N×k, f0_test N_test×k;
  /// one N_test×k matrix per time.
  std::vector<Eigen::MatrixXd> evolve(const std::vector<double>& times,
                                      const Eigen::MatrixXd& ntk_test_train,
                                      const Eigen::MatrixXd& f0_train,
                                      const Eigen::MatrixXd& f0_test) const;

  /// M linearized infinite-width members ("kind 1"): f_0 ~ GP(0, K ⊗ I_k) drawn jointly on
  /// train ∪ test from the eigendecomposition of the joint K (eigenvalues below its rank
  /// threshold, negative round-off included, set to 0), then evolved as in evolve(). Member m uses NormalStream(seed, m): the standard
  /// normal of (row r of [X; x], output j) is draw r·k + j. Bit-identical at any thread count;
  /// OpenMP over members. Their sample mean and covariance tend to mean() and covariance().
  LinearizedEnsemble sample_members(const std::vector<double>& times,
                                    const Eigen::MatrixXd& ntk_test_train,
                                    const Eigen::MatrixXd& nngp_test_train,
                                    const Eigen::MatrixXd& nngp_test_test,
                                    Eigen::Index members, std::uint64_t seed) const;

 private:
  Eigen::VectorXd g(double t) const;  // g_t on the kept eigenvalues
  Eigen::MatrixXd project_test(const Eigen::MatrixXd& ntk_test_train) const;  // Θ(x,X)·V_R
  void require_nngp(const char* what) const;

  GradientFlowOptions options_;
  SpectralSummary summary_;
  Eigen::MatrixXd y_;              // N×k
  Eigen::MatrixXd nngp_;           // K(X,X), symmetrized (empty if not given)
  Eigen::MatrixXd basis_;          // V_R: kept eigenvectors, N×r
  Eigen::VectorXd eigenvalues_;    // regularized kept eigenvalues, r
  Eigen::VectorXd raw_eigenvalues_;// clipped eigenvalues of Θ itself on the kept directions, r
  Eigen::MatrixXd y_proj_;         // V_Rᵀ·Y, r×k
  Eigen::MatrixXd nngp_factor_;    // L: pivoted Cholesky factor of K̃ = V_Rᵀ·K·V_R, r×rank
  Eigen::VectorXi nngp_pivots_;    // π: row i of L belongs to eigenvector pivots(i)
  Eigen::MatrixXd nngp_dense_;     // K̃ itself, only when the factor is not trusted (else empty)
  CovarianceFactorSummary factor_summary_;
  double y_perp_norm2_ = 0.0;      // ‖(I − V_RV_Rᵀ)·Y‖²: the part of Y no time can fit
  double scale_ = 0.0;             // η/(N·k)
};

/// NNGP posterior, exact Bayesian inference with the NNGP kernel K (Lee et al. 2018, "Deep
/// Neural Networks as Gaussian Processes"; noise-free Rasmussen & Williams 2006 Eqs. 2.23–2.24;
/// NT's predict.gp_inference):
///   mean K(x,X)K⁻¹Y, covariance K(x,x) − K(x,X)K⁻¹K(X,x),
/// with K⁻¹ the pseudo-inverse on the kept eigenvalues (same threshold and diag_reg as above;
/// learning_rate is not used). The covariance is computed as K(x,x) − BBᵀ, B = K(x,X)V_RΛ_R^{−1/2}.
class NngpPosterior {
 public:
  NngpPosterior(const Eigen::MatrixXd& nngp_train_train, const Eigen::MatrixXd& y_train,
                const GradientFlowOptions& options = {});

  const SpectralSummary& summary() const { return summary_; }

  /// N_test×k. nngp_test_train = K(x,X), N_test×N.
  Eigen::MatrixXd mean(const Eigen::MatrixXd& nngp_test_train) const;
  /// N_test×N_test, shared by all outputs.
  Eigen::MatrixXd covariance(const Eigen::MatrixXd& nngp_test_train,
                             const Eigen::MatrixXd& nngp_test_test) const;

 private:
  GradientFlowOptions options_;
  SpectralSummary summary_;
  Eigen::MatrixXd basis_;        // V_R
  Eigen::VectorXd eigenvalues_;  // kept, regularized
  Eigen::MatrixXd alpha_proj_;   // Λ_R⁻¹·V_Rᵀ·Y
};

/// Stack per-time matrices (all of one shape) into C-order (times, rows, cols), as .npy wants.
std::vector<double> stack(const std::vector<Eigen::MatrixXd>& per_time);

}  // namespace emergent
