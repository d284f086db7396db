// Closed-form gradient flow against the ODE it solves, its limits (t = 0: prior, t = ∞: kernel
// regression), exact identities (multi-output, duplicated inputs, diag_reg) and Monte Carlo of
// the linearized members within their standard error. Kernels are RBF + linear kernels of
// random points: any PSD kernel pair will do, the module never sees the inputs.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include "support/enum_names.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/dynamics/spectral_filter.hpp"
#include "emergent/core/random.hpp"

using emergent::GradientFlow;
using emergent::GradientFlowOptions;
using emergent::NngpPosterior;
using emergent::SpectralStatus;
using emergent::spectral_filter;
using Eigen::Index;
using Eigen::MatrixXd;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

MatrixXd random_matrix(Index rows, Index cols, std::uint64_t seed) { return emergent::test::normals(rows, cols, seed); }

// Two different PSD kernels on R^d (sums of PSD kernels are PSD): the NTK stand-in Θ and the
// NNGP stand-in K.
MatrixXd rbf(const MatrixXd& a, const MatrixXd& b, double length, double amplitude) {
  MatrixXd out(a.rows(), b.rows());
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < b.rows(); ++j)
      out(i, j) = amplitude * std::exp(-(a.row(i) - b.row(j)).squaredNorm() / (2 * length * length));
  return out;
}
MatrixXd theta_fn(const MatrixXd& a, const MatrixXd& b) {
  return rbf(a, b, 1.3, 1.0) + 0.4 * a * b.transpose() / static_cast<double>(a.cols()) +
         MatrixXd::Constant(a.rows(), b.rows(), 0.1);
}
MatrixXd k_fn(const MatrixXd& a, const MatrixXd& b) {
  return rbf(a, b, 0.9, 0.8) + 0.2 * a * b.transpose() / static_cast<double>(a.cols());
}

struct Problem {
  MatrixXd x, z, y;                  // train inputs (N, d), test inputs (n, d), labels (N, k)
  MatrixXd theta, theta_zx;          // Θ(X,X), Θ(Z,X)
  MatrixXd k, k_zx, k_zz;            // K(X,X), K(Z,X), K(Z,Z)
  MatrixXd k_joint;                  // K on [X; Z]
};

Problem make_problem(MatrixXd x, MatrixXd z, MatrixXd y) {
  Problem p;
  p.x = std::move(x);
  p.z = std::move(z);
  p.y = std::move(y);
  p.theta = theta_fn(p.x, p.x);
  p.theta_zx = theta_fn(p.z, p.x);
  p.k = k_fn(p.x, p.x);
  p.k_zx = k_fn(p.z, p.x);
  p.k_zz = k_fn(p.z, p.z);
  MatrixXd all(p.x.rows() + p.z.rows(), p.x.cols());
  all << p.x, p.z;
  p.k_joint = k_fn(all, all);
  return p;
}

Problem standard_problem(Index n_train = 8, Index n_test = 4, Index k = 2, std::uint64_t seed = 1) {
  return make_problem(random_matrix(n_train, 3, seed), random_matrix(n_test, 3, seed + 100),
                      random_matrix(n_train, k, seed + 200));
}

using emergent::test::max_abs;

// Classical RK4 for dF/dt = J·F + c with constant J, c, from F at t0 to t1 in `steps` steps.
MatrixXd rk4(const MatrixXd& j, const MatrixXd& c, MatrixXd f, double t0, double t1, int steps) {
  const double h = (t1 - t0) / steps;
  for (int s = 0; s < steps; ++s) {
    const MatrixXd k1 = j * f + c;
    const MatrixXd k2 = j * (f + 0.5 * h * k1) + c;
    const MatrixXd k3 = j * (f + 0.5 * h * k2) + c;
    const MatrixXd k4 = j * (f + h * k3) + c;
    f += (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
  }
  return f;
}

// The linearized dynamics of docs/conventions.md §3 on [X; Z]: d f(X)/dt = −η/(Nk)·Θ_r·(f(X) − Y),
// d f(Z)/dt = −η/(Nk)·Θ(Z,X)·(f(X) − Y), with Θ_r = Θ + δI the (regularized) train kernel.
struct Ode {
  MatrixXd j;  // (N+n)×(N+n): the homogeneous part
  MatrixXd c;  // (N+n)×k: the constant part
  double step = 0;

  Ode(const MatrixXd& theta_r, const MatrixXd& theta_zx, const MatrixXd& y, double eta) {
    const Index n = theta_r.rows(), m = theta_zx.rows();
    const double rate = eta / static_cast<double>(n * y.cols());
    j = MatrixXd::Zero(n + m, n + m);
    j.topLeftCorner(n, n) = -rate * theta_r;
    j.bottomLeftCorner(m, n) = -rate * theta_zx;
    c = -j.leftCols(n) * y;
    // RK4's local error is (h·ρ)⁵/120 with ρ the spectral radius of J: h·ρ = 0.004 keeps the
    // global error far below 1e-8 over the horizons used here.
    const double rho = Eigen::SelfAdjointEigenSolver<MatrixXd>(theta_r).eigenvalues().cwiseAbs().maxCoeff() * rate;
    step = 0.004 / std::max(rho, 1e-300);
  }
  int steps(double dt) const { return std::max(1, static_cast<int>(std::ceil(dt / step))); }

  // f at each (sorted) time, started from f0 = [f0(X); f0(Z)].
  std::vector<MatrixXd> solve(const std::vector<double>& times, MatrixXd f0) const {
    std::vector<MatrixXd> out;
    double t = 0;
    for (double t1 : times) {
      f0 = rk4(j, c, f0, t, t1, steps(t1 - t));
      t = t1;
      out.push_back(f0);
    }
    return out;
  }
  // The propagator A_t of the homogeneous system (unit initial conditions): f0 ↦ f_t − mean_t.
  std::vector<MatrixXd> propagators(const std::vector<double>& times) const {
    std::vector<MatrixXd> out;
    MatrixXd a = MatrixXd::Identity(j.rows(), j.cols());
    const MatrixXd zero = MatrixXd::Zero(j.rows(), j.cols());
    double t = 0;
    for (double t1 : times) {
      a = rk4(j, zero, a, t, t1, steps(t1 - t));
      t = t1;
      out.push_back(a);
    }
    return out;
  }
};

// Kernel regression with a Cholesky solve, independent of the eigen machinery under test.
MatrixXd regression_mean(const MatrixXd& k_train, const MatrixXd& k_test_train, const MatrixXd& y) {
  return k_test_train * k_train.llt().solve(y);
}
// Σ_∞ of docs/conventions.md §3 with explicit solves.
MatrixXd regression_cov(const MatrixXd& theta, const MatrixXd& theta_zx, const MatrixXd& k,
                        const MatrixXd& k_zx, const MatrixXd& k_zz) {
  const MatrixXd a = theta.llt().solve(theta_zx.transpose()).transpose();  // Θ(Z,X)Θ⁻¹
  return k_zz + a * k * a.transpose() - a * k_zx.transpose() - k_zx * a.transpose();
}

double min_eigenvalue(const MatrixXd& a) {
  return Eigen::SelfAdjointEigenSolver<MatrixXd>(a, Eigen::EigenvaluesOnly).eigenvalues()(0);
}

}  // namespace

TEST_CASE("mean and covariance follow the linear ODE of gradient flow") {
  const Problem p = standard_problem(8, 4, 2);
  const std::vector<double> times = {0.5, 3.0, 12.0, 80.0};
  for (double delta : {0.0, 0.3}) {
    CAPTURE(delta);
    GradientFlowOptions options;
    options.learning_rate = 0.7;
    options.diag_reg = delta;
    const GradientFlow flow(p.theta, p.k, p.y, options);
    CHECK(flow.summary().status == SpectralStatus::Ok);
    const MatrixXd theta_r = p.theta + delta * MatrixXd::Identity(8, 8);
    const Ode ode(theta_r, p.theta_zx, p.y, options.learning_rate);
    // The horizon reaches the slow modes: η·t·λ_min/(N·k) is not small at the last time.
    const double lambda_min = min_eigenvalue(theta_r);
    CHECK(options.learning_rate * times.back() * lambda_min / 16.0 > 0.05);

    const auto ode_f = ode.solve(times, MatrixXd::Zero(12, 2));
    const auto mean = flow.mean(times, p.theta_zx);
    const auto train = flow.train_mean(times);
    const auto prop = ode.propagators(times);
    const auto cov = flow.covariance(times, p.theta_zx, p.k_zx, p.k_zz);
    REQUIRE(mean.size() == times.size());
    REQUIRE(cov.size() == times.size());
    for (std::size_t i = 0; i < times.size(); ++i) {
      CAPTURE(times[i]);
      CHECK(max_abs(mean[i] - ode_f[i].bottomRows(4)) < 1e-8);
      // train_mean is the model at the training inputs: Θ(X,X)Θ_r⁻¹T_tY. Without diag_reg
      // it is the ODE's f(X); with it, the test formula evaluated at x = X.
      if (delta == 0.0) {
        CHECK(max_abs(train[i] - ode_f[i].topRows(8)) < 1e-8);
      } else {
        const auto at_train = flow.mean({times[i]}, p.theta);
        CHECK(max_abs(train[i] - at_train[0]) < 1e-12);
      }
      // Σ_t = A_t·K_joint·A_tᵀ restricted to the test block: the prior pushed through the ODE.
      const MatrixXd sigma = (prop[i] * p.k_joint * prop[i].transpose()).bottomRightCorner(4, 4);
      CHECK(max_abs(cov[i] - sigma) < 1e-8);
    }
  }
}

TEST_CASE("t = 0 is the prior and t = infinity is kernel regression") {
  const Problem p = standard_problem(8, 4, 2, 3);
  const GradientFlow flow(p.theta, p.k, p.y);
  const std::vector<double> times = {0.0, kInf};
  const auto mean = flow.mean(times, p.theta_zx);
  const auto cov = flow.covariance(times, p.theta_zx, p.k_zx, p.k_zz);
  CHECK(max_abs(mean[0]) == 0.0);
  CHECK(max_abs(cov[0] - p.k_zz) == 0.0);
  CHECK(max_abs(mean[1] - regression_mean(p.theta, p.theta_zx, p.y)) < 1e-10);
  CHECK(max_abs(cov[1] - regression_cov(p.theta, p.theta_zx, p.k, p.k_zx, p.k_zz)) < 1e-9);

  // On the training set: f_0 = 0, f_∞ = Y (Θ full rank), and the loss goes from ½‖Y‖²/(Nk) to 0.
  const auto train = flow.train_mean(times);
  CHECK(max_abs(train[0]) == 0.0);
  CHECK(max_abs(train[1] - p.y) < 1e-10);
  const auto loss = flow.train_loss({0.0, 1.0, 5.0, 50.0, 500.0, kInf});
  CHECK(loss[0] == doctest::Approx(0.5 * p.y.squaredNorm() / 16.0).epsilon(1e-14));
  for (std::size_t i = 1; i < loss.size(); ++i) CHECK(loss[i] < loss[i - 1]);
  CHECK(loss.back() < 1e-25);
  const auto fits = flow.train_mean({1.0, 5.0, 50.0});
  for (int i = 0; i < 3; ++i)
    CHECK(loss[i + 1] == doctest::Approx(0.5 * (fits[i] - p.y).squaredNorm() / 16.0).epsilon(1e-10));

  // Continuity at infinity: once η·t·λ_min/(Nk) ≫ 1 the finite-time answers equal t = ∞.
  const double lambda_min = flow.summary().min_eigenvalue;
  const double t_long = 60.0 * 16.0 / lambda_min;
  const auto late = flow.mean({t_long}, p.theta_zx);
  const auto late_cov = flow.covariance({t_long}, p.theta_zx, p.k_zx, p.k_zz);
  CHECK(max_abs(late[0] - mean[1]) < 1e-10);
  CHECK(max_abs(late_cov[0] - cov[1]) < 1e-10);
}

TEST_CASE("covariance is symmetric and positive semidefinite at every t") {
  // Test points include two training points, where Σ_∞ vanishes: the hardest case for PSD.
  Problem base = standard_problem(8, 4, 1, 5);
  MatrixXd z(6, 3);
  z << base.z, base.x.row(2), base.x.row(6);
  const Problem p = make_problem(base.x, z, base.y);
  const GradientFlow flow(p.theta, p.k, p.y);
  const std::vector<double> times = {0.0, 0.1, 1.0, 10.0, 100.0, 1e4, 1e8, kInf};
  const auto cov = flow.covariance(times, p.theta_zx, p.k_zx, p.k_zz);
  const double scale = max_abs(p.k_zz);
  for (std::size_t i = 0; i < times.size(); ++i) {
    CAPTURE(times[i]);
    CHECK(max_abs(cov[i] - cov[i].transpose()) == 0.0);
    CHECK(min_eigenvalue(cov[i]) > -1e-12 * scale);
    CHECK(cov[i].diagonal().maxCoeff() <= scale * (1 + 1e-12) + 10);  // bounded, finite
  }
  // At t = ∞ the ensemble interpolates the training data: no variance there.
  CHECK(std::abs(cov.back()(4, 4)) < 1e-10);
  CHECK(std::abs(cov.back()(5, 5)) < 1e-10);
  CHECK(std::abs(cov.back()(4, 5)) < 1e-10);
  CHECK(cov.back()(0, 0) > 1e-4);  // elsewhere it does not
}

TEST_CASE("k outputs are k independent single-output flows with time scale N*k") {
  const Problem p = standard_problem(7, 3, 3, 11);
  GradientFlowOptions options;
  options.learning_rate = 1.3;
  const GradientFlow flow(p.theta, p.k, p.y, options);
  const std::vector<double> times = {0.0, 0.8, 6.0, 30.0, kInf};
  const auto mean = flow.mean(times, p.theta_zx);
  const auto cov = flow.covariance(times, p.theta_zx, p.k_zx, p.k_zz);
  const auto train = flow.train_mean(times);
  const auto loss = flow.train_loss(times);
  // With one output the time scale is η·t/N, so output j of the k = 3 flow is the
  // single-output flow with learning rate η/3 (Θ ⊗ I_k, NT's trace_axes convention).
  GradientFlowOptions single = options;
  single.learning_rate = options.learning_rate / 3.0;
  std::vector<double> loss_sum(times.size(), 0.0);
  for (Index j = 0; j < 3; ++j) {
    CAPTURE(j);
    const GradientFlow one(p.theta, p.k, p.y.col(j), single);
    const auto m1 = one.mean(times, p.theta_zx);
    const auto c1 = one.covariance(times, p.theta_zx, p.k_zx, p.k_zz);
    const auto t1 = one.train_mean(times);
    const auto l1 = one.train_loss(times);
    for (std::size_t i = 0; i < times.size(); ++i) {
      CHECK(max_abs(mean[i].col(j) - m1[i]) < 1e-13);
      CHECK(max_abs(train[i].col(j) - t1[i]) < 1e-13);
      CHECK(max_abs(cov[i] - c1[i]) < 1e-13);
      loss_sum[i] += l1[i];
    }
  }
  for (std::size_t i = 0; i < times.size(); ++i)
    CHECK(loss[i] == doctest::Approx(loss_sum[i] / 3.0).epsilon(1e-12).scale(loss[0]));
}

TEST_CASE("many time points equal one-at-a-time queries") {
  const Problem p = standard_problem(9, 5, 2, 13);
  GradientFlowOptions options;
  options.threads = 2;
  const GradientFlow flow(p.theta, p.k, p.y, options);
  const std::vector<double> times = {kInf, 0.0, 2.5, 0.001, 17.0, 2.5, 1e6};  // any order, repeats
  const auto mean = flow.mean(times, p.theta_zx);
  const auto cov = flow.covariance(times, p.theta_zx, p.k_zx, p.k_zz);
  const auto train = flow.train_mean(times);
  const auto loss = flow.train_loss(times);
  for (std::size_t i = 0; i < times.size(); ++i) {
    CAPTURE(times[i]);
    CHECK(max_abs(mean[i] - flow.mean({times[i]}, p.theta_zx)[0]) < 1e-14);
    CHECK(max_abs(cov[i] - flow.covariance({times[i]}, p.theta_zx, p.k_zx, p.k_zz)[0]) < 1e-14);
    CHECK(max_abs(train[i] - flow.train_mean({times[i]})[0]) < 1e-14);
    CHECK(loss[i] == flow.train_loss({times[i]})[0]);
  }
  // The stacked layout (times, rows, cols) in C order.
  const std::vector<double> flat = emergent::stack(mean);
  REQUIRE(flat.size() == times.size() * 5 * 2);
  CHECK(flat[(3 * 5 + 4) * 2 + 1] == mean[3](4, 1));
  CHECK(flat[(6 * 5 + 0) * 2 + 0] == mean[6](0, 0));
}

TEST_CASE("duplicated training inputs give finite, exact results") {
  // Training points 0 and 5 coincide (as after augmentation) with different labels.
  MatrixXd x = random_matrix(7, 3, 21);
  x.row(5) = x.row(0);
  const MatrixXd z = random_matrix(3, 3, 22);
  const MatrixXd y = random_matrix(7, 2, 23);
  const Problem p = make_problem(x, z, y);
  const GradientFlow flow(p.theta, p.k, p.y);
  CHECK(flow.summary().status == SpectralStatus::RankDeficient);
  CHECK(flow.summary().rank == 6);
  const std::vector<double> finite_times = {0.5, 4.0, 30.0};

  SUBCASE("finite times follow the ODE (which does not mind a singular Θ)") {
    const Ode ode(p.theta, p.theta_zx, p.y, 1.0);
    const auto ode_f = ode.solve(finite_times, MatrixXd::Zero(10, 2));
    const auto prop = ode.propagators(finite_times);
    const auto mean = flow.mean(finite_times, p.theta_zx);
    const auto cov = flow.covariance(finite_times, p.theta_zx, p.k_zx, p.k_zz);
    const auto train = flow.train_mean(finite_times);
    for (std::size_t i = 0; i < finite_times.size(); ++i) {
      CHECK(mean[i].allFinite());
      CHECK(max_abs(mean[i] - ode_f[i].bottomRows(3)) < 1e-8);
      CHECK(max_abs(train[i] - ode_f[i].topRows(7)) < 1e-8);
      const MatrixXd sigma = (prop[i] * p.k_joint * prop[i].transpose()).bottomRightCorner(3, 3);
      CHECK(max_abs(cov[i] - sigma) < 1e-8);
    }
  }

  SUBCASE("finite times are the limit of slightly separated duplicates") {
    // The flow is analytic in the separation ε (g_t is entire), so the error is O(ε) and the
    // Richardson extrapolation 2·μ(ε/2) − μ(ε) is O(ε²).
    const MatrixXd direction = random_matrix(1, 3, 24);
    auto perturbed = [&](double eps) {
      MatrixXd xe = x;
      xe.row(5) += eps * direction;
      const Problem q = make_problem(xe, z, y);
      const GradientFlow f(q.theta, q.k, q.y);
      CHECK(f.summary().rank == 7);
      return std::make_pair(f.mean(finite_times, q.theta_zx), f.covariance(finite_times, q.theta_zx, q.k_zx, q.k_zz));
    };
    const auto exact_mean = flow.mean(finite_times, p.theta_zx);
    const auto exact_cov = flow.covariance(finite_times, p.theta_zx, p.k_zx, p.k_zz);
    std::vector<double> err;
    for (double eps : {1e-2, 1e-3, 1e-4}) {
      const auto [m, c] = perturbed(eps);
      double e = 0;
      for (std::size_t i = 0; i < finite_times.size(); ++i)
        e = std::max({e, max_abs(m[i] - exact_mean[i]), max_abs(c[i] - exact_cov[i])});
      err.push_back(e);
    }
    CAPTURE(err[0]);
    CAPTURE(err[1]);
    CAPTURE(err[2]);
    CHECK(err[0] > 1e-5);                     // the perturbation is visible ...
    CHECK(err[1] / err[0] < 0.2);             // ... and vanishes linearly in ε
    CHECK(err[2] / err[1] < 0.2);
    CHECK(err[2] < 1e-3);
    const auto [m1, c1] = perturbed(2e-3);
    const auto [m2, c2] = perturbed(1e-3);
    for (std::size_t i = 0; i < finite_times.size(); ++i) {
      CHECK(max_abs(2.0 * m2[i] - m1[i] - exact_mean[i]) < 1e-5);
      CHECK(max_abs(2.0 * c2[i] - c1[i] - exact_cov[i]) < 1e-5);
    }
  }

  SUBCASE("t = infinity is regression on the distinct points with averaged labels") {
    // Θ⁺ on the range of Θ: the least-squares fit of two labels at one point is their mean.
    MatrixXd xu(6, 3), yu(6, 2);
    for (Index i = 0; i < 5; ++i) {
      xu.row(i) = x.row(i);
      yu.row(i) = y.row(i);
    }
    xu.row(5) = x.row(6);
    yu.row(5) = y.row(6);
    yu.row(0) = 0.5 * (y.row(0) + y.row(5));
    const Problem u = make_problem(xu, z, yu);
    const auto mean = flow.mean({kInf}, p.theta_zx);
    const auto cov = flow.covariance({kInf}, p.theta_zx, p.k_zx, p.k_zz);
    CHECK(max_abs(mean[0] - regression_mean(u.theta, u.theta_zx, u.y)) < 1e-9);
    CHECK(max_abs(cov[0] - regression_cov(u.theta, u.theta_zx, u.k, u.k_zx, u.k_zz)) < 1e-9);
    // ... and the t → ∞ limit of the finite-time flow.
    const double lambda_kept = flow.summary().max_eigenvalue / flow.summary().effective_condition;
    const double t_long = 60.0 * 14.0 / lambda_kept;  // η·t·λ/(Nk) = 60 on the slowest kept mode
    CHECK(max_abs(flow.mean({t_long}, p.theta_zx)[0] - mean[0]) < 1e-9);
    // The unfittable part: both copies end at the average label, the loss stays at the spread.
    const auto train = flow.train_mean({kInf});
    CHECK(max_abs(train[0].row(0) - yu.row(0)) < 1e-10);
    CHECK(max_abs(train[0].row(5) - yu.row(0)) < 1e-10);
    const double spread = 0.5 * (y.row(0) - y.row(5)).squaredNorm();  // Σ over the two copies
    CHECK(flow.train_loss({kInf})[0] == doctest::Approx(0.5 * spread / 14.0).epsilon(1e-9));
  }
}

TEST_CASE("exact duplicates are always caught by the default rank threshold") {
  // Many random sizes and duplicate patterns: the rank must be the number of distinct points.
  int checked = 0;
  for (std::uint64_t seed = 0; seed < 60; ++seed) {
    const Index n = 2 + static_cast<Index>(seed % 23);
    MatrixXd x = random_matrix(n, 2, 1000 + seed);
    Index copies = 0;
    for (Index i = 1; i < n; i += 3) {
      x.row(i) = x.row((i * 7 + seed) % i);  // copy an earlier row
      ++copies;
    }
    // Count distinct rows (a copied row may itself be a copy).
    Index distinct = 0;
    for (Index i = 0; i < n; ++i) {
      bool seen = false;
      for (Index j = 0; j < i; ++j) seen = seen || (x.row(i) == x.row(j));
      if (!seen) ++distinct;
    }
    const MatrixXd theta = theta_fn(x, x);
    const GradientFlow flow(theta, MatrixXd(), random_matrix(n, 1, seed));
    CAPTURE(seed);
    CAPTURE(flow.summary().to_string());
    CHECK(flow.summary().rank == distinct);
    CHECK(flow.mean({kInf}, theta)[0].allFinite());
    ++checked;
  }
  CHECK(checked == 60);
}

TEST_CASE("diag_reg: relative is absolute times tr(Θ)/N, and t = infinity is ridge regression") {
  const Problem p = standard_problem(8, 4, 2, 31);
  GradientFlowOptions relative;
  relative.diag_reg = 0.05;
  relative.diag_reg_relative = true;
  GradientFlowOptions absolute;
  absolute.diag_reg = 0.05 * p.theta.trace() / 8.0;
  const GradientFlow a(p.theta, p.k, p.y, relative);
  const GradientFlow b(p.theta, p.k, p.y, absolute);
  CHECK(a.summary().regularizer == doctest::Approx(absolute.diag_reg).epsilon(1e-15));
  const std::vector<double> times = {0.0, 2.0, 20.0, kInf};
  const auto ma = a.mean(times, p.theta_zx), mb = b.mean(times, p.theta_zx);
  const auto ca = a.covariance(times, p.theta_zx, p.k_zx, p.k_zz);
  const auto cb = b.covariance(times, p.theta_zx, p.k_zx, p.k_zz);
  for (std::size_t i = 0; i < times.size(); ++i) {
    CHECK(max_abs(ma[i] - mb[i]) < 1e-13);
    CHECK(max_abs(ca[i] - cb[i]) < 1e-13);
  }
  const MatrixXd ridge = p.theta + absolute.diag_reg * MatrixXd::Identity(8, 8);
  CHECK(max_abs(mb.back() - regression_mean(ridge, p.theta_zx, p.y)) < 1e-11);
  // Ridge does not interpolate: the training fit at ∞ is Θ(Θ + δI)⁻¹Y and the loss stays > 0.
  const auto train = b.train_mean({kInf});
  CHECK(max_abs(train[0] - p.theta * ridge.llt().solve(p.y)) < 1e-11);
  CHECK(b.train_loss({kInf})[0] == doctest::Approx(0.5 * (train[0] - p.y).squaredNorm() / 16.0).epsilon(1e-10));
  CHECK(b.train_loss({kInf})[0] > 1e-6);
  // Regularization turns the duplicate-induced null space into eigenvalue δ: full rank again.
  MatrixXd x = p.x;
  x.row(3) = x.row(1);
  const MatrixXd theta_dup = theta_fn(x, x);
  CHECK(GradientFlow(theta_dup, MatrixXd(), p.y).summary().rank == 7);
  CHECK(GradientFlow(theta_dup, MatrixXd(), p.y, relative).summary().rank == 8);
}

TEST_CASE("NNGP posterior is exact Bayesian inference") {
  const Problem p = standard_problem(8, 4, 2, 41);
  const NngpPosterior post(p.k, p.y);
  CHECK(post.summary().status == SpectralStatus::Ok);
  const MatrixXd mean = post.mean(p.k_zx);
  const MatrixXd cov = post.covariance(p.k_zx, p.k_zz);
  CHECK(max_abs(mean - regression_mean(p.k, p.k_zx, p.y)) < 1e-10);
  const MatrixXd direct = p.k_zz - p.k_zx * p.k.llt().solve(p.k_zx.transpose());
  CHECK(max_abs(cov - direct) < 1e-10);
  CHECK(max_abs(cov - cov.transpose()) == 0.0);
  CHECK(min_eigenvalue(cov) > -1e-12);
  // Posterior at the training inputs: the labels, with zero variance.
  CHECK(max_abs(post.mean(p.k) - p.y) < 1e-10);
  CHECK(max_abs(post.covariance(p.k, p.k)) < 1e-10);
  // Gradient flow with Θ = K is Bayesian inference at t = ∞ (Σ_∞ reduces to the posterior).
  const GradientFlow flow(p.k, p.k, p.y);
  CHECK(max_abs(flow.mean({kInf}, p.k_zx)[0] - mean) < 1e-10);
  CHECK(max_abs(flow.covariance({kInf}, p.k_zx, p.k_zx, p.k_zz)[0] - cov) < 1e-10);

  // Duplicates: equal to inference on the distinct points with averaged labels.
  MatrixXd x = p.x;
  x.row(4) = x.row(1);
  const Problem d = make_problem(x, p.z, p.y);
  const NngpPosterior dup(d.k, d.y);
  CHECK(dup.summary().rank == 7);
  std::vector<Index> keep = {0, 1, 2, 3, 5, 6, 7};
  MatrixXd xu(7, 3), yu(7, 2);
  for (Index i = 0; i < 7; ++i) {
    xu.row(i) = x.row(keep[i]);
    yu.row(i) = p.y.row(keep[i]);
  }
  yu.row(1) = 0.5 * (p.y.row(1) + p.y.row(4));
  const Problem u = make_problem(xu, p.z, yu);
  CHECK(max_abs(dup.mean(d.k_zx) - regression_mean(u.k, u.k_zx, u.y)) < 1e-9);
  const MatrixXd direct_u = u.k_zz - u.k_zx * u.k.llt().solve(u.k_zx.transpose());
  CHECK(max_abs(dup.covariance(d.k_zx, d.k_zz) - direct_u) < 1e-9);

  // diag_reg: the noisy-observation posterior (Rasmussen & Williams Eqs. 2.23–2.24).
  GradientFlowOptions noisy;
  noisy.diag_reg = 0.1;
  const NngpPosterior reg(p.k, p.y, noisy);
  const MatrixXd kn = p.k + 0.1 * MatrixXd::Identity(8, 8);
  CHECK(max_abs(reg.mean(p.k_zx) - regression_mean(kn, p.k_zx, p.y)) < 1e-11);
  CHECK(max_abs(reg.covariance(p.k_zx, p.k_zz) - (p.k_zz - p.k_zx * kn.llt().solve(p.k_zx.transpose()))) < 1e-11);
}

TEST_CASE("a linearized member from a given initialization follows the ODE") {
  const Problem p = standard_problem(8, 4, 2, 51);
  GradientFlowOptions options;
  options.learning_rate = 2.0;
  const GradientFlow flow(p.theta, p.k, p.y, options);
  const MatrixXd f0 = random_matrix(12, 2, 52);
  const std::vector<double> times = {0.0, 1.0, 7.0, 25.0};
  const Ode ode(p.theta, p.theta_zx, p.y, 2.0);
  const auto ode_f = ode.solve(times, f0);
  const auto f = flow.evolve(times, p.theta_zx, f0.topRows(8), f0.bottomRows(4));
  for (std::size_t i = 0; i < times.size(); ++i) CHECK(max_abs(f[i] - ode_f[i].bottomRows(4)) < 1e-8);
  CHECK(max_abs(f[0] - f0.bottomRows(4)) == 0.0);
  // At ∞ the initialization on the training set is forgotten, not on the test set:
  // f_∞ = μ_∞ + f0(Z) − Θ(Z,X)Θ⁻¹f0(X).
  const MatrixXd expected = regression_mean(p.theta, p.theta_zx, p.y) + f0.bottomRows(4) -
                            regression_mean(p.theta, p.theta_zx, f0.topRows(8));
  CHECK(max_abs(flow.evolve({kInf}, p.theta_zx, f0.topRows(8), f0.bottomRows(4))[0] - expected) < 1e-10);
}

TEST_CASE("linearized members reproduce mean and covariance within sampling error") {
  const Problem p = standard_problem(6, 3, 2, 61);
  const GradientFlow flow(p.theta, p.k, p.y);
  const std::vector<double> times = {0.0, 4.0, kInf};
  const Index members = 4000;
  const auto ens = flow.sample_members(times, p.theta_zx, p.k_zx, p.k_zz, members, 2024);
  CHECK(ens.shape() == std::vector<std::size_t>{4000, 3, 3, 2});
  CHECK(ens.prior.status == SpectralStatus::Ok);
  const auto mean = flow.mean(times, p.theta_zx);
  const auto cov = flow.covariance(times, p.theta_zx, p.k_zx, p.k_zz);
  const double m = static_cast<double>(members);
  for (Index t = 0; t < 3; ++t) {
    CAPTURE(t);
    // Sample mean: within 4 standard errors sqrt(Σ_ii/M), component by component.
    for (Index i = 0; i < 3; ++i)
      for (Index j = 0; j < 2; ++j) {
        double s = 0;
        for (Index a = 0; a < members; ++a) s += ens(a, t, i, j);
        CHECK(std::abs(s / m - mean[t](i, j)) <= 4.0 * std::sqrt(cov[t](i, i) / m));
      }
    // Covariance about the known mean, pooled over the two independent outputs: for Gaussians
    // Var(Ĉ_ii') = (Σ_ii·Σ_i'i' + Σ_ii'²)/(2M) (the chi-square law for i = i').
    for (Index i = 0; i < 3; ++i)
      for (Index i2 = i; i2 < 3; ++i2) {
        double s = 0, cross = 0;
        for (Index a = 0; a < members; ++a) {
          for (Index j = 0; j < 2; ++j)
            s += (ens(a, t, i, j) - mean[t](i, j)) * (ens(a, t, i2, j) - mean[t](i2, j));
          cross += (ens(a, t, i, 0) - mean[t](i, 0)) * (ens(a, t, i2, 1) - mean[t](i2, 1));
        }
        const double sii = cov[t](i, i), s22 = cov[t](i2, i2), s12 = cov[t](i, i2);
        CHECK(std::abs(s / (2 * m) - s12) <= 4.0 * std::sqrt((sii * s22 + s12 * s12) / (2 * m)));
        // Outputs are independent (K ⊗ I_k): cross-output covariance 0 within sqrt(Σ_ii·Σ_i'i'/M).
        CHECK(std::abs(cross / m) <= 4.0 * std::sqrt(sii * s22 / m));
      }
  }
  // The test exercises something: the variance shrinks during training.
  CHECK(cov[2].trace() < 0.9 * cov[0].trace());
}

TEST_CASE("linearized members are bit-identical at any thread count") {
  const Problem p = standard_problem(6, 3, 2, 71);
  GradientFlowOptions options;
  const std::vector<double> times = {0.0, 3.0, kInf};
  std::vector<std::vector<double>> runs;
  for (int threads : {1, 2, 3}) {
    options.threads = threads;
    const GradientFlow flow(p.theta, p.k, p.y, options);
    runs.push_back(flow.sample_members(times, p.theta_zx, p.k_zx, p.k_zz, 37, 99).values);
  }
  REQUIRE(runs[0].size() == 37u * 3 * 3 * 2);
  CHECK(std::memcmp(runs[0].data(), runs[1].data(), runs[0].size() * sizeof(double)) == 0);
  CHECK(std::memcmp(runs[0].data(), runs[2].data(), runs[0].size() * sizeof(double)) == 0);
  const GradientFlow flow(p.theta, p.k, p.y);
  const auto other = flow.sample_members(times, p.theta_zx, p.k_zx, p.k_zz, 37, 100).values;
  CHECK(std::memcmp(runs[0].data(), other.data(), other.size() * sizeof(double)) != 0);
  // Member m does not depend on how many members are drawn.
  const auto fewer = flow.sample_members(times, p.theta_zx, p.k_zx, p.k_zz, 5, 99).values;
  CHECK(std::memcmp(runs[0].data(), fewer.data(), fewer.size() * sizeof(double)) == 0);

  // A singular joint prior (a test point equal to a training point) is fine: clipped, finite.
  MatrixXd z = p.z;
  z.row(0) = p.x.row(2);
  const Problem q = make_problem(p.x, z, p.y);
  const GradientFlow fq(q.theta, q.k, q.y);
  const auto ens = fq.sample_members(times, q.theta_zx, q.k_zx, q.k_zz, 50, 1);
  CHECK(ens.prior.rank < 9);
  bool finite = true;
  for (double v : ens.values) finite = finite && std::isfinite(v);
  CHECK(finite);
  // At t = ∞ a member interpolates the training point it shares with the test set.
  for (Index a = 0; a < 50; ++a) CHECK(std::abs(ens(a, 2, 0, 1) - q.y(2, 1)) < 1e-8);
}

TEST_CASE("status reports what the spectrum looks like") {
  const MatrixXd y = MatrixXd::Ones(2, 1);
  Eigen::Matrix2d a;
  a << 1, 0, 0, 1e-12;
  CHECK(GradientFlow(a, MatrixXd(), y).summary().status == SpectralStatus::IllConditioned);
  CHECK(GradientFlow(a, MatrixXd(), y).summary().effective_condition == doctest::Approx(1e12));
  a << 1, 0, 0, -0.1;
  const GradientFlow bad(a, MatrixXd(), y);
  CHECK(bad.summary().status == SpectralStatus::NotPositiveSemidefinite);
  CHECK(bad.summary().clipped_negative == 1);
  CHECK(bad.summary().most_negative == doctest::Approx(-0.1));
  a << 1, 0, 0, -1e-17;  // round-off: clipped quietly, treated as a zero eigenvalue
  const GradientFlow roundoff(a, MatrixXd(), y);
  CHECK(roundoff.summary().status == SpectralStatus::RankDeficient);
  CHECK(roundoff.summary().clipped_negative == 1);
  CHECK(roundoff.summary().rank == 1);
  CHECK(roundoff.mean({kInf}, a)[0](0, 0) == doctest::Approx(1.0));
  CHECK(roundoff.mean({kInf}, a)[0](1, 0) == 0.0);
  a.setZero();
  const GradientFlow zero(a, MatrixXd(), y);
  CHECK(zero.summary().status == SpectralStatus::ZeroKernel);
  CHECK(zero.summary().rank == 0);
  CHECK(max_abs(zero.mean({0.0, 5.0, kInf}, a)[2]) == 0.0);
  CHECK(zero.train_loss({kInf})[0] == doctest::Approx(0.5));
  a << 2, 1, 1, 2;
  const GradientFlow ok(a, MatrixXd(), y);
  CHECK(ok.summary().status == SpectralStatus::Ok);
  CHECK(ok.summary().min_eigenvalue == doctest::Approx(1.0));
  CHECK(ok.summary().max_eigenvalue == doctest::Approx(3.0));
  CHECK(ok.summary().condition == doctest::Approx(3.0));
  CHECK(ok.summary().to_string().find("status=ok") != std::string::npos);
  CHECK(std::string(emergent::to_string(SpectralStatus::IllConditioned)) == "ill_conditioned");
}

TEST_CASE("bad arguments throw invalid_argument naming the argument") {
  const Problem p = standard_problem(5, 2, 1, 81);
  using doctest::Contains;
  GradientFlowOptions o;
  std::string error;
  CHECK(o.IsValid(&error));
  o.learning_rate = 0.0;
  CHECK_FALSE(o.IsValid(&error));
  CHECK(error.find("learning_rate = 0") != std::string::npos);
  CHECK_THROWS_WITH_AS(GradientFlow(p.theta, p.k, p.y, o), Contains("learning_rate = 0: expected"),
                       std::invalid_argument);
  o.learning_rate = -1.0;
  CHECK_THROWS_WITH_AS(GradientFlow(p.theta, p.k, p.y, o), Contains("learning_rate = -1"), std::invalid_argument);
  o = {};
  o.diag_reg = -0.1;
  CHECK_THROWS_WITH_AS(GradientFlow(p.theta, p.k, p.y, o), Contains("diag_reg = -0.1"), std::invalid_argument);
  o = {};
  o.rank_rtol = 2.0;
  CHECK_FALSE(o.IsValid(&error));
  CHECK(error.find("rank_rtol") != std::string::npos);
  o = {};
  o.threads = -2;
  CHECK_FALSE(o.IsValid(&error));
  CHECK(error.find("threads = -2") != std::string::npos);

  CHECK_THROWS_WITH_AS(GradientFlow(p.theta.leftCols(4), p.k, p.y), Contains("ntk_train_train: shape (5, 4)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(GradientFlow(p.theta, p.k.topLeftCorner(4, 4), p.y), Contains("nngp_train_train: shape (4, 4)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(GradientFlow(p.theta, p.k, p.y.topRows(4)), Contains("y_train: shape (4, 1)"),
                       std::invalid_argument);
  MatrixXd asym = p.theta;
  asym(0, 1) += 1e-3;
  CHECK_THROWS_WITH_AS(GradientFlow(asym, p.k, p.y), Contains("ntk_train_train: not symmetric"),
                       std::invalid_argument);
  MatrixXd roundoff = p.theta;
  roundoff(0, 1) += 1e-15;  // round-off asymmetry is accepted
  CHECK_NOTHROW(GradientFlow(roundoff, p.k, p.y));
  MatrixXd nan = p.theta;
  nan(2, 2) = std::nan("");
  CHECK_THROWS_WITH_AS(GradientFlow(nan, p.k, p.y), Contains("ntk_train_train: entry (2, 2) = nan"),
                       std::invalid_argument);

  const GradientFlow flow(p.theta, p.k, p.y);
  CHECK_THROWS_WITH_AS(flow.mean({1.0, -2.0}, p.theta_zx), Contains("times[1] = -2: expected t >= 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(flow.mean({std::nan("")}, p.theta_zx), Contains("times[0] = nan"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(flow.mean({1.0}, p.theta_zx.leftCols(3)), Contains("ntk_test_train: shape (2, 3)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(flow.covariance({1.0}, p.theta_zx, p.k_zx.topRows(1), p.k_zz),
                       Contains("nngp_test_train: shape (1, 5)"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(flow.covariance({1.0}, p.theta_zx, p.k_zx, p.k_zz.leftCols(1)),
                       Contains("nngp_test_test: shape (2, 1)"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(flow.sample_members({1.0}, p.theta_zx, p.k_zx, p.k_zz, 0, 1), Contains("members = 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(flow.evolve({1.0}, p.theta_zx, p.y.topRows(3), MatrixXd::Zero(2, 1)),
                       Contains("f0_train: shape (3, 1)"), std::invalid_argument);
  const GradientFlow mean_only(p.theta, MatrixXd(), p.y);
  CHECK_NOTHROW(mean_only.mean({1.0}, p.theta_zx));
  CHECK_THROWS_WITH_AS(mean_only.covariance({1.0}, p.theta_zx, p.k_zx, p.k_zz), Contains("nngp_train_train: empty"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(NngpPosterior(p.k, p.y.topRows(2)), Contains("y_train: shape (2, 1)"), std::invalid_argument);
  const NngpPosterior post(p.k, p.y);
  CHECK_THROWS_WITH_AS(post.mean(p.k_zx.leftCols(2)), Contains("nngp_test_train: shape (2, 2)"),
                       std::invalid_argument);
}

TEST_CASE("SpectralStatus: to_string and parse_spectral_status are inverse, snake_case, and reject unknown names") {
  using E = emergent::SpectralStatus;
  const std::vector<E> all = {E::Ok, E::RankDeficient, E::IllConditioned, E::ZeroKernel, E::NotPositiveSemidefinite};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_spectral_status(s); });
}

TEST_CASE("spectral_filter: g_t(λ) = (1 − e^{−sλ})/λ, its limits, and no jump where the series takes over") {
  // Independent reference: the same formula in long double, away from cancellation.
  for (double lambda : {1e-3, 0.37, 1.0, 12.5, 4e3})
    for (double s : {1e-4, 0.01, 0.5, 3.0, 40.0}) {
      CAPTURE(lambda);
      CAPTURE(s);
      const long double ref = -std::expm1(-static_cast<long double>(s) * lambda) / lambda;
      CHECK(spectral_filter(lambda, s) == doctest::Approx(static_cast<double>(ref)).epsilon(1e-14));
    }
  CHECK(spectral_filter(2.0, 0.0) == 0.0);                                       // t = 0: nothing learnt
  CHECK(spectral_filter(2.0, std::numeric_limits<double>::infinity()) == 0.5);   // t = ∞: 1/λ
  CHECK(spectral_filter(0.0, 3.0) == 3.0);                                       // λ → 0: s
  // Across x = sλ = 1e-5 (series below, expm1 above) the relative change is that of the function.
  const double s = 1.0, below = spectral_filter(1e-5 * (1 - 1e-12), s), above = spectral_filter(1e-5 * (1 + 1e-12), s);
  CHECK(std::abs(below - above) / above < 1e-15);
  // Monotone in s at fixed λ (the flow only learns more) and bounded by min(s, 1/λ).
  double previous = 0;
  for (double t = 0.25; t < 100; t *= 2) {
    const double g = spectral_filter(0.8, t);
    CHECK(g > previous);
    CHECK(g <= std::min(t, 1 / 0.8));
    previous = g;
  }
}

namespace {
MatrixXd gaussian(Index rows, Index cols, std::uint64_t stream) {
  const emergent::NormalStream rng(77, stream);
  MatrixXd m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = rng.normal(static_cast<std::uint64_t>(i));
  return m;
}
}  // namespace

TEST_CASE("LAPACK/BLAS build: equal to an Eigen-only evaluation of the formulas to 1e-12, bits independent of threads") {
  // N above the 256-column panels of the products, so several panels run in parallel.
  const Index n = 600, m = 40;
  const MatrixXd a = gaussian(n + m, 80, 1);
  const MatrixXd joint = a * a.transpose() / 80.0 + MatrixXd::Identity(n + m, n + m);  // condition ~ 40
  const MatrixXd theta = joint.topLeftCorner(n, n), kxz = joint.bottomLeftCorner(m, n), kzz = joint.bottomRightCorner(m, m);
  const MatrixXd y = gaussian(n, 2, 2);
  const std::vector<double> times = {0.0, 3.0, 300.0, std::numeric_limits<double>::infinity()};
  GradientFlowOptions one, two;
  one.threads = 1;
  two.threads = 2;
  const GradientFlow f1(theta, theta, y, one), f2(theta, theta, y, two);
  const auto m1 = f1.mean(times, kxz), m2 = f2.mean(times, kxz);
  const auto c1 = f1.covariance(times, kxz, kxz, kzz), c2 = f2.covariance(times, kxz, kxz, kzz);
  // Independent evaluation with Eigen's own eigensolver and products.
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(theta);
  const MatrixXd& v = es.eigenvectors();
  for (std::size_t i = 0; i < times.size(); ++i) {
    CAPTURE(times[i]);
    CHECK(std::memcmp(m1[i].data(), m2[i].data(), sizeof(double) * m1[i].size()) == 0);
    CHECK(std::memcmp(c1[i].data(), c2[i].data(), sizeof(double) * c1[i].size()) == 0);
    const double s = times[i] / (static_cast<double>(n) * 2.0);  // η = 1, k = 2 outputs
    Eigen::VectorXd g(n);
    for (Index j = 0; j < n; ++j) {
      const double l = es.eigenvalues()(j);
      g(j) = std::isinf(times[i]) ? 1.0 / l : -std::expm1(-s * l) / l;
    }
    const MatrixXd op = v * g.asDiagonal() * v.transpose();  // Θ⁻¹(I − e^{−sΘ})
    const MatrixXd mean = kxz * op * y;
    const MatrixXd A = kxz * op;
    const MatrixXd cov = kzz + A * theta * A.transpose() - A * kxz.transpose() - kxz * A.transpose();
    const double mean_scale = std::max(mean.norm(), 1e-300);
    if (times[i] > 0) CHECK((m1[i] - mean).norm() / mean_scale < 1e-12);
    CHECK((c1[i] - cov).norm() / cov.norm() < 1e-12);
  }
}

namespace {
// Σ_t the way it was computed before the factored form, with Eigen's own eigensolver and plain
// products: A = Θ(x,X)·V·g_t(Λ), Σ = K_xx + A·(VᵀKV)·Aᵀ − A·(K(x,X)V)ᵀ − (K(x,X)V)·Aᵀ.
std::vector<MatrixXd> plain_covariance(const MatrixXd& theta, const MatrixXd& k, const MatrixXd& theta_zx,
                                       const MatrixXd& k_zx, const MatrixXd& k_zz, const std::vector<double>& times,
                                       double delta, Index outputs) {
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(theta + delta * MatrixXd::Identity(theta.rows(), theta.cols()));
  const MatrixXd& v = es.eigenvectors();
  const MatrixXd kt = v.transpose() * k * v, p = theta_zx * v, kxv = k_zx * v;
  std::vector<MatrixXd> out;
  for (double t : times) {
    const double s = t / (static_cast<double>(theta.rows()) * static_cast<double>(outputs));
    Eigen::VectorXd g(theta.rows());
    for (Index j = 0; j < g.size(); ++j) g(j) = spectral_filter(es.eigenvalues()(j), s);
    const MatrixXd a = p * g.asDiagonal();
    out.push_back(k_zz + a * kt * a.transpose() - a * kxv.transpose() - kxv * a.transpose());
  }
  return out;
}

double relative_difference(const MatrixXd& a, const MatrixXd& b) { return (a - b).norm() / b.norm(); }

bool same_bits(const MatrixXd& a, const MatrixXd& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}

// Joint PSD kernels on N train + m test points of rank `rank` (full if rank >= N + m): a Gram
// matrix of random features, so K_joint = F·Fᵀ exactly up to round-off.
MatrixXd joint_gram(Index total, Index rank, std::uint64_t stream) {
  const MatrixXd f = gaussian(total, rank, stream);
  return f * f.transpose() / static_cast<double>(rank);
}
}  // namespace

TEST_CASE("covariance: the pivoted-Cholesky form equals the plain formula on random PSD kernels, at 0, small t and infinity") {
  // N = 300 > the 256-wide panels; Θ well conditioned, K a random full-rank Gram matrix.
  const Index n = 300, m = 25;
  const MatrixXd theta_joint = joint_gram(n + m, 400, 11) + 0.5 * MatrixXd::Identity(n + m, n + m);
  const MatrixXd k_joint = joint_gram(n + m, 500, 12) + 1e-3 * MatrixXd::Identity(n + m, n + m);
  const MatrixXd theta = theta_joint.topLeftCorner(n, n), theta_zx = theta_joint.bottomLeftCorner(m, n);
  const MatrixXd k = k_joint.topLeftCorner(n, n), k_zx = k_joint.bottomLeftCorner(m, n), k_zz = k_joint.bottomRightCorner(m, m);
  const MatrixXd y = gaussian(n, 1, 13);
  const std::vector<double> times = {0.0, 1e-6, 1e-3, 1.0, 30.0, 1e3, 1e6, kInf};
  const GradientFlow flow(theta, k, y);
  CHECK(flow.covariance_factor().status == SpectralStatus::Ok);
  CHECK(flow.covariance_factor().rank == n);
  CHECK(!flow.covariance_factor().dense);
  CHECK(flow.covariance_factor().to_string().find("rank=300/300") != std::string::npos);
  const auto cov = flow.covariance(times, theta_zx, k_zx, k_zz);
  const auto plain = plain_covariance(theta, k, theta_zx, k_zx, k_zz, times, 0.0, 1);
  for (std::size_t i = 0; i < times.size(); ++i) {
    CAPTURE(times[i]);
    CHECK(relative_difference(cov[i], plain[i]) < 1e-12);
    CHECK(same_bits(cov[i], cov[i].transpose()));
  }
  const MatrixXd prior = 0.5 * (k_zz + k_zz.transpose());  // as symmetrized on input
  CHECK(same_bits(cov[0], prior));                         // t = 0: the prior, exactly
  // Small t: Σ_t − K_xx = −2·sym(t/N·Θ(x,X)·K(X,x)) + O(t²), not lost to round-off of K_xx.
  const MatrixXd first_order = -(theta_zx * k_zx.transpose() + k_zx * theta_zx.transpose()) * (1e-6 / n);
  CHECK(max_abs(cov[1] - prior - first_order) < 1e-6 * max_abs(first_order) + 1e-14 * max_abs(prior));
  CHECK(max_abs(first_order) > 1e-10 * max_abs(prior));  // the term tested is above the round-off
}

TEST_CASE("covariance: singular and low-rank K(X,X) (duplicated inputs) drop only round-off") {
  const Index n = 280, m = 20;
  // Duplicated training inputs: rows 0..39 repeated at 40..79, so K(X,X) has rank N − 40. Θ is
  // regularized (diag_reg) so that its eigenbasis is complete and K̃ = VᵀKV is singular too.
  MatrixXd feats = gaussian(n + m, 600, 21);
  feats.middleRows(40, 40) = feats.topRows(40);
  const MatrixXd k_joint = feats * feats.transpose() / 600.0;
  const MatrixXd theta_joint = k_joint + 0.3 * joint_gram(n + m, 50, 22);
  const MatrixXd theta = theta_joint.topLeftCorner(n, n), theta_zx = theta_joint.bottomLeftCorner(m, n);
  const MatrixXd k = k_joint.topLeftCorner(n, n), k_zx = k_joint.bottomLeftCorner(m, n), k_zz = k_joint.bottomRightCorner(m, m);
  const MatrixXd y = gaussian(n, 2, 23);
  const std::vector<double> times = {0.0, 1e-4, 0.5, 20.0, 1e4, kInf};
  GradientFlowOptions options;
  options.diag_reg = 0.05;
  const GradientFlow flow(theta, k, y, options);
  CHECK(flow.summary().rank == n);
  CHECK(flow.covariance_factor().status == SpectralStatus::RankDeficient);
  CHECK(flow.covariance_factor().rank == n - 40);
  CHECK(!flow.covariance_factor().dense);
  CHECK(flow.covariance_factor().remainder <= 4 * flow.covariance_factor().tolerance);
  const auto cov = flow.covariance(times, theta_zx, k_zx, k_zz);
  const auto plain = plain_covariance(theta, k, theta_zx, k_zx, k_zz, times, 0.05, 2);
  for (std::size_t i = 0; i < times.size(); ++i) {
    CAPTURE(times[i]);
    CHECK(relative_difference(cov[i], plain[i]) < 1e-12);
    CHECK(same_bits(cov[i], cov[i].transpose()));
    CHECK(min_eigenvalue(cov[i]) > -1e-12 * max_abs(k_zz));
  }

  // A K(X,X) of rank 6 (linear features): the factor has 6 columns and the same covariance.
  const MatrixXd low_joint = joint_gram(n + m, 6, 24);
  const MatrixXd lk = low_joint.topLeftCorner(n, n), lk_zx = low_joint.bottomLeftCorner(m, n),
                 lk_zz = low_joint.bottomRightCorner(m, m);
  const GradientFlow low(theta, lk, y, options);
  CHECK(low.covariance_factor().rank == 6);
  CHECK(low.covariance_factor().status == SpectralStatus::RankDeficient);
  const auto lcov = low.covariance(times, theta_zx, lk_zx, lk_zz);
  const auto lplain = plain_covariance(theta, lk, theta_zx, lk_zx, lk_zz, times, 0.05, 2);
  for (std::size_t i = 0; i < times.size(); ++i) {
    CAPTURE(times[i]);
    CHECK(relative_difference(lcov[i], lplain[i]) < 1e-12);
  }

  // K(X,X) = 0: no factor columns, and Σ_t = K_xx at every t.
  const GradientFlow zero(theta, MatrixXd::Zero(n, n), y, options);
  CHECK(zero.covariance_factor().status == SpectralStatus::ZeroKernel);
  CHECK(zero.covariance_factor().rank == 0);
  const auto zcov = zero.covariance({3.0}, theta_zx, MatrixXd::Zero(m, n), k_zz);
  CHECK(same_bits(zcov[0], MatrixXd(0.5 * (k_zz + k_zz.transpose()))));
}

TEST_CASE("covariance: a K(X,X) that is not PSD is used densely and still gives the formula") {
  const Index n = 120, m = 10;
  const MatrixXd theta_joint = joint_gram(n + m, 200, 31) + 0.2 * MatrixXd::Identity(n + m, n + m);
  const MatrixXd theta = theta_joint.topLeftCorner(n, n), theta_zx = theta_joint.bottomLeftCorner(m, n);
  const MatrixXd s = gaussian(n + m, n + m, 32);
  const MatrixXd k_joint = 0.5 * (s + s.transpose());  // symmetric, indefinite
  const MatrixXd k = k_joint.topLeftCorner(n, n), k_zx = k_joint.bottomLeftCorner(m, n), k_zz = k_joint.bottomRightCorner(m, m);
  const MatrixXd y = gaussian(n, 1, 33);
  const GradientFlow flow(theta, k, y);
  CHECK(flow.covariance_factor().status == SpectralStatus::NotPositiveSemidefinite);
  CHECK(flow.covariance_factor().dense);
  CHECK(flow.covariance_factor().to_string().find("densely") != std::string::npos);
  const std::vector<double> times = {0.0, 2.0, kInf};
  const auto cov = flow.covariance(times, theta_zx, k_zx, k_zz);
  const auto plain = plain_covariance(theta, k, theta_zx, k_zx, k_zz, times, 0.0, 1);
  for (std::size_t i = 0; i < times.size(); ++i) {
    CAPTURE(times[i]);
    CHECK(relative_difference(cov[i], plain[i]) < 1e-12);
    CHECK(same_bits(cov[i], cov[i].transpose()));
  }
}

TEST_CASE("covariance: bit-identical at 1, 2 and 3 threads, full-rank and rank-deficient K") {
  // At 1 thread K's factor runs after the eigensolver, at 2 and 3 beside its tridiagonal stage.
  const Index n = 600, m = 30;  // several 256-wide panels
  MatrixXd feats = gaussian(n + m, 700, 41);
  feats.middleRows(100, 20) = feats.topRows(20);
  const MatrixXd k_joint = feats * feats.transpose() / 700.0;
  const MatrixXd theta_joint = joint_gram(n + m, 800, 42) + 0.1 * MatrixXd::Identity(n + m, n + m);
  const MatrixXd theta = theta_joint.topLeftCorner(n, n), theta_zx = theta_joint.bottomLeftCorner(m, n);
  const MatrixXd y = gaussian(n, 1, 43);
  const std::vector<double> times = {0.0, 0.01, 1.0, 100.0, 1e5, kInf};
  for (const bool duplicated : {true, false}) {
    const MatrixXd& kj = duplicated ? k_joint : theta_joint;
    const MatrixXd k = kj.topLeftCorner(n, n), k_zx = kj.bottomLeftCorner(m, n), k_zz = kj.bottomRightCorner(m, m);
    GradientFlowOptions one, two, three;
    one.threads = 1;
    two.threads = 2;
    three.threads = 3;
    const GradientFlow f1(theta, k, y, one), f2(theta, k, y, two), f3(theta, k, y, three);
    CHECK(f1.covariance_factor().rank == f2.covariance_factor().rank);
    CHECK(f1.covariance_factor().rank == f3.covariance_factor().rank);
    CHECK(same_bits(f1.mean(times, theta_zx).back(), f2.mean(times, theta_zx).back()));
    CHECK(same_bits(f1.mean(times, theta_zx).back(), f3.mean(times, theta_zx).back()));
    CHECK(f1.covariance_factor().rank == (duplicated ? n - 20 : n));
    const auto c1 = f1.covariance(times, theta_zx, k_zx, k_zz), c2 = f2.covariance(times, theta_zx, k_zx, k_zz),
               c3 = f3.covariance(times, theta_zx, k_zx, k_zz);
    const auto plain = plain_covariance(theta, k, theta_zx, k_zx, k_zz, times, 0.0, 1);
    for (std::size_t i = 0; i < times.size(); ++i) {
      CAPTURE(times[i]);
      CHECK(same_bits(c1[i], c2[i]));
      CHECK(same_bits(c1[i], c3[i]));
      CHECK(relative_difference(c1[i], plain[i]) < 1e-12);
    }
  }
}
