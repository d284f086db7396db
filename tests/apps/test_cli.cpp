// The `emergent` command line run as a user runs it: files in, files out, exit codes and the
// one-line error contract of docs/conventions.md §4. The binary's path comes after `--` on our command
// line (tests/meson.build), so this test has its own main.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/data/npy.hpp"

#include <nlohmann/json.hpp>

#include "support/cli_harness.hpp"

namespace fs = std::filesystem;
using namespace emergent::test::cli;

namespace {

// Deterministic, pairwise distinct test inputs.
std::vector<double> pattern(std::size_t n, double phase) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::sin(1.37 * static_cast<double>(i) + phase) + 0.1 * std::cos(0.29 * static_cast<double>(i * i));
  return v;
}

std::string write_input(const std::string& name, const std::vector<std::size_t>& shape, double phase) {
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  const std::string path = (g_dir / name).string();
  emergent::write_npy(path, shape, pattern(n, phase).data());
  return path;
}

emergent::Inputs inputs_of(const std::string& path) {
  emergent::NpyArray a = emergent::read_npy(path);
  return emergent::make_inputs(a.shape, std::move(a.data));
}

emergent::NpyArray output(const std::string& path) { return emergent::read_npy(path); }

double max_rel_diff(const std::vector<double>& a, const double* b, std::size_t n) {
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  return worst;
}

// Element (i, j) of a C-order (N1, N2) array.
double at(const emergent::NpyArray& a, std::size_t i, std::size_t j) { return a.data[i * a.shape[1] + j]; }

std::vector<double> row_major(const Eigen::MatrixXd& m) {
  std::vector<double> v;
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) v.push_back(m(i, j));
  return v;
}

void check_success(const Run& r) {
  CAPTURE(r.err);
  CHECK(r.code == 0);
  CHECK(one_line(r.err));
  CHECK(r.err.rfind("kernel: ", 0) == 0);
  CHECK(contains(r.err, "peak"));
}

// Bad input: exit code 2 and exactly one line on stderr, "emergent kernel: error: ...".
void check_input_error(const Run& r, const std::vector<std::string>& needles_any) {
  CAPTURE(r.err);
  CHECK(r.code == 2);
  CHECK(one_line(r.err));
  CHECK(r.err.rfind("emergent kernel: error: ", 0) == 0);
  CHECK(!contains(r.err, "terminate"));
  bool any = needles_any.empty();
  for (const auto& n : needles_any) any = any || contains(r.err, n);
  CHECK(any);
}

}  // namespace

TEST_CASE("kernel on vectors: symmetric for x1 alone, equal to emergent::kernels in-process") {
  const std::string spec = "dense(16, w=1.5, b=0.1) relu dense(1, w=0.9, b=0.05)";
  const std::string x1 = write_input("v_x1.npy", {6, 3}, 0.0);
  const std::string x2 = write_input("v_x2.npy", {4, 3}, 0.7);
  const std::string K = (g_dir / "v_K.npy").string(), T = (g_dir / "v_T.npy").string();
  check_success(run("kernel --arch " + quote(spec) + " --x1 " + quote(x1) + " --nngp " + quote(K) + " --ntk " + quote(T)));

  const auto arch = emergent::Architecture::parse(spec);
  const emergent::Kernels ref = emergent::kernels(arch, inputs_of(x1));
  const auto k = output(K), t = output(T);
  REQUIRE(k.shape == std::vector<std::size_t>{6, 6});
  REQUIRE(t.shape == std::vector<std::size_t>{6, 6});
  for (std::size_t i = 0; i < 6; ++i)
    for (std::size_t j = 0; j < 6; ++j) {
      CHECK(at(k, i, j) == at(k, j, i));
      CHECK(at(t, i, j) == at(t, j, i));
    }
  CHECK(max_rel_diff(k.data, row_major(ref.nngp).data(), 36) <= 1e-12);
  CHECK(max_rel_diff(t.data, row_major(ref.ntk).data(), 36) <= 1e-12);

  // Cross kernel (6, 4): equal to the in-process result and to the off-diagonal block of the
  // symmetric kernel of the stacked inputs (a Gram matrix is a function of pairs only).
  const std::string K12 = (g_dir / "v_K12.npy").string(), T12 = (g_dir / "v_T12.npy").string();
  check_success(run("kernel --arch " + quote(spec) + " --x1 " + quote(x1) + " --x2 " + quote(x2) + " --nngp " +
                    quote(K12) + " --ntk " + quote(T12) + " --memory-cap 64M --threads 1"));
  const emergent::Kernels ref12 = emergent::kernels(arch, inputs_of(x1), inputs_of(x2));
  const auto k12 = output(K12), t12 = output(T12);
  REQUIRE(k12.shape == std::vector<std::size_t>{6, 4});
  CHECK(max_rel_diff(k12.data, row_major(ref12.nngp).data(), 24) <= 1e-12);
  CHECK(max_rel_diff(t12.data, row_major(ref12.ntk).data(), 24) <= 1e-12);

  std::vector<double> stacked = emergent::read_npy(x1).data, b = emergent::read_npy(x2).data;
  stacked.insert(stacked.end(), b.begin(), b.end());
  const std::string xs = (g_dir / "v_stack.npy").string();
  emergent::write_npy(xs, {10, 3}, stacked.data());
  const std::string Ks = (g_dir / "v_Ks.npy").string();
  const Run quiet = run("kernel --arch " + quote(spec) + " --x1 " + quote(xs) + " --nngp " + quote(Ks) + " -q");
  CHECK(quiet.code == 0);
  CHECK(quiet.err.empty());
  const auto ks = output(Ks);
  REQUIRE(ks.shape == std::vector<std::size_t>{10, 10});
  for (std::size_t i = 0; i < 6; ++i)
    for (std::size_t j = 0; j < 4; ++j) CHECK(std::abs(at(ks, i, 6 + j) - at(k12, i, j)) <= 1e-12 * std::max(1.0, std::abs(at(k12, i, j))));
}

TEST_CASE("kernel of a linear network matches the dense recursion of docs/conventions.md §2") {
  // Σ¹ = W1²·x·x'/d + B1², Θ¹ = Σ¹;  Σ² = W2²Σ¹ + B2², Θ² = Σ² + W2²Θ¹.
  const std::string x1 = write_input("lin_x1.npy", {5, 4}, 0.3);
  const std::string x2 = write_input("lin_x2.npy", {3, 4}, 1.1);
  const std::string K = (g_dir / "lin_K.npy").string(), T = (g_dir / "lin_T.npy").string();
  check_success(run("kernel --arch 'dense(7, w=1.5, b=0.2) dense(2, w=0.8, b=0.3)' --x1 " + quote(x1) + " --x2 " +
                    quote(x2) + " --nngp " + quote(K) + " --ntk " + quote(T)));
  const auto a = emergent::read_npy(x1), b = emergent::read_npy(x2), k = output(K), t = output(T);
  REQUIRE(k.shape == std::vector<std::size_t>{5, 3});
  REQUIRE(t.shape == std::vector<std::size_t>{5, 3});
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      double dot = 0;
      for (std::size_t c = 0; c < 4; ++c) dot += a.data[i * 4 + c] * b.data[j * 4 + c];
      const double s1 = 2.25 * dot / 4 + 0.04, t1 = s1;
      const double s2 = 0.64 * s1 + 0.09, t2 = s2 + 0.64 * t1;
      CHECK(at(k, i, j) == doctest::Approx(s2).epsilon(1e-13));
      CHECK(at(t, i, j) == doctest::Approx(t2).epsilon(1e-13));
    }
}

TEST_CASE("kernel on images: (N1, N2) with a readout, translation invariant with circular padding") {
  const std::string spec = "conv(8, 3x3, padding=circular, w=1.3, b=0.1) relu flatten dense(1)";
  const std::vector<std::size_t> shape = {3, 4, 5, 2};
  const std::string x1 = write_input("i_x1.npy", shape, 0.2);
  const std::string K = (g_dir / "i_K.npy").string(), T = (g_dir / "i_T.npy").string();
  check_success(run("kernel --arch " + quote(spec) + " --x1 " + quote(x1) + " --nngp " + quote(K) + " --ntk " + quote(T)));
  const auto arch = emergent::Architecture::parse(spec);
  const emergent::Kernels ref = emergent::kernels(arch, inputs_of(x1));
  const auto k = output(K), t = output(T);
  REQUIRE(k.shape == std::vector<std::size_t>{3, 3});
  REQUIRE(t.shape == std::vector<std::size_t>{3, 3});
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      CHECK(at(k, i, j) == at(k, j, i));
      CHECK(at(t, i, j) == at(t, j, i));
    }
  CHECK(max_rel_diff(k.data, row_major(ref.nngp).data(), 9) <= 1e-12);
  CHECK(max_rel_diff(t.data, row_major(ref.ntk).data(), 9) <= 1e-12);

  // Bit-identical at any thread count and under a tight memory cap (more tiles).
  const std::string K1 = (g_dir / "i_K1.npy").string(), T1 = (g_dir / "i_T1.npy").string();
  CHECK(run("kernel --arch " + quote(spec) + " --x1 " + quote(x1) + " --nngp " + quote(K1) + " --ntk " + quote(T1) +
            " --threads 1 --memory-cap 1M -q").code == 0);
  const std::string K2 = (g_dir / "i_K2.npy").string();
  CHECK(run("kernel --arch " + quote(spec) + " --x1 " + quote(x1) + " --nngp " + quote(K2) + " --threads 2 -q").code == 0);
  CHECK(output(K1).data == k.data);
  CHECK(output(T1).data == t.data);
  CHECK(output(K2).data == k.data);

  // Shift every image cyclically by (1, 2): circular convolutions and flatten commute with it.
  const auto img = emergent::read_npy(x1);
  std::vector<double> shifted(img.data.size());
  const std::size_t H = 4, W = 5, C = 2;
  for (std::size_t n = 0; n < 3; ++n)
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t w = 0; w < W; ++w)
        for (std::size_t c = 0; c < C; ++c)
          shifted[((n * H + (h + 1) % H) * W + (w + 2) % W) * C + c] = img.data[((n * H + h) * W + w) * C + c];
  const std::string xs = (g_dir / "i_shift.npy").string();
  emergent::write_npy(xs, shape, shifted.data());
  const std::string Ks = (g_dir / "i_Ks.npy").string(), Ts = (g_dir / "i_Ts.npy").string();
  // K(g·x, g·x') = K(x, x') for the same shift g applied to both arguments.
  CHECK(run("kernel --arch " + quote(spec) + " --x1 " + quote(xs) + " --nngp " + quote(Ks) +
            " --ntk " + quote(Ts) + " --quiet")
            .code == 0);
  const auto ks = output(Ks), ts = output(Ts);
  REQUIRE(ks.shape == std::vector<std::size_t>{3, 3});
  CHECK(max_rel_diff(ks.data, k.data.data(), 9) <= 1e-12);
  CHECK(max_rel_diff(ts.data, t.data.data(), 9) <= 1e-12);
}

TEST_CASE("kernel of a CNN without readout keeps pixel indices (N1, N2, H, W, H, W)") {
  const std::string spec = "conv(4, 3x3, w=1.2) relu conv(3, 2x2, padding=valid)";
  const std::string x1 = write_input("s_x1.npy", {2, 4, 4, 1}, 0.5);
  const std::string K = (g_dir / "s_K.npy").string();
  check_success(run("kernel --arch " + quote(spec) + " --x1 " + quote(x1) + " --nngp " + quote(K)));
  CHECK(!fs::exists(g_dir / "s_T.npy"));
  const auto k = output(K);
  REQUIRE(k.shape == std::vector<std::size_t>{2, 2, 3, 3, 3, 3});  // valid 2x2 shrinks 4 -> 3
  const emergent::SpatialKernels ref = emergent::spatial_kernels(emergent::Architecture::parse(spec), inputs_of(x1));
  REQUIRE(ref.nngp.size() == k.data.size());
  CHECK(max_rel_diff(k.data, ref.nngp.data(), k.data.size()) <= 1e-12);
  // K[i, j, a, b] = K[j, i, b, a].
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      for (int p = 0; p < 9; ++p)
        for (int q = 0; q < 9; ++q)
          CHECK(k.data[ref.index(i, j, p / 3, p % 3, q / 3, q % 3)] == k.data[ref.index(j, i, q / 3, q % 3, p / 3, p % 3)]);
}

TEST_CASE("spec errors: exit code 2 and one line naming the offending token") {
  const std::string vec = write_input("e_vec.npy", {3, 4}, 0.0);
  const std::string img = write_input("e_img.npy", {2, 4, 4, 1}, 0.0);
  const std::string out = (g_dir / "e_out.npy").string();
  struct Case {
    const char* label;
    std::string spec, input;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {"unknown layer", "dense(4) relu blorp dense(1)", vec, {"blorp"}},
      {"bad filter", "conv(4, 7) relu flatten dense(1)", img, {"7"}},
      {"missing width", "dense() relu dense(1)", vec, {"dense"}},
      {"nonlinearity before the first affine layer", "relu dense(4) dense(1)", vec, {"relu"}},
      {"dense on images without flatten", "conv(4, 3x3) relu dense(1)", img, {"dense"}},
      {"valid conv larger than its input", "conv(4, 5x5, padding=valid) relu flatten dense(1)", img, {"5x5", "valid"}},
      {"image network on vectors", "conv(4, 3x3) relu flatten dense(1)", vec, {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.label);
    check_input_error(run("kernel --arch " + quote(c.spec) + " --x1 " + quote(c.input) + " --ntk " + quote(out)), c.needles);
    CHECK(!fs::exists(out));
  }
}

TEST_CASE("malformed inputs: exit code 2 and one line naming the file") {
  const std::string good = write_input("m_good.npy", {3, 4}, 0.0);
  const std::string bytes = slurp(good);
  const auto make = [&](const std::string& name, const std::string& content) {
    const std::string path = (g_dir / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  };
  std::string nan_bytes = bytes;
  const double nan = std::nan("");
  std::memcpy(nan_bytes.data() + nan_bytes.size() - 16, &nan, 8);
  const std::string out = (g_dir / "m_out.npy").string();
  const std::string spec = "dense(4) relu dense(1)";
  struct Case {
    std::string path;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {make("m_magic.npy", "PK\x03\x04" + bytes.substr(4)), "magic"},
      {make("m_trunc.npy", bytes.substr(0, bytes.size() - 5)), "truncated"},
      {make("m_nan.npy", nan_bytes), "NaN"},
      {(g_dir / "m_missing.npy").string(), "cannot open"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.path);
    const Run r = run("kernel --arch " + quote(spec) + " --x1 " + quote(good) + " --x2 " + quote(c.path) + " --nngp " + quote(out));
    check_input_error(r, {c.path});
    CHECK(contains(r.err, c.problem));
    CHECK(!fs::exists(out));
  }
  // Wrong rank and mismatched example shapes name the option.
  const std::string rank3 = write_input("m_rank3.npy", {2, 3, 4}, 0.0);
  check_input_error(run("kernel --arch " + quote(spec) + " --x1 " + quote(rank3) + " --nngp " + quote(out)), {"--x1"});
  const std::string other = write_input("m_other.npy", {2, 5}, 0.0);
  check_input_error(run("kernel --arch " + quote(spec) + " --x1 " + quote(good) + " --x2 " + quote(other) + " --nngp " + quote(out)),
                    {"--x2"});
  CHECK(!fs::exists(out));
}

TEST_CASE("a kernel that overflows is never written") {
  // Finite inputs of size 1e200: x·x'/d overflows to +Inf in the first layer.
  const std::string path = (g_dir / "o_huge.npy").string();
  const std::vector<double> huge(12, 1e200);
  emergent::write_npy(path, {3, 4}, huge.data());
  const std::string K = (g_dir / "o_K.npy").string(), T = (g_dir / "o_T.npy").string();
  const Run r = run("kernel --arch 'dense(4, w=2) dense(1)' --x1 " + quote(path) + " --nngp " + quote(K) + " --ntk " + quote(T));
  CAPTURE(r.err);
  CHECK((r.code == 1 || r.code == 2));
  CHECK(one_line(r.err));
  CHECK(r.err.rfind("emergent kernel: error: ", 0) == 0);
  CHECK(!fs::exists(K));
  CHECK(!fs::exists(T));
}

TEST_CASE("usage errors exit with 2 and one line; --help and --version exit with 0") {
  const std::string x = write_input("u_x.npy", {3, 4}, 0.0);
  const std::string out = (g_dir / "u_out.npy").string();
  const std::string spec = quote("dense(4) relu dense(1)");
  check_input_error(run("kernel --x1 " + quote(x) + " --nngp " + quote(out)), {"--arch"});
  check_input_error(run("kernel --arch " + spec + " --nngp " + quote(out)), {"--x1"});
  check_input_error(run("kernel --arch " + spec + " --x1 " + quote(x)), {"--nngp"});
  check_input_error(run("kernel --arch " + spec + " --x1 " + quote(x) + " --nngp " + quote(out) + " --bogus 3"), {"--bogus"});
  check_input_error(run("kernel --arch " + spec + " --x1 " + quote(x) + " --nngp " + quote(out) + " --memory-cap lots"),
                    {"--memory-cap"});
  check_input_error(run("kernel --arch " + spec + " --x1 " + quote(x) + " --nngp " + quote(out) + " --threads -1"),
                    {"--threads"});
  check_input_error(run("kernel --arch " + spec + " --x1 " + quote(x) + " --nngp " + quote((g_dir / "nodir" / "K.npy").string())),
                    {"nodir"});
  check_input_error(run("kernel --arch " + spec + " --x1 " + quote(x) + " --nngp " + quote(out) + " --ntk " + quote(out)),
                    {"--ntk"});
  CHECK(!fs::exists(out));

  const Run none = run("");
  CHECK(none.code == 2);
  CHECK(one_line(none.err));
  const Run unknown = run("frobnicate");
  CHECK(unknown.code == 2);
  CHECK(one_line(unknown.err));

  const Run help = run("kernel --help");
  CHECK(help.code == 0);
  CHECK(contains(help.out, "Example"));
  CHECK(contains(help.out, "emergent kernel --arch"));
  CHECK(contains(help.out, "--memory-cap"));
  const Run top = run("--help");
  CHECK(top.code == 0);
  CHECK(contains(top.out, "kernel"));
  const Run version = run("--version");
  CHECK(version.code == 0);
  CHECK(contains(version.out, "emergent"));
}

TEST_CASE("bound ensemble: the exact and paper forms, and bad arguments exit with 2 naming them") {
  const Run ok = run("bound ensemble --variance 0.04 --members 20 --delta 0.1 --json");
  CAPTURE(ok.err);
  REQUIRE(ok.code == 0);
  CHECK(contains(ok.out, "\"exact_probability\""));
  CHECK(contains(ok.out, "\"paper_bound\""));
  const Run inv = run("bound ensemble --variance 0.04 --members 20 --probability 0.01 --json");
  CHECK(inv.code == 0);
  CHECK(contains(inv.out, "\"delta\""));
  // Both documents are JSON that nlohmann reads back, on one line, with the values they claim:
  // P(|f̄ − f̂| > δ) for δ = 0.1, σ² = 0.04/20 is erfc(0.1/√(2·0.002)); δ at p = 0.01 inverts it.
  CHECK(one_line(ok.out));
  const nlohmann::json jo = nlohmann::json::parse(ok.out);
  CHECK(jo["members"].get<int>() == 20);
  CHECK(jo["exact_probability"].get<double>() == doctest::Approx(std::erfc(0.1 / std::sqrt(2 * 0.002))).epsilon(1e-9));
  CHECK(jo["paper_bound"].get<double>() >= jo["exact_probability"].get<double>());
  const nlohmann::json ji = nlohmann::json::parse(inv.out);
  CHECK(std::erfc(ji["delta"].get<double>() / std::sqrt(2 * 0.002)) == doctest::Approx(0.01).epsilon(1e-6));
  // M < 1, δ ≤ 0, probability outside (0, 1), negative variance.
  const std::pair<const char*, const char*> bad[] = {
      {"--variance 0.04 --members 0 --delta 0.1", "members"},
      {"--variance 0.04 --members 20 --delta 0", "delta"},
      {"--variance 0.04 --members 20 --delta -1", "delta"},
      {"--variance 0.04 --members 20 --probability 1.5", "probability"},
      {"--variance 0.04 --members 20 --probability 0", "probability"},
      {"--variance -1 --members 20 --delta 0.1", "variance"},
  };
  for (const auto& [args, name] : bad) {
    const Run r = run(std::string("bound ensemble ") + args);
    CAPTURE(args);
    CAPTURE(r.err);
    CHECK(r.code == 2);
    CHECK(one_line(r.err));
    CHECK(r.err.rfind("emergent bound ensemble: error: ", 0) == 0);
    CHECK(contains(r.err, name));
  }
}

TEST_CASE("predict: mean 0 and covariance K at t = 0, kernel regression at t = inf") {
  const std::string x = write_input("p_x.npy", {6, 3}, 0.3);
  const std::string z = write_input("p_z.npy", {4, 3}, 1.1);
  std::vector<double> yv = pattern(6, 2.0);
  const std::string y = (g_dir / "p_y.npy").string();
  emergent::write_npy(y, {6}, yv.data());
  const std::string m = (g_dir / "p_m.npy").string(), c = (g_dir / "p_c.npy").string();
  const std::string spec = quote("dense(64, b=0.2) relu dense(1)");
  const Run r = run("predict --arch " + spec + " --train-x " + quote(x) + " --train-y " + quote(y) + " --test-x " +
                    quote(z) + " --times 0,inf --mean " + quote(m) + " --cov " + quote(c));
  CAPTURE(r.err);
  REQUIRE(r.code == 0);
  // Six distinct inputs: K̃ has full rank 6 and the summary line says how it was factored.
  CHECK(contains(r.err, "covariance factor of Vᵀ·K(X,X)·V: status=ok rank=6/6"));
  const auto mean = output(m), cov = output(c);
  REQUIRE(mean.shape == std::vector<std::size_t>{2, 4, 1});
  REQUIRE(cov.shape == std::vector<std::size_t>{2, 4, 4});
  const auto arch = emergent::Architecture::parse("dense(64, b=0.2) relu dense(1)");
  const auto zi = inputs_of(z), xi = inputs_of(x);
  const auto kzz = emergent::kernels(arch, zi), kzx = emergent::kernels(arch, zi, xi), kxx = emergent::kernels(arch, xi);
  const Eigen::VectorXd regression = kzx.ntk * kxx.ntk.ldlt().solve(Eigen::Map<const Eigen::VectorXd>(yv.data(), 6));
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(mean.data[i] == 0.0);
    CHECK(mean.data[4 + i] == doctest::Approx(regression(static_cast<Eigen::Index>(i))).epsilon(1e-9));
    for (std::size_t j = 0; j < 4; ++j)
      CHECK(cov.data[i * 4 + j] == doctest::Approx(kzz.nngp(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j))).epsilon(1e-12));
  }
  const Run bad = run("predict --arch " + spec + " --train-x " + quote(x) + " --train-y " + quote(y) + " --test-x " +
                      quote(z) + " --times 0,-1 --mean " + quote(m));
  CHECK(bad.code == 2);
  CHECK(contains(bad.err, "--times"));
}

TEST_CASE("predict, ensemble and bound check their training files against each other the same way") {
  const std::string x = write_input("tf_x.npy", {6, 2}, 0.1), z = write_input("tf_z.npy", {3, 2}, 0.2);
  const std::string z3 = write_input("tf_z3.npy", {3, 3}, 0.3), y = write_input("tf_y.npy", {6}, 0.4);
  const std::string y2 = write_input("tf_y2.npy", {6, 2}, 0.5);
  const std::string out = (g_dir / "tf_out.npy").string();
  const std::string arch = " --arch 'dense(8) relu dense(1)'";
  for (const std::string& cmd : {"predict --mean " + quote(out), "ensemble --members 2 --steps 1 --lr 1 --seed 0 "
                                "--checkpoints 1 --out " + quote(out),
                                std::string("bound violation --group 'rot2(4)' --members 3 --delta 0.1")}) {
    CAPTURE(cmd);
    const Run shape = run(cmd + arch + " --train-x " + quote(x) + " --train-y " + quote(y) + " --test-x " + quote(z3));
    CHECK(shape.code == 2);
    CHECK(one_line(shape.err));
    CHECK(contains(shape.err, "--test-x"));
    CHECK(contains(shape.err, "expected the same example shape"));
    const Run cols = run(cmd + arch + " --train-x " + quote(x) + " --train-y " + quote(y2) + " --test-x " + quote(z));
    CHECK(cols.code == 2);
    CHECK(one_line(cols.err));
    CHECK(contains(cols.err, "--train-y"));
    CHECK(contains(cols.err, "2 output column(s)"));
    const Run ok = run(cmd + arch + " --train-x " + quote(x) + " --train-y " + quote(y) + " --test-x " + quote(z));
    CAPTURE(ok.err);
    CHECK(ok.code == 0);
  }
}

TEST_CASE("ensemble --linearised (the old spelling) is an alias of --linearized") {
  const std::string x = write_input("lin_x.npy", {6, 2}, 0.1), z = write_input("lin_z.npy", {3, 2}, 0.2);
  const std::string y = write_input("lin_y.npy", {6}, 0.4);
  const std::string us = (g_dir / "lin_us.npy").string(), uk = (g_dir / "lin_uk.npy").string();
  const std::string common = "ensemble --arch 'dense(8) relu dense(1)' --members 2 --steps 1 --lr 1 --seed 3 "
                             "--checkpoints 0,1 --train-x " + quote(x) + " --train-y " + quote(y) + " --test-x " + quote(z);
  const Run a = run(common + " --linearized --out " + quote(us));
  const Run b = run(common + " --linearised --out " + quote(uk));
  CAPTURE(a.err);
  CAPTURE(b.err);
  CHECK(a.code == 0);
  CHECK(b.code == 0);
  const emergent::NpyArray pa = emergent::read_npy(us), pb = emergent::read_npy(uk);
  CHECK(pa.shape == pb.shape);
  CHECK(pa.data == pb.data);
}

// The demo is the main job: every verdict it prints is computed, so a regression in the kernels,
// the gradient flow, the group code or the bounds turns one of these lines.
TEST_CASE("demo: every claim of its report holds, and it writes the figure's data") {
  const fs::path dir = g_dir / "demo";
  const Run r = run("demo --out " + quote(dir.string()));
  CAPTURE(r.err);
  REQUIRE(r.code == 0);
  auto count = [&](const std::string& what) {
    std::size_t n = 0;
    for (std::size_t p = r.out.find(what); p != std::string::npos; p = r.out.find(what, p + 1)) ++n;
    return n;
  };
  CHECK(count("-> holds to round-off") == 2);   // Theorem 5.1, flatten and gap readouts
  CHECK(count("-> FAILS") == 1);                // the 3x2-filter control
  CHECK(count("-> invariant to round-off") == 1);  // Theorem 5.2 with augmentation
  CHECK(count("-> NOT invariant") == 1);         // ... and without
  CHECK(contains(r.out, "-> members are not invariant"));
  CHECK(contains(r.out, "the bound is >= the exact probability: yes"));
  CHECK(contains(r.out, "measured within 3 standard errors of exact: yes"));
  CHECK(fs::exists(dir / "figure1_demo.csv"));
  CHECK(fs::file_size(dir / "figure1_demo.csv") > 0);
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    CHECK(fs::exists(dir / "figure1_demo.png"));
    CHECK(contains(r.out, (dir / "figure1_demo.png").string()));
  }
}

TEST_CASE("experiment ising at a small scale writes Figures 1 and 5 with their data") {
  const fs::path dir = g_dir / "ising";
  const Run r = run("experiment ising --scale 0.25 --widths 8,16 --out " + quote(dir.string()));
  CAPTURE(r.err);
  REQUIRE(r.code == 0);
  for (const char* f : {"figure1_ising_invariance.csv", "figure5_ising_ntk_difference.csv"}) {
    CAPTURE(f);
    CHECK(fs::exists(dir / f));
    CHECK(fs::file_size(dir / f) > 0);
  }
  CHECK(contains(r.out, "RMS orbit deviation"));
  const Run bad = run("experiment ising --scale -1 --out " + quote(dir.string()));
  CHECK(bad.code == 2);
  CHECK(one_line(bad.err));
  CHECK(contains(bad.err, "--scale"));
}

TEST_CASE("verify --json: one document nlohmann reads back, times as numbers or \"inf\"") {
  const Run r = run("verify all --arch 'dense(16) relu dense(1)' --group sign --shape 4 --n 4 --n-test 2 "
                    "--times 1,inf --members 4 --json");
  CAPTURE(r.err);
  REQUIRE(r.code == 0);
  CHECK(one_line(r.out));
  const nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j["holds"].is_boolean());
  CHECK(j["arch"].get<std::string>() == "dense(16) relu dense(1)");
  CHECK(j["training_points"].get<int>() == 4);
  REQUIRE(j["theorems"].is_array());
  REQUIRE(!j["theorems"].empty());
  double worst = 0;
  for (const auto& t : j["theorems"]) {
    CHECK(t["theorem"].is_string());
    for (const auto& part : t["parts"]) worst = std::max(worst, part["max_violation"].get<double>());
  }
  CHECK(worst == j["max_violation"].get<double>());  // the top-level maximum is the parts' maximum
  REQUIRE(!j["members"].empty());
  int linearized = 0;
  for (const auto& m : j["members"]) {
    const std::string kind = m["kind"].get<std::string>();
    for (const auto& q : m["points"]) CHECK((q["time"].is_number() || q["time"] == "inf"));
    if (kind.rfind("linearized", 0) != 0) continue;  // finite-width members report their steps
    ++linearized;
    const auto& points = m["points"];
    REQUIRE(points.size() == 2);
    CHECK(points[0]["time"].get<double>() == 1.0);
    CHECK(points[1]["time"].get<std::string>() == "inf");
  }
  CHECK(linearized == 1);
  CHECK(j["notes"].is_array());
}

int main(int argc, char** argv) { return emergent::test::cli::run_suite(argc, argv, "test_cli"); }
