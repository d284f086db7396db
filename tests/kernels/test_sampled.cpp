// Monte Carlo check of the analytic kernels (docs/conventions.md §2) against independently seeded
// finite networks (docs/conventions.md §2, NTK parameterization):
//   NNGP: K(x,x') = E[f_c(x) f_c(x')], estimated per network by (1/k)·Σ_c f_c(x) f_c(x') over
//         its k output channels (the output mean is exactly 0, so no centring). The channels of
//         one network share their hidden features and are correlated, so the standard error is
//         estimated across networks only.
//   NTK:  Θ(x,x') = E[Θ̂(x,x')], Θ̂ from the Jacobian of output channel 0 (one channel is an
//         unbiased estimate; the others would cost k times more and add little).
// Tolerance per entry: 4 estimated standard errors plus a finite-width allowance
//   A = 2·(L − 1)·max|K| / n,   L = number of nonlinear hidden layers, n = smallest width.
// Why: the first hidden layer sees fixed inputs, so its pre-activations are exactly Gaussian
// and a one-hidden-layer network has E[K̂] = K and E[Θ̂] = Θ at every width. Each later layer
// maps the empirical second moment q̂ = (W²/n)·Σ_i φ(z_i)φ(z'_i) + B² through a smooth dual
// map F; E[q̂] is exact but E[F(q̂)] − F(q) ≈ ½·F''·Var(q̂) with Var(q̂) = O(q²/n)
// (Yaida 2020, "Non-Gaussian processes and neural networks at finite widths", §3; Roberts,
// Yaida & Hanin 2022, ch. 4–5: the 1/n correction grows linearly with depth). For relu/erf
// F'' ~ 1/q, so each layer after the first contributes a relative bias c/n with c = O(1).
// At width 32 (relu/erf MLPs) and 16 channels (CNNs) we measured c ≲ 0.4; the factor 2 is a
// safe bound that still makes A ≤ 0.4 % (MLP, n = 512) and ≤ 3.1 % (CNN, n = 64) of max|K|.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "emergent/kernels/kernel.hpp"
#include "emergent/networks/network.hpp"
#include "emergent/core/random.hpp"

using namespace emergent;

namespace {

// This suite's inputs come from stream 4242 of the shared generator.
Inputs gaussian_inputs(const ExampleShape& shape, Eigen::Index n, std::uint64_t seed) {
  return test::random_inputs(n, shape, seed, 4242);
}

/// Mean and standard error (of the mean) of a list of equally shaped matrices.
struct Estimate {
  Eigen::MatrixXd mean, se;
};

Estimate estimate(const std::vector<Eigen::MatrixXd>& samples) {
  const double m = static_cast<double>(samples.size());
  Estimate e;
  e.mean = Eigen::MatrixXd::Zero(samples[0].rows(), samples[0].cols());
  for (const auto& s : samples) e.mean += s;  // fixed order: thread-count independent
  e.mean /= m;
  Eigen::MatrixXd var = Eigen::MatrixXd::Zero(e.mean.rows(), e.mean.cols());
  for (const auto& s : samples) var += (s - e.mean).cwiseAbs2();
  e.se = (var / (m - 1.0) / m).cwiseSqrt();
  return e;
}

struct Sampled {
  Estimate nngp, ntk;
};

/// One network per seed seed0 + m, in parallel over networks (each network is single-threaded,
/// results are stored per network and reduced in order).
Sampled sample_kernels(const Architecture& arch, const Inputs& x, int networks, std::uint64_t seed0) {
  std::vector<Eigen::MatrixXd> nngp(networks), ntk(networks);
#pragma omp parallel for schedule(dynamic, 1)
  for (int m = 0; m < networks; ++m) {
    const Network net(arch, x.shape, seed0 + static_cast<std::uint64_t>(m));
    const RowMatrix f = net.forward(x);
    nngp[m] = f * f.transpose() / static_cast<double>(f.cols());
    const RowMatrix J = net.jacobian(x, 0);
    ntk[m] = J * J.transpose();
  }
  return {estimate(nngp), estimate(ntk)};
}

int nonlinear_layers(const Architecture& arch) {
  int n = 0;
  for (const Layer& l : arch.layers()) n += l.kind == LayerKind::Activation ? 1 : 0;
  return n;
}

int smallest_hidden_width(const Architecture& arch) {
  int w = 1 << 30;
  const auto& layers = arch.layers();
  int last_affine = -1;
  for (int l = 0; l < static_cast<int>(layers.size()); ++l)
    if (layers[l].affine()) last_affine = l;
  for (int l = 0; l < last_affine; ++l)
    if (layers[l].affine()) w = std::min(w, layers[l].width);
  return w;
}

/// Largest |empirical − analytic| / (4·SE + A) over all entries: ≤ 1 means agreement.
double worst_ratio(const Estimate& e, const Eigen::MatrixXd& exact, double allowance) {
  double worst = 0.0;
  for (Eigen::Index i = 0; i < exact.rows(); ++i)
    for (Eigen::Index j = 0; j < exact.cols(); ++j)
      worst = std::max(worst, std::abs(e.mean(i, j) - exact(i, j)) / (4.0 * e.se(i, j) + allowance));
  return worst;
}

}  // namespace

TEST_CASE("wide networks sample the analytic NNGP and NTK") {
  struct Case {
    std::string spec;
    bool image;
    int networks;
  };
  const std::vector<Case> cases = {
      {"dense(512, w=1.4, b=0.3) relu dense(512, w=1.4, b=0.2) relu dense(64, b=0.1)", false, 300},
      {"dense(512, w=1.5, b=0.4) erf dense(512, w=1.2, b=0.2) erf dense(64, w=0.8, b=0.5)", false, 300},
      {"conv(64, 3x3, padding=same, b=0.2) relu conv(64, 3x3, padding=same, w=1.4) relu flatten dense(64, b=0.1)",
       true, 300},
      {"conv(64, 3x3, padding=circular, w=1.3, b=0.1) erf conv(64, 3x3, padding=circular) relu gap dense(64)",
       true, 300},
      {"conv(64, 3x3, padding=circular, b=0.3) relu conv(64, 2x2, padding=valid, w=1.2) erf flatten "
       "dense(64, b=0.2)",
       true, 300},
      {"conv(64, 3x3, padding=same, w=1.5) relu conv(64, 3x3, padding=circular, b=0.4) relu gap dense(64, b=0.3)",
       true, 300},
  };
  for (const Case& c : cases) {
    CAPTURE(c.spec);
    const Architecture arch = Architecture::parse(c.spec);
    const ExampleShape shape = c.image ? ExampleShape::image_hwc(6, 6, 3) : ExampleShape::vector(4);
    const Inputs x = gaussian_inputs(shape, 5, 17);
    const Kernels exact = kernels(arch, x);
    const Sampled s = sample_kernels(arch, x, c.networks, 100000);
    const double rel = 2.0 * (nonlinear_layers(arch) - 1) / smallest_hidden_width(arch);
    const double nngp_ratio = worst_ratio(s.nngp, exact.nngp, rel * exact.nngp.cwiseAbs().maxCoeff());
    const double ntk_ratio = worst_ratio(s.ntk, exact.ntk, rel * exact.ntk.cwiseAbs().maxCoeff());
    MESSAGE(c.spec << ": worst |err|/(4 SE + A): NNGP " << nngp_ratio << ", NTK " << ntk_ratio
                   << "; max SE/max|K|: NNGP " << s.nngp.se.maxCoeff() / exact.nngp.cwiseAbs().maxCoeff()
                   << ", NTK " << s.ntk.se.maxCoeff() / exact.ntk.cwiseAbs().maxCoeff());
    CHECK(nngp_ratio <= 1.0);
    CHECK(ntk_ratio <= 1.0);
    // The comparison has teeth: the estimates resolve the kernels to a few percent.
    CHECK(s.nngp.se.maxCoeff() < 0.03 * exact.nngp.cwiseAbs().maxCoeff());
    CHECK(s.ntk.se.maxCoeff() < 0.03 * exact.ntk.cwiseAbs().maxCoeff());
  }
}

TEST_CASE("without a readout the sampled pixel-pair NNGP and pixel NTK match spatial_kernels") {
  // Pixel-indexed kernels (N, N, H, W, H, W): every pixel pair of the NNGP is compared, so the
  // threshold is 5 SE (Bonferroni over the ~2·10⁴ entries: P(|z| > 5) ≈ 6·10⁻⁷ each).
  const Architecture arch =
      Architecture::parse("conv(64, 3x3, padding=same, b=0.2) relu conv(8, 3x3, padding=circular, w=1.3)");
  const ExampleShape shape = ExampleShape::image_hwc(6, 6, 2);
  const Inputs x = gaussian_inputs(shape, 4, 29);
  const SpatialKernels exact = spatial_kernels(arch, x);
  const int networks = 300, N = 4, P = 36, k = 8;
  const std::vector<Eigen::Index> probe = {0, 3 * 6 + 2};  // a corner (sees the zero padding) and an inner pixel
  std::vector<Eigen::MatrixXd> nngp(networks), ntk(networks);
#pragma omp parallel for schedule(dynamic, 1)
  for (int m = 0; m < networks; ++m) {
    const Network net(arch, shape, 500000 + static_cast<std::uint64_t>(m));
    const RowMatrix f = net.forward(x);  // row i is (P, k) row-major
    const Eigen::Map<const RowMatrix> F(f.data(), N * P, k);
    nngp[m] = F * F.transpose() / static_cast<double>(k);  // ((i,a), (j,b))
    Eigen::MatrixXd t(N, N * static_cast<Eigen::Index>(probe.size()));
    for (std::size_t q = 0; q < probe.size(); ++q) {
      const RowMatrix J = net.jacobian(x, probe[q] * k);  // channel 0 at pixel probe[q]
      t.middleCols(static_cast<Eigen::Index>(q) * N, N) = J * J.transpose();
    }
    ntk[m] = t;
  }
  const Estimate en = estimate(nngp), et = estimate(ntk);
  // One nonlinear layer: E[K̂] = K and E[Θ̂] = Θ exactly at any width (see top), no allowance.
  double max_k = 0.0;
  for (double v : exact.nngp) max_k = std::max(max_k, std::abs(v));
  double worst = 0.0;
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j)
      for (int a = 0; a < P; ++a)
        for (int b = 0; b < P; ++b) {
          const double K = exact.nngp[exact.index(i, j, a / 6, a % 6, b / 6, b % 6)];
          worst = std::max(worst, std::abs(en.mean(i * P + a, j * P + b) - K) /
                                      (5.0 * en.se(i * P + a, j * P + b)));
        }
  MESSAGE("no readout: worst |err|/(5 SE) over all pixel pairs of the NNGP: " << worst);
  CHECK(worst <= 1.0);
  double worst_t = 0.0, max_t = 0.0;
  for (std::size_t q = 0; q < probe.size(); ++q) {
    const int a = static_cast<int>(probe[q]);
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) {
        const double T = exact.ntk[exact.index(i, j, a / 6, a % 6, a / 6, a % 6)];
        const Eigen::Index col = static_cast<Eigen::Index>(q) * N + j;
        max_t = std::max(max_t, std::abs(T));
        worst_t = std::max(worst_t, std::abs(et.mean(i, col) - T) / (4.0 * et.se(i, col)));
      }
  }
  MESSAGE("no readout: worst |err|/(4 SE) of the pixel NTK: " << worst_t);
  CHECK(worst_t <= 1.0);
  CHECK(et.se.maxCoeff() < 0.03 * max_t);
  CHECK(en.se.maxCoeff() < 0.05 * max_k);
}

TEST_CASE("the empirical NTK of one network converges to Θ as the width grows") {
  // A single network's Θ̂ fluctuates around Θ with standard deviation ∝ 1/√n (its mean differs by
  // O(1/n)), so the mean relative error e(n) = E‖Θ̂ − Θ‖_F/‖Θ‖_F should fall by ≈ 2 per 4× width.
  // Asserted robustly: each decrease exceeds 4 standard errors of the difference, and the
  // log-log slope over the whole range lies in [−0.75, −0.3].
  struct Case {
    std::string pattern;  // "%" is replaced by the width
    bool image;
    std::vector<int> widths;
    int networks;
  };
  const std::vector<Case> cases = {
      {"dense(%, w=1.4, b=0.3) relu dense(%, w=1.4, b=0.2) relu dense(1)", false, {64, 256, 1024}, 24},
      {"conv(%, 3x3, padding=circular, w=1.3, b=0.1) erf conv(%, 3x3, padding=same) relu gap dense(1)", true,
       {16, 64, 256}, 24},
  };
  for (const Case& c : cases) {
    CAPTURE(c.pattern);
    const ExampleShape shape = c.image ? ExampleShape::image_hwc(6, 6, 3) : ExampleShape::vector(4);
    const Inputs x = gaussian_inputs(shape, 5, 23);
    std::vector<double> mean_err, se_err;
    for (int width : c.widths) {
      std::string spec = c.pattern;
      for (std::size_t p = spec.find('%'); p != std::string::npos; p = spec.find('%'))
        spec.replace(p, 1, std::to_string(width));
      const Architecture arch = Architecture::parse(spec);
      const Eigen::MatrixXd theta = kernels(arch, x).ntk;
      std::vector<double> err(c.networks);
#pragma omp parallel for schedule(dynamic, 1)
      for (int m = 0; m < c.networks; ++m) {
        const Network net(arch, shape, 900000 + static_cast<std::uint64_t>(m));
        const RowMatrix J = net.jacobian(x, 0);
        err[m] = (J * J.transpose() - theta).norm() / theta.norm();
      }
      double mean = 0.0, var = 0.0;
      for (double e : err) mean += e;
      mean /= c.networks;
      for (double e : err) var += (e - mean) * (e - mean);
      var /= (c.networks - 1);
      mean_err.push_back(mean);
      se_err.push_back(std::sqrt(var / c.networks));
      MESSAGE(spec << ": mean relative NTK error " << mean << " ± " << se_err.back());
    }
    for (std::size_t i = 0; i + 1 < mean_err.size(); ++i) {
      const double diff = mean_err[i] - mean_err[i + 1];
      CHECK(diff > 4.0 * std::hypot(se_err[i], se_err[i + 1]));
    }
    const double slope = std::log(mean_err.back() / mean_err.front()) /
                         std::log(static_cast<double>(c.widths.back()) / c.widths.front());
    MESSAGE("log-log slope of the NTK error against width: " << slope << " (expected −1/2)");
    CHECK(slope < -0.3);
    CHECK(slope > -0.75);
  }
}
