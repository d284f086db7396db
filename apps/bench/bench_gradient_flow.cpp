// Benchmark of issue 3, closed form: the whole GradientFlow query (construct + mean +
// covariance at many times) against its floor, one eigendecomposition of the N×N Gram matrix
// with Eigen's SelfAdjointEigenSolver, measured in the same run on the same matrix.
// The kernels (a relu MLP's NNGP and NTK on random data) are computed first, outside the timing.
//
//   bench_gradient_flow [--n 4000] [--test 200] [--times 50] [--repeat 1] [--threads 2]
//
// Output: machine-readable lines
//   RESULT impl=.. n=.. test=.. times=.. seconds=..
//   PROFILE step=.. seconds=..
#include <Eigen/Dense>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <limits>
#include <iostream>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/core/random.hpp"
#include "emergent/data/npy.hpp"
#include "cpu_time.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

emergent::RowMatrix normals(Eigen::Index rows, Eigen::Index cols, std::uint64_t stream) {
  const emergent::NormalStream rng(2024, stream);
  emergent::RowMatrix m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = rng.normal(static_cast<std::uint64_t>(i));
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  Eigen::Index n = 4000, n_test = 200;
  int n_times = 50, repeat = 1, threads = 2, d = 32;
  bool eigen_floor = true;
  std::string dump;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> long {
      if (i + 1 >= argc) {
        std::cerr << "bench_gradient_flow: " << a << " needs a value\n";
        std::exit(2);
      }
      return std::atol(argv[++i]);
    };
    if (a == "--n") n = next();
    else if (a == "--test") n_test = next();
    else if (a == "--times") n_times = static_cast<int>(next());
    else if (a == "--repeat") repeat = static_cast<int>(next());
    else if (a == "--threads") threads = static_cast<int>(next());
    else if (a == "--no-eigen") eigen_floor = false;  // skip Eigen's SelfAdjointEigenSolver (slow at large N)
    else if (a == "--dump" && i + 1 < argc) dump = argv[++i];  // Θ(X,X) as .npy, for numpy's eigh
    else {
      std::cerr << "usage: bench_gradient_flow [--n N] [--test T] [--times K] [--repeat R] [--threads P]\n";
      return 2;
    }
  }
  omp_set_num_threads(threads);
  const auto arch = emergent::Architecture::parse("dense(512, b=0.1) relu dense(512, b=0.1) relu dense(1)");
  const emergent::Inputs x(normals(n, d, 1), emergent::ExampleShape::vector(d));
  const emergent::Inputs z(normals(n_test, d, 2), emergent::ExampleShape::vector(d));
  emergent::KernelOptions kopt;
  kopt.threads = threads;
  auto t0 = Clock::now();
  const emergent::Kernels kxx = emergent::kernels(arch, x, kopt);
  const emergent::Kernels kzx = emergent::kernels(arch, z, x, kopt);
  const emergent::Kernels kzz = emergent::kernels(arch, z, kopt);
  std::printf("PROFILE step=kernels_not_timed seconds=%.3f\n", since(t0));
  if (!dump.empty()) emergent::write_npy(dump, {static_cast<std::size_t>(n), static_cast<std::size_t>(n)}, kxx.ntk.data());
  Eigen::MatrixXd y(n, 1);
  for (Eigen::Index i = 0; i < n; ++i) y(i, 0) = std::sin(x.x.row(i).sum());
  std::vector<double> times(static_cast<std::size_t>(n_times));
  for (int i = 0; i < n_times; ++i) times[static_cast<std::size_t>(i)] = std::pow(10.0, -1.0 + 6.0 * i / (n_times - 1));
  times.back() = std::numeric_limits<double>::infinity();

  double best_eig = 1e300, best_flow = 1e300, cpu_eig = 1e300, cpu_flow = 1e300, checksum = 0;
  double best_own_eig = 1e300, cpu_own_eig = 1e300;
  for (int r = 0; r < repeat; ++r) {
    // The floor: one eigendecomposition (eigenvalues and eigenvectors) of Θ(X,X).
    double c0 = emergent_bench::cpu_seconds();
    if (eigen_floor) {
      t0 = Clock::now();
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(kxx.ntk);
      const double t_eig = since(t0);
      cpu_eig = std::min(cpu_eig, emergent_bench::cpu_seconds() - c0);
      checksum += eig.eigenvalues()(n - 1);
      best_eig = std::min(best_eig, t_eig);
      std::printf("PROFILE step=eigen_selfadjoint_eigensolver seconds=%.3f\n", t_eig);
    }

    emergent::GradientFlowOptions gopt;
    gopt.threads = threads;
    // Our eigendecomposition alone: the constructor without K(X,X) is the LAPACK eigensolver plus
    // O(N²) input checks and VᵀY (2·N²·k flops), so this is the like-for-like of numpy's eigh.
    c0 = emergent_bench::cpu_seconds();
    t0 = Clock::now();
    {
      const emergent::GradientFlow eig_only(kxx.ntk, Eigen::MatrixXd(), y, gopt);
      checksum += eig_only.summary().max_eigenvalue;
    }
    const double t_eig_only = since(t0), cpu_eig_only = emergent_bench::cpu_seconds() - c0;
    best_own_eig = std::min(best_own_eig, t_eig_only);
    cpu_own_eig = std::min(cpu_own_eig, cpu_eig_only);
    std::printf("PROFILE step=construct_without_nngp_eigendecomposition_alone seconds=%.3f cpu_seconds=%.3f\n",
                t_eig_only, cpu_eig_only);
    c0 = emergent_bench::cpu_seconds();
    t0 = Clock::now();
    const emergent::GradientFlow flow(kxx.ntk, kxx.nngp, y, gopt);
    const double t_ctor = since(t0);
    auto t1 = Clock::now();
    const auto mean = flow.mean(times, kzx.ntk);
    const double t_mean = since(t1);
    t1 = Clock::now();
    const auto cov = flow.covariance(times, kzx.ntk, kzx.nngp, kzz.nngp);
    const double t_cov = since(t1);
    const double t_flow = since(t0);
    cpu_flow = std::min(cpu_flow, emergent_bench::cpu_seconds() - c0);
    checksum += mean.back()(0, 0) + cov.back()(0, 0);
    best_flow = std::min(best_flow, t_flow);
    std::printf("PROFILE step=construct_incl_lapack_eigensolver seconds=%.3f\nPROFILE step=mean seconds=%.3f\nPROFILE step=covariance seconds=%.3f\n",
                t_ctor, t_mean, t_cov);
    std::printf("PROFILE status=\"%s\"\n", flow.summary().to_string().c_str());
    std::printf("PROFILE covariance_factor=\"%s\"\n", flow.covariance_factor().to_string().c_str());
  }
  if (eigen_floor)  // with --no-eigen there is no Eigen run to report (not a sentinel time)
    std::printf("RESULT impl=eigen_selfadjoint n=%ld test=%ld times=%d seconds=%.3f cpu_seconds=%.3f\n",
                static_cast<long>(n), static_cast<long>(n_test), n_times, best_eig, cpu_eig);
  std::printf("RESULT impl=own_eigendecomposition n=%ld seconds=%.3f cpu_seconds=%.3f\n", static_cast<long>(n),
              best_own_eig, cpu_own_eig);
  std::printf("RESULT impl=gradient_flow n=%ld test=%ld times=%d seconds=%.3f cpu_seconds=%.3f\n",
              static_cast<long>(n), static_cast<long>(n_test), n_times, best_flow, cpu_flow);
  if (eigen_floor) std::printf("RESULT impl=ratio value=%.3f\n", best_flow / best_eig);
  std::fprintf(stderr, "checksum %g\n", checksum);
  return 0;
}
