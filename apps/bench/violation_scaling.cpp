// Issue 5: how the invariance violation of a finite deep ensemble scales with the number of
// members M and the width n, against the NTK-limit prediction (Gerken & Kessel, ICML 2024,
// Theorem 5.2 and the lemma on finite ensembles; docs/finite_width.md discusses the results).
//
// Setting: x ∈ ℝ⁴, the group rot2(4) (quarter turns of both coordinate pairs), a training set of
// N0 points augmented with its full orbit (N = 4·N0), invariant targets, a one-hidden-layer ReLU
// MLP of width n trained by full-batch gradient descent (train_ensemble) for S steps. Test points
// are off the training manifold; the violation of an ensemble mean f̂ at (x, g) is f̂(gx) − f̂(x).
//
// Measured: E|f̂_M(gx) − f̂_M(x)| averaged over g ≠ e and the test points, with f̂_M the mean of M
// members; for each width a pool of P members is split into P/M disjoint sub-ensembles, whose
// averages are i.i.d. and give the standard error. Predicted (NTK limit, bounds.hpp): the
// violation is N(0, S/M) with S = Σ_t(gx,gx) + Σ_t(x,x) − 2Σ_t(x,gx) from GradientFlow, so
// E|v| = √(2S/(πM)). Fits: a·M^(−α) per width and b·n^(−β) per M (fit.hpp). A contrast run
// without augmentation shows the floor c of c + a·M^(−α) that a non-invariant mean produces.
//
//   violation_scaling [--quick] [--pool P] [--steps S] [--widths 32,64,...] [--threads T] [--seed SEED]
#include <Eigen/Dense>
#include <boost/math/distributions/fisher_f.hpp>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/networks/ensemble.hpp"
#include "emergent/bounds/fit.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/core/random.hpp"

namespace {

using emergent::RowMatrix;

constexpr double kPi = 3.14159265358979323846;

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoi(item));
  return out;
}

std::string spec_for(int width) { return "dense(" + std::to_string(width) + ", w=1.5, b=0.2) relu dense(1, w=1.5)"; }

// Test rows: for test point i and group element g, row g·T + i holds ρ(g)x_i.
struct Problem {
  emergent::Inputs train_x, test_x;
  RowMatrix train_y;
  int group = 0, tests = 0;
};

// Violations of every member: v[m][(g−1)·T + i] = f_m(ρ(g)x_i) − f_m(x_i), g = 1 … |G|−1.
std::vector<Eigen::VectorXd> member_violations(const emergent::EnsembleResult& r, int group, int tests) {
  std::vector<Eigen::VectorXd> v(static_cast<std::size_t>(r.members));
  for (int m = 0; m < r.members; ++m) {
    v[m].resize((group - 1) * tests);
    for (int g = 1; g < group; ++g)
      for (int i = 0; i < tests; ++i) v[m]((g - 1) * tests + i) = r.at(m, 0, g * tests + i, 0) - r.at(m, 0, i, 0);
  }
  return v;
}

struct Measured {
  double mean = 0, se = 0;
  int units = 0;
};

// E|mean of M members' violation|, averaged over (g, x); P/M disjoint sub-ensembles.
Measured sub_ensemble_violation(const std::vector<Eigen::VectorXd>& v, int M) {
  const int units = static_cast<int>(v.size()) / M;
  std::vector<double> u(units);
  for (int k = 0; k < units; ++k) {
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(v[0].size());
    for (int m = 0; m < M; ++m) mean += v[static_cast<std::size_t>(k * M + m)];
    mean /= M;
    u[k] = mean.cwiseAbs().mean();
  }
  Measured out;
  out.units = units;
  for (double x : u) out.mean += x;
  out.mean /= units;
  double ss = 0;
  for (double x : u) ss += (x - out.mean) * (x - out.mean);
  out.se = units > 1 ? std::sqrt(ss / (units - 1) / units) : 0.0;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int pool = 1024, steps = 400, threads = 0, originals = 6, tests = 8;
  std::uint64_t seed = 2024;
  std::vector<int> widths = {8, 16, 32, 64, 128, 256, 512};
  std::vector<int> sizes = {1, 2, 4, 8, 16, 32};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + ": expected a value");
      return argv[++i];
    };
    if (a == "--quick") {
      pool = 128;
      widths = {32, 128, 512};
      sizes = {1, 2, 4, 8};
    } else if (a == "--pool") {
      pool = std::stoi(next());
    } else if (a == "--steps") {
      steps = std::stoi(next());
    } else if (a == "--widths") {
      widths = parse_ints(next());
    } else if (a == "--threads") {
      threads = std::stoi(next());
    } else if (a == "--seed") {
      seed = std::stoull(next());
    } else {
      std::fprintf(stderr, "usage: violation_scaling [--quick] [--pool P] [--steps S] [--widths 32,64] [--threads T] [--seed SEED]\n");
      return 2;
    }
  }
  if (pool % sizes.back() != 0 || pool / sizes.back() < 2) {
    std::fprintf(stderr, "--pool: expected a multiple of %d with at least two sub-ensembles, got %d\n", sizes.back(), pool);
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();

  // ---- Data: N0 training points, full rot2(4) orbit, invariant targets; off-manifold tests.
  const emergent::ExampleShape shape = emergent::ExampleShape::vector(4);
  const emergent::Representation rho = emergent::group_rot2(4, shape);
  const emergent::Representation rho_y = emergent::trivial_output(rho, 1);
  const int G = rho.size();
  const emergent::NormalStream data(seed, 1);
  RowMatrix x0(originals, 4), y0(originals, 1), xt(tests, 4);
  for (int i = 0; i < originals; ++i) {
    for (int j = 0; j < 4; ++j) x0(i, j) = data.normal(4 * i + j);
    const double r1 = x0(i, 0) * x0(i, 0) + x0(i, 1) * x0(i, 1), r2 = x0(i, 2) * x0(i, 2) + x0(i, 3) * x0(i, 3);
    y0(i, 0) = std::tanh(r1 - r2);  // invariant under rot2(4)
  }
  for (int i = 0; i < tests; ++i)
    for (int j = 0; j < 4; ++j) xt(i, j) = data.normal(1000 + 4 * i + j);
  const emergent::Inputs x0_in(x0, shape);
  const emergent::AugmentedSet aug = emergent::augment(x0_in, y0, rho, rho_y);
  RowMatrix test_rows(G * tests, 4);
  for (int g = 0; g < G; ++g) test_rows.middleRows(g * tests, tests) = rho.apply(g, xt);
  const emergent::Inputs test_in(test_rows, shape);
  const Eigen::Index N = aug.x.count();

  // ---- NTK limit: Θ, K analytic (they do not depend on the width in the spec).
  const emergent::Architecture arch_inf = emergent::Architecture::parse(spec_for(1));
  const emergent::Kernels ktt = emergent::kernels(arch_inf, aug.x);
  const emergent::Kernels kst = emergent::kernels(arch_inf, test_in, aug.x);
  const emergent::Kernels kss = emergent::kernels(arch_inf, test_in);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(ktt.ntk);
  const double lam_max = eig.eigenvalues().maxCoeff(), lam_min = eig.eigenvalues().minCoeff();
  // GD on ½(1/N)Σ(f − y)² moves function space by η·Θ/N per step: η = 0.5·N/λ_max keeps every mode
  // stable with a margin for the O(n^(−1/2)) fluctuations of the empirical NTK.
  const double lr = 0.5 * static_cast<double>(N) / lam_max;
  emergent::GradientFlowOptions flow_options;
  flow_options.learning_rate = lr;
  const emergent::GradientFlow flow(ktt.ntk, ktt.nngp, aug.y, flow_options);
  const double t = steps;
  const Eigen::MatrixXd cov = flow.covariance({t}, kst.ntk, kst.nngp, kss.nngp)[0];
  const Eigen::MatrixXd mu = flow.mean({t}, kst.ntk)[0];
  // Discrete gradient descent on the linearized network replaces T_t = I − e^{−ηtΘ/N} by
  // I − (I − ηΘ/N)^S (Lee et al. 2019 §2.2 with finite steps); the covariance formula of
  // docs/conventions.md §3 is otherwise the same. This is the exact NTK limit of what train_ensemble does.
  Eigen::MatrixXd cov_gd;
  {
    const Eigen::VectorXd lam = eig.eigenvalues();
    Eigen::VectorXd gs = Eigen::VectorXd::Zero(lam.size());
    for (Eigen::Index j = 0; j < lam.size(); ++j)
      if (lam(j) > 1e-12 * lam_max) gs(j) = (1.0 - std::pow(1.0 - lr * lam(j) / static_cast<double>(N), steps)) / lam(j);
    const Eigen::MatrixXd A = kst.ntk * eig.eigenvectors() * gs.asDiagonal() * eig.eigenvectors().transpose();
    const Eigen::MatrixXd AK = A * kst.nngp.transpose();
    cov_gd = kss.nngp + A * ktt.nngp * A.transpose() - AK - AK.transpose();
  }
  auto violation_variance = [&](const Eigen::MatrixXd& c) {
    Eigen::VectorXd out((G - 1) * tests);
    for (int g = 1; g < G; ++g)
      for (int i = 0; i < tests; ++i) {
        const int a = g * tests + i;
        out((g - 1) * tests + i) = c(a, a) + c(i, i) - 2 * c(a, i);
      }
    return out;
  };
  const Eigen::VectorXd S_flow = violation_variance(cov);
  const Eigen::VectorXd S = violation_variance(cov_gd);  // the reference from here on
  double mu_violation = 0;
  for (int g = 1; g < G; ++g)
    for (int i = 0; i < tests; ++i) mu_violation = std::max(mu_violation, std::abs(mu(g * tests + i, 0) - mu(i, 0)));
  auto ntk_prediction = [&](int M) { return (2.0 * S.array() / (kPi * M)).sqrt().mean(); };

  std::printf("# violation_scaling: x in R^4, group rot2(4) (|G| = %d), N0 = %d -> N = %ld augmented training points,\n",
              G, originals, static_cast<long>(N));
  std::printf("# %d off-manifold test points x %d non-identity elements; arch '%s'; GD eta = %.4g, S = %d steps\n",
              tests, G - 1, spec_for(0).c_str(), lr, steps);
  std::printf("# Theta(X,X): lambda_max = %.4g, lambda_min = %.4g; slowest mode decay exp(-eta*S*lambda_min/N) = %.3g\n",
              lam_max, lam_min, std::exp(-lr * t * lam_min / static_cast<double>(N)));
  std::printf("# NTK limit: max |mu_t(gx) - mu_t(x)| = %.2e (Theorem 5.2: 0); violation variance S averaged over (x, g):\n"
              "#   %.5g for S discrete GD steps (the reference below), %.5g for gradient flow to t = S (GradientFlow);"
              " E|v_1| = %.5g\n",
              mu_violation, S.mean(), S_flow.mean(), ntk_prediction(1));
  std::printf("# pool P = %d members per width; sub-ensembles of M are disjoint, P/M of them\n\n", pool);

  // ---- Finite width.
  struct WidthResult {
    int width;
    std::vector<Measured> by_size;
    double var_ratio, var_ratio_se, gauss_ratio, hotelling, hotelling_p, train_loss, seconds;
    std::vector<double> gauss_pred;
  };
  std::vector<WidthResult> results;
  std::printf("%6s %4s %6s %12s %10s %12s %12s %9s\n", "n", "M", "units", "E|v_M|", "SE", "NTK pred", "width-n pred",
              "meas/NTK");
  for (int width : widths) {
    emergent::TrainingOptions opt;
    opt.members = pool;
    opt.steps = steps;
    opt.learning_rate = lr;
    opt.seed = seed + static_cast<std::uint64_t>(width);
    opt.checkpoints = {steps};
    opt.threads = threads;
    const emergent::EnsembleResult r =
        emergent::train_ensemble(emergent::Architecture::parse(spec_for(width)), aug.x, aug.y, test_in, opt);
    const std::vector<Eigen::VectorXd> v = member_violations(r, G, tests);
    // Per-(x, g) member variance s² and pool mean: the infinite width-n ensemble's violation.
    const Eigen::Index D = v[0].size();
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(D), var = Eigen::VectorXd::Zero(D);
    for (const auto& m : v) mean += m;
    mean /= pool;
    for (const auto& m : v) var += (m - mean).cwiseAbs2();
    var /= (pool - 1);
    WidthResult w;
    w.width = width;
    w.seconds = r.seconds;
    w.var_ratio = var.sum() / S.sum();
    {  // SE of Σ s² from the per-member sums q_m = Σ_d (v_md − v̄_d)² (delta method, P ≫ 1)
      Eigen::VectorXd q(pool);
      for (int m = 0; m < pool; ++m) q(m) = (v[static_cast<std::size_t>(m)] - mean).squaredNorm();
      const double qm = q.mean(), qsd = std::sqrt((q.array() - qm).square().sum() / (pool - 1));
      w.var_ratio_se = qsd * std::sqrt(static_cast<double>(pool)) / (pool - 1) / S.sum();
    }
    {  // Hotelling T²: is the pool mean of the D violations zero (the width-n infinite ensemble invariant)?
      Eigen::MatrixXd C = Eigen::MatrixXd::Zero(D, D);
      for (const auto& m : v) C += (m - mean) * (m - mean).transpose();
      C /= (pool - 1);
      const double t2 = pool * mean.dot(C.ldlt().solve(mean));
      const double d = static_cast<double>(D), p = pool;
      const double f = t2 * (p - d) / (d * (p - 1));
      w.hotelling = t2 / d;
      w.hotelling_p = boost::math::cdf(boost::math::complement(boost::math::fisher_f(d, p - d), f));
    }
    double loss = 0;
    for (int m = 0; m < pool; ++m) loss += r.train_loss[static_cast<std::size_t>(m)];
    w.train_loss = loss / pool;
    for (int M : sizes) {
      const Measured meas = sub_ensemble_violation(v, M);
      const double pred = ntk_prediction(M);
      const double gpred = (2.0 * var.array() / (kPi * M)).sqrt().mean();
      w.by_size.push_back(meas);
      w.gauss_pred.push_back(gpred);
      std::printf("%6d %4d %6d %12.5g %10.2g %12.5g %12.5g %9.4f\n", width, M, meas.units, meas.mean, meas.se, pred,
                  gpred, meas.mean / pred);
    }
    w.gauss_ratio = w.by_size[0].mean / w.gauss_pred[0];
    std::printf("%6d  member variance / NTK S = %.4f ± %.4f, E|v_1| / sqrt(2 s^2/pi) = %.4f (1 if Gaussian), "
                "pool mean: Hotelling T^2/D = %.3f (p = %.3f; ~1 if the width-n infinite ensemble is invariant), "
                "train loss %.2e, %.1f s\n",
                width, w.var_ratio, w.var_ratio_se, w.gauss_ratio, w.hotelling, w.hotelling_p, w.train_loss, w.seconds);
    results.push_back(w);
    std::fflush(stdout);
  }

  // ---- Fits over M at each width: a·M^(−α), absolute standard errors.
  std::printf("\n# fits over M (absolute SE; chi2 treats the M values as independent, see docs)\n");
  std::printf("%6s %10s %10s %10s %10s %12s  %s\n", "n", "a", "SE", "alpha", "SE", "chi2/dof", "status");
  const std::vector<double> xm(sizes.begin(), sizes.end());
  for (const auto& w : results) {
    std::vector<double> y, se;
    for (const auto& m : w.by_size) {
      y.push_back(m.mean);
      se.push_back(m.se);
    }
    const emergent::PowerLawFitResult f = emergent::fit_power_law(xm, y, se);
    std::printf("%6d %10.5g %10.2g %10.4f %10.4f %6.2f/%-5d  %s\n", w.width, f.amplitude, f.amplitude_se, f.exponent,
                f.exponent_se, f.chi_square, f.dof, emergent::to_string(f.status));
  }

  // ---- Fits over n at each M: b·n^(−β).
  if (results.size() >= 3) {
    std::printf("\n# fits over width n (absolute SE)\n");
    std::printf("%4s %10s %10s %10s %10s %12s  %s\n", "M", "b", "SE", "beta", "SE", "chi2/dof", "status");
    std::vector<double> xn;
    for (const auto& w : results) xn.push_back(w.width);
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      std::vector<double> y, se;
      for (const auto& w : results) {
        y.push_back(w.by_size[k].mean);
        se.push_back(w.by_size[k].se);
      }
      const emergent::PowerLawFitResult f = emergent::fit_power_law(xn, y, se);
      std::printf("%4d %10.5g %10.2g %10.4f %10.4f %6.2f/%-5d  %s\n", sizes[k], f.amplitude, f.amplitude_se, f.exponent,
                  f.exponent_se, f.chi_square, f.dof, emergent::to_string(f.status));
    }
  }
  if (results.size() >= 4) {  // three parameters need at least one degree of freedom
    std::vector<double> xn;
    for (const auto& w : results) xn.push_back(w.width);
    // The violation tends to the NTK value, not to 0: c + b·n^(−β), c against √(2S/(πM)).
    std::printf("\n# fits over width n with an offset: c + b*n^-beta (c should be the NTK prediction)\n");
    std::printf("%4s %10s %10s %10s %10s %10s %10s %10s %12s  %s\n", "M", "c", "SE", "NTK pred", "b", "SE", "beta", "SE",
                "chi2/dof", "status");
    emergent::PowerLawFitOptions with_offset;
    with_offset.offset = true;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      std::vector<double> y, se;
      for (const auto& w : results) {
        y.push_back(w.by_size[k].mean);
        se.push_back(w.by_size[k].se);
      }
      const emergent::PowerLawFitResult f = emergent::fit_power_law(xn, y, se, with_offset);
      std::printf("%4d %10.5g %10.2g %10.5g %10.4g %10.2g %10.4f %10.4f %6.2f/%-5d  %s\n", sizes[k], f.offset, f.offset_se,
                  ntk_prediction(sizes[k]), f.amplitude, f.amplitude_se, f.exponent, f.exponent_se, f.chi_square, f.dof,
                  emergent::to_string(f.status));
    }
  }

  // ---- Departure of the member violation variance from the NTK limit: s²_n/S − 1 ≈ b·n^(−β).
  if (results.size() >= 3) {
    std::vector<double> xn, y, se;
    std::printf("\n# member variance ratio s^2_n / S_NTK - 1 (the departure from the NTK limit)\n%6s %10s %10s\n", "n",
                "ratio-1", "SE");
    for (const auto& w : results) {
      xn.push_back(w.width);
      y.push_back(w.var_ratio - 1);
      se.push_back(w.var_ratio_se);
      std::printf("%6d %10.4f %10.4f\n", w.width, w.var_ratio - 1, w.var_ratio_se);
    }
    const emergent::PowerLawFitResult f = emergent::fit_power_law(xn, y, se);
    std::printf("# b*n^-beta, all widths: %s\n", f.to_string().c_str());
    if (xn.size() >= 4) {  // without the narrowest width, where the network barely trains
      const std::vector<double> xs(xn.begin() + 1, xn.end()), ys(y.begin() + 1, y.end()), ss(se.begin() + 1, se.end());
      const emergent::PowerLawFitResult g = emergent::fit_power_law(xs, ys, ss);
      std::printf("# b*n^-beta, n >= %d: %s\n", static_cast<int>(xs[0]), g.to_string().c_str());
    }
  }

  // ---- Contrast: no augmentation (train on the N0 originals only). The NTK-limit mean is not
  // invariant here, so E|v_M| tends to a floor c > 0: fit c + a·M^(−α).
  {
    const int width = 128;
    const emergent::Kernels k0 = emergent::kernels(arch_inf, x0_in);
    const emergent::Kernels k0s = emergent::kernels(arch_inf, test_in, x0_in);
    // Same η·t/N as the augmented run: GD on N0 points with η0 = η·N0/N moves time at the same rate.
    emergent::GradientFlowOptions o0 = flow_options;
    o0.learning_rate = lr * originals / static_cast<double>(N);
    const emergent::GradientFlow flow0s(k0.ntk, k0.nngp, y0, o0);
    const Eigen::MatrixXd mu0 = flow0s.mean({t}, k0s.ntk)[0];
    double floor_ntk = 0;
    for (int g = 1; g < G; ++g)
      for (int i = 0; i < tests; ++i) floor_ntk += std::abs(mu0(g * tests + i, 0) - mu0(i, 0));
    floor_ntk /= (G - 1) * tests;
    emergent::TrainingOptions opt;
    opt.members = pool;
    opt.steps = steps;
    opt.learning_rate = o0.learning_rate;
    opt.seed = seed + 7;
    opt.checkpoints = {steps};
    opt.threads = threads;
    const emergent::EnsembleResult r =
        emergent::train_ensemble(emergent::Architecture::parse(spec_for(width)), x0_in, y0, test_in, opt);
    const std::vector<Eigen::VectorXd> v = member_violations(r, G, tests);
    std::printf("\n# contrast: no augmentation (N0 = %d), n = %d; NTK-limit infinite-ensemble violation "
                "mean_{x,g}|mu(gx) - mu(x)| = %.5g\n",
                originals, width, floor_ntk);
    std::printf("%4s %6s %12s %10s\n", "M", "units", "E|v_M|", "SE");
    std::vector<double> y, se;
    for (int M : sizes) {
      const Measured m = sub_ensemble_violation(v, M);
      y.push_back(m.mean);
      se.push_back(m.se);
      std::printf("%4d %6d %12.5g %10.2g\n", M, m.units, m.mean, m.se);
    }
    const emergent::PowerLawFitResult plain = emergent::fit_power_law(xm, y, se);
    emergent::PowerLawFitOptions with_offset;
    with_offset.offset = true;
    const emergent::PowerLawFitResult off = emergent::fit_power_law(xm, y, se, with_offset);
    std::printf("# a*M^-alpha:     %s\n# c + a*M^-alpha: %s\n", plain.to_string().c_str(), off.to_string().c_str());
  }
  std::printf("\n# total %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}
