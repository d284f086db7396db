// Closed-form gradient flow (docs/conventions.md §3): every function of Θ is evaluated in one
// eigendecomposition; see include/emergent/dynamics/gradient_flow.hpp for the formulas.
#include "emergent/dynamics/gradient_flow.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "emergent/core/random.hpp"
#include "emergent/dynamics/spectral_filter.hpp"
#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/parallel.hpp"
#include "detail/linear_algebra.hpp"

namespace emergent {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

using detail::value_text;

std::string shape_text(Index rows, Index cols) {
  return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

// Throws unless `a` is rows×cols; `expected` spells the shape symbolically, e.g. "(N_test, N)".
void check_shape(const MatrixXd& a, const char* name, Index rows, Index cols, const char* expected) {
  if (a.rows() != rows || a.cols() != cols)
    throw std::invalid_argument(std::string(name) + ": shape " + shape_text(a.rows(), a.cols()) +
                                ", expected " + expected + " = " + shape_text(rows, cols));
}

void check_finite(const MatrixXd& a, const char* name) {
  for (Index j = 0; j < a.cols(); ++j)
    for (Index i = 0; i < a.rows(); ++i)
      if (!std::isfinite(a(i, j)))
        throw std::invalid_argument(std::string(name) + ": entry (" + std::to_string(i) + ", " +
                                    std::to_string(j) + ") = " + value_text(a(i, j)) +
                                    ", expected a finite number");
}

// Round-off asymmetry is accepted (and removed by symmetrizing); anything larger is a bug upstream.
MatrixXd symmetrized(const MatrixXd& a, const char* name, double rtol) {
  check_finite(a, name);
  // By pairs of 64×64 blocks (i0 ≤ j0), so a(i, j) and a(j, i) are both read from cache: the
  // whole-matrix a − aᵀ and a + aᵀ passes missed on every entry of aᵀ (≈ 1 s at N = 4000).
  // 0.5·(a_ij + a_ji) is the same number either way round, so the result is exactly symmetric.
  const Index n = a.rows();
  if (a.cols() != n)
    throw std::invalid_argument(std::string(name) + ": shape " + shape_text(n, a.cols()) + ", expected a square matrix");
  constexpr Index kBlock = 64;
  MatrixXd out(n, n);
  double scale = 0.0, asym = 0.0;
  for (Index j0 = 0; j0 < n; j0 += kBlock)
    for (Index i0 = 0; i0 <= j0; i0 += kBlock) {
      const Index j1 = std::min(n, j0 + kBlock), i1 = std::min(n, i0 + kBlock);
      for (Index j = j0; j < j1; ++j)
        for (Index i = i0; i < i1; ++i) {
          const double x = a(i, j), y = a(j, i);
          scale = std::max({scale, std::abs(x), std::abs(y)});
          asym = std::max(asym, std::abs(x - y));
          out(i, j) = out(j, i) = 0.5 * (x + y);
        }
    }
  if (asym > rtol * scale)
    throw std::invalid_argument(std::string(name) + ": not symmetric, max |A - A^T| = " + value_text(asym) +
                                " with max |A| = " + value_text(scale) +
                                ", expected at most symmetry_rtol * max |A| = " + value_text(rtol * scale));
  return out;
}

std::string options_error(const GradientFlowOptions& options) {
  std::string error;
  if (!options.IsValid(&error)) return "GradientFlowOptions: " + error;
  return {};
}

int thread_count(int requested) { return requested > 0 ? requested : omp_get_max_threads(); }

// The eigendecomposition of a kernel matrix with everything the summary reports.
struct Spectrum {
  MatrixXd vectors;      // all eigenvectors, ascending eigenvalues
  VectorXd clipped;      // max(λ, 0), all
  Index rank = 0;        // the kept ones are the last `rank`
  SpectralSummary summary;
};

// `alongside` (if any) runs during the eigensolver's single-threaded phase (detail::symmetric_eigen).
Spectrum decompose(const MatrixXd& a, const GradientFlowOptions& options, bool regularize,
                   const std::function<void()>& alongside = {}) {
  detail::SymmetricEigen solver =
      detail::symmetric_eigen(a, true, options.threads, detail::TridiagonalReduction::pieces, alongside);
  if (!solver.converged)
    throw std::runtime_error("gradient flow: the symmetric eigensolver did not converge");
  Spectrum s;
  s.vectors = std::move(solver.vectors);
  s.summary = summarize_spectrum(solver.values, a.trace(), options, regularize);
  s.clipped = solver.values.cwiseMax(0.0);
  s.rank = s.summary.rank;
  return s;
}

}  // namespace

SpectralSummary summarize_spectrum(const VectorXd& lambda, double trace, const GradientFlowOptions& options,
                                   bool regularize) {
  const Index n = lambda.size();
  if (n < 1) throw std::invalid_argument("summarize_spectrum: no eigenvalues, expected N >= 1");
  SpectralSummary sum;
  sum.size = n;
  sum.min_eigenvalue = lambda(0);
  sum.max_eigenvalue = lambda(n - 1);
  sum.most_negative = std::min(lambda(0), 0.0);
  sum.clipped_negative = (lambda.array() < 0.0).count();
  const VectorXd clipped = lambda.cwiseMax(0.0);

  double reg = 0.0;
  if (regularize) {
    reg = options.diag_reg;
    if (options.diag_reg_relative) reg *= std::max(trace, 0.0) / static_cast<double>(n);
  }
  sum.regularizer = reg;
  const double top = clipped(n - 1) + reg;
  const double rtol = options.rank_rtol > 0.0
                          ? options.rank_rtol
                          : 10.0 * static_cast<double>(n) * std::numeric_limits<double>::epsilon();
  sum.rank_threshold = rtol * top;
  for (Index i = 0; i < n; ++i)
    if (top > 0.0 && clipped(i) + reg > sum.rank_threshold) ++sum.rank;
  const double inf = std::numeric_limits<double>::infinity();
  const double bottom = clipped(0) + reg;
  sum.condition = bottom > 0.0 ? top / bottom : inf;
  sum.effective_condition = sum.rank > 0 ? top / (clipped(n - sum.rank) + reg) : inf;

  const bool indefinite = sum.most_negative < 0.0 &&
                          (sum.max_eigenvalue <= 0.0 || -sum.most_negative > options.psd_rtol * sum.max_eigenvalue);
  if (indefinite)
    sum.status = SpectralStatus::NotPositiveSemidefinite;
  else if (sum.rank == 0)
    sum.status = SpectralStatus::ZeroKernel;
  else if (sum.effective_condition > options.ill_conditioned)
    sum.status = SpectralStatus::IllConditioned;
  else if (sum.rank < n)
    sum.status = SpectralStatus::RankDeficient;
  else
    sum.status = SpectralStatus::Ok;
  return sum;
}

std::string SpectralSummary::to_string() const {
  std::ostringstream out;
  out << "status=" << emergent::to_string(status) << " N=" << size << " rank=" << rank << "/" << size
      << " eig=[" << value_text(min_eigenvalue) << ", " << value_text(max_eigenvalue) << "]"
      << " clipped=" << clipped_negative << " (most negative " << value_text(most_negative) << ")"
      << " reg=" << value_text(regularizer) << " cond=" << value_text(condition)
      << " effective_cond=" << value_text(effective_condition) << " threshold=" << value_text(rank_threshold);
  return out.str();
}

bool GradientFlowOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& message) {
    if (error) *error = message;
    return false;
  };
  if (!(std::isfinite(learning_rate) && learning_rate > 0.0))
    return fail("learning_rate = " + value_text(learning_rate) + ": expected a finite number > 0");
  if (!(std::isfinite(diag_reg) && diag_reg >= 0.0))
    return fail("diag_reg = " + value_text(diag_reg) + ": expected a finite number >= 0");
  if (!(std::isfinite(rank_rtol) && rank_rtol >= 0.0 && rank_rtol < 1.0))
    return fail("rank_rtol = " + value_text(rank_rtol) + ": expected 0 <= rank_rtol < 1 (0: 10*N*eps)");
  if (!(std::isfinite(psd_rtol) && psd_rtol >= 0.0))
    return fail("psd_rtol = " + value_text(psd_rtol) + ": expected a finite number >= 0");
  if (!(ill_conditioned > 1.0))  // +inf allowed: never flag
    return fail("ill_conditioned = " + value_text(ill_conditioned) + ": expected a number > 1");
  if (!(std::isfinite(symmetry_rtol) && symmetry_rtol >= 0.0))
    return fail("symmetry_rtol = " + value_text(symmetry_rtol) + ": expected a finite number >= 0");
  if (threads < 0 || threads > detail::kMaxThreads)
    return fail("threads = " + std::to_string(threads) + ": expected 0 (OpenMP default) to " +
                std::to_string(detail::kMaxThreads));
  if (error) error->clear();
  return true;
}

// ---------------------------------------------------------------------------------------------
// GradientFlow

namespace {
// Vᵀ·K·V for symmetric K: the two N³ products dominate the constructor as much as the
// eigensolver itself; the second one only needs its upper triangle (symmetric_product), and both
// run over fixed column panels, so the result does not depend on the thread count.
MatrixXd project_symmetric(const MatrixXd& k, const MatrixXd& v, int threads) {
  const MatrixXd kv = detail::product(k, false, v, false, threads);
  return detail::symmetric_product(v, kv, threads);  // exactly symmetric, as the covariance formulas assume
}

// The remainder S of a pivoted Cholesky is dropped when max |S_ij| ≤ kRemainderMargin·τ. For a PSD
// K̃, S is PSD with diagonal ≤ τ, so |S_ij| ≤ τ exactly; the computed S adds the factorization's
// backward error and its own round-off, each ≈ r·ε·max diag K̃ = τ (Higham 2002 Thm. 10.14).
// A larger S means K̃ is not PSD (or the factor lost accuracy): then K̃ is used densely.
constexpr double kRemainderMargin = 4.0;

// K's pivoted Cholesky K[π, π] = L_K·L_Kᵀ (+ a round-off remainder), τ = N·ε·max diag K, and
// whether it is trusted: a K that is not PSD to round-off (remainder above kRemainderMargin·τ,
// see above) is not factored but projected densely (project_symmetric).
struct TrainNngpFactor {
  detail::PivotedCholesky cholesky;
  bool trusted = false;
};
TrainNngpFactor factor_train_nngp(const MatrixXd& k, int threads) {
  const Index n = k.rows();
  const double tolerance = static_cast<double>(n) * std::numeric_limits<double>::epsilon() *
                           std::max(k.diagonal().maxCoeff(), 0.0);
  TrainNngpFactor out;
  out.cholesky = detail::pivoted_cholesky(k, tolerance, threads);
  const MatrixXd s = detail::pivoted_cholesky_remainder(k, out.cholesky, threads);
  out.trusted = s.size() == 0 || s.cwiseAbs().maxCoeff() <= kRemainderMargin * tolerance;
  if (!out.trusted) out.cholesky = {};
  return out;
}

// K̃ = V_Rᵀ·K·V_R through K's own pivoted Cholesky (factor_train_nngp): M = L_Kᵀ·V_R[π, :] is a
// triangular product and K̃ = MᵀM half a product, N³/3 + N³ + N³ flops instead of 2·N³ + N³, and
// K̃ is a Gram matrix. An untrusted factor takes project_symmetric instead. M is built directly
// (no transposed copies), by fixed column panels of V_R[π, :], one single-threaded call per fixed
// row block: bits independent of the thread count.
MatrixXd project_nngp(const MatrixXd& k, TrainNngpFactor&& factor, const MatrixXd& v, int threads) {
  if (!factor.trusted) return project_symmetric(k, v, threads);
  const Index n = k.rows(), r = v.cols();
  detail::PivotedCholesky& f = factor.cholesky;
  MatrixXd m;  // M = L_Kᵀ·V_R[π, :], rank × r
  {
    MatrixXd v_pi(n, r);  // rows of V_R in the pivot order, gathered column by column
    constexpr Index kColumns = 64;
    const Index pieces = (r + kColumns - 1) / kColumns;
#pragma omp parallel for schedule(static) num_threads(thread_count(threads)) if (pieces > 1)
    for (Index q = 0; q < pieces; ++q)
      for (Index c = q * kColumns; c < std::min(r, (q + 1) * kColumns); ++c)
        for (Index i = 0; i < n; ++i) v_pi(i, c) = v(f.pivots(i), c);
    m = detail::lower_trapezoidal_transpose_product(f.factor, v_pi, threads);
  }
  f.factor.resize(0, 0);  // peak memory: L_K, V_R[π, :] and M are N×N each
  return detail::symmetric_product(m, m, threads);
}


struct NngpFactor {
  MatrixXd factor;        // L, or empty with `dense`
  MatrixXd dense;         // K̃ itself when the factor is not trusted
  Eigen::VectorXi pivots; // π (the identity with `dense`)
  CovarianceFactorSummary summary;
};

// K̃[π, π] = L·Lᵀ + [0 0; 0 S] with τ = r·ε·max diag K̃ (dpstrf's default stopping rule).
NngpFactor factor_projected_nngp(const MatrixXd& kt, int threads) {
  NngpFactor out;
  const Index r = kt.rows();
  CovarianceFactorSummary& sum = out.summary;
  sum.size = r;
  const double top = r > 0 ? std::max(kt.diagonal().maxCoeff(), 0.0) : 0.0;
  sum.tolerance = static_cast<double>(r) * std::numeric_limits<double>::epsilon() * top;
  detail::PivotedCholesky f = detail::pivoted_cholesky(kt, sum.tolerance, threads);
  sum.rank = f.rank;
  MatrixXd s = detail::pivoted_cholesky_remainder(kt, f, threads);
  sum.remainder = s.size() > 0 ? s.cwiseAbs().maxCoeff() : 0.0;
  sum.dense = sum.remainder > kRemainderMargin * sum.tolerance;
  if (sum.dense) {
    sum.status = SpectralStatus::NotPositiveSemidefinite;
    out.dense = kt;
    out.pivots = Eigen::VectorXi::LinSpaced(r, 0, static_cast<int>(r) - 1);
    return out;
  }
  if (r > 0 && sum.rank == 0) {
    sum.status = SpectralStatus::ZeroKernel;
  } else if (sum.rank < r) {
    sum.status = SpectralStatus::RankDeficient;
  }
  out.factor = std::move(f.factor);
  out.pivots = std::move(f.pivots);
  return out;
}

// Columns of `a` in the order `pivots`.
MatrixXd permuted_columns(const MatrixXd& a, const Eigen::VectorXi& pivots) {
  MatrixXd out(a.rows(), pivots.size());
  for (Index j = 0; j < pivots.size(); ++j) out.col(j) = a.col(pivots(j));
  return out;
}
}  // namespace

std::string CovarianceFactorSummary::to_string() const {
  std::ostringstream out;
  out << "status=" << emergent::to_string(status) << " rank=" << rank << "/" << size
      << " tolerance=" << value_text(tolerance) << " remainder=" << value_text(remainder)
      << (dense ? " (K~ used densely)" : "");
  return out.str();
}

GradientFlow::GradientFlow(const MatrixXd& ntk_train_train, const MatrixXd& nngp_train_train,
                           const MatrixXd& y_train, const GradientFlowOptions& options)
    : options_(options) {
  if (const std::string e = options_error(options); !e.empty()) throw std::invalid_argument(e);
  const Index n = ntk_train_train.rows();
  if (n < 1 || ntk_train_train.cols() != n)
    throw std::invalid_argument("ntk_train_train: shape " + shape_text(n, ntk_train_train.cols()) +
                                ", expected a square (N, N) matrix with N >= 1");
  if (y_train.rows() != n || y_train.cols() < 1)
    throw std::invalid_argument("y_train: shape " + shape_text(y_train.rows(), y_train.cols()) +
                                ", expected (N, k) with N = " + std::to_string(n) + " and k >= 1");
  check_finite(y_train, "y_train");
  const MatrixXd theta = symmetrized(ntk_train_train, "ntk_train_train", options.symmetry_rtol);
  if (nngp_train_train.size() != 0) {
    check_shape(nngp_train_train, "nngp_train_train", n, n, "(N, N) (or empty)");
    nngp_ = symmetrized(nngp_train_train, "nngp_train_train", options.symmetry_rtol);
  }
  y_ = y_train;
  scale_ = options.learning_rate / (static_cast<double>(n) * static_cast<double>(y_.cols()));

  // K's factor needs only K: it runs while the eigensolver's tridiagonal stage keeps one thread
  // busy (on one thread then; its bits do not depend on the thread count).
  TrainNngpFactor k_factor;
  std::function<void()> factor_k;
  if (nngp_.size() != 0)
    factor_k = [&] { k_factor = factor_train_nngp(nngp_, omp_in_parallel() ? 1 : options_.threads); };
  Spectrum s = decompose(theta, options, true, factor_k);
  summary_ = s.summary;
  const Index r = s.rank;
  basis_ = s.vectors.rightCols(r);
  raw_eigenvalues_ = s.clipped.tail(r);
  eigenvalues_ = raw_eigenvalues_.array() + summary_.regularizer;
  y_proj_ = detail::product(basis_, true, y_, false, options_.threads);
  const MatrixXd y_perp = y_ - basis_ * y_proj_;
  y_perp_norm2_ = y_perp.squaredNorm();
  if (nngp_.size() != 0) {
    NngpFactor f =
        factor_projected_nngp(project_nngp(nngp_, std::move(k_factor), basis_, options_.threads), options_.threads);
    nngp_factor_ = std::move(f.factor);
    nngp_pivots_ = std::move(f.pivots);
    nngp_dense_ = std::move(f.dense);
    factor_summary_ = f.summary;
  }
}

VectorXd GradientFlow::g(double t) const {
  const double s = scale_ * t;
  VectorXd out(eigenvalues_.size());
  for (Index i = 0; i < out.size(); ++i) out(i) = spectral_filter(eigenvalues_(i), s);
  return out;
}

MatrixXd GradientFlow::project_test(const MatrixXd& ntk_test_train) const {
  if (ntk_test_train.cols() != train_size())
    throw std::invalid_argument("ntk_test_train: shape " +
                                shape_text(ntk_test_train.rows(), ntk_test_train.cols()) +
                                ", expected (N_test, N) with N = " + std::to_string(train_size()));
  check_finite(ntk_test_train, "ntk_test_train");
  return detail::product(ntk_test_train, false, basis_, false, options_.threads);
}

void GradientFlow::require_nngp(const char* what) const {
  if (nngp_.size() == 0)
    throw std::invalid_argument(std::string("nngp_train_train: empty, expected the (N, N) NNGP kernel "
                                            "(needed for ") + what + ")");
}

std::vector<MatrixXd> GradientFlow::mean(const std::vector<double>& times,
                                         const MatrixXd& ntk_test_train) const {
  detail::check_times(times, "GradientFlow", detail::EmptyTimes::Allowed);
  const MatrixXd p = project_test(ntk_test_train);
  std::vector<MatrixXd> out(times.size());
  const long count = static_cast<long>(times.size());
  detail::ParallelErrors errors;
#pragma omp parallel for schedule(static) num_threads(thread_count(options_.threads)) if (count > 1)
  for (long i = 0; i < count; ++i) errors.run(i, [&] { out[i] = p * (g(times[i]).asDiagonal() * y_proj_); });
  errors.rethrow();
  return out;
}

std::vector<MatrixXd> GradientFlow::covariance(const std::vector<double>& times,
                                               const MatrixXd& ntk_test_train,
                                               const MatrixXd& nngp_test_train,
                                               const MatrixXd& nngp_test_test) const {
  detail::check_times(times, "GradientFlow", detail::EmptyTimes::Allowed);
  require_nngp("the covariance");
  const MatrixXd p = project_test(ntk_test_train);
  const Index m = p.rows();
  check_shape(nngp_test_train, "nngp_test_train", m, train_size(), "(N_test, N)");
  check_finite(nngp_test_train, "nngp_test_train");
  check_shape(nngp_test_test, "nngp_test_test", m, m, "(N_test, N_test)");
  const MatrixXd kxx = symmetrized(nngp_test_test, "nngp_test_test", options_.symmetry_rtol);
  // Everything in the pivot order π of K̃'s factor: A·K̃·Aᵀ = (A_π·L)(A_π·L)ᵀ [+ A_π₂·S·A_π₂ᵀ].
  const MatrixXd p_pi = permuted_columns(p, nngp_pivots_);
  const MatrixXd kxv_pi = permuted_columns(
      detail::product(nngp_test_train, false, basis_, false, options_.threads), nngp_pivots_);  // K(x,X)·V_R
  const Index rank = nngp_factor_.cols();
  const bool dense = nngp_dense_.size() != 0;
  std::vector<MatrixXd> out(times.size());
  const long count = static_cast<long>(times.size());
  detail::ParallelErrors errors2;
#pragma omp parallel for schedule(static) num_threads(thread_count(options_.threads)) if (count > 1)
  for (long i = 0; i < count; ++i) {
    errors2.run(static_cast<long long>(i), [&] {
      // A = Θ(x,X)Θ⁻¹T_t in the eigenbasis, here with its columns in the order π. Σ = K_xx + B·Bᵀ
      // − (A·K̃_Xx + K̃_xX·Aᵀ) with B = A_π·L (one triangular product), built in the lower
      // triangle by dsyrk and dsyr2k and mirrored, so it is exactly symmetric.
      const VectorXd gt = g(times[i]);
      MatrixXd a(m, p_pi.cols());
      for (Index j = 0; j < a.cols(); ++j) a.col(j) = p_pi.col(j) * gt(nngp_pivots_(j));
      MatrixXd sigma = kxx;
      if (dense)  // A·K̃·Aᵀ = ½(W·Aᵀ + A·Wᵀ), W = A·K̃, for a K(X,X) that is not PSD to round-off
        detail::add_symmetric_rank2k_lower(sigma, detail::product(a, false, nngp_dense_, false, 1), a, 0.5);
      else if (rank > 0)
        detail::add_gram_lower(sigma, detail::lower_trapezoidal_product(a, nngp_factor_), 1.0);
      detail::add_symmetric_rank2k_lower(sigma, a, kxv_pi, -1.0);
      for (Index c = 1; c < m; ++c)
        for (Index r = 0; r < c; ++r) sigma(r, c) = sigma(c, r);
      out[i] = std::move(sigma);
    });
  }
  errors2.rethrow();
  return out;
}

std::vector<MatrixXd> GradientFlow::train_mean(const std::vector<double>& times) const {
  detail::check_times(times, "GradientFlow", detail::EmptyTimes::Allowed);
  std::vector<MatrixXd> out;
  out.reserve(times.size());
  for (double t : times) {
    const VectorXd factor = raw_eigenvalues_.cwiseProduct(g(t));  // λ·g_t(λ + δ)
    out.push_back(basis_ * (factor.asDiagonal() * y_proj_));
  }
  return out;
}

std::vector<double> GradientFlow::train_loss(const std::vector<double>& times) const {
  detail::check_times(times, "GradientFlow", detail::EmptyTimes::Allowed);
  const double n = static_cast<double>(y_.size());
  std::vector<double> out;
  out.reserve(times.size());
  for (double t : times) {
    // f_t − Y = V·diag(λg − 1)·VᵀY − Y_⊥ with λg − 1 = −(λ·e^{−sλ_reg} + δ)/λ_reg: the
    // exponentially small residuals of long times keep their relative accuracy.
    const double s = scale_ * t;
    double sum = y_perp_norm2_;
    for (Index i = 0; i < eigenvalues_.size(); ++i) {
      const double decay = t == 0.0 ? 1.0 : std::isinf(t) ? 0.0 : std::exp(-s * eigenvalues_(i));
      const double r = -(raw_eigenvalues_(i) * decay + summary_.regularizer) / eigenvalues_(i);
      sum += r * r * y_proj_.row(i).squaredNorm();
    }
    out.push_back(0.5 * sum / n);
  }
  return out;
}

std::vector<MatrixXd> GradientFlow::evolve(const std::vector<double>& times,
                                           const MatrixXd& ntk_test_train, const MatrixXd& f0_train,
                                           const MatrixXd& f0_test) const {
  detail::check_times(times, "GradientFlow", detail::EmptyTimes::Allowed);
  const MatrixXd p = project_test(ntk_test_train);
  check_shape(f0_train, "f0_train", train_size(), outputs(), "(N, k)");
  check_finite(f0_train, "f0_train");
  check_shape(f0_test, "f0_test", p.rows(), outputs(), "(N_test, k)");
  check_finite(f0_test, "f0_test");
  const MatrixXd d = basis_.transpose() * (y_ - f0_train);
  std::vector<MatrixXd> out;
  out.reserve(times.size());
  for (double t : times) out.push_back(f0_test + p * (g(t).asDiagonal() * d));
  return out;
}

LinearizedEnsemble GradientFlow::sample_members(const std::vector<double>& times,
                                                const MatrixXd& ntk_test_train,
                                                const MatrixXd& nngp_test_train,
                                                const MatrixXd& nngp_test_test, Index members,
                                                std::uint64_t seed) const {
  detail::check_times(times, "GradientFlow", detail::EmptyTimes::Allowed);
  require_nngp("linearized members");
  if (members < 1)
    throw std::invalid_argument("members = " + std::to_string(members) + ": expected >= 1");
  const MatrixXd p = project_test(ntk_test_train);
  const Index n = train_size(), m = p.rows(), k = outputs(), total = n + m;
  check_shape(nngp_test_train, "nngp_test_train", m, n, "(N_test, N)");
  check_finite(nngp_test_train, "nngp_test_train");
  check_shape(nngp_test_test, "nngp_test_test", m, m, "(N_test, N_test)");
  const MatrixXd kxx = symmetrized(nngp_test_test, "nngp_test_test", options_.symmetry_rtol);

  // Prior on train ∪ test: K_joint = U·Λ·Uᵀ, f_0 = U·Λ₊^{1/2}·z (negative round-off clipped).
  MatrixXd joint(total, total);
  joint.topLeftCorner(n, n) = nngp_;
  joint.bottomLeftCorner(m, n) = nngp_test_train;
  joint.topRightCorner(n, m) = nngp_test_train.transpose();
  joint.bottomRightCorner(m, m) = kxx;
  GradientFlowOptions prior_options = options_;
  prior_options.diag_reg = 0.0;
  const Spectrum prior = decompose(joint, prior_options, false);
  // Eigenvalues below the rank threshold are round-off: zeroing them (not just clipping) keeps
  // duplicated points exactly equal in every draw instead of √ε apart.
  VectorXd root_scale = prior.clipped.cwiseSqrt();
  root_scale.head(total - prior.rank).setZero();
  const MatrixXd root = prior.vectors * root_scale.asDiagonal();

  LinearizedEnsemble out;
  out.members = members;
  out.times = static_cast<Index>(times.size());
  out.n_test = m;
  out.outputs = k;
  out.prior = prior.summary;
  out.values.assign(static_cast<std::size_t>(members) * times.size() * m * k, 0.0);
  std::vector<VectorXd> gs;
  for (double t : times) gs.push_back(g(t));

  detail::ParallelErrors errors3;
#pragma omp parallel for schedule(static) num_threads(thread_count(options_.threads))
  for (Index member = 0; member < members; ++member) {
    errors3.run(static_cast<long long>(member), [&] {
      const NormalStream stream(seed, static_cast<std::uint64_t>(member));
      MatrixXd z(total, k);
      for (Index r = 0; r < total; ++r)
        for (Index j = 0; j < k; ++j) z(r, j) = stream.normal(static_cast<std::uint64_t>(r * k + j));
      const MatrixXd f0 = root * z;
      const MatrixXd d = basis_.transpose() * (y_ - f0.topRows(n));
      for (Index ti = 0; ti < out.times; ++ti) {
        const MatrixXd f = f0.bottomRows(m) + p * (gs[ti].asDiagonal() * d);
        for (Index i = 0; i < m; ++i)
          for (Index j = 0; j < k; ++j) out.values[out.index(member, ti, i, j)] = f(i, j);
      }
    });
  }
  errors3.rethrow();
  return out;
}

// ---------------------------------------------------------------------------------------------
// NngpPosterior

NngpPosterior::NngpPosterior(const MatrixXd& nngp_train_train, const MatrixXd& y_train,
                             const GradientFlowOptions& options)
    : options_(options) {
  if (const std::string e = options_error(options); !e.empty()) throw std::invalid_argument(e);
  const Index n = nngp_train_train.rows();
  if (n < 1 || nngp_train_train.cols() != n)
    throw std::invalid_argument("nngp_train_train: shape " + shape_text(n, nngp_train_train.cols()) +
                                ", expected a square (N, N) matrix with N >= 1");
  if (y_train.rows() != n || y_train.cols() < 1)
    throw std::invalid_argument("y_train: shape " + shape_text(y_train.rows(), y_train.cols()) +
                                ", expected (N, k) with N = " + std::to_string(n) + " and k >= 1");
  check_finite(y_train, "y_train");
  const MatrixXd k = symmetrized(nngp_train_train, "nngp_train_train", options.symmetry_rtol);
  Spectrum s = decompose(k, options, true);
  summary_ = s.summary;
  basis_ = s.vectors.rightCols(s.rank);
  eigenvalues_ = s.clipped.tail(s.rank).array() + summary_.regularizer;
  alpha_proj_ = eigenvalues_.cwiseInverse().asDiagonal() * (basis_.transpose() * y_train);
}

MatrixXd NngpPosterior::mean(const MatrixXd& nngp_test_train) const {
  if (nngp_test_train.cols() != summary_.size)
    throw std::invalid_argument("nngp_test_train: shape " +
                                shape_text(nngp_test_train.rows(), nngp_test_train.cols()) +
                                ", expected (N_test, N) with N = " + std::to_string(summary_.size));
  check_finite(nngp_test_train, "nngp_test_train");
  return (nngp_test_train * basis_) * alpha_proj_;
}

MatrixXd NngpPosterior::covariance(const MatrixXd& nngp_test_train, const MatrixXd& nngp_test_test) const {
  if (nngp_test_train.cols() != summary_.size)
    throw std::invalid_argument("nngp_test_train: shape " +
                                shape_text(nngp_test_train.rows(), nngp_test_train.cols()) +
                                ", expected (N_test, N) with N = " + std::to_string(summary_.size));
  check_finite(nngp_test_train, "nngp_test_train");
  const Index m = nngp_test_train.rows();
  check_shape(nngp_test_test, "nngp_test_test", m, m, "(N_test, N_test)");
  const MatrixXd kxx = symmetrized(nngp_test_test, "nngp_test_test", options_.symmetry_rtol);
  // K(x,x) − B·Bᵀ with B = K(x,X)·V_R·Λ_R^{−1/2}: no explicit inverse, exactly symmetric.
  const MatrixXd b = (nngp_test_train * basis_) * eigenvalues_.cwiseSqrt().cwiseInverse().asDiagonal();
  const MatrixXd bb = b * b.transpose();
  return kxx - 0.5 * (bb + bb.transpose());
}

std::vector<double> stack(const std::vector<MatrixXd>& per_time) {
  std::vector<double> out;
  std::size_t total = 0;
  for (const MatrixXd& a : per_time) total += static_cast<std::size_t>(a.size());
  out.reserve(total);
  for (const MatrixXd& a : per_time)
    for (Index i = 0; i < a.rows(); ++i)
      for (Index j = 0; j < a.cols(); ++j) out.push_back(a(i, j));
  return out;
}

}  // namespace emergent
