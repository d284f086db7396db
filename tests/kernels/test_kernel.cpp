// Structural identities of the analytic kernels (docs/conventions.md §2). Agreement with sampled
// finite networks is in test_sampled.cpp.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>
#include <emergent/kernels/activation_dual.hpp>
#include <emergent/kernels/kernel.hpp>
#include <emergent/kernels/general_kernel.hpp>
#include <emergent/core/random.hpp>

using namespace emergent;

namespace {

// Vectors from stream 0, images from stream 1 of the shared generator.
Inputs random_vectors(int n, int d, std::uint64_t seed, double scale = 1.0) {
  return Inputs(scale * test::normals(n, d, seed, 0), ExampleShape::vector(d));
}

Inputs random_images(int n, int h, int w, int c, std::uint64_t seed) {
  return test::random_inputs(n, ExampleShape::image_hwc(h, w, c), seed, 1);
}

// Cyclic shift of every image by (dh, dw) pixels.
Inputs shift(const Inputs& in, int dh, int dw) {
  const int H = in.shape.height, W = in.shape.width, C = in.shape.channels;
  Inputs out = in;
  for (Eigen::Index i = 0; i < in.count(); ++i)
    for (int h = 0; h < H; ++h)
      for (int w = 0; w < W; ++w)
        for (int c = 0; c < C; ++c)
          out.x(i, (((h + dh) % H) * W + (w + dw) % W) * C + c) = in.x(i, (h * W + w) * C + c);
  return out;
}

using test::max_abs;
double rel_diff(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) { return max_abs(a - b) / max_abs(b); }

void check_symmetric_psd(const Eigen::MatrixXd& k) {
  CHECK(max_abs(k - k.transpose()) == 0.0);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(k);
  CHECK(es.eigenvalues().minCoeff() >= -1e-12 * es.eigenvalues().cwiseAbs().maxCoeff());
}

// kernels(arch, x) at 1 and at 2 threads: checks that both give the same bits (the determinism
// contract) and returns the 1-thread result.
Kernels kernels_at_one_and_two_threads(const Architecture& arch, const Inputs& x) {
  KernelOptions one, two;
  one.threads = 1;
  two.threads = 2;
  Kernels a = kernels(arch, x, one);
  const Kernels b = kernels(arch, x, two);
  CHECK(a.nngp == b.nngp);
  CHECK(a.ntk == b.ntk);
  return a;
}

const char* kSpecs[] = {
    "dense(64, w=1.5, b=0.1) relu dense(64, w=1.5, b=0.1) relu dense(1)",
    "dense(8) erf dense(8, w=2) gelu dense(3, b=0.5)",
    "dense(8, w=1.2) tanh dense(1)",
    "dense(8) leaky_relu(0.2) dense(8) abs dense(8) sin dense(8) cos dense(1, w=0.7)",
};

const char* kImageSpecs[] = {
    "conv(8, 3x3, w=1.3, b=0.2) relu conv(8, 3x3) relu flatten dense(1)",
    "conv(8, 3x3, padding=circular, w=1.3, b=0.2) relu conv(8, 2x3, padding=circular) erf gap dense(2)",
    "conv(8, 3x3, padding=valid) relu conv(4, 2x2, padding=same, b=0.3) gelu gap dense(4) relu dense(1)",
    "flatten dense(16, b=0.1) relu dense(1)",
    "gap dense(16) relu dense(1)",
};

}  // namespace

TEST_CASE("Gram matrices are symmetric and PSD, and the two-argument path agrees") {
  for (const char* spec : kSpecs) {
    CAPTURE(spec);
    const auto arch = Architecture::parse(spec);
    const auto x = random_vectors(12, 5, 7);
    const auto sym = kernels(arch, x);
    check_symmetric_psd(sym.nngp);
    check_symmetric_psd(sym.ntk);
    CHECK(sym.summary.symmetric);
    const auto full = kernels(arch, x, x);
    CHECK(rel_diff(full.nngp, sym.nngp) < 1e-13);
    CHECK(rel_diff(full.ntk, sym.ntk) < 1e-13);
    // NTK ⪰ NNGP of the last layer in the 'ntk' parameterization: Θ = Σ + W²·(…) with the
    // trailing term a PSD kernel.
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(sym.ntk - sym.nngp);
    CHECK(es.eigenvalues().minCoeff() >= -1e-10 * max_abs(sym.ntk));
  }
  for (const char* spec : kImageSpecs) {
    CAPTURE(spec);
    const auto arch = Architecture::parse(spec);
    const auto x = random_images(6, 5, 5, 2, 3);
    const auto sym = kernels(arch, x);
    check_symmetric_psd(sym.nngp);
    check_symmetric_psd(sym.ntk);
    const auto full = kernels(arch, x, x);
    CHECK(rel_diff(full.nngp, sym.nngp) < 1e-13);
    CHECK(rel_diff(full.ntk, sym.ntk) < 1e-13);
  }
}

TEST_CASE("a single dense layer: K = W² x·x'/d + B² and Θ = K") {
  const auto x = random_vectors(5, 7, 11);
  const auto y = random_vectors(4, 7, 12);
  const auto k = kernels(Architecture::parse("dense(3, w=1.7, b=0.4)"), x, y);
  const Eigen::MatrixXd expected = (1.7 * 1.7 / 7.0) * (x.x * y.x.transpose()).array() + 0.16;
  CHECK(rel_diff(k.nngp, expected) < 1e-14);
  CHECK(rel_diff(k.ntk, expected) < 1e-14);
  // Two linear layers: Θ = Σ² + W₂²·Σ¹ (the sum over layers of Jacot et al. 2018 Thm. 1).
  const auto k2 = kernels(Architecture::parse("dense(3, w=1.7, b=0.4) dense(2, w=0.9, b=0.3)"), x, y);
  const Eigen::MatrixXd s2 = (0.81 * expected.array() + 0.09).matrix();
  CHECK(rel_diff(k2.nngp, s2) < 1e-14);
  CHECK(rel_diff(k2.ntk, (s2 + 0.81 * expected).eval()) < 1e-14);
}

TEST_CASE("MLP kernels are invariant under orthogonal maps of the inputs and homogeneous for bias-free ReLU") {
  const int d = 6;
  const auto x = random_vectors(8, d, 21);
  // A random orthogonal matrix from a QR decomposition.
  Eigen::MatrixXd g = random_vectors(d, d, 22).x;
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  const Eigen::MatrixXd q = qr.householderQ();
  Inputs xq(x.x * q.transpose(), x.shape);
  for (const char* spec : kSpecs) {
    CAPTURE(spec);
    const auto arch = Architecture::parse(spec);
    const auto a = kernels(arch, x), b = kernels(arch, xq);
    CHECK(rel_diff(b.nngp, a.nngp) < 1e-12);
    CHECK(rel_diff(b.ntk, a.ntk) < 1e-12);
  }
  // Bias-free ReLU networks are positively homogeneous of degree 1 in each argument.
  const auto arch = Architecture::parse("dense(8, w=1.4) relu dense(8, w=1.4) relu dense(1)");
  Inputs x2(2.5 * x.x, x.shape), x3(0.3 * x.x, x.shape);
  const auto base = kernels(arch, x, x);
  const auto scaled = kernels(arch, x2, x3);
  CHECK(rel_diff(scaled.nngp, (0.75 * base.nngp).eval()) < 1e-12);
  // The diagonal pairs (x, x) become collinear pairs (2.5x, 0.3x) whose cos θ is 1 only up to
  // round-off ε; θ = acos(cos θ) then carries an error of order √(2ε) ≈ 1.5e-8, which the
  // ReLU derivative kernel (π − θ)/2π inherits. That is the conditioning of the problem.
  CHECK(rel_diff(scaled.ntk, (0.75 * base.ntk).eval()) < 1e-7);
}

TEST_CASE("flatten path equals the pixel-pair kernel followed by the mean of its diagonal") {
  const auto x = random_images(4, 5, 6, 2, 31);
  const auto y = random_images(3, 5, 6, 2, 32);
  for (const char* body : {"conv(4, 3x3, w=1.3, b=0.2) relu conv(4, 3x2, b=0.1) erf",
                           "conv(4, 2x2, padding=circular) relu conv(4, 3x3, padding=valid, w=2)"}) {
    CAPTURE(body);
    const auto spatial = spatial_kernels(Architecture::parse(body), x, y);
    const auto flat = kernels(Architecture::parse(std::string(body) + " flatten dense(1, w=1.1, b=0.3)"), x, y);
    const auto pooled = kernels(Architecture::parse(std::string(body) + " gap dense(1, w=1.1, b=0.3)"), x, y);
    CHECK(flat.summary.path == "pixel-diagonal");
    CHECK(pooled.summary.path == "pixel-pairs");
    const int P = spatial.height * spatial.width;
    for (Eigen::Index i = 0; i < x.count(); ++i)
      for (Eigen::Index j = 0; j < y.count(); ++j) {
        double sd = 0, td = 0, sa = 0, ta = 0;
        for (int a = 0; a < P; ++a)
          for (int b = 0; b < P; ++b) {
            const std::size_t k = spatial.index(i, j, a / spatial.width, a % spatial.width, b / spatial.width,
                                                b % spatial.width);
            sa += spatial.nngp[k];
            ta += spatial.ntk[k];
            if (a == b) {
              sd += spatial.nngp[k];
              td += spatial.ntk[k];
            }
          }
        // dense(1, w, b): K = w²·readout + b², Θ = K + w²·readout(Θ)
        const double kf = 1.21 * sd / P + 0.09, kg = 1.21 * sa / (P * P) + 0.09;
        CHECK(flat.nngp(i, j) == doctest::Approx(kf).epsilon(1e-13));
        CHECK(flat.ntk(i, j) == doctest::Approx(kf + 1.21 * td / P).epsilon(1e-13));
        CHECK(pooled.nngp(i, j) == doctest::Approx(kg).epsilon(1e-13));
        CHECK(pooled.ntk(i, j) == doctest::Approx(kg + 1.21 * ta / (P * P)).epsilon(1e-13));
      }
  }
}

TEST_CASE("a 1x1 convolution is a dense layer applied to every pixel") {
  const auto x = random_images(3, 4, 3, 5, 41);
  const auto y = random_images(2, 4, 3, 5, 42);
  const auto conv = spatial_kernels(
      Architecture::parse("conv(8, 1x1, w=1.3, b=0.2) relu conv(8, 1x1, w=0.8, b=0.5) erf conv(2, 1x1)"), x, y);
  const auto mlp = Architecture::parse("dense(8, w=1.3, b=0.2) relu dense(8, w=0.8, b=0.5) erf dense(2)");
  // Pixel a of image i as a 5-vector.
  auto pixel = [](const Inputs& in, Eigen::Index i, int a) {
    return Inputs(RowMatrix(in.x.block(i, a * 5, 1, 5)), ExampleShape::vector(5));
  };
  for (Eigen::Index i = 0; i < x.count(); ++i)
    for (Eigen::Index j = 0; j < y.count(); ++j)
      for (int a = 0; a < 12; ++a)
        for (int b = 0; b < 12; ++b) {
          const auto k = kernels(mlp, pixel(x, i, a), pixel(y, j, b));
          const std::size_t idx = conv.index(i, j, a / 3, a % 3, b / 3, b % 3);
          CHECK(conv.nngp[idx] == doctest::Approx(k.nngp(0, 0)).epsilon(1e-13));
          CHECK(conv.ntk[idx] == doctest::Approx(k.ntk(0, 0)).epsilon(1e-13));
        }
}

TEST_CASE("circular padding: the gap kernel is the translation average of the flatten kernel (Li et al. 2019)") {
  const int H = 4, W = 5;
  const auto x = random_images(3, H, W, 2, 51);
  const auto y = random_images(4, H, W, 2, 52);
  const std::string body = "conv(8, 3x3, padding=circular, w=1.5, b=0.1) relu conv(8, 2x3, padding=circular) erf";
  const auto gap = kernels(Architecture::parse(body + " gap dense(1, w=1.2, b=0.2)"), x, y);
  const auto flat = Architecture::parse(body + " flatten dense(1, w=1.2, b=0.2)");
  Eigen::MatrixXd k = Eigen::MatrixXd::Zero(3, 4), t = Eigen::MatrixXd::Zero(3, 4);
  for (int dh = 0; dh < H; ++dh)
    for (int dw = 0; dw < W; ++dw) {
      const auto f = kernels(flat, x, shift(y, dh, dw));
      k += f.nngp / (H * W);
      t += f.ntk / (H * W);
    }
  CHECK(rel_diff(gap.nngp, k) < 1e-13);
  CHECK(rel_diff(gap.ntk, t) < 1e-13);
  // And the gap kernel itself is translation invariant in each argument.
  const auto moved = kernels(Architecture::parse(body + " gap dense(1, w=1.2, b=0.2)"), shift(x, 1, 3), shift(y, 2, 0));
  CHECK(rel_diff(moved.nngp, gap.nngp) < 1e-13);
  CHECK(rel_diff(moved.ntk, gap.ntk) < 1e-13);
}

TEST_CASE("circular padding: the spatial kernel moves with a common translation of both inputs") {
  const int H = 5, W = 4;
  const auto x = random_images(2, H, W, 1, 61);
  const auto arch = Architecture::parse("conv(4, 3x2, padding=circular, b=0.3) relu conv(4, 3x3, padding=circular)");
  const auto k = spatial_kernels(arch, x);
  const auto ks = spatial_kernels(arch, shift(x, 2, 1));
  double worst = 0;
  for (Eigen::Index i = 0; i < 2; ++i)
    for (Eigen::Index j = 0; j < 2; ++j)
      for (int h1 = 0; h1 < H; ++h1)
        for (int w1 = 0; w1 < W; ++w1)
          for (int h2 = 0; h2 < H; ++h2)
            for (int w2 = 0; w2 < W; ++w2) {
              const double a = ks.ntk[ks.index(i, j, (h1 + 2) % H, (w1 + 1) % W, (h2 + 2) % H, (w2 + 1) % W)];
              const double b = k.ntk[k.index(i, j, h1, w1, h2, w2)];
              worst = std::max(worst, std::abs(a - b) / std::abs(b));
            }
  CHECK(worst < 1e-13);
  // Symmetric spatial kernel: K(x_j, x_i)_{ab} = K(x_i, x_j)_{ba}.
  CHECK(k.nngp[k.index(1, 0, 1, 2, 3, 0)] == k.nngp[k.index(0, 1, 3, 0, 1, 2)]);
}

TEST_CASE("valid convolutions equal the interior of same convolutions") {
  const auto x = random_images(2, 7, 6, 2, 71);
  const auto y = random_images(2, 7, 6, 2, 72);
  const auto valid = spatial_kernels(Architecture::parse("conv(4, 3x3, padding=valid, b=0.2) relu conv(4, 3x3, padding=valid)"), x, y);
  const auto same = spatial_kernels(Architecture::parse("conv(4, 3x3, b=0.2) relu conv(4, 3x3)"), x, y);
  REQUIRE(valid.height == 3);
  REQUIRE(valid.width == 2);
  for (Eigen::Index i = 0; i < 2; ++i)
    for (Eigen::Index j = 0; j < 2; ++j)
      for (int a = 0; a < 6; ++a)
        for (int b = 0; b < 6; ++b) {
          const int h1 = a / 2, w1 = a % 2, h2 = b / 2, w2 = b % 2;
          CHECK(valid.nngp[valid.index(i, j, h1, w1, h2, w2)] ==
                doctest::Approx(same.nngp[same.index(i, j, h1 + 2, w1 + 2, h2 + 2, w2 + 2)]).epsilon(1e-13));
          CHECK(valid.ntk[valid.index(i, j, h1, w1, h2, w2)] ==
                doctest::Approx(same.ntk[same.index(i, j, h1 + 2, w1 + 2, h2 + 2, w2 + 2)]).epsilon(1e-13));
        }
}

TEST_CASE("edge cases stay finite: zero inputs, identical and collinear inputs, extreme weight scales") {
  RowMatrix x = random_vectors(4, 5, 81).x;
  x.row(0).setZero();
  x.row(2) = x.row(1);                      // x1 == x2: cos θ = 1 exactly
  x.row(3) = x.row(1) * (1 + 1e-15);        // collinear up to round-off
  const Inputs in(x, ExampleShape::vector(5));
  for (const char* spec : {"dense(4) relu dense(4) relu dense(1)", "dense(4, w=1e4, b=1e-6) relu dense(4, w=1e3) erf dense(1)",
                           "dense(4, w=1e-6) gelu dense(4, w=1e-5) tanh dense(1)", "dense(4, b=0.5) abs dense(4) swish dense(1)"}) {
    CAPTURE(spec);
    const auto k = kernels(Architecture::parse(spec), in);
    CHECK(k.nngp.allFinite());
    CHECK(k.ntk.allFinite());
    // Identical inputs give identical rows.
    CHECK(max_abs(k.nngp.row(1) - k.nngp.row(2)) <= 1e-12 * max_abs(k.nngp));
  }
  RowMatrix img = random_images(3, 4, 4, 1, 82).x;
  img.row(0).setZero();
  img.row(2) = img.row(1);
  const Inputs im(img, ExampleShape::image_hwc(4, 4, 1));
  for (const char* spec : {"conv(4, 3x3) relu gap dense(1)", "conv(4, 3x3, w=1e4) erf flatten dense(1)"}) {
    CAPTURE(spec);
    const auto k = kernels(Architecture::parse(spec), im);
    CHECK(k.nngp.allFinite());
    CHECK(k.ntk.allFinite());
    CHECK(k.nngp(0, 0) == 0.0);  // a zero image without biases has zero variance
  }
}

TEST_CASE("results do not depend on the number of threads or the memory cap") {
  const auto x = random_vectors(300, 9, 91);
  const auto arch = Architecture::parse("dense(8, b=0.1) relu dense(8) erf dense(1)");
  KernelOptions one, two, small;
  one.threads = 1;
  two.threads = 2;
  small.threads = 2;
  const auto a = kernels(arch, x, one), b = kernels(arch, x, two);
  small.memory_cap_bytes = a.summary.estimated_peak_bytes + 1000;  // room for one thread's tile only
  const auto c = kernels(arch, x, small);
  CHECK(max_abs(a.nngp - b.nngp) == 0.0);
  CHECK(max_abs(a.ntk - b.ntk) == 0.0);
  CHECK(c.summary.threads < b.summary.threads);  // the cap took threads away, not tile size
  CHECK(max_abs(c.nngp - a.nngp) == 0.0);
  CHECK(max_abs(c.ntk - a.ntk) == 0.0);
  const auto imgs = random_images(20, 5, 5, 1, 92);
  const auto carch = Architecture::parse("conv(4, 3x3, padding=circular) relu conv(4, 3x3) relu gap dense(1)");
  const auto ci = kernels(carch, imgs, one), cj = kernels(carch, imgs, two);
  CHECK(max_abs(ci.ntk - cj.ntk) == 0.0);
}

TEST_CASE("memory cap: refuse what cannot fit, before allocating it") {
  const auto x = random_images(200, 16, 16, 1, 101);
  KernelOptions opt;
  opt.memory_cap_bytes = 64u << 20;
  // (200, 200, 16, 16, 16, 16) doubles ×2 = 42 GB
  CHECK_THROWS_AS(spatial_kernels(Architecture::parse("conv(4, 3x3) relu conv(4, 3x3)"), x, opt), MemoryCapError);
  try {
    spatial_kernels(Architecture::parse("conv(4, 3x3) relu conv(4, 3x3)"), x, opt);
  } catch (const MemoryCapError& e) {
    CHECK(std::string(e.what()).find("memory cap") != std::string::npos);
  }
  std::string why;
  KernelOptions bad;
  bad.threads = -1;
  CHECK_FALSE(bad.IsValid(&why));
  CHECK(why.find("threads") != std::string::npos);
  CHECK_THROWS_AS(kernels(Architecture::parse("dense(1)"), random_vectors(3, 2, 1), bad), std::invalid_argument);
}

TEST_CASE("bad arguments throw with a message naming the problem") {
  const auto v = random_vectors(3, 4, 1);
  const auto w = random_vectors(3, 5, 2);
  const auto im = random_images(2, 4, 4, 1, 3);
  CHECK_THROWS_AS(kernels(Architecture::parse("dense(1)"), v, w), std::invalid_argument);
  CHECK_THROWS_AS(kernels(Architecture::parse("conv(2, 3x3) relu flatten dense(1)"), v), SpecError);
  CHECK_THROWS_AS(kernels(Architecture::parse("dense(2)"), im), SpecError);
  CHECK_THROWS_AS(kernels(Architecture::parse("conv(2, 3x3) relu conv(2, 3x3)"), im), std::invalid_argument);
  CHECK_THROWS_AS(spatial_kernels(Architecture::parse("dense(2)"), v), std::invalid_argument);
  CHECK_THROWS_AS(kernels(Architecture::parse("conv(2, 5x5, padding=valid) relu gap dense(1)"), im), SpecError);
  RowMatrix nan = v.x;
  nan(1, 2) = std::nan("");
  CHECK_THROWS_AS(kernels(Architecture::parse("dense(1)"), Inputs(nan, v.shape)), std::invalid_argument);
}

TEST_CASE("self pairs are exactly collinear: the diagonal keeps full precision") {
  // Θ(x, x) of a bias-free ReLU net is homogeneous of degree 2. Before self pairs used their own
  // variance as covariance, the last-bit difference between GEMM and squaredNorm cost √ε ≈ 1e-8
  // through θ = angle(x, x).
  const auto x = random_vectors(40, 13, 111);
  const Inputs x3(3.0 * x.x, x.shape);
  const auto arch = Architecture::parse("dense(8, w=1.4) relu dense(8, w=1.4) relu dense(1)");
  const auto a = kernels(arch, x), b = kernels(arch, x3);
  const Eigen::VectorXd ratio = b.ntk.diagonal().cwiseQuotient(a.ntk.diagonal());
  CHECK((ratio.array() - 9.0).abs().maxCoeff() < 1e-13);
  const auto imgs = random_images(6, 5, 5, 2, 112);
  const Inputs imgs3(3.0 * imgs.x, imgs.shape);
  for (const char* spec : {"conv(4, 3x3, w=1.4) relu conv(4, 3x3) relu flatten dense(1)",
                           "conv(4, 3x3, padding=circular) relu conv(4, 3x3) relu gap dense(1)"}) {
    CAPTURE(spec);
    const auto c = kernels(Architecture::parse(spec), imgs), d = kernels(Architecture::parse(spec), imgs3);
    const Eigen::VectorXd r = d.ntk.diagonal().cwiseQuotient(c.ntk.diagonal());
    CHECK((r.array() - 9.0).abs().maxCoeff() < 1e-13);
  }
}

namespace {
// Collects the bands of stream_kernels into full matrices, mirroring symmetric ones.
struct MatrixSink : emergent::KernelBandSink {
  Eigen::MatrixXd nngp, ntk;
  Eigen::Index bands = 0, band_rows = 0;
  bool symmetric = false;
  void begin(Eigen::Index n1, Eigen::Index n2, bool sym, Eigen::Index rows) override {
    nngp = Eigen::MatrixXd::Constant(n1, n2, std::nan(""));
    ntk = nngp;
    symmetric = sym;
    band_rows = rows;
  }
  void write(const emergent::KernelBand& b) override {
    ++bands;
    for (Eigen::Index i = 0; i < b.rows; ++i)
      for (Eigen::Index j = 0; j < b.cols; ++j) {
        const Eigen::Index r = b.row_begin + i, c = b.col_begin + j;
        nngp(r, c) = b.nngp[i * b.cols + j];
        ntk(r, c) = b.ntk[i * b.cols + j];
        if (symmetric) {
          nngp(c, r) = nngp(r, c);
          ntk(c, r) = ntk(r, c);
        }
      }
  }
};
}  // namespace

TEST_CASE("stream_kernels: bands under a small cap equal the in-memory kernels bitwise") {
  const auto x = random_vectors(700, 33, 93), z = random_vectors(150, 33, 94);
  const auto arch = Architecture::parse("dense(8, b=0.1) relu dense(8) erf dense(1)");
  KernelOptions whole, capped;
  whole.threads = 2;
  capped.threads = 2;
  capped.memory_cap_bytes = 2u << 20;  // the output (2 x 700² doubles = 7.8 MB) does not fit
  const Kernels ref = kernels(arch, x, whole);
  MatrixSink sym;
  const KernelSummary s = stream_kernels(arch, x, nullptr, capped, sym);
  CHECK(sym.bands > 1);
  CHECK(sym.band_rows % 64 == 0);
  CHECK(s.estimated_peak_bytes <= capped.memory_cap_bytes);
  CHECK(sym.nngp.allFinite());
  CHECK(max_abs(sym.nngp - ref.nngp) == 0.0);
  CHECK(max_abs(sym.ntk - ref.ntk) == 0.0);

  const Kernels cross = kernels(arch, z, x, whole);
  MatrixSink rect;
  capped.threads = 1;
  stream_kernels(arch, z, &x, capped, rect);
  CHECK(rect.nngp.allFinite());
  CHECK(max_abs(rect.nngp - cross.nngp) == 0.0);
  CHECK(max_abs(rect.ntk - cross.ntk) == 0.0);
  // The same rows of the cross kernel and the symmetric one come from the same tiles' arithmetic
  // only when aligned; here check the mathematics: K(z, x) = K(x, z)ᵀ to round-off.
  const Kernels back = kernels(arch, x, z, whole);
  CHECK(rel_diff(back.nngp.transpose(), cross.nngp) < 1e-13);

  KernelOptions tiny;
  tiny.memory_cap_bytes = 1u << 20;
  const auto big = random_vectors(20000, 4, 95);  // one 64-row band of 20000 columns is 20 MB
  try {
    MatrixSink none;
    stream_kernels(arch, big, nullptr, tiny, none);
    FAIL("expected MemoryCapError");
  } catch (const MemoryCapError& e) {
    const std::string what = e.what();
    CHECK(what.find("needs at least") != std::string::npos);
    CHECK(what.find("memory cap") != std::string::npos);
  }
  // A sink for Gram matrices refuses a pixel-indexed kernel instead of misreading its bands.
  MatrixSink none;
  CHECK_THROWS_AS(stream_kernels(Architecture::parse("conv(2, 3x3) relu"), random_images(3, 4, 4, 1, 96), nullptr,
                                 whole, none),
                  std::invalid_argument);
}

namespace {
// Offers row-major matrices for in-place bands (KernelBandSink::direct_output) and checks, at
// every band, that the band's rows and (symmetric) the strip below it are complete.
struct DirectSink : emergent::KernelBandSink {
  std::vector<double> nngp, ntk;
  Eigen::Index n1 = 0, n2 = 0, bands = 0, band_rows = 0, in_place = 0, incomplete = 0;
  Eigen::Index final_calls = 0, final_rows = 0, not_final = 0;  // rows_final: calls, last rows_end, rows not done
  bool symmetric = false, offer = true;
  void begin(Eigen::Index a, Eigen::Index b, bool sym, Eigen::Index rows) override {
    n1 = a, n2 = b, symmetric = sym, band_rows = rows;
    nngp.assign(static_cast<std::size_t>(a * b), std::nan(""));
    ntk = nngp;
  }
  emergent::KernelOutputMatrices direct_output(const emergent::KernelBandLayout&) override {
    emergent::KernelOutputMatrices m;
    m.direct = offer;
    m.nngp = nngp.data();
    m.ntk = ntk.data();
    return m;
  }
  // Rows announced final must be complete in every column already, in increasing order.
  void rows_final(Eigen::Index, Eigen::Index rows_end) override {
    ++final_calls;
    if (rows_end <= final_rows) ++not_final;
    for (Eigen::Index i = final_rows; i < rows_end; ++i)
      for (Eigen::Index j = 0; j < n2; ++j) not_final += std::isnan(nngp[i * n2 + j]) || std::isnan(ntk[i * n2 + j]);
    final_rows = rows_end;
  }
  void write(const emergent::KernelBand& b) override {
    ++bands;
    in_place += b.in_place;
    auto filled = [&](Eigen::Index i, Eigen::Index j) {
      return !std::isnan(nngp[i * n2 + j]) && !std::isnan(ntk[i * n2 + j]);
    };
    for (Eigen::Index i = b.row_begin; i < b.row_begin + b.rows; ++i)
      for (Eigen::Index j = b.col_begin; j < n2; ++j) incomplete += !filled(i, j);
    if (symmetric)
      for (Eigen::Index i = b.row_begin + b.rows; i < n1; ++i)
        for (Eigen::Index j = b.row_begin; j < b.row_begin + b.rows; ++j) incomplete += !filled(i, j);
  }
  Eigen::MatrixXd matrix(const std::vector<double>& v) const {
    return Eigen::Map<const emergent::RowMatrix>(v.data(), n1, n2);
  }
};
}  // namespace

TEST_CASE("stream_kernels: bands written in place equal the in-memory kernels bitwise at any cap and thread count") {
  const auto x = random_vectors(333, 21, 97), z = random_vectors(140, 21, 98);
  const auto arch = Architecture::parse("dense(8, b=0.2) relu dense(8) relu dense(1)");
  KernelOptions whole;
  whole.threads = 1;
  const Kernels ref = kernels(arch, x, whole), cross = kernels(arch, z, x, whole);
  // Mirrored exactly, as the buffered bands are.
  CHECK(max_abs(ref.nngp - ref.nngp.transpose()) == 0.0);
  for (const std::size_t cap : {std::size_t(0), std::size_t(3) << 20, std::size_t(1) << 20})
    for (const int threads : {1, 2}) {
      CAPTURE(cap);
      CAPTURE(threads);
      KernelOptions o;
      o.threads = threads;
      o.memory_cap_bytes = cap;
      DirectSink sym;
      stream_kernels(arch, x, nullptr, o, sym);
      CHECK(sym.in_place == sym.bands);
      CHECK(sym.incomplete == 0);
      if (cap == (std::size_t(1) << 20)) CHECK(sym.bands > 1);
      CHECK(max_abs(sym.matrix(sym.nngp) - ref.nngp) == 0.0);
      CHECK(max_abs(sym.matrix(sym.ntk) - ref.ntk) == 0.0);
      DirectSink rect;
      stream_kernels(arch, z, &x, o, rect);
      CHECK(rect.incomplete == 0);
      CHECK(max_abs(rect.matrix(rect.nngp) - cross.nngp) == 0.0);
      CHECK(max_abs(rect.matrix(rect.ntk) - cross.ntk) == 0.0);
      // kernels() itself at this thread count (its symmetric tiles go the same way).
      if (cap == 0) {
        const Kernels again = kernels(arch, x, o);
        CHECK(max_abs(again.ntk - ref.ntk) == 0.0);
      }
    }
  // Only one kernel wanted: the other pointer null, nothing written there.
  struct NngpOnly : DirectSink {
    emergent::KernelOutputMatrices direct_output(const emergent::KernelBandLayout& l) override {
      emergent::KernelOutputMatrices m = DirectSink::direct_output(l);
      m.ntk = nullptr;
      return m;
    }
  } one;
  stream_kernels(arch, x, nullptr, whole, one);
  CHECK(max_abs(one.matrix(one.nngp) - ref.nngp) == 0.0);
  CHECK(std::all_of(one.ntk.begin(), one.ntk.end(), [](double v) { return std::isnan(v); }));
  // A sink that declines gets buffers, as before.
  struct Buffered : emergent::KernelBandSink {
    Eigen::Index in_place = 0, bands = 0;
    void begin(Eigen::Index, Eigen::Index, bool, Eigen::Index) override {}
    void write(const emergent::KernelBand& b) override { ++bands, in_place += b.in_place || !b.nngp; }
  } buffered;
  stream_kernels(arch, x, nullptr, whole, buffered);
  CHECK(buffered.bands == 1);
  CHECK(buffered.in_place == 0);
}

TEST_CASE("stream_kernels: wide tiles (several per row block) give the same bits for every band layout, cap and thread count") {
  // 64-row tiles up to 384 columns wide: 1300 columns need up to four tiles per row block, and
  // bands of 64, 192 and 320 rows start inside tiles' column ranges differently.
  const auto x = random_vectors(1300, 6, 131), z = random_vectors(200, 6, 132);
  const auto arch = Architecture::parse("dense(8, b=0.1) relu dense(8) relu dense(1)");
  KernelOptions one, two;
  one.threads = 1;
  two.threads = 2;
  const Kernels ref = kernels(arch, x, one), cross = kernels(arch, z, x, one);
  const Kernels ref2 = kernels(arch, x, two);
  CHECK(max_abs(ref2.nngp - ref.nngp) == 0.0);
  CHECK(max_abs(ref2.ntk - ref.ntk) == 0.0);
  CHECK(max_abs(ref.ntk - ref.ntk.transpose()) == 0.0);
  // The mathematics, not only the bookkeeping: the symmetric Gram and the cross kernel of x
  // against itself agree to round-off, and K(z, x) = K(x, z)ᵀ.
  const Kernels self_cross = kernels(arch, x, x, two);
  CHECK(rel_diff(self_cross.nngp, ref.nngp) < 1e-14);
  CHECK(rel_diff(self_cross.ntk, ref.ntk) < 1e-14);
  CHECK(rel_diff(kernels(arch, x, z, two).ntk.transpose(), cross.ntk) < 1e-13);
  for (const std::size_t band_rows : {std::size_t(64), std::size_t(192), std::size_t(320)})
    for (const int threads : {1, 2}) {
      CAPTURE(band_rows);
      CAPTURE(threads);
      KernelOptions o;
      o.threads = threads;
      o.band_rows = band_rows;
      o.memory_cap_bytes = 64u << 20;
      MatrixSink buffered;
      stream_kernels(arch, x, nullptr, o, buffered);
      CHECK(buffered.band_rows == static_cast<Eigen::Index>(band_rows));
      CHECK(max_abs(buffered.nngp - ref.nngp) == 0.0);
      CHECK(max_abs(buffered.ntk - ref.ntk) == 0.0);
      DirectSink direct;
      stream_kernels(arch, x, nullptr, o, direct);
      CHECK(direct.incomplete == 0);
      CHECK(direct.final_calls > 0);
      CHECK(direct.final_rows == x.count());  // every row announced final, whichever thread ended last
      CHECK(direct.not_final == 0);
      CHECK(max_abs(direct.matrix(direct.nngp) - ref.nngp) == 0.0);
      CHECK(max_abs(direct.matrix(direct.ntk) - ref.ntk) == 0.0);
      DirectSink rect;
      stream_kernels(arch, z, &x, o, rect);
      CHECK(rect.incomplete == 0);
      CHECK(rect.not_final == 0);
      CHECK(max_abs(rect.matrix(rect.nngp) - cross.nngp) == 0.0);
      CHECK(max_abs(rect.matrix(rect.ntk) - cross.ntk) == 0.0);
    }
  // Caps that choose the bands themselves (and take threads away), in place and buffered.
  for (const std::size_t cap : {std::size_t(3) << 20, std::size_t(6) << 20}) {
    CAPTURE(cap);
    KernelOptions o;
    o.threads = 2;
    o.memory_cap_bytes = cap;
    MatrixSink buffered;
    const KernelSummary s = stream_kernels(arch, x, nullptr, o, buffered);
    CHECK(buffered.bands > 1);
    CHECK(s.estimated_peak_bytes <= cap);
    CHECK(max_abs(buffered.ntk - ref.ntk) == 0.0);
    DirectSink direct;
    stream_kernels(arch, x, nullptr, o, direct);
    CHECK(max_abs(direct.matrix(direct.ntk) - ref.ntk) == 0.0);
    CHECK(max_abs(direct.matrix(direct.nngp) - ref.nngp) == 0.0);
  }
}

namespace {
// Collects pixel-indexed bands into the C-order (N1, N2, P, P) layout of SpatialKernels,
// mirroring symmetric ones with the pixel indices swapped.
struct SpatialSink : emergent::KernelBandSink {
  std::vector<double> nngp, ntk;
  emergent::KernelBandLayout layout;
  Eigen::Index bands = 0;
  std::size_t progress_calls = 0;
  void begin(Eigen::Index, Eigen::Index, bool, Eigen::Index) override {}
  void start(const emergent::KernelBandLayout& l) override {
    layout = l;
    nngp.assign(static_cast<std::size_t>(l.n1 * l.n2) * l.entry_size(), std::nan(""));
    ntk = nngp;
  }
  void progress(Eigen::Index, std::size_t, std::size_t) override { ++progress_calls; }
  void write(const emergent::KernelBand& b) override {
    ++bands;
    const std::size_t e = b.entry_size, m = static_cast<std::size_t>(layout.height * layout.width);
    for (Eigen::Index i = 0; i < b.rows; ++i)
      for (Eigen::Index j = 0; j < b.cols; ++j) {
        const Eigen::Index r = b.row_begin + i, c = b.col_begin + j;
        const std::size_t from = (static_cast<std::size_t>(i * b.cols + j)) * e;
        const std::size_t to = static_cast<std::size_t>(r * layout.n2 + c) * e;
        const std::size_t back = static_cast<std::size_t>(c * layout.n2 + r) * e;
        for (std::size_t a = 0; a < m; ++a)
          for (std::size_t q = 0; q < m; ++q) {
            nngp[to + a * m + q] = b.nngp[from + a * m + q];
            ntk[to + a * m + q] = b.ntk[from + a * m + q];
            if (layout.symmetric) {
              nngp[back + q * m + a] = b.nngp[from + a * m + q];
              ntk[back + q * m + a] = b.ntk[from + a * m + q];
            }
          }
      }
  }
};

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));  // NaN stays NaN
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::isnan(a[i])) return INFINITY;
  return worst;
}
}  // namespace

TEST_CASE("the vector path's Σ⁰ is one fma chain per entry in feature order: the same bits whatever the tiles, bands and threads") {
  // One dense layer with w = 1, b = 0: K = Θ = Σ⁰ = (x·z)/d exactly as the chain
  // c ← fma(x_k, z_k, c) over k = 0 … d − 1 rounds it (lib/detail/packed_gram.hpp). d = 13 is not a
  // multiple of the 8-wide panels; 1300 × 203 needs partial tiles and micro-panels in both directions.
  const int d = 13;
  const auto x = random_vectors(1300, d, 141), z = random_vectors(203, d, 142);
  const auto arch = Architecture::parse("dense(1, w=1, b=0)");
  const auto chain = [&](const Inputs& a, Eigen::Index i, const Inputs& b, Eigen::Index j) {
    double c = 0;
    for (int k = 0; k < d; ++k) c = std::fma(a.x(i, k), b.x(j, k), c);
    return c / d;
  };
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    KernelOptions o;
    o.threads = threads;
    const Kernels cross = kernels(arch, z, x, o), gram = kernels(arch, x, o);
    bool cross_ok = true, gram_ok = true;
    for (Eigen::Index i = 0; i < z.count(); ++i)
      for (Eigen::Index j = 0; j < x.count(); ++j) cross_ok &= cross.nngp(i, j) == chain(z, i, x, j) && cross.ntk(i, j) == cross.nngp(i, j);
    for (Eigen::Index i = 0; i < x.count(); ++i)
      for (Eigen::Index j = 0; j < x.count(); ++j) gram_ok &= gram.nngp(i, j) == chain(x, i, x, j);
    CHECK(cross_ok);
    CHECK(gram_ok);
    // Bands of 64 and 192 rows and a cap that takes a thread away: the same bits.
    for (const std::size_t band_rows : {std::size_t(64), std::size_t(192)}) {
      o.band_rows = band_rows;
      MatrixSink bands;
      stream_kernels(arch, x, &z, o, bands);
      CHECK(max_abs(bands.nngp - cross.nngp.transpose()) == 0.0);
    }
  }
  // With ReLU layers the Gram of x and the cross kernel of x against itself agree bitwise now
  // that Σ⁰(x_i, x_j) and Σ⁰(x_j, x_i) are the same chain.
  const auto relu = Architecture::parse("dense(8, b=0.1) relu dense(8) relu dense(1)");
  KernelOptions two;
  two.threads = 2;
  const Kernels g = kernels(relu, x, two), c = kernels(relu, x, x, two);
  CHECK(max_abs(g.nngp - c.nngp) == 0.0);
  CHECK(max_abs(g.ntk - c.ntk) == 0.0);
}

TEST_CASE("stream_kernels on the pixel paths: every band layout, cap and thread count gives the in-memory bits") {
  const auto x = random_images(23, 5, 6, 2, 97), z = random_images(9, 5, 6, 2, 98);
  // pixel-diagonal (flatten), pixel-pairs (gap, with and without an activation after it), and
  // bias-free ReLU (the homogeneous rescaling path of kernels()).
  for (const char* spec : {"conv(4, 3x3, b=0.2) relu conv(4, 2x3, padding=valid) erf flatten dense(2)",
                           "conv(4, 3x3, padding=circular) relu gap dense(3, b=0.1) relu dense(1)",
                           "conv(4, 3x3) relu conv(2, 1x1) gap dense(1)"}) {
    CAPTURE(spec);
    const auto arch = Architecture::parse(spec);
    KernelOptions whole;
    whole.threads = 2;
    const Kernels ref = kernels(arch, x, whole), cross = kernels(arch, z, x, whole);
    for (int threads : {1, 2}) {
      KernelOptions o;
      o.threads = threads;
      o.memory_cap_bytes = 1u << 20;
      CAPTURE(threads);
      MatrixSink sym, rect;
      const KernelSummary s = stream_kernels(arch, x, nullptr, o, sym);
      CHECK(sym.bands > 1);
      CHECK(s.path == ref.summary.path);
      CHECK(max_abs(sym.nngp - ref.nngp) == 0.0);
      CHECK(max_abs(sym.ntk - ref.ntk) == 0.0);
      stream_kernels(arch, z, &x, o, rect);
      CHECK(max_abs(rect.nngp - cross.nngp) == 0.0);
      CHECK(max_abs(rect.ntk - cross.ntk) == 0.0);
    }
  }
  // Pixel-indexed kernels: (N1, N2, H, W, H, W), symmetric bands mirrored with swapped pixels.
  const auto arch = Architecture::parse("conv(3, 3x3) relu conv(2, 2x2, padding=valid, b=0.3)");
  const SpatialKernels ref = spatial_kernels(arch, x), cross = spatial_kernels(arch, z, x);
  for (std::size_t cap : {std::size_t{1} << 20, std::size_t{64} << 20}) {
    CAPTURE(cap);
    KernelOptions o;
    o.threads = cap > (1u << 20) ? 2 : 1;
    o.memory_cap_bytes = cap;
    SpatialSink sym, rect;
    stream_kernels(arch, x, nullptr, o, sym);
    CHECK(sym.layout.height == ref.height);
    CHECK(sym.layout.width == ref.width);
    CHECK(sym.bands == sym.layout.bands());
    CHECK(sym.bands > 1);
    CHECK(max_abs_diff(sym.nngp, ref.nngp) == 0.0);
    CHECK(max_abs_diff(sym.ntk, ref.ntk) == 0.0);
    stream_kernels(arch, z, &x, o, rect);
    CHECK(max_abs_diff(rect.nngp, cross.nngp) == 0.0);
    CHECK(max_abs_diff(rect.ntk, cross.ntk) == 0.0);
  }
  // A cap below one row of the pixel-indexed output: the clear error naming the smallest cap.
  KernelOptions tight;
  tight.memory_cap_bytes = 1u << 20;
  const auto many = random_images(3000, 5, 6, 2, 99);  // one row: 2 · 3000 · 16² doubles = 12 MB
  SpatialSink none;
  CHECK_THROWS_AS(stream_kernels(arch, many, nullptr, tight, none), MemoryCapError);
}

TEST_CASE("stream_kernels: tiny inputs of a bias-free ReLU network are rescaled as in kernels(), and K(cx) = c²K(x)") {
  // Homogeneity of degree 2 (docs/robustness.md): at c = 2^-300 the unscaled recursion would
  // underflow in the dual's q1·q2; the streamed bands must keep the in-memory bits.
  const auto x = random_vectors(130, 6, 96);
  const auto arch = Architecture::parse("dense(8) relu dense(8) leaky_relu(0.2) dense(1)");
  const double c = std::ldexp(1.0, -300);
  const emergent::Inputs tiny(emergent::RowMatrix(x.x * c), x.shape);
  KernelOptions capped;
  capped.memory_cap_bytes = 1u << 20;
  const Kernels ref = kernels(arch, tiny, KernelOptions{});
  MatrixSink sink;
  stream_kernels(arch, tiny, nullptr, capped, sink);
  CHECK(max_abs(sink.nngp - ref.nngp) == 0.0);
  CHECK(max_abs(sink.ntk - ref.ntk) == 0.0);
  const Kernels unit = kernels(arch, x, KernelOptions{});
  CHECK(rel_diff(Eigen::MatrixXd(ref.nngp / (c * c)), unit.nngp) < 1e-14);
  CHECK(rel_diff(Eigen::MatrixXd(ref.ntk / (c * c)), unit.ntk) < 1e-14);
}

// ---- the optimised paths against a straightforward reference implementation -------------------
namespace {

// The recursion of docs/conventions.md §2 written out on full P × P pixel-pair arrays, one loop
// per formula (Novak et al. 2019 Eq. 7), one dual evaluation per entry: no slices, no separable
// sums, no batching. K11, K22 and K12 go through the layers together, so the pixel variances an
// activation sees are read off the diagonals of K11 and K22.
//
// The dual of the recursions is apply() on one entry (it takes pairs within 16 ulps of
// collinearity as collinear, docs/conventions.md §2; operator() treats its arguments as exact).
DualValue recursion_dual(const ActivationDual& dual, double q1, double q2, double c) {
  double nngp = c, ntk = 1.0;
  dual.apply(1, &q1, 0, &q2, 0, &nngp, &ntk);
  return {nngp, ntk};
}

struct ReferenceKernel {
  double nngp = 0, ntk = 0;                  // with a readout
  std::vector<double> spatial_s, spatial_t;  // without one: P_out × P_out
};

ReferenceKernel reference_pair(const Architecture& arch, const double* x, const double* y, int H, int W, int C) {
  auto input = [&](const double* a, const double* b) {
    const int P = H * W;
    std::vector<double> v(static_cast<std::size_t>(P) * P);
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < P; ++q) {
        double acc = 0;
        for (int c = 0; c < C; ++c) acc += a[p * C + c] * b[q * C + c];
        v[static_cast<std::size_t>(p) * P + q] = acc / C;
      }
    return v;
  };
  std::vector<double> k11 = input(x, x), k22 = input(y, y), k12 = input(x, y), t12(k12.size(), 0.0);
  bool pixels = true;
  double s11 = 0, s22 = 0, s12 = 0, t = 0;  // after the readout
  for (const Layer& L : arch.layers()) {
    if (L.kind == LayerKind::Conv) {
      const int Fh = L.filter_h, Fw = L.filter_w;
      const bool valid = L.padding == Padding::Valid, circular = L.padding == Padding::Circular;
      const int Ho = valid ? H - Fh + 1 : H, Wo = valid ? W - Fw + 1 : W;
      auto source = [&](int o, int s, int F, int n) {
        int i = o + s - (valid ? 0 : (F - 1) / 2);
        if (circular) return ((i % n) + n) % n;
        return (i < 0 || i >= n) ? -1 : i;
      };
      const int Pi = H * W, Po = Ho * Wo;
      const double scale = L.w_std * L.w_std / (Fh * Fw), b2 = L.b_std * L.b_std;
      auto window = [&](const std::vector<double>& in) {
        std::vector<double> out(static_cast<std::size_t>(Po) * Po, 0.0);
        for (int o1 = 0; o1 < Ho; ++o1)
          for (int p1 = 0; p1 < Wo; ++p1)
            for (int o2 = 0; o2 < Ho; ++o2)
              for (int p2 = 0; p2 < Wo; ++p2) {
                double acc = 0;
                for (int sh = 0; sh < Fh; ++sh)
                  for (int sw = 0; sw < Fw; ++sw) {
                    const int i1 = source(o1, sh, Fh, H), i2 = source(o2, sh, Fh, H);
                    const int j1 = source(p1, sw, Fw, W), j2 = source(p2, sw, Fw, W);
                    if (i1 < 0 || i2 < 0 || j1 < 0 || j2 < 0) continue;
                    acc += in[static_cast<std::size_t>(i1 * W + j1) * Pi + i2 * W + j2];
                  }
                out[static_cast<std::size_t>(o1 * Wo + p1) * Po + o2 * Wo + p2] = scale * acc;
              }
        return out;
      };
      k11 = window(k11);
      k22 = window(k22);
      k12 = window(k12);
      t12 = window(t12);
      for (std::size_t k = 0; k < k12.size(); ++k) {
        k11[k] += b2;
        k22[k] += b2;
        k12[k] += b2;
        t12[k] += k12[k];
      }
      H = Ho;
      W = Wo;
    } else if (L.kind == LayerKind::AvgPool) {
      // Each pixel of a pair averages over its own window (NT's AvgPool kernel).
      const int Ho = pooled_size(H, L.filter_h, L.stride_h, L.padding), Wo = pooled_size(W, L.filter_w, L.stride_w, L.padding);
      const int ph = pooled_pad_before(H, L.filter_h, L.stride_h, L.padding);
      const int pw = pooled_pad_before(W, L.filter_w, L.stride_w, L.padding);
      auto source = [&](int o, int s, int stride, int pad, int n) {
        int i = o * stride + s - pad;
        if (L.padding == Padding::Circular) return ((i % n) + n) % n;
        return (i < 0 || i >= n) ? -1 : i;
      };
      const int Pi = H * W, Po = Ho * Wo;
      const double norm = 1.0 / (double(L.filter_h) * L.filter_w * L.filter_h * L.filter_w);
      auto pool = [&](const std::vector<double>& in) {
        std::vector<double> out(static_cast<std::size_t>(Po) * Po, 0.0);
        for (int o1 = 0; o1 < Ho; ++o1)
          for (int p1 = 0; p1 < Wo; ++p1)
            for (int o2 = 0; o2 < Ho; ++o2)
              for (int p2 = 0; p2 < Wo; ++p2) {
                double acc = 0;
                for (int a1 = 0; a1 < L.filter_h; ++a1)
                  for (int b1 = 0; b1 < L.filter_w; ++b1)
                    for (int a2 = 0; a2 < L.filter_h; ++a2)
                      for (int b2 = 0; b2 < L.filter_w; ++b2) {
                        const int i1 = source(o1, a1, L.stride_h, ph, H), j1 = source(p1, b1, L.stride_w, pw, W);
                        const int i2 = source(o2, a2, L.stride_h, ph, H), j2 = source(p2, b2, L.stride_w, pw, W);
                        if (i1 < 0 || i2 < 0 || j1 < 0 || j2 < 0) continue;
                        acc += in[static_cast<std::size_t>(i1 * W + j1) * Pi + i2 * W + j2];
                      }
                out[static_cast<std::size_t>(o1 * Wo + p1) * Po + o2 * Wo + p2] = norm * acc;
              }
        return out;
      };
      k11 = pool(k11);
      k22 = pool(k22);
      k12 = pool(k12);
      t12 = pool(t12);
      H = Ho;
      W = Wo;
    } else if (L.kind == LayerKind::Activation && pixels) {
      const ActivationDual one(L.activation);
      const auto dual = [&one](double a, double b, double c) { return recursion_dual(one, a, b, c); };
      const int P = H * W;
      std::vector<double> q1(P), q2(P);
      for (int a = 0; a < P; ++a) q1[a] = k11[static_cast<std::size_t>(a) * P + a], q2[a] = k22[static_cast<std::size_t>(a) * P + a];
      for (int a = 0; a < P; ++a)
        for (int b = 0; b < P; ++b) {
          const std::size_t k = static_cast<std::size_t>(a) * P + b;
          k11[k] = dual(q1[a], q1[b], k11[k]).nngp;
          k22[k] = dual(q2[a], q2[b], k22[k]).nngp;
          const DualValue v = dual(q1[a], q2[b], k12[k]);
          k12[k] = v.nngp;
          t12[k] *= v.ntk_scale;
        }
    } else if (L.kind == LayerKind::Flatten || L.kind == LayerKind::GlobalAvgPool) {
      const int P = H * W;
      const bool gap = L.kind == LayerKind::GlobalAvgPool;
      for (int a = 0; a < P; ++a)
        for (int b = 0; b < P; ++b) {
          if (!gap && a != b) continue;
          const std::size_t k = static_cast<std::size_t>(a) * P + b;
          s11 += k11[k], s22 += k22[k], s12 += k12[k], t += t12[k];
        }
      const double n = gap ? double(P) * P : double(P);
      s11 /= n, s22 /= n, s12 /= n, t /= n;
      pixels = false;
    } else if (L.kind == LayerKind::Dense) {
      const double w2 = L.w_std * L.w_std, b2 = L.b_std * L.b_std;
      s11 = w2 * s11 + b2, s22 = w2 * s22 + b2, s12 = w2 * s12 + b2;
      t = s12 + w2 * t;
    } else {
      const ActivationDual one(L.activation);
      const auto dual = [&one](double a, double b, double c) { return recursion_dual(one, a, b, c); };
      const DualValue v = dual(s11, s22, s12);
      s11 = dual(s11, s11, s11).nngp;
      s22 = dual(s22, s22, s22).nngp;
      s12 = v.nngp;
      t *= v.ntk_scale;
    }
  }
  ReferenceKernel r;
  if (pixels) r.spatial_s = k12, r.spatial_t = t12;
  r.nngp = s12;
  r.ntk = t;
  return r;
}

// A random conv stack on an H × W map: filters 1–4 (odd and even), every padding, `valid` only
// where the map stays at least one pixel; `mix` allows circular next to the other paddings.
std::string random_conv_stack(std::uint64_t& state, int H, int W, bool mix, int* Ho, int* Wo) {
  auto next = [&](int n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int>((state >> 33) % static_cast<std::uint64_t>(n));
  };
  const char* acts[] = {"relu", "erf", "abs", "leaky_relu(0.2)", "gelu", "identity", "abrelu(-0.5, 1.3)"};
  const int layers = 1 + next(3);
  const bool circular_all = !mix && next(3) == 0;
  std::string spec;
  for (int l = 0; l < layers; ++l) {
    int fh = 1 + next(4), fw = 1 + next(4);
    const char* paddings[] = {"same", "valid", mix ? "circular" : "same"};
    std::string pad = circular_all ? "circular" : paddings[next(3)];
    if (pad == "circular") fh = std::min(fh, H), fw = std::min(fw, W);  // the spec refuses wider filters
    if (pad == "valid" && (H - fh + 1 < 1 || W - fw + 1 < 1)) pad = "same";
    if (pad == "valid") H -= fh - 1, W -= fw - 1;
    char buf[160];
    std::snprintf(buf, sizeof buf, "conv(3, %dx%d, padding=%s, w=%.2f, b=%.2f) %s ", fh, fw, pad.c_str(),
                  0.8 + 0.1 * next(8), next(2) ? 0.3 : 0.0, acts[next(7)]);
    spec += buf;
  }
  *Ho = H;
  *Wo = W;
  return spec;
}

double worst_relative(const std::vector<double>& got, const std::vector<double>& want) {
  double diff = 0, scale = 0;
  for (std::size_t k = 0; k < want.size(); ++k)
    diff = std::max(diff, std::abs(got[k] - want[k])), scale = std::max(scale, std::abs(want[k]));
  return diff / scale;
}

void check_against_reference(const std::string& spec, const Inputs& x, const Inputs& y, bool spatial) {
  CAPTURE(spec);
  const Architecture arch = Architecture::parse(spec);
  const int H = x.shape.height, W = x.shape.width, C = x.shape.channels;
  for (bool symmetric : {false, true}) {
    CAPTURE(symmetric);
    const Inputs& b = symmetric ? x : y;
    std::vector<double> want_s, want_t, got_s, got_t;
    for (Eigen::Index i = 0; i < x.count(); ++i)
      for (Eigen::Index j = 0; j < b.count(); ++j) {
        const ReferenceKernel r = reference_pair(arch, x.x.row(i).data(), b.x.row(j).data(), H, W, C);
        if (spatial) {
          want_s.insert(want_s.end(), r.spatial_s.begin(), r.spatial_s.end());
          want_t.insert(want_t.end(), r.spatial_t.begin(), r.spatial_t.end());
        } else {
          want_s.push_back(r.nngp);
          want_t.push_back(r.ntk);
        }
      }
    if (spatial) {
      const SpatialKernels k = symmetric ? spatial_kernels(arch, x) : spatial_kernels(arch, x, y);
      got_s = k.nngp;
      got_t = k.ntk;
    } else {
      const Kernels k = symmetric ? kernels(arch, x) : kernels(arch, x, y);
      for (Eigen::Index i = 0; i < x.count(); ++i)
        for (Eigen::Index j = 0; j < b.count(); ++j) got_s.push_back(k.nngp(i, j)), got_t.push_back(k.ntk(i, j));
    }
    REQUIRE(got_s.size() == want_s.size());
    CHECK(worst_relative(got_s, want_s) < 1e-13);
    CHECK(worst_relative(got_t, want_t) < 1e-13);
  }
}

}  // namespace

TEST_CASE("the optimised kernel paths equal a straightforward reference recursion to 1e-13") {
  std::uint64_t state = 2024;
  int seed = 0;
  for (int round = 0; round < 24; ++round) {
    const int H = 2 + round % 4, W = 3 + (round / 4) % 3, C = 1 + round % 3;
    const Inputs x = random_images(3, H, W, C, 900 + seed++), y = random_images(2, H, W, C, 900 + seed++);
    int Ho = 0, Wo = 0;
    const std::string body = random_conv_stack(state, H, W, round % 5 == 4, &Ho, &Wo);
    const char* readouts[] = {"gap dense(2, b=0.2) relu dense(1)", "gap dense(1)", "flatten dense(3) erf dense(1)"};
    check_against_reference(body + readouts[round % 3], x, y, false);
    if (round % 2 == 0) check_against_reference(body.substr(0, body.size() - 1), x, y, true);
  }
  // `valid` shrinking the map to a single pixel, with odd and even filters.
  const Inputs x5 = random_images(3, 5, 4, 2, 71), y5 = random_images(2, 5, 4, 2, 72);
  for (const char* spec : {"conv(3, 3x2, padding=valid) relu conv(3, 3x3, padding=valid) relu gap dense(1)",
                           "conv(3, 5x4, padding=valid) relu gap dense(1)",
                           "conv(3, 2x2, padding=valid, b=0.4) abs conv(3, 4x3, padding=valid) erf flatten dense(1)",
                           "conv(3, 2x1) relu conv(3, 4x4, padding=valid) relu conv(3, 2x1, padding=valid) relu"}) {
    const bool spatial = std::string(spec).find("dense") == std::string::npos;
    check_against_reference(spec, x5, y5, spatial);
  }
}

TEST_CASE("circular stacks (ring blocks) equal the reference recursion to 1e-13 at every map size and filter") {
  // Maps from one pixel to more than one vector of 8 per row, odd and even filters up to the map,
  // ReLU-family activations (fused with the conv) and others, gap and pixel-indexed outputs,
  // x against x (the mirrored half of the blocks) and x against y.
  std::uint64_t state = 77;
  auto next = [&](int n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int>((state >> 33) % static_cast<std::uint64_t>(n));
  };
  const int sizes[][2] = {{1, 1}, {1, 5}, {4, 1}, {2, 3}, {5, 5}, {6, 8}, {3, 9}, {7, 11}, {8, 8}, {9, 4}, {4, 16}, {5, 13}};
  const char* acts[] = {"relu", "abs", "leaky_relu(0.2)", "abrelu(-0.5, 1.3)", "erf", "identity"};
  int seed = 0;
  for (const auto& hw : sizes) {
    const int H = hw[0], W = hw[1], C = 1 + next(3);
    const Inputs x = random_images(3, H, W, C, 1300 + seed++), y = random_images(2, H, W, C, 1300 + seed++);
    std::string body;
    const int layers = 1 + next(3);
    for (int l = 0; l < layers; ++l) {
      const int fh = std::min(H, 1 + next(4)), fw = next(2) ? std::min(W, 3) : std::min(W, 1 + next(5));
      char buf[160];
      std::snprintf(buf, sizeof buf, "conv(3, %dx%d, padding=circular, w=%.2f, b=%.2f) %s ", fh, fw, 0.8 + 0.1 * next(8),
                    next(2) ? 0.3 : 0.0, acts[next(6)]);
      body += buf;
    }
    check_against_reference(body + "gap dense(1)", x, y, false);
    check_against_reference(body + "gap dense(2, b=0.1) relu dense(1)", x, y, false);
    check_against_reference(body.substr(0, body.size() - 1), x, y, true);
  }
}

namespace {
// A random avgpool on an H × W map: windows 1–3 (odd and even), strides 1–3, every padding,
// `valid` only where the window fits.
std::string random_pool(std::uint64_t& state, int* H, int* W) {
  auto next = [&](int n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int>((state >> 33) % static_cast<std::uint64_t>(n));
  };
  int kh = 1 + next(3), kw = 1 + next(3);
  const int sh = 1 + next(3), sw = 1 + next(3);
  const char* paddings[] = {"valid", "same", "circular"};
  std::string pad = paddings[next(3)];
  if (pad != "same") kh = std::min(kh, *H), kw = std::min(kw, *W);
  const Padding p = pad == "valid" ? Padding::Valid : pad == "same" ? Padding::Same : Padding::Circular;
  *H = pooled_size(*H, kh, sh, p);
  *W = pooled_size(*W, kw, sw, p);
  char buf[96];
  std::snprintf(buf, sizeof buf, "avgpool(%dx%d, stride=%dx%d, padding=%s) ", kh, kw, sh, sw, pad.c_str());
  return buf;
}
}  // namespace

TEST_CASE("avgpool on the offset slices equals the reference recursion and the general path to 1e-13") {
  std::uint64_t state = 77;
  int seed = 0;
  int sliced = 0;
  for (int round = 0; round < 24; ++round) {
    const int H = 3 + round % 4, W = 3 + (round / 4) % 4, C = 1 + round % 2;
    const Inputs x = random_images(3, H, W, C, 1300 + seed++), y = random_images(2, H, W, C, 1300 + seed++);
    int h = H, w = W, ho = 0, wo = 0;
    std::string body = round % 4 == 3 ? "" : random_conv_stack(state, h, w, false, &ho, &wo);
    if (!body.empty()) h = ho, w = wo;
    body += random_pool(state, &h, &w);
    if (round % 2 == 0) {  // a second stage: convs after the pool, sometimes another pool
      body += random_conv_stack(state, h, w, false, &ho, &wo);
      h = ho, w = wo;
      if (round % 3 == 0) body += random_pool(state, &h, &w);
    }
    const Architecture probe = Architecture::parse(body + "gap dense(1)");
    sliced += uses_general_path(probe) ? 0 : 1;
    const char* readouts[] = {"gap dense(2, b=0.2) relu dense(1)", "flatten dense(3) erf dense(1)", "gap dense(1)"};
    const std::string spec = body + readouts[round % 3];
    check_against_reference(spec, x, y, false);
    const Architecture arch = Architecture::parse(spec);
    const Kernels fast = kernels(arch, x, y), general = general_kernels(arch, x, &y);
    CHECK(test::max_abs(fast.nngp - general.nngp) <= 1e-13 * test::max_abs(general.nngp));
    CHECK(test::max_abs(fast.ntk - general.ntk) <= 1e-13 * test::max_abs(general.ntk));
    if (round % 3 == 1 && body.find("conv") != std::string::npos)  // no readout: pixel-indexed
      check_against_reference(body.substr(0, body.size() - 1), x, y, true);
  }
  CHECK(sliced >= 18);  // most of them really ran on the slices
  // Myrtle-style: pools down to one pixel, then flatten; every readout of one pooled stack.
  const Inputs x8 = random_images(3, 8, 8, 2, 81), y8 = random_images(2, 8, 8, 2, 82);
  const std::string c = "conv(2, 3x3, w=1.4) relu ", p = "avgpool(2x2, stride=2) ";
  for (const std::string& spec : {c + c + p + c + p + p + "flatten dense(1)", c + p + c + p + "gap dense(1)",
                                 c + "avgpool(3x3, stride=2, padding=same) " + c + "flatten dense(1)"}) {
    check_against_reference(spec, x8, y8, false);
    const Architecture arch = Architecture::parse(spec);
    CHECK(kernels(arch, x8).summary.path == "pixel-pairs");
  }
  check_against_reference(c + p + c + "avgpool(3x2, stride=1x2, padding=circular) conv(2, 2x2, padding=valid)", x8,
                          y8, true);
}

TEST_CASE("avgpool on the slices: bitwise the same at any thread count; x against x has the symmetric diagonal") {
  const Architecture arch = Architecture::parse(
      "conv(2, 3x3, b=0.2) relu avgpool(2x2, stride=2) conv(2, 3x3) erf avgpool(3x3, stride=2, padding=same) "
      "gap dense(2) relu dense(1)");
  const Inputs x = random_images(7, 9, 8, 2, 91);
  const Kernels k1 = kernels_at_one_and_two_threads(arch, x);
  CHECK(k1.nngp == k1.nngp.transpose());
  CHECK(k1.summary.path == "pixel-pairs");
  KernelOptions two;
  two.threads = 2;
  const Kernels kx = kernels(arch, x, x, two);  // same points, not symmetric: the same self sums
  CHECK(kx.nngp.diagonal() == k1.nngp.diagonal());
  CHECK(test::max_abs(kx.nngp - k1.nngp) <= 1e-14 * test::max_abs(k1.nngp));
  CHECK(streams_in_bands(arch, x.shape));
}

TEST_CASE("avgpool: a point's records-only run with itself gives the records of its whole run (x1 x x2 = the block of the Gram of both, bitwise)") {
  // Against x2 a point's run with itself only needs the offsets its later pixel variances
  // average (a 2x2 pool: |d| <= 3 on a 16x16 map before two pools, |d| <= 1 before one), not
  // the Gram diagonal's; the symmetric Gram of x1 and x2 together runs every point whole. The
  // entries use the records alone, so the two agree bit for bit wherever they share an entry.
  const std::string c = "conv(2, 3x3, w=1.4, b=0.1) relu ", p = "avgpool(2x2, stride=2) ";
  const Inputs x = random_images(3, 16, 12, 2, 141), y = random_images(2, 16, 12, 2, 142);
  Inputs both(Eigen::MatrixXd(5, x.x.cols()), x.shape);
  both.x << x.x, y.x;
  for (const std::string& spec : {c + c + p + c + p + c + p + "flatten dense(1)",
                                 c + p + c + "avgpool(3x3, stride=2, padding=same) " + c + "gap dense(2)",
                                 c + p + "conv(2, 2x2, padding=valid) erf " + p + "flatten dense(3, b=0.2)",
                                 c + p + c + p + c}) {
    CAPTURE(spec);
    const Architecture arch = Architecture::parse(spec);
    const bool spatial = spec.find("dense") == std::string::npos;
    for (int threads : {1, 2}) {
      KernelOptions options;
      options.threads = threads;
      if (spatial) {
        const SpatialKernels cross = spatial_kernels(arch, x, y, options), whole = spatial_kernels(arch, both, options);
        const std::size_t m = cross.nngp.size() / 6;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 2; ++j)
            for (std::size_t k = 0; k < m; ++k) {
              CHECK(cross.nngp[(i * 2 + j) * m + k] == whole.nngp[(i * 5 + 3 + j) * m + k]);
              CHECK(cross.ntk[(i * 2 + j) * m + k] == whole.ntk[(i * 5 + 3 + j) * m + k]);
            }
        continue;
      }
      const Kernels cross = kernels(arch, x, y, options), whole = kernels(arch, both, options);
      CHECK(cross.nngp == whole.nngp.block(0, 3, 3, 2));
      CHECK(cross.ntk == whole.ntk.block(0, 3, 3, 2));
      // x2 sharing a point with x1: that point's own sums are an entry, so its run is whole.
      Inputs y2 = y;
      y2.x.row(1) = x.x.row(2);
      const Kernels shared = kernels(arch, x, y2, options);
      CHECK(shared.nngp(2, 1) == whole.nngp(2, 2));
      CHECK(shared.ntk(2, 1) == whole.ntk(2, 2));
      CHECK(shared.nngp.col(0) == whole.nngp.block(0, 3, 3, 1));
    }
  }
}

TEST_CASE("the pixel-diagonal path (8 partners in the lanes) equals the reference recursion to 1e-13, at any thread count and cap") {
  // Flatten readouts: random conv stacks (filters 1–4, every padding, circular alone or mixed with
  // the others), group tails (11 and 5 points: not multiples of the 8 lanes), a zero image, a
  // duplicate image (exactly collinear with its twin), and two activations in a row.
  std::uint64_t state = 4242;
  for (int round = 0; round < 16; ++round) {
    const int H = 2 + round % 5, W = 2 + (round / 2) % 5, C = 1 + round % 3;
    RowMatrix xs = random_images(11, H, W, C, 1500 + 2 * round).x;
    xs.row(3).setZero();
    xs.row(7) = xs.row(2);
    const Inputs x(xs, ExampleShape::image_hwc(H, W, C)), y = random_images(5, H, W, C, 1501 + 2 * round);
    int Ho = 0, Wo = 0;
    std::string body = random_conv_stack(state, H, W, round % 4 == 3, &Ho, &Wo);
    if (round % 5 == 2) body += "relu ";  // two activations in a row: the second one on its own
    if (round % 5 == 4) body += "erf ";
    const std::string spec = body + (round % 2 ? "flatten dense(1)" : "flatten dense(3, b=0.1) relu dense(1)");
    CAPTURE(spec);
    const Architecture arch = Architecture::parse(spec);
    const Kernels a = kernels_at_one_and_two_threads(arch, x);
    CHECK(a.summary.path == "pixel-diagonal");
    CHECK(a.nngp == a.nngp.transpose());
    CHECK(a.nngp.row(7) == a.nngp.row(2));  // the duplicate: the same entries, its self pair included
    CHECK(a.nngp(7, 7) == a.nngp(2, 2));
    check_against_reference(spec, x, y, false);
    // Cross kernels and bands under a small cap: the in-memory bits.
    KernelOptions two;
    two.threads = 2;
    const Kernels cross = kernels(arch, y, x, two);
    KernelOptions capped;
    capped.threads = 2;
    capped.memory_cap_bytes = 1u << 20;
    MatrixSink sym, rect;
    stream_kernels(arch, x, nullptr, capped, sym);
    stream_kernels(arch, y, &x, capped, rect);
    CHECK(sym.bands > 1);
    CHECK(max_abs(sym.nngp - a.nngp) == 0.0);
    CHECK(max_abs(sym.ntk - a.ntk) == 0.0);
    CHECK(max_abs(rect.nngp - cross.nngp) == 0.0);
    CHECK(max_abs(rect.ntk - cross.ntk) == 0.0);
  }
}

TEST_CASE("pixel diagonal, 3x3 convs with one ReLU-family activation each (rows divided by mu, first conv from the inputs): the reference recursion to 1e-13, the same bits at any thread count and cap") {
  // One input channel: the first conv's window sums come from the inputs themselves; after it
  // the rows hold Σ/μ and Θ/μ and the c ≥ 0 form of the dual runs. A zero image (unbounded
  // variances: the checked path), a duplicate (x against itself in the common path), negative
  // covariances after abs/leaky slopes, biases and `valid` convs.
  const char* bodies[] = {
      "conv(4, 3x3, w=1.3, b=0.2) relu conv(4, 3x3) relu conv(4, 3x3, w=0.9) relu ",
      "conv(4, 3x3) abs conv(4, 3x3, padding=valid, b=0.3) leaky_relu(0.1) conv(4, 3x3) abrelu(-0.4, 1.7) ",
      "conv(4, 3x3, padding=valid) abrelu(0.3, -1.2) conv(4, 3x3, w=1.1) relu ",
      "conv(4, 3x3, b=0.5) relu conv(4, 2x2) relu conv(4, 3x3) erf ",  // a scaled level feeding an unscaled one
  };
  int seed = 0;
  for (const char* body : bodies) {
    for (const int hw : {5, 9}) {
      RowMatrix xs = random_images(13, hw, hw + 2, 1, 1700 + seed).x;
      xs.row(4).setZero();
      xs.row(9) = xs.row(1);
      const Inputs x(xs, ExampleShape::image_hwc(hw, hw + 2, 1)), y = random_images(6, hw, hw + 2, 1, 1701 + seed);
      seed += 2;
      const std::string spec = std::string(body) + "flatten dense(1, w=1.2, b=0.1)";
      CAPTURE(spec);
      const Architecture arch = Architecture::parse(spec);
      const Kernels a = kernels_at_one_and_two_threads(arch, x);
      CHECK(a.summary.path == "pixel-diagonal");
      CHECK(a.ntk.row(9) == a.ntk.row(1));
      CHECK(a.ntk(9, 9) == a.ntk(1, 1));
      CHECK(a.nngp.allFinite());
      CHECK(a.ntk.allFinite());
      check_against_reference(spec, x, y, false);
      KernelOptions capped;
      capped.threads = 2;
      capped.memory_cap_bytes = 1u << 20;
      MatrixSink sym;
      stream_kernels(arch, x, nullptr, capped, sym);
      CHECK(max_abs(sym.ntk - a.ntk) == 0.0);
      CHECK(max_abs(sym.nngp - a.nngp) == 0.0);
    }
  }
}

TEST_CASE("pixel pairs, rows of 25-32 pixels (open rows: one test per group, rows divided by mu before a conv): the reference recursion to 1e-13, the same bits at any thread count") {
  // Slab rows of 4 vectors take the open form of the scaled dual: Σ and Θ are stored divided by μ
  // when a conv follows (which multiplies μ back into its scale), the test is one per group of 4
  // vectors, and a group that fails it (a duplicate image: exactly collinear pixel pairs at offset
  // 0) runs the exact path. An image blank on its left part (zero variances: rows the open path
  // does not take, in a scaled layer), negative covariances (abs, leaky slopes, the first conv from the inputs), a
  // fused layer feeding a conv that is not fused (erf after it) and tail vectors of 1-8 lanes.
  const char* bodies[] = {
      "conv(3, 3x3, w=1.3) relu conv(3, 3x3, b=0.2) relu conv(3, 3x3, w=0.9) relu ",
      "conv(3, 3x3) abs conv(3, 3x3, b=0.3) leaky_relu(0.1) conv(3, 3x3) abrelu(-0.4, 1.7) ",
      "conv(3, 3x3, b=0.5) relu conv(3, 3x3) erf conv(3, 3x3) relu ",
  };
  int seed = 0;
  for (const char* body : bodies) {
    for (const int w : {25, 28, 32}) {
      const int h = 3 + seed % 2;
      RowMatrix xs = random_images(4, h, w, 2, 2300 + seed).x;
      for (int hh = 0; hh < h; ++hh)  // image 2 blank left of column 12: rows with zero and positive variances
        for (int k = 0; k < 2 * 12; ++k) xs(2, hh * w * 2 + k) = 0.0;
      xs.row(3) = xs.row(0);
      const Inputs x(xs, ExampleShape::image_hwc(h, w, 2)), y = random_images(2, h, w, 2, 2301 + seed);
      seed += 2;
      for (const char* readout : {"gap dense(1)", "gap dense(2, b=0.1) relu dense(1)"}) {
        const std::string spec = std::string(body) + readout;
        CAPTURE(spec);
        const Architecture arch = Architecture::parse(spec);
        const Kernels a = kernels_at_one_and_two_threads(arch, x);
        // Image 3 is image 0: its pair with 0 (the exact path on collinear pixels) is 0's self pair.
        CHECK(std::abs(a.nngp(3, 0) - a.nngp(0, 0)) <= 1e-13 * std::abs(a.nngp(0, 0)));
        CHECK(std::abs(a.ntk(3, 0) - a.ntk(0, 0)) <= 1e-13 * std::abs(a.ntk(0, 0)));
        CHECK(a.nngp.allFinite());
        CHECK(a.ntk.allFinite());
        check_against_reference(spec, x, y, false);
      }
    }
  }
}
