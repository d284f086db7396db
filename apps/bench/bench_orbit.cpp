// Benchmark of the orbit-reduced solver (orbit_flow.hpp) against the dense solve on the explicit
// augmented set: mean and covariance at t = 10 and ∞, wall time including every kernel each
// route needs (the reduced route: Θ(X, ρ(u)X) blocks and test kernels; the dense route: the full
// augmented Gram matrix and test kernels).
//
// Usage: bench_orbit [--quick] [--n-c4 N] [--n-tr N] [--dense-tr N1,N2]
// Output lines: RESULT group=.. route=.. base=N augmented=|G|N kernel_s=.. solve_s=.. total_s=..
//               [rel_diff_mean=.. rel_diff_cov=..] and EXTRAPOLATED lines for dense solves that do
//               not fit in memory (O(M²) kernels, O(M³) eigendecomposition fitted to measured runs).
#include <Eigen/Dense>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"
#include "emergent/dynamics/orbit_flow.hpp"
#include "emergent/core/random.hpp"

using namespace emergent;

namespace {

const char* kSpec = "conv(16, 3x3, padding=circular) relu flatten dense(1)";

Inputs images(Eigen::Index n, std::uint64_t stream) {
  RowMatrix x(n, 64);
  const NormalStream s(2024, stream);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = s.normal(static_cast<std::uint64_t>(i));
  return Inputs(std::move(x), ExampleShape::image_hwc(8, 8, 1));
}

double rel_diff(const std::vector<Eigen::MatrixXd>& a, const std::vector<Eigen::MatrixXd>& b) {
  double d = 0, s = 0;
  for (std::size_t q = 0; q < a.size(); ++q) {
    d = std::max(d, (a[q] - b[q]).cwiseAbs().maxCoeff());
    s = std::max(s, b[q].cwiseAbs().maxCoeff());
  }
  return s > 0 ? d / s : d;
}

OrbitFlowResult run(const Representation& rho, Eigen::Index n, Eigen::Index n_test, OrbitRoute route) {
  const Architecture arch = Architecture::parse(kSpec);
  const Inputs x = images(n, 1), z = images(n_test, 2);
  RowMatrix y(n, 1);
  const NormalStream s(2024, 3);
  for (Eigen::Index i = 0; i < n; ++i) y(i, 0) = s.normal(static_cast<std::uint64_t>(i));
  OrbitFlowOptions o;
  o.route = route;
  o.flow.diag_reg = 1e-6;  // the same (absolute) regularizer for both routes
  const std::vector<double> times = {10.0, std::numeric_limits<double>::infinity()};
  const OrbitFlowResult p = predict_augmented(arch, x, y, z, rho, trivial_output(rho, 1), times, true, o);
  std::printf("RESULT group=%s route=%s base=%ld augmented=%ld test=%ld kernel_entries=%ld kernel_s=%.3f solve_s=%.3f total_s=%.3f\n",
              rho.name().c_str(), to_string(p.route), static_cast<long>(n), static_cast<long>(p.augmented_size),
              static_cast<long>(n_test), static_cast<long>(p.kernel_entries), p.kernel_seconds, p.solve_seconds,
              p.kernel_seconds + p.solve_seconds);
  std::fflush(stdout);
  return p;
}

void compare(const Representation& rho, Eigen::Index n, Eigen::Index n_test, double* dense_kernel, double* dense_solve) {
  const OrbitFlowResult f = run(rho, n, n_test, OrbitRoute::Fourier);
  const OrbitFlowResult d = run(rho, n, n_test, OrbitRoute::Dense);
  std::printf("COMPARE group=%s base=%ld speedup=%.1f rel_diff_mean=%.2e rel_diff_cov=%.2e\n", rho.name().c_str(),
              static_cast<long>(n), (d.kernel_seconds + d.solve_seconds) / (f.kernel_seconds + f.solve_seconds),
              rel_diff(f.mean, d.mean), rel_diff(f.covariance, d.covariance));
  std::fflush(stdout);
  *dense_kernel = d.kernel_seconds / static_cast<double>(d.kernel_entries);
  *dense_solve = d.solve_seconds / std::pow(static_cast<double>(d.augmented_size), 3);
}

}  // namespace

int main(int argc, char** argv) {
  long n_c4 = 1000, n_tr = 1000, n_tr_dense = 64, n_test = 50;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) n_c4 = 200, n_tr = 64, n_tr_dense = 16, n_test = 10;
    else if (!std::strcmp(argv[i], "--n-c4") && i + 1 < argc) n_c4 = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--n-tr") && i + 1 < argc) n_tr = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--n-tr-dense") && i + 1 < argc) n_tr_dense = std::atol(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_orbit [--quick] [--n-c4 N] [--n-tr N] [--n-tr-dense N]\n");
      return 2;
    }
  }
  const ExampleShape sh = ExampleShape::image_hwc(8, 8, 1);
  std::printf("SETUP spec='%s' inputs=8x8x1 N(0,1) test=%ld times=10,inf diag_reg=1e-6 outputs=mean+covariance\n",
              kSpec, n_test);
  double kc = 0, sc = 0;
  // c4: both routes at N base points (dense: 4N augmented points).
  compare(group_c4(sh), n_c4, n_test, &kc, &sc);
  // translations: dense only where it fits (|G| = 64); reduced at the full N; dense extrapolated.
  const Representation tr = group_translations(sh);
  compare(tr, n_tr_dense, n_test, &kc, &sc);
  if (n_tr > n_tr_dense) {
    const OrbitFlowResult f = run(tr, n_tr, n_test, OrbitRoute::Fourier);
    const double M = 64.0 * n_tr;
    const double entries = M * (M + 1) / 2 + n_test * M + n_test * (n_test + 1) / 2.0;
    const double dense = kc * entries + sc * M * M * M;
    std::printf("EXTRAPOLATED group=translations base=%ld augmented=%.0f dense_kernel_s=%.0f dense_solve_s=%.0f "
                "dense_total_s=%.0f dense_memory_GB=%.1f speedup=%.0f (per-entry kernel cost and c·M^3 solve fitted "
                "on the measured dense run at base=%ld)\n",
                n_tr, M, kc * entries, sc * M * M * M, dense, 3 * M * M * 8 / 1e9,
                dense / (f.kernel_seconds + f.solve_seconds), n_tr_dense);
  }
  return 0;
}
