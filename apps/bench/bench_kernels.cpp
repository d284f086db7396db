// Benchmark of issue 2: Gram-matrix entries per second (NNGP and NTK together) of the analytic
// kernels for four architectures, with the floor of case (a) (one x·xᵀ GEMM in Eigen plus one
// pass over the Gram matrix) and sub-step timings that locate where the time goes.
// The numpy baseline is apps/bench/kernels_numpy.py; apps/bench/run_kernel_bench.sh runs both
// and prints the table of docs/benchmarks.md.
//
// Output: machine-readable lines
//   RESULT case=.. impl=.. n=.. entries=.. seconds=.. eps=.. [note=..]
//   PROFILE key=value ...
// and, with --write-cases DIR, DIR/cases.tsv plus small check instances (inputs and our
// kernels as .npy) that kernels_numpy.py recomputes independently.
#include <Eigen/Dense>

#include "cpu_time.hpp"
#include <dlfcn.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "emergent/kernels/activation_dual.hpp"
#include "cpu_time.hpp"
#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/data/npy.hpp"

namespace {

using emergent::Architecture;
using emergent::ExampleShape;
using emergent::Inputs;
using emergent::RowMatrix;

// One benchmark case: the spec, the number of inputs and their shape.
struct Case {
  std::string name;
  std::string spec;
  Eigen::Index n = 0;
  ExampleShape shape;
  std::string what;  // human description for the table
};

const char* kMlp = "dense(512) relu dense(512) relu dense(512) relu dense(1)";
const char* kCnnFlatten = "conv(64, 3x3) relu conv(64, 3x3) relu conv(64, 3x3) relu flatten dense(1)";
const char* kCnnGapCircular =
    "conv(64, 3x3, padding=circular) relu conv(64, 3x3, padding=circular) relu "
    "conv(64, 3x3, padding=circular) relu gap dense(1)";
const char* kCnnGap = "conv(64, 3x3) relu conv(64, 3x3) relu conv(64, 3x3) relu gap dense(1)";

std::vector<Case> bench_cases(bool quick) {
  return {
      {"a", kMlp, quick ? 600 : 3000, ExampleShape::vector(784), "MLP depth 3 ReLU, 784 features"},
      {"b", kCnnFlatten, quick ? 60 : 1000, ExampleShape::image_hwc(28, 28, 1), "CNN 3x conv3x3 same + flatten, 28x28x1"},
      {"c", kCnnGapCircular, 48, ExampleShape::image_hwc(8, 8, 1), "CNN 3x conv3x3 circular + GAP, 8x8x1"},
      {"d", kCnnGap, quick ? 6 : 32, ExampleShape::image_hwc(28, 28, 1), "CNN 3x conv3x3 same + GAP, 28x28x1"},
  };
}

// The same specs without activations: the difference in time is the activation (dual) cost.
std::string without_activations(const std::string& spec) {
  std::string out;
  std::size_t pos = 0;
  while (pos < spec.size()) {
    std::size_t next = spec.find(" relu", pos);
    if (next == std::string::npos) {
      out += spec.substr(pos);
      break;
    }
    out += spec.substr(pos, next - pos);
    pos = next + 5;
  }
  return out;
}

Inputs random_inputs(Eigen::Index n, const ExampleShape& shape, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  RowMatrix x(n, shape.size());
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    for (Eigen::Index j = 0; j < x.cols(); ++j) x(i, j) = normal(gen);
  return Inputs(std::move(x), shape);
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU seconds (all threads) of the run best_of() reported last.
double g_best_cpu = 0;

// Best (smallest) wall time of `reps` runs: the least disturbed by other load.
double best_of(int reps, const std::function<void()>& f) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now(), c0 = emergent_bench::cpu_seconds();
    f();
    const double t = now() - t0;
    if (t < best) best = t, g_best_cpu = emergent_bench::cpu_seconds() - c0;
  }
  return best;
}

void result(const std::string& c, const std::string& impl, Eigen::Index n, double entries, double seconds,
            const std::string& note = "") {
  std::printf("RESULT case=%s impl=%s n=%lld entries=%.0f seconds=%.6g cpu=%.6g eps=%.6g%s%s\n", c.c_str(),
              impl.c_str(), static_cast<long long>(n), entries, seconds, g_best_cpu, entries / seconds,
              note.empty() ? "" : " note=", note.c_str());
  std::fflush(stdout);
}

// ---- the floor of case (a) -------------------------------------------------------------------

// x·xᵀ with Eigen on `threads` threads (this executable is not built with EIGEN_DONT_PARALLELIZE).
double time_gemm(const Inputs& x, int threads, int reps, Eigen::MatrixXd& g) {
  Eigen::setNbThreads(threads);
  g.resize(x.count(), x.count());
  return best_of(reps, [&] { g.noalias() = x.x * x.x.transpose(); });
}

// One read-modify-write pass over the N×N matrix (what any elementwise recursion costs at least).
double time_pass(Eigen::MatrixXd& g, int threads, int reps) {
  const Eigen::Index n = g.size();
  double* p = g.data();
  return best_of(reps, [&] {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (Eigen::Index k = 0; k < n; ++k) p[k] = 0.5 * p[k] + 1e-3;
  });
}

// ---- sub-step profile ---------------------------------------------------------------------------

// The relu dual of lib/core/activation.cpp reduced to its arithmetic (no validation/clamping):
// what one evaluation costs at least with libm's sqrt and atan2.
struct BareRelu {
  double nngp, scale;
};
inline BareRelu bare_relu(double q1, double q2, double c) {
  constexpr double kPi = 3.14159265358979323846, kInv2Pi = 0.15915494309189533577;
  const double det = std::fmax(0.0, q1 * q2 - c * c);
  const double s = std::sqrt(det);
  const double theta = std::atan2(s, c);
  return {(s + (kPi - theta) * c) * kInv2Pi, (kPi - theta) * kInv2Pi};
}

// ns per call of the library relu dual and of the bare formula, one thread, on (q1, q2, c)
// triples spread over all angles.
void profile_relu_dual() {
  const int m = 1 << 20;
  std::vector<double> q1(m), q2(m), c(m);
  std::mt19937_64 gen(7);
  std::uniform_real_distribution<double> u(0.1, 2.0), r(-1.0, 1.0);
  for (int k = 0; k < m; ++k) {
    q1[k] = u(gen);
    q2[k] = u(gen);
    c[k] = r(gen) * std::sqrt(q1[k] * q2[k]);
  }
  const emergent::ActivationDual dual(emergent::Activation::relu());
  double sink = 0;
  const double t_lib = best_of(3, [&] {
    for (int k = 0; k < m; ++k) {
      const auto v = dual(q1[k], q2[k], c[k]);
      sink += v.nngp + v.ntk_scale;
    }
  });
  const double t_bare = best_of(3, [&] {
    for (int k = 0; k < m; ++k) {
      const auto v = bare_relu(q1[k], q2[k], c[k]);
      sink += v.nngp + v.scale;
    }
  });
  const double t_atan2 = best_of(3, [&] {
    for (int k = 0; k < m; ++k) sink += std::atan2(q1[k], c[k]);
  });
  // The same relu dual over arrays with glibc's vector atan2 (libmvec, glibc ≥ 2.35, AVX-512
  // 8 lanes), looked up at run time so that nothing changes in the build: what a batched,
  // vectorized dual could cost per entry.
  double t_vec = -1;
#if defined(__AVX512F__)
  using VecAtan2 = __m512d (*)(__m512d, __m512d);
  void* mvec = dlopen("libmvec.so.1", RTLD_NOW);
  auto vatan2 = mvec ? reinterpret_cast<VecAtan2>(dlsym(mvec, "_ZGVeN8vv_atan2")) : nullptr;
  if (vatan2) {
    std::vector<double> out_s(m), out_t(m);
    const __m512d zero = _mm512_setzero_pd(), pi = _mm512_set1_pd(3.14159265358979323846),
                  inv2pi = _mm512_set1_pd(0.15915494309189533577);
    t_vec = best_of(3, [&] {
      for (int k = 0; k + 8 <= m; k += 8) {
        const __m512d a = _mm512_loadu_pd(&q1[k]), b = _mm512_loadu_pd(&q2[k]), cc = _mm512_loadu_pd(&c[k]);
        const __m512d det = _mm512_max_pd(zero, _mm512_fmsub_pd(a, b, _mm512_mul_pd(cc, cc)));
        const __m512d sq = _mm512_sqrt_pd(det);
        const __m512d pt = _mm512_sub_pd(pi, vatan2(sq, cc));
        _mm512_storeu_pd(&out_s[k], _mm512_mul_pd(_mm512_fmadd_pd(pt, cc, sq), inv2pi));
        _mm512_storeu_pd(&out_t[k], _mm512_mul_pd(pt, inv2pi));
      }
    });
    double err = 0;  // agreement with the library dual (max relative difference)
    for (int k = 0; k < m; k += 97) {
      const auto v = dual(q1[k], q2[k], c[k]);
      err = std::max({err, std::fabs(out_s[k] - v.nngp) / std::fabs(v.nngp),
                      std::fabs(out_t[k] - v.ntk_scale) / std::fabs(v.ntk_scale)});
    }
    std::printf("PROFILE step=relu_dual_libmvec ns=%.2f max_rel_vs_lib=%.2g\n", 1e9 * t_vec / m, err);
  }
#endif
  if (t_vec < 0) std::printf("PROFILE step=relu_dual_libmvec unavailable\n");
  std::printf("PROFILE step=relu_dual lib_ns=%.2f bare_ns=%.2f atan2_ns=%.2f checksum=%.3g\n", 1e9 * t_lib / m,
              1e9 * t_bare / m, 1e9 * t_atan2 / m, sink);
  std::fflush(stdout);
}

// Number of relu dual evaluations the library performs for a case (from kernel.cpp's plan:
// per-point records, then one triangle of pairs; the vector path computes whole 256×256 tiles).
double dual_calls(const Case& c, const emergent::KernelSummary& s) {
  const double n = static_cast<double>(c.n), pairs = n * (n + 1) / 2;
  const double layers = 3;
  if (c.name == "a") {
    const double B = static_cast<double>(s.block_size), nb = std::ceil(n / B);
    double tiled = 0;  // entries in tiles (bi ≤ bj), each tile fully computed
    for (double bi = 0; bi < nb; ++bi)
      for (double bj = bi; bj < nb; ++bj)
        tiled += std::min(B, n - bi * B) * std::min(B, n - bj * B);
    return layers * (tiled + n);
  }
  const double P = c.shape.pixels();
  if (c.name == "b") return layers * (pairs * P + n * P);
  return layers * ((pairs + n) * P * P + n * P);  // gap: records pass recomputes the n self-pairs
}

// ---- check instances ----------------------------------------------------------------------------

struct CheckCase {
  std::string name, spec;
  Eigen::Index n;
  ExampleShape shape;
};

std::vector<CheckCase> check_cases() {
  // Each benchmark architecture, plus a variant with W ≠ 1 and B ≠ 0 that exercises every term
  // of docs/conventions.md §2 (W², B² in Σ' and Θ').
  const std::string wb = ", w=1.3, b=0.2)";
  return {
      {"a", kMlp, 24, ExampleShape::vector(784)},
      {"a_wb", "dense(8, w=1.3, b=0.2) relu dense(8, w=1.3, b=0.2) relu dense(8, w=1.3, b=0.2) relu dense(1, w=0.9, b=0.3)",
       24, ExampleShape::vector(784)},
      {"b", kCnnFlatten, 6, ExampleShape::image_hwc(28, 28, 1)},
      {"b_wb",
       "conv(4, 3x3, w=1.3, b=0.2) relu conv(4, 3x3, w=1.3, b=0.2) relu conv(4, 3x3, w=1.3, b=0.2) relu flatten "
       "dense(1, w=0.9, b=0.3)",
       6, ExampleShape::image_hwc(28, 28, 1)},
      {"c", kCnnGapCircular, 8, ExampleShape::image_hwc(8, 8, 1)},
      {"c_wb",
       "conv(4, 3x3, padding=circular, w=1.3, b=0.2) relu conv(4, 3x3, padding=circular, w=1.3, b=0.2) relu "
       "conv(4, 3x3, padding=circular, w=1.3, b=0.2) relu gap dense(1, w=0.9, b=0.3)",
       8, ExampleShape::image_hwc(8, 8, 2)},
      {"d", kCnnGap, 3, ExampleShape::image_hwc(28, 28, 1)},
      {"d_wb",
       "conv(4, 3x3, w=1.3, b=0.2) relu conv(4, 3x3, w=1.3, b=0.2) relu conv(4, 3x3, w=1.3, b=0.2) relu gap "
       "dense(1, w=0.9, b=0.3)",
       4, ExampleShape::image_hwc(12, 10, 2)},
  };
}

std::vector<std::size_t> numpy_shape(Eigen::Index n, const ExampleShape& s) {
  if (!s.image) return {static_cast<std::size_t>(n), static_cast<std::size_t>(s.channels)};
  return {static_cast<std::size_t>(n), static_cast<std::size_t>(s.height), static_cast<std::size_t>(s.width),
          static_cast<std::size_t>(s.channels)};
}

void write_cases(const std::string& dir, const std::vector<Case>& cases, int threads) {
  std::ofstream tsv(dir + "/cases.tsv");
  if (!tsv) throw std::runtime_error("--write-cases: cannot write " + dir + "/cases.tsv");
  for (const auto& c : cases) {
    tsv << "bench\t" << c.name << "\t" << c.spec << "\t" << c.n;
    const auto shape = numpy_shape(c.n, c.shape);
    for (std::size_t k = 1; k < shape.size(); ++k) tsv << "\t" << shape[k];
    tsv << "\n";
  }
  emergent::KernelOptions opt;
  opt.threads = threads;
  std::uint64_t seed = 100;
  for (const auto& c : check_cases()) {
    const Inputs x = random_inputs(c.n, c.shape, seed++);
    const auto k = emergent::kernels(Architecture::parse(c.spec), x, opt);
    const std::string base = dir + "/check_" + c.name;
    emergent::write_npy(base + "_x.npy", numpy_shape(c.n, c.shape), x.x.data());
    // Eigen matrices are column-major; the Gram matrices are symmetric, so the bytes are the same.
    emergent::write_npy(base + "_nngp.npy", {static_cast<std::size_t>(c.n), static_cast<std::size_t>(c.n)},
                        k.nngp.data());
    emergent::write_npy(base + "_ntk.npy", {static_cast<std::size_t>(c.n), static_cast<std::size_t>(c.n)},
                        k.ntk.data());
    tsv << "check\t" << c.name << "\t" << c.spec << "\t" << base << "\n";
  }
}

int usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s [--threads N] [--cases abcd] [--quick] [--reps R] [--profile] [--write-cases DIR]\n"
               "  --threads N        threads for our kernels and Eigen's GEMM (default 2)\n"
               "  --cases abcd       which cases to time (default abcd)\n"
               "  --quick            small sizes (smoke test of the script)\n"
               "  --reps R           repetitions of the short timings; the best is reported (default 3)\n"
               "  --profile          sub-step timings (dual cost, runs without activations)\n"
               "  --write-cases DIR  write cases.tsv and the check instances for kernels_numpy.py\n",
               prog);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 3;
  bool quick = false, profile = false;
  std::string which = "abcd", cases_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + ": expected a value");
      return argv[++i];
    };
    try {
      if (a == "--threads") threads = std::stoi(value());
      else if (a == "--reps") reps = std::stoi(value());
      else if (a == "--cases") which = value();
      else if (a == "--quick") quick = true;
      else if (a == "--profile") profile = true;
      else if (a == "--write-cases") cases_dir = value();
      else return usage(argv[0]);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_kernels: %s\n", e.what());
      return usage(argv[0]);
    }
  }
  if (threads < 1 || reps < 1) return usage(argv[0]);

  const auto cases = bench_cases(quick);
  try {
    if (!cases_dir.empty()) {
      write_cases(cases_dir, cases, threads);
      return 0;
    }
    std::printf("INFO threads=%d eigen_threads_for_gemm=%d omp_max_threads=%d quick=%d\n", threads, threads,
                omp_get_max_threads(), quick ? 1 : 0);
    emergent::KernelOptions opt;
    opt.threads = threads;
    if (profile) profile_relu_dual();
    for (const auto& c : cases) {
      if (which.find(c.name) == std::string::npos) continue;
      const Architecture arch = Architecture::parse(c.spec);
      const Inputs x = random_inputs(c.n, c.shape, 1);
      const double entries = static_cast<double>(c.n) * static_cast<double>(c.n);
      // Long cases run once; short ones `reps` times (best reported).
      const int r = (c.name == "b" || c.name == "d") ? 1 : (c.name == "c" ? 2 * reps + 1 : reps);
      emergent::KernelSummary summary;
      const double t = best_of(r, [&] { summary = emergent::kernels(arch, x, opt).summary; });
      result(c.name, "emergent", c.n, entries, t, "best_of_" + std::to_string(r));
      std::printf("INFO case=%s summary=\"%s\"\n", c.name.c_str(), summary.to_string().c_str());
      if (c.name == "a") {
        Eigen::MatrixXd g;
        const double t_gemm = time_gemm(x, threads, reps, g);
        const double t_pass = time_pass(g, threads, reps);
        result("a", "eigen_gemm", c.n, entries, t_gemm, "x*x^T_3000x784");
        result("a", "matrix_pass", c.n, entries, t_pass, "one_rmw_pass_over_NxN");
        std::printf("PROFILE step=floor case=a n=%lld gemm_s=%.6g pass_s=%.6g target_s=%.6g ratio_to_floor=%.3g\n", static_cast<long long>(c.n), t_gemm,
                    t_pass, 3 * (t_gemm + t_pass), t / (t_gemm + t_pass));
      }
      if (profile) {
        // Same inputs, same spec without activations: what is left is input GEMM, conv sums,
        // readout and bookkeeping. The difference is the cost of the dual evaluations.
        const Architecture bare = Architecture::parse(without_activations(c.spec));
        const double t_bare = best_of(r, [&] { emergent::kernels(bare, x, opt); });
        // Each dual call is one entry of Σ and Θ after an activation; in the CNNs the same number
        // of entries (per layer, for Σ and for Θ) goes through a conv window sum.
        const double calls = dual_calls(c, summary);
        const double conv_entries = c.name == "a" ? 0.0 : 2.0 * calls;
        std::printf(
            "PROFILE step=split case=%s n=%lld full_s=%.6g no_activation_s=%.6g activation_share=%.3f "
            "dual_calls=%.4g ns_per_dual_per_thread=%.3g ns_per_conv_entry_per_thread=%.3g\n",
            c.name.c_str(), static_cast<long long>(c.n), t, t_bare, 1.0 - t_bare / t, calls,
            1e9 * (t - t_bare) * threads / calls, conv_entries > 0 ? 1e9 * t_bare * threads / conv_entries : 0.0);
      }
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_kernels: %s\n", e.what());
    return 1;
  }
  return 0;
}
