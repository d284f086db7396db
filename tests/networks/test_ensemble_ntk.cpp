// Finite-width ensembles (ensemble.hpp, "kind 2" members) against the closed-form gradient flow
// of infinitely wide ensembles (gradient_flow.hpp) on analytic kernels (kernel.hpp).
//
// How the comparison is made rigorous. Write f^fin_m(x) for member m after S steps of gradient
// descent and f^lin_m(x) for the *discrete* linearized model started from the same f_0 with the
// analytic Θ (Lee et al. 2019, Eq. 8 with GD in place of the flow):
//   f^lin_m(x) = f_0,m(x) + Θ(x,X)·h_S(Θ)·(Y − f_0,m(X)),  h_S(λ) = (1 − (1 − ηλ/N)^S)/λ.
// f^lin is affine in f_0 and E f_0 = 0 exactly (the readout weights are symmetric), so
// E f^lin = μ^disc_S at every width; and for a one-hidden-layer network Cov f_0 = K exactly at
// every width (the readout is independent of the hidden layer: E f_0(x)f_0(x') = E φ(h(x))φ(h(x'))),
// so Var f^lin = Σ^disc_S. With δ_m = f^fin_m − f^lin_m and D = E δ² (Lee et al. 2019 Thm 2.1:
// δ = O(n^{-1/2}), so D = O(1/n)):
//   |E f^fin − μ^disc|  ≤ √D                    (Jensen)
//   |Var f^fin − Σ^disc| ≤ 2·√(Σ^disc·D) + D     (Cauchy–Schwarz)
// and GD differs from the flow by the exactly computable |μ^disc − μ_S|, |Σ^disc − Σ_S|.
// These are the finite-width and step-size allowances; sampling errors come from the M members.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <emergent/networks/ensemble.hpp>
#include <emergent/dynamics/gradient_flow.hpp>
#include <emergent/kernels/kernel.hpp>
#include <emergent/core/random.hpp>
#include <sstream>
#include <string>
#include <vector>

using namespace emergent;

namespace {

constexpr int kD = 4;        // input dimension
constexpr int kTrain = 8;    // N
constexpr int kExtra = 8;    // test points besides the training points
constexpr int kSteps = 100;  // S
constexpr int kMembers = 256;
constexpr double kZ = 4.0;   // standard errors allowed for sampling fluctuations

using test::normals;

std::string spec(int width) {
  return "dense(" + std::to_string(width) + ", w=1.2, b=0.3) relu dense(1, b=0.3)";
}

/// The problem: X (N×d), test points T = [X; Z] so that f_0(X) is recorded too, targets Y.
struct Problem {
  Inputs train, test;
  RowMatrix y;
  Problem() {
    const RowMatrix x = normals(kTrain, kD, 11, 1);
    RowMatrix all(kTrain + kExtra, kD);
    all << x, normals(kExtra, kD, 11, 2);
    train = Inputs(x, ExampleShape::vector(kD));
    test = Inputs(all, ExampleShape::vector(kD));
    y.resize(kTrain, 1);
    for (int i = 0; i < kTrain; ++i) y(i, 0) = std::sin(x.row(i).sum()) + 0.5 * x(i, 0);
  }
};

/// Closed-form quantities on the test points T for one learning rate.
struct Reference {
  Eigen::MatrixXd ntk_tx, nngp_tx, nngp_tt, nngp_xx, ntk_xx;
  Eigen::VectorXd mu_flow, var_flow;  // μ_S, diag Σ_S (GradientFlow)
  Eigen::VectorXd mu_disc, var_disc;  // the same for S discrete GD steps of the linear model
  Eigen::MatrixXd c_disc;             // Θ(T,X)·h_S(Θ): f^lin = f_0(T) + c_disc·(Y − f_0(X))
  double eta = 0;
};

Reference reference(const Architecture& arch, const Problem& p) {
  Reference r;
  const Kernels kxx = kernels(arch, p.train);
  const Kernels ktx = kernels(arch, p.test, p.train);
  const Kernels ktt = kernels(arch, p.test);
  r.ntk_xx = kxx.ntk;
  r.nngp_xx = kxx.nngp;
  r.ntk_tx = ktx.ntk;
  r.nngp_tx = ktx.nngp;
  r.nngp_tt = ktt.nngp;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(r.ntk_xx);
  // η so that the fastest mode moves by ηλ_max/N = 0.05 per step: close to the flow, and
  // ηλ_min·S/N is still O(1) for the slow modes.
  r.eta = 0.05 * kTrain / eig.eigenvalues().maxCoeff();
  GradientFlowOptions opt;
  opt.learning_rate = r.eta;
  const GradientFlow flow(r.ntk_xx, r.nngp_xx, p.y, opt);
  const std::vector<double> t = {static_cast<double>(kSteps)};
  r.mu_flow = flow.mean(t, r.ntk_tx)[0].col(0);
  r.var_flow = flow.covariance(t, r.ntk_tx, r.nngp_tx, r.nngp_tt)[0].diagonal();
  Eigen::VectorXd h(kTrain);
  for (int i = 0; i < kTrain; ++i) {
    const double lam = eig.eigenvalues()(i), a = r.eta * lam / kTrain;
    h(i) = (1.0 - std::pow(1.0 - a, kSteps)) / lam;
  }
  r.c_disc = r.ntk_tx * eig.eigenvectors() * h.asDiagonal() * eig.eigenvectors().transpose();
  r.mu_disc = r.c_disc * p.y.col(0);
  const Eigen::MatrixXd cov = r.nngp_tt + r.c_disc * r.nngp_xx * r.c_disc.transpose() -
                              r.c_disc * r.nngp_tx.transpose() - r.nngp_tx * r.c_disc.transpose();
  r.var_disc = cov.diagonal();
  return r;
}

/// Sample statistics of one finite ensemble at step S, per test point, with standard errors.
struct Stats {
  int width = 0;
  Eigen::VectorXd mean, mean_se, var, var_se;
  Eigen::VectorXd d, d_se;  // D(x) = E δ² per point, and its standard error
  double d_avg = 0, d_avg_se = 0;  // D averaged over the test points
};

Stats run_width(int width, const Problem& p, const Reference& r) {
  const Architecture arch = Architecture::parse(spec(width));
  TrainingOptions opt;
  opt.members = kMembers;
  opt.steps = kSteps;
  opt.learning_rate = r.eta;
  opt.seed = 1000 + static_cast<std::uint64_t>(width);
  opt.checkpoints = {0, kSteps};
  const EnsembleResult res = train_ensemble(arch, p.train, p.y, p.test, opt);
  const Eigen::Index T = p.test.count();
  Eigen::MatrixXd fin(kMembers, T), delta(kMembers, T);
  for (int m = 0; m < kMembers; ++m) {
    Eigen::VectorXd f0(T);
    for (Eigen::Index i = 0; i < T; ++i) {
      f0(i) = res.at(m, 0, i, 0);
      fin(m, i) = res.at(m, 1, i, 0);
    }
    const Eigen::VectorXd lin = f0 + r.c_disc * (p.y.col(0) - f0.head(kTrain));
    delta.row(m) = (fin.row(m).transpose() - lin).transpose();
  }
  Stats s;
  s.width = width;
  const double M = kMembers;
  s.mean = fin.colwise().mean().transpose();
  const Eigen::MatrixXd centered = fin.rowwise() - s.mean.transpose();
  s.var = centered.colwise().squaredNorm().transpose() / (M - 1);
  s.mean_se = (s.var / M).cwiseSqrt();
  // SE of the sample variance: √((m4 − s⁴)/M) with the sample fourth central moment.
  const Eigen::VectorXd m4 = centered.array().pow(4).colwise().mean().transpose();
  s.var_se = ((m4 - s.var.cwiseAbs2()).cwiseMax(0.0) / M).cwiseSqrt();
  const Eigen::MatrixXd d2 = delta.cwiseAbs2();
  s.d = d2.colwise().mean().transpose();
  s.d_se = ((d2.rowwise() - s.d.transpose()).colwise().squaredNorm().transpose() / (M - 1) / M).cwiseSqrt();
  const Eigen::VectorXd per_member = d2.rowwise().mean();  // independent over members
  s.d_avg = per_member.mean();
  s.d_avg_se = std::sqrt((per_member.array() - s.d_avg).square().sum() / (M - 1) / M);
  return s;
}

}  // namespace

TEST_CASE("finite-width ensembles follow the closed-form gradient flow, and approach it as width grows") {
  const Problem p;
  // The analytic kernels do not depend on the width.
  const Reference r = reference(Architecture::parse(spec(1)), p);
  // The step-size gap GD vs flow is computed exactly; with ηλ_max/N = 0.05 it is small.
  const double gap_mu = (r.mu_disc - r.mu_flow).cwiseAbs().maxCoeff();
  const double gap_var = (r.var_disc - r.var_flow).cwiseAbs().maxCoeff();
  MESSAGE("eta = " << r.eta << ", GD vs flow: |mu| gap " << gap_mu << ", |var| gap " << gap_var);
  CHECK(gap_mu < 0.02);
  // The flow has moved: the mean at the training points is far from the prior mean 0.
  CHECK(r.mu_flow.head(kTrain).norm() > 0.3 * p.y.norm());

  std::vector<Stats> all;
  for (int width : {64, 256, 1024}) all.push_back(run_width(width, p, r));
  for (const Stats& s : all)
    MESSAGE("width " << s.width << ": D = E(f_fin - f_lin)^2 averaged over points = " << s.d_avg << " ± "
                     << s.d_avg_se << "; max |mean - mu_S| = " << (s.mean - r.mu_flow).cwiseAbs().maxCoeff()
                     << "; max |var - Sigma_S| = " << (s.var - r.var_flow).cwiseAbs().maxCoeff());

  {  // The discrepancy from the linearized model shrinks with width (Lee et al. 2019 Thm 2.1).
    for (std::size_t i = 0; i + 1 < all.size(); ++i) {
      const Stats &a = all[i], &b = all[i + 1];
      // A decrease by more than 3 combined standard errors (the expected decrease is 4×).
      CHECK(a.d_avg - b.d_avg > 3.0 * std::hypot(a.d_avg_se, b.d_avg_se));
      // D = O(1/n): quadrupling the width removes well over half of it.
      CHECK(b.d_avg + 3.0 * b.d_avg_se < 0.5 * a.d_avg);
    }
  }

  {  // Width 1024: mean and variance agree with μ_S and diag Σ_S within the allowances.
    const Stats& s = all.back();
    const Eigen::Index T = p.test.count();
    for (Eigen::Index i = 0; i < T; ++i) {
      const double d_hi = s.d(i) + kZ * s.d_se(i);  // upper confidence bound on D(x)
      const double mean_allow = kZ * s.mean_se(i) + std::sqrt(d_hi) + std::abs(r.mu_disc(i) - r.mu_flow(i));
      const double var_allow = kZ * s.var_se(i) + 2.0 * std::sqrt(std::max(r.var_disc(i), 0.0) * d_hi) + d_hi +
                               std::abs(r.var_disc(i) - r.var_flow(i));
      INFO("test point " << i << ": mean " << s.mean(i) << " vs mu_S " << r.mu_flow(i) << " (allowance "
                         << mean_allow << "); var " << s.var(i) << " vs Sigma_S " << r.var_flow(i) << " (allowance "
                         << var_allow << ")");
      CHECK(std::abs(s.mean(i) - r.mu_flow(i)) <= mean_allow);
      CHECK(std::abs(s.var(i) - r.var_flow(i)) <= var_allow);
      // The allowances are informative: the finite-width part is well below the prior scale.
      CHECK(std::sqrt(d_hi) < 0.2 * std::sqrt(r.nngp_tt(i, i)));
    }
  }
}

TEST_CASE("at step 0 the finite ensemble's covariance is the NNGP kernel K") {
  // One hidden layer: Cov f_0(x, x') = E φ(h(x))φ(h(x')) + B² = K(x, x') exactly at any width
  // (the readout weights are independent of h), so only sampling error remains.
  const Problem p;
  const int width = 512, members = 4000;
  const Architecture arch = Architecture::parse(spec(width));
  TrainingOptions opt;
  opt.members = members;
  opt.steps = 0;
  opt.seed = 77;
  opt.checkpoints = {0};
  const EnsembleResult res = train_ensemble(arch, p.train, p.y, p.test, opt);
  const Eigen::Index T = p.test.count();
  Eigen::MatrixXd f(members, T);
  for (int m = 0; m < members; ++m)
    for (Eigen::Index i = 0; i < T; ++i) f(m, i) = res.at(m, 0, i, 0);
  const Eigen::MatrixXd K = kernels(arch, p.test).nngp;
  // E f_0 = 0: the known mean is used, so the covariance estimate is the mean of products.
  const Eigen::MatrixXd cov = f.transpose() * f / members;
  int checked = 0;
  double worst = 0, worst_relative_se = 0;
  for (Eigen::Index i = 0; i < T; ++i) {
    CHECK(std::abs(f.col(i).mean()) <= kZ * std::sqrt(K(i, i) / members));
    for (Eigen::Index j = i; j < T; ++j) {
      const Eigen::ArrayXd prod = f.col(i).array() * f.col(j).array();
      const double se = std::sqrt((prod - prod.mean()).square().sum() / (members - 1) / members);
      INFO("entry (" << i << ", " << j << "): sample " << cov(i, j) << ", K " << K(i, j) << ", SE " << se);
      CHECK(std::abs(cov(i, j) - K(i, j)) <= kZ * se);
      worst = std::max(worst, std::abs(cov(i, j) - K(i, j)) / se);
      if (i == j) worst_relative_se = std::max(worst_relative_se, se / K(i, i));
      ++checked;
    }
  }
  MESSAGE(checked << " covariance entries, largest deviation " << worst << " standard errors");
  // The test has power: on the diagonal the standard errors are a few per cent of K(x, x).
  CHECK(worst_relative_se < 0.05);
}
