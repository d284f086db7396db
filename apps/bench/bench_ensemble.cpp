// Benchmark of issue 3, finite ensembles: wall time of train_ensemble (ensemble.hpp) for an MLP
// and a CNN ensemble, the same work that apps/bench/ensemble_torch.py does in PyTorch.
// apps/bench/run_ensemble_bench.sh runs both and prints the table of docs/benchmarks.md.
//
//   bench_ensemble --case mlp|cnn [--steps S] [--members M] [--threads P] [--repeat R]
//   bench_ensemble --case mlp|cnn --export DIR [--check-steps 3]
//   bench_ensemble --gemm-floor [--repeat R]
//
// --export writes the problem and our initial parameters for PyTorch to start from:
//   DIR/CASE_x.npy (N, d) or (N, H, W, C), DIR/CASE_y.npy (N, 1),
//   DIR/CASE_params.npy (M, P) in Network's parameter layout,
//   DIR/CASE_check.npy (M, 3, N, 1): predictions on the training inputs at steps 0, 1, check-steps.
// Output: RESULT case=.. impl=emergent members=.. steps=.. seconds=.. params=..
// --gemm-floor times, on one thread, the three 64 × 512 × 512 products of one MLP step (forward,
// input gradient, weight update) as Network does them: GEMM name=.. gflops=..
#include <Eigen/Dense>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/networks/ensemble.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/networks/network.hpp"
#include "emergent/data/npy.hpp"
#include "emergent/core/random.hpp"
#include "cpu_time.hpp"

namespace {

using emergent::RowMatrix;

struct Case {
  std::string spec;
  emergent::ExampleShape shape;
  int n = 64, members = 0;
  double lr = 0.5;
};

Case make_case(const std::string& name) {
  if (name == "mlp")
    return {"dense(512, b=0.1) relu dense(512, b=0.1) relu dense(1, b=0.1)", emergent::ExampleShape::vector(16), 64,
            64, 0.5};
  if (name == "cnn")
    return {"conv(32, 3x3, padding=circular, b=0.1) relu conv(32, 3x3, padding=circular, b=0.1) relu "
            "conv(32, 3x3, padding=circular, b=0.1) relu flatten dense(1, b=0.1)",
            emergent::ExampleShape::image_hwc(8, 8, 1), 64, 32, 0.5};
  std::cerr << "bench_ensemble: --case: expected mlp or cnn, got '" << name << "'\n";
  std::exit(2);
}

// Inputs: standard normal features (MLP) or Ising-like ±1 spins (CNN); targets sin(Σx)/…
void make_data(const std::string& name, const Case& c, emergent::Inputs& x, RowMatrix& y) {
  const emergent::NormalStream rng(7, name == "mlp" ? 1 : 2);
  RowMatrix m(c.n, c.shape.size());
  for (Eigen::Index i = 0; i < m.size(); ++i) {
    const double g = rng.normal(static_cast<std::uint64_t>(i));
    m.data()[i] = name == "mlp" ? g : (g < 0 ? -1.0 : 1.0);
  }
  x = emergent::Inputs(m, c.shape);
  y.resize(c.n, 1);
  for (int i = 0; i < c.n; ++i) y(i, 0) = std::tanh(m.row(i).sum() / std::sqrt(static_cast<double>(m.cols())));
}

// The rate Eigen's GEMM reaches on the hidden layer of the MLP case, the floor of any training
// loop built on it (docs/benchmarks.md, "Finite ensembles vs PyTorch").
int gemm_floor(int repeat) {
  const Eigen::Index n = 64, w = 512;
  const emergent::NormalStream rng(3, 3);
  auto normals = [&](Eigen::Index r, Eigen::Index c, std::uint64_t first) {
    RowMatrix m(r, c);
    rng.fill(m.data(), static_cast<std::uint64_t>(m.size()), first);
    return m;
  };
  const RowMatrix h = normals(n, w, 0), g = normals(n, w, 1u << 20);
  RowMatrix W = normals(w, w, 2u << 20), out(n, w), gin(n, w);
  const int reps = 2000 * std::max(repeat, 1);
  auto time = [&](const char* what, auto&& product) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) product();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("GEMM name=%s shape=%ldx%ldx%ld reps=%d seconds=%.3f gflops=%.2f\n", what, static_cast<long>(n),
                static_cast<long>(w), static_cast<long>(w), reps, s, 2.0 * n * w * w * reps / s * 1e-9);
  };
  time("forward", [&] { out.noalias() = 0.04 * h * W.transpose(); });
  time("input_gradient", [&] { gin.noalias() = 0.04 * g * W; });
  time("weight_update", [&] { W.noalias() -= 1e-9 * g.transpose() * h; });
  std::printf("checksum=%g\n", out.sum() + gin.sum() + W.sum());
  return 0;
}

}  // namespace

int run(int argc, char** argv) {
  std::string name = "mlp", export_dir;
  bool floor = false;
  int steps = 300, members = -1, threads = 2, repeat = 1, check_steps = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "bench_ensemble: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--case") name = value();
    else if (a == "--steps") steps = std::stoi(value());
    else if (a == "--members") members = std::stoi(value());
    else if (a == "--threads") threads = std::stoi(value());
    else if (a == "--repeat") repeat = std::stoi(value());
    else if (a == "--export") export_dir = value();
    else if (a == "--check-steps") check_steps = std::stoi(value());
    else if (a == "--gemm-floor") floor = true;
    else {
      std::cerr << "usage: bench_ensemble --case mlp|cnn [--steps S] [--members M] [--threads P] [--repeat R] "
                   "[--export DIR [--check-steps K]] | --gemm-floor [--repeat R]\n";
      return 2;
    }
  }
  if (floor) return gemm_floor(repeat);
  Case c = make_case(name);
  if (members > 0) c.members = members;
  const auto arch = emergent::Architecture::parse(c.spec);
  emergent::Inputs x;
  RowMatrix y;
  make_data(name, c, x, y);
  const std::uint64_t seed = 12345;

  if (!export_dir.empty()) {
    const std::string p = export_dir + "/" + name + "_";
    std::vector<std::size_t> xshape = {static_cast<std::size_t>(c.n)};
    if (c.shape.image)
      xshape.insert(xshape.end(), {static_cast<std::size_t>(c.shape.height), static_cast<std::size_t>(c.shape.width),
                                   static_cast<std::size_t>(c.shape.channels)});
    else
      xshape.push_back(static_cast<std::size_t>(c.shape.channels));
    emergent::write_npy(p + "x.npy", xshape, x.x.data());
    emergent::write_npy(p + "y.npy", {static_cast<std::size_t>(c.n), 1}, y.data());
    const emergent::Network first(arch, c.shape, emergent::member_seed(seed, 0));
    const Eigen::Index P = first.parameter_count();
    RowMatrix params(c.members, P);
    for (int m = 0; m < c.members; ++m)
      params.row(m) = emergent::Network(arch, c.shape, emergent::member_seed(seed, m)).parameters().transpose();
    emergent::write_npy(p + "params.npy", {static_cast<std::size_t>(c.members), static_cast<std::size_t>(P)},
                        params.data());
    emergent::TrainingOptions opt;
    opt.members = c.members;
    opt.steps = check_steps;
    opt.learning_rate = c.lr;
    opt.seed = seed;
    opt.checkpoints = {0, 1, check_steps};
    opt.threads = threads;
    const auto r = emergent::train_ensemble(arch, x, y, x, opt);
    emergent::write_npy(p + "check.npy", r.shape(), r.predictions.data());
    std::printf("EXPORT case=%s members=%d params=%ld lr=%g check_steps=%d spec=\"%s\"\n", name.c_str(), c.members,
                static_cast<long>(P), c.lr, check_steps, c.spec.c_str());
    return 0;
  }

  emergent::TrainingOptions opt;
  opt.members = c.members;
  opt.steps = steps;
  opt.learning_rate = c.lr;
  opt.seed = seed;
  opt.checkpoints = {steps};
  opt.threads = threads;
  double best = 1e300, best_cpu = 1e300, loss = 0;
  for (int r = 0; r < repeat; ++r) {
    const double c0 = emergent_bench::cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    const auto res = emergent::train_ensemble(arch, x, y, x, opt);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    best_cpu = std::min(best_cpu, emergent_bench::cpu_seconds() - c0);
    loss = 0;
    for (double l : res.train_loss) loss += l / c.members;
  }
  const emergent::Network first(arch, c.shape, 0);
  std::printf(
      "RESULT case=%s impl=emergent members=%d steps=%d seconds=%.4f cpu_seconds=%.4f params=%ld mean_final_loss=%.6g\n",
      name.c_str(), c.members, steps, best, best_cpu, static_cast<long>(first.parameter_count()), loss);
  return 0;
}

// One line on stderr and exit code 2 for any failure (e.g. an --export folder that does not exist).
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench_ensemble: " << e.what() << "\n";
    return 2;
  }
}
