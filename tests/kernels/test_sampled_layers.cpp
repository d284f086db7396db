// Monte Carlo check of the kernels of avgpool, layernorm and residual blocks (docs/conventions.md
// §2) against independently seeded finite networks of the same spec, as tests/kernels/
// test_sampled.cpp does for the classic layers:
//   NNGP: K(x,x') = E[f_c(x) f_c(x')], estimated per network by (1/k)·Σ_c f_c(x) f_c(x');
//   NTK:  Θ(x,x') = E[Θ̂(x,x')], Θ̂ from the Jacobian of output channel 0;
// standard errors across networks. Tolerance per entry: 4 standard errors plus the finite-width
// allowance A = 2·L·max|K|/n of test_sampled.cpp, here with L counting activations and layer
// norms (a layer norm divides by the empirical variance of n channels, a relative bias O(1/n)
// like an activation's; Yaida 2020 §3), n the smallest hidden width.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "emergent/kernels/kernel.hpp"
#include "emergent/networks/network.hpp"

using namespace emergent;

namespace {

struct Estimate {
  Eigen::MatrixXd mean, se;
};

Estimate estimate(const std::vector<Eigen::MatrixXd>& samples) {
  const double m = static_cast<double>(samples.size());
  Estimate e;
  e.mean = Eigen::MatrixXd::Zero(samples[0].rows(), samples[0].cols());
  for (const auto& s : samples) e.mean += s;
  e.mean /= m;
  Eigen::MatrixXd var = Eigen::MatrixXd::Zero(e.mean.rows(), e.mean.cols());
  for (const auto& s : samples) var += (s - e.mean).cwiseAbs2();
  e.se = (var / (m - 1.0) / m).cwiseSqrt();
  return e;
}

double worst_ratio(const Estimate& e, const Eigen::MatrixXd& exact, double allowance) {
  double worst = 0.0;
  for (Eigen::Index i = 0; i < exact.rows(); ++i)
    for (Eigen::Index j = 0; j < exact.cols(); ++j)
      worst = std::max(worst, std::abs(e.mean(i, j) - exact(i, j)) / (4.0 * e.se(i, j) + allowance));
  return worst;
}

}  // namespace

TEST_CASE("wide networks with avgpool, layernorm and residual blocks sample the analytic NNGP and NTK") {
  struct Case {
    std::string spec;
    ExampleShape shape;
    int width;  // smallest hidden width
    int nonlinear;
  };
  const ExampleShape img = ExampleShape::image_hwc(5, 4, 2);
  const std::vector<Case> cases = {
      {"dense(256, b=0.2) layernorm relu dense(256, w=1.3) residual(erf dense(256, b=0.1)) relu dense(32)",
       ExampleShape::vector(4), 256, 4},
      {"dense(256, w=1.2) residual(relu dense(256, b=0.3) layernorm) residual(relu dense(256)) erf dense(32, b=0.1)",
       ExampleShape::vector(3), 256, 4},
      {"conv(48, 3x3, b=0.2) relu avgpool(2x2, stride=2x1, padding=same) conv(48, 3x3, padding=circular) erf "
       "avgpool(2x2) flatten dense(32)",
       img, 48, 2},
      {"conv(48, 3x3) residual(relu conv(48, 3x3, padding=circular, b=0.3) layernorm) relu avgpool(3x2, "
       "padding=circular) gap dense(32, b=0.2)",
       img, 48, 3},
  };
  for (const Case& c : cases) {
    CAPTURE(c.spec);
    const Architecture arch = Architecture::parse(c.spec);
    const Inputs x = test::random_inputs(4, c.shape, 29, 8181);
    const Kernels exact = kernels(arch, x);
    const int networks = 240;
    std::vector<Eigen::MatrixXd> nngp(networks), ntk(networks);
#pragma omp parallel for schedule(dynamic, 1)
    for (int m = 0; m < networks; ++m) {
      const Network net(arch, x.shape, 300000 + static_cast<std::uint64_t>(m));
      const RowMatrix f = net.forward(x);
      nngp[m] = f * f.transpose() / static_cast<double>(f.cols());
      const RowMatrix J = net.jacobian(x, 0);
      ntk[m] = J * J.transpose();
    }
    const Estimate sk = estimate(nngp), st = estimate(ntk);
    const double rel = 2.0 * c.nonlinear / c.width;
    const double nr = worst_ratio(sk, exact.nngp, rel * test::max_abs(exact.nngp));
    const double tr = worst_ratio(st, exact.ntk, rel * test::max_abs(exact.ntk));
    MESSAGE(c.spec << ": worst |err|/(4 SE + A): NNGP " << nr << ", NTK " << tr << "; max SE/max|K|: NNGP "
                   << sk.se.maxCoeff() / test::max_abs(exact.nngp) << ", NTK " << st.se.maxCoeff() / test::max_abs(exact.ntk));
    CHECK(nr <= 1.0);
    CHECK(tr <= 1.0);
    // The comparison has teeth: the estimates resolve the kernels to a few percent …
    CHECK(sk.se.maxCoeff() < 0.05 * test::max_abs(exact.nngp));
    CHECK(st.se.maxCoeff() < 0.05 * test::max_abs(exact.ntk));
    // … and a kernel without the new layer's contribution is rejected: dropping the shortcut
    // (x + block(x) → block(x)), the normalisation or the pooling changes the kernel beyond the
    // tolerance. The control spec removes the first "residual(", "layernorm" or "avgpool(…)".
    std::string control = c.spec;
    if (auto p = control.find("residual("); p != std::string::npos) {
      int depth = 0;
      std::size_t q = p + 9;
      for (; q < control.size(); ++q) {
        if (control[q] == '(') ++depth;
        if (control[q] == ')' && depth-- == 0) break;
      }
      control = control.substr(0, p) + control.substr(p + 9, q - p - 9) + control.substr(q + 1);
    } else if (auto a = control.find("avgpool("); a != std::string::npos) {
      control.erase(a, control.find(')', a) - a + 2);
    }
    CAPTURE(control);
    const Kernels wrong = kernels(Architecture::parse(control), x);
    CHECK(worst_ratio(sk, wrong.nngp, rel * test::max_abs(exact.nngp)) > 1.0);
  }
}
