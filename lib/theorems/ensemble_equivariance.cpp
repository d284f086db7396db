// Theorem 5.2 of Gerken & Kessel (ICML 2024), checked numerically
// (include/emergent/theorems/ensemble_equivariance.hpp).
#include "emergent/theorems/ensemble_equivariance.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "emergent/core/random.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "emergent/theorems/kernel_transform.hpp"
#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/theorem_support.hpp"
#include "theorems/check_support.hpp"

namespace emergent {

using Eigen::Index;
using Eigen::MatrixXd;
using detail::bad;
using detail::check_inputs_for;
using detail::collinear_pairs;
using detail::collinear_rel_tol;
using detail::conj_blocks;
using detail::finish;
using detail::finish_theorem;
using detail::Gram;
using detail::gram;
using detail::is_spatial;
using detail::kEps;
using detail::kinked_activations;
using detail::max_abs;
using detail::num;
using detail::require_same_map;

bool Theorem52Options::IsValid(std::string* error) const {
  std::string e;
  if (!(safety >= 1.0) || !std::isfinite(safety)) e = "safety: expected a finite number ≥ 1, got " + num(safety);
  else if (!kernel.IsValid(&e)) e = "kernel." + e;
  else if (!flow.IsValid(&e)) e = "flow." + e;
  else if (noise_inputs < 0) e = "noise_inputs: expected ≥ 0, got " + std::to_string(noise_inputs);
  else if (times.empty()) e = "times: expected at least one time";
  else
    for (double t : times)
      if (!(t >= 0)) e = "times: expected t ≥ 0 (inf allowed), got " + num(t);
  if (error) *error = e;
  return e.empty();
}

namespace {

// Checks the arguments; returns the pixels per example of the flow's rows (1 with a readout).
Index validate(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y, const Inputs& test_x,
               const Representation& rho_x, const Representation& rho_y, const Theorem52Options& options) {
  std::string err;
  if (!options.IsValid(&err)) bad("check_theorem_5_2: options." + err);
  check_inputs_for(rho_x, train_x, "train_x", "check_theorem_5_2");
  check_inputs_for(rho_x, test_x, "test_x", "check_theorem_5_2");
  if (rho_y.size() != rho_x.size())
    bad("check_theorem_5_2: rho_y has " + std::to_string(rho_y.size()) + " elements, expected |G| = " +
        std::to_string(rho_x.size()));
  if (train_y.rows() != train_x.count() || train_y.cols() != rho_y.dim())
    bad("check_theorem_5_2: train_y has shape (" + std::to_string(train_y.rows()) + ", " + std::to_string(train_y.cols()) +
        "), expected (N, rho_y dimension) = (" + std::to_string(train_x.count()) + ", " + std::to_string(rho_y.dim()) + ")");
  Index P = 1;
  if (is_spatial(arch)) {
    require_same_map(arch, train_x.shape, "check_theorem_5_2");
    P = train_x.shape.pixels();
    if (!rho_y.shape().image || rho_y.blocks() != P)
      bad("check_theorem_5_2: spatial outputs need a pixel action rho_y on (H, W, k) (see pixel_output), got " +
          rho_y.shape().to_string());
  }
  return P;
}

// The training problem with its examples in reverse order: mathematically identical
// predictions, so their difference measures the round-off of the whole pipeline.
struct ReversedProblem {
  std::vector<Index> rev;  // row s of the reversed problem is row rev[s] of the original
  MatrixXd ntk, nngp, y;
};

ReversedProblem reversed(const Gram& G, const MatrixXd& Y, Index N, Index P) {
  const Index M = N * P, kc = Y.cols();
  ReversedProblem r;
  r.rev.resize(M);
  for (Index i = 0; i < N; ++i)
    for (Index a = 0; a < P; ++a) r.rev[i * P + a] = (N - 1 - i) * P + a;
  r.ntk.resize(M, M);
  r.nngp.resize(M, M);
  r.y.resize(M, kc);
  for (Index s = 0; s < M; ++s) {
    r.y.row(s) = Y.row(r.rev[s]);
    for (Index r_ = 0; r_ < M; ++r_) {
      r.ntk(r_, s) = G.ntk(r.rev[r_], r.rev[s]);
      r.nngp(r_, s) = G.nngp(r.rev[r_], r.rev[s]);
    }
  }
  return r;
}

// The test inputs, and off-manifold inputs with N(0, s²) entries, s = RMS of the training inputs.
std::vector<std::pair<InputSet, Inputs>> input_sets(const Inputs& train_x, const Inputs& test_x,
                                                    const Theorem52Options& options) {
  const double rms = std::sqrt(train_x.x.squaredNorm() / std::max<double>(1.0, static_cast<double>(train_x.x.size())));
  RowMatrix noise(options.noise_inputs, train_x.x.cols());
  const NormalStream stream(options.seed, 0);
  for (Index r = 0; r < noise.rows(); ++r)
    for (Index c = 0; c < noise.cols(); ++c) noise(r, c) = rms * stream.normal(static_cast<std::uint64_t>(r * noise.cols() + c));
  std::vector<std::pair<InputSet, Inputs>> sets = {{InputSet::Test, test_x}};
  if (options.noise_inputs > 0) sets.push_back({InputSet::Noise, Inputs(noise, train_x.shape)});
  return sets;
}

// Training Gram round-off that the row permutation does not map onto itself: with kinked
// activations, a pair of training rows that is nearly but not exactly (anti-)collinear (ρ(g)x
// and ρ(g')x = −ρ(g)x up to the rounding of cos/sin, e.g. rot2(6)) carries the √ε error of the
// ReLU-family NTK at θ ∈ {0, π}. Exact duplicates and exact antipodes are computed exactly.
double training_gram_tolerance(const Architecture& arch, const Inputs& X, const Gram& G, double ops) {
  const Index N = X.count();
  bool train_col = false;
  if (kinked_activations(arch) > 0) {
    const auto cp = collinear_pairs(X.x, X.x);
    for (Index i = 0; i < N && !train_col; ++i)
      for (Index j = 0; j < N && !train_col; ++j)
        train_col = i != j && cp[i][j] && X.x.row(i) != X.x.row(j) && X.x.row(i) != -X.x.row(j);
  }
  return train_col ? 2 * collinear_rel_tol(arch, ops) * max_abs(G.ntk) : 0.0;
}

// Everything the per-set checks share: the trained flows and the constants of the tolerances.
struct FlowProblem {
  const Architecture& arch;
  const Inputs& X;
  const Gram& G;
  const GradientFlow& flow;
  const GradientFlow& flow_rev;
  const ReversedProblem& rev;
  const Representation& rho_x;
  const Representation& rho_y;
  const Theorem52Options& options;
  Index M, P, kc;
  bool spatial;
  double lmin, ops, ynorm, orth_y, tol_train;
};

// Predictions on ρ_X(g)·xs for every g at every time; the identity's predictions of the
// reversed problem are stored after the |times| real ones.
struct OrbitPredictions {
  std::vector<std::vector<MatrixXd>> means, covs;
  double tscale = 0, kscale = 0, trow = 0;
};

OrbitPredictions predict_orbit(const FlowProblem& p, const Inputs& xs) {
  const auto& times = p.options.times;
  OrbitPredictions o;
  o.means.resize(p.rho_x.size());
  o.covs.resize(p.rho_x.size());
  double ktt = 0;
  for (int g = 0; g < p.rho_x.size(); ++g) {
    const Inputs xg = p.rho_x.apply(g, xs);
    const Gram tx = gram(p.arch, xg, &p.X, p.options.kernel);
    const Gram tt = gram(p.arch, xg, nullptr, p.options.kernel);
    o.means[g] = p.flow.mean(times, tx.ntk);
    o.covs[g] = p.flow.covariance(times, tx.ntk, tx.nngp, tt.nngp);
    o.tscale = std::max(o.tscale, max_abs(tx.ntk));
    o.trow = std::max(o.trow, tx.ntk.rowwise().norm().maxCoeff());
    o.kscale = std::max({o.kscale, max_abs(tx.nngp), max_abs(p.G.nngp)});
    ktt = std::max(ktt, max_abs(tt.nngp));
    if (g == 0) {
      // Round-off measured by the reversed training order (identity element).
      MatrixXd txr(tx.ntk.rows(), p.M), txk(tx.nngp.rows(), p.M);
      for (Index s = 0; s < p.M; ++s) {
        txr.col(s) = tx.ntk.col(p.rev.rev[s]);
        txk.col(s) = tx.nngp.col(p.rev.rev[s]);
      }
      const auto mr = p.flow_rev.mean(times, txr);
      const auto cr = p.flow_rev.covariance(times, txr, txk, tt.nngp);
      for (std::size_t q = 0; q < times.size(); ++q) {
        o.means[0].push_back(mr[q]);
        o.covs[0].push_back(cr[q]);
      }
    }
  }
  o.kscale = std::max(o.kscale, ktt);
  return o;
}

// Mean and covariance parts of one input set at time index q, with tol_theta and tol_k the
// entry-wise round-off of Θ(x, X) and K.
void add_parts_at(TheoremResult& t, const FlowProblem& p, InputSet set, const Inputs& xs, const OrbitPredictions& o,
                  std::size_t q, double tol_theta, double tol_k) {
  const auto& times = p.options.times;
  const Index M = p.M, P = p.P, kc = p.kc, Nt = xs.count();
  const double lmin = p.lmin, knorm = p.G.nngp.norm(), kscale = o.kscale, trow = o.trow;
  const double time = times[q];
  const double c = std::isinf(time) ? INFINITY : p.options.flow.learning_rate * time / (static_cast<double>(M) * kc);
  const double gmax = lmin > 0 ? std::min(c, 1.0 / lmin) : (std::isinf(c) ? 0.0 : c);
  // Mean: rows (example, pixel) → (Nt, P·kc), then ρ_Y(g) on each example.
  auto as_rows = [&](const MatrixXd& m) {
    RowMatrix r(Nt, P * kc);
    for (Index i = 0; i < Nt; ++i)
      for (Index a = 0; a < P; ++a)
        for (Index cc = 0; cc < kc; ++cc) r(i, a * kc + cc) = m(i * P + a, cc);
    return r;
  };
  const RowMatrix m0 = as_rows(o.means[0][q]);
  const double meas_m = max_abs(m0 - as_rows(o.means[0][times.size() + q]));
  const double meas_c = max_abs(o.covs[0][q] - o.covs[0][times.size() + q]);
  std::vector<ElementViolation> vm, vc;
  double sm_ = max_abs(m0), sc = max_abs(o.covs[0][q]);
  for (int g = 0; g < p.rho_x.size(); ++g) {
    const RowMatrix mg = as_rows(o.means[g][q]);
    vm.push_back({g, p.rho_x.label(g), max_abs(mg - p.rho_y.apply(g, m0))});
    MatrixXd expect = o.covs[0][q];
    if (p.spatial) expect = conj_blocks(o.covs[0][q], p.rho_y.block_matrix(g), P);
    // Readouts: ρ_Y(Σ⊗I)ρ_Yᵀ = Σ⊗ρ_Yρ_Yᵀ, which differs from Σ⊗I by the orthogonality defect of ρ_Y.
    vc.push_back({g, p.rho_x.label(g), max_abs(o.covs[g][q] - expect) + (p.spatial ? 0.0 : p.orth_y * sc)});
    sm_ = std::max(sm_, max_abs(mg));
    sc = std::max(sc, max_abs(o.covs[g][q]));
  }
  // Kernel round-off propagated: δμ ≤ ‖δΘ(x,X)‖₁-row·|g_t(Θ)Y| ≤ tol_Θ·√M·g_max·‖Y‖; the
  // covariance sees A = Θ(x,X)g_t(Θ) with row ℓ1 norm a ≤ M·g_max·max|Θ(x,X)|.
  // Training Gram round-off δΘ (entries ≤ tol_train): ‖δg_t(Θ)‖₂ ≤ L·M·tol_train with g_t's
  // Lipschitz constant L = min(c²/2, 1/λ_min²) (c²/2 alone at t = ∞ would be infinite).
  // L·tol_train, formed so that tiny spectra (inputs near 1e-100) give neither inf·0 = NaN
  // nor an overflowing 1/λ_min².
  auto lipschitz_times = [&](double e) {
    if (e == 0) return 0.0;
    const double by_lmin = lmin > 0 ? (e / lmin) / lmin : 0.0;
    if (std::isinf(c)) return by_lmin;
    return lmin > 0 ? std::min(0.5 * c * c * e, by_lmin) : 0.5 * c * c * e;
  };
  const double dA = trow * static_cast<double>(M) * lipschitz_times(p.tol_train);
  const double dm = tol_theta * std::sqrt(static_cast<double>(M)) * gmax * p.ynorm + dA * p.ynorm;
  // Covariance: A = Θ(x,X)g_t(Θ) has rows of 2-norm ≤ a2 = g_max·max‖Θ(x_i,X)‖₂ and kernel
  // round-off moves them by ≤ da2 = g_max·√M·tol_Θ; K(X,X) is shared by both sides, so
  // δΣ ≤ tol_K + 2(da2·‖K(X,x)‖ + a2·√M·tol_K) + 2·da2·‖K(X,X)‖_F·a2.
  const double sqm = std::sqrt(static_cast<double>(M));
  const double a2 = gmax * trow, da2 = gmax * sqm * tol_theta;
  const double dc = tol_k + 2 * (da2 * sqm * kscale + a2 * sqm * tol_k) + 2 * da2 * knorm * a2 +
                    2 * dA * (knorm * a2 + sqm * kscale);
  const double safety = p.options.safety;
  t.parts.push_back(finish({Theorem::Ensemble52, Quantity::Mean, set, time}, std::move(vm), sm_,
                           safety * (meas_m + dm + kEps * sm_),
                           "safety·(reversed-order round-off " + num(meas_m) + " + kernel round-off propagated " + num(dm) + " + ε·scale)"));
  t.parts.push_back(finish({Theorem::Ensemble52, Quantity::Covariance, set, time}, std::move(vc), sc,
                           safety * (meas_c + dc + kEps * sc),
                           "safety·(reversed-order round-off " + num(meas_c) + " + kernel round-off propagated " + num(dc) + " + ε·scale)"));
}

// Mean and covariance parts of one input set at every time.
void add_parts(TheoremResult& t, const FlowProblem& p, InputSet set, const Inputs& xs) {
  const OrbitPredictions o = predict_orbit(p, xs);
  // The √ε allowance of the ReLU-family NTK applies only if a test input is collinear with a training input.
  bool col = false;
  if (kinked_activations(p.arch) > 0)
    for (const auto& row : collinear_pairs(xs.x, p.X.x))
      for (char c : row) col = col || c;
  const double tol_theta =
      (2 * kEps * p.ops + (col ? 2 * collinear_rel_tol(p.arch, p.ops) : 0.0)) * std::max(o.tscale, max_abs(p.G.ntk));
  const double tol_k = 2 * kEps * p.ops * o.kscale;
  for (std::size_t q = 0; q < p.options.times.size(); ++q) add_parts_at(t, p, set, xs, o, q, tol_theta, tol_k);
}

}  // namespace

TheoremResult check_theorem_5_2(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                const Inputs& test_x, const Representation& rho_x, const Representation& rho_y,
                                const Theorem52Options& options) {
  const Index P = validate(arch, train_x, train_y, test_x, rho_x, rho_y, options);
  const Index kc = rho_y.dim() / P;  // outputs per row of the flow
  // Training set: the full orbit (hypothesis of the theorem) or the raw data.
  Inputs X = train_x;
  RowMatrix Yfull = train_y;
  if (options.augment) {
    AugmentedSet a = augment(train_x, train_y, rho_x, rho_y);
    X = std::move(a.x);
    Yfull = std::move(a.y);
  }
  const Index N = X.count(), M = N * P;
  const MatrixXd Y = Eigen::Map<const RowMatrix>(Yfull.data(), M, kc);
  const Gram G = gram(arch, X, nullptr, options.kernel);
  const GradientFlow flow(G.ntk, G.nngp, Y, options.flow);
  const ReversedProblem rev = reversed(G, Y, N, P);
  const GradientFlow flow_rev(rev.ntk, rev.nngp, rev.y, options.flow);

  const SpectralSummary& sm = flow.summary();
  const double lmin = sm.effective_condition > 0 && std::isfinite(sm.effective_condition)
                          ? sm.max_eigenvalue / sm.effective_condition : 0.0;
  const double ops = kernel_roundoff_ops(arch, train_x.shape, &rho_x);
  double ynorm = 0;
  for (Index c = 0; c < kc; ++c) ynorm = std::max(ynorm, Y.col(c).norm());
  const FlowProblem problem{arch, X, G, flow, flow_rev, rev, rho_x, rho_y, options, M, P, kc, is_spatial(arch), lmin,
                            ops, ynorm, rho_y.verify().orthogonality_violation,
                            training_gram_tolerance(arch, X, G, ops)};

  TheoremResult t;
  t.theorem = std::string("Theorem 5.2 (") + rho_x.name() + ", " + (options.augment ? "augmented" : "not augmented") +
              ", " + std::to_string(N) + " training examples)";
  t.status = std::string("spectral: ") + sm.to_string();
  for (const auto& [set, xs] : input_sets(train_x, test_x, options)) add_parts(t, problem, set, xs);
  // A tolerance above the quantity's own scale cannot tell anything apart (ill-conditioned Gram
  // matrices at t = ∞ with the √ε ReLU allowance): say so rather than let "holds" pass silently.
  std::string vacuous;
  for (const auto& p : t.parts)
    if (p.scale > 0 && p.tolerance > p.scale) vacuous += (vacuous.empty() ? "" : ", ") + p.name();
  if (!vacuous.empty())
    t.status += "; not resolvable at this conditioning (tolerance > scale): " + vacuous;
  finish_theorem(t);
  return t;
}

}  // namespace emergent
