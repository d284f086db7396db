// The general kernel path (kernels/general_kernel.hpp): equal to the fast paths wherever both
// apply, and the identities of the new layers — avgpool over the whole image followed by flatten
// is gap, pooling windows computed by hand from the pixel-pair kernel, layer norm as the
// quotient by the variances, residual kernels as the sum of the two branches' kernels.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "emergent/kernels/general_kernel.hpp"
#include "emergent/kernels/kernel.hpp"

using namespace emergent;

namespace {

// This suite's inputs come from stream 6060 of the shared generator.
Inputs inputs(const ExampleShape& shape, Eigen::Index n, std::uint64_t seed) {
  return test::random_inputs(n, shape, seed, 6060);
}

double rel(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return test::max_abs(a - b) / std::max(test::max_abs(b), 1e-300);
}

double rel(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0, m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i])), m = std::max(m, std::abs(b[i]));
  return d / std::max(m, 1e-300);
}

SpatialKernels spatial(const std::string& spec, const Inputs& x1, const Inputs& x2) {
  return general_spatial_kernels(Architecture::parse(spec), x1, &x2);
}

const ExampleShape kImage = ExampleShape::image_hwc(5, 4, 2);  // non-square: catches H/W mix-ups

}  // namespace

TEST_CASE("the general path equals the fast paths on the classic layers") {
  const std::vector<std::pair<std::string, ExampleShape>> gram = {
      {"dense(8, w=1.4, b=0.3) relu dense(8, b=0.1) erf dense(1)", ExampleShape::vector(5)},
      {"dense(8) tanh dense(3, w=0.7) abrelu(-0.3, 1.2) dense(1, b=1)", ExampleShape::vector(3)},
      {"conv(4, 3x3, b=0.2) relu conv(4, 2x3, padding=valid, w=1.3) erf flatten dense(1)", kImage},
      {"conv(4, 3x2, padding=circular) gelu conv(4, 4x4, padding=same, b=0.5) relu gap dense(2)", kImage},
      {"conv(3, 2x2, padding=valid) abs gap dense(3) relu dense(1, b=0.2)", kImage},
      {"flatten dense(4, b=0.1) relu dense(1)", kImage},
      {"gap dense(4) erf dense(1)", kImage},
  };
  for (const auto& [spec, shape] : gram) {
    CAPTURE(spec);
    const Architecture arch = Architecture::parse(spec);
    const Inputs a = inputs(shape, 4, 1), b = inputs(shape, 3, 2);
    const Kernels fast = kernels(arch, a, b), general = general_kernels(arch, a, &b);
    CHECK(general.summary.path.rfind("general", 0) == 0);
    CHECK(rel(general.nngp, fast.nngp) < 1e-13);
    CHECK(rel(general.ntk, fast.ntk) < 1e-13);
    const Kernels fs = kernels(arch, a), gs = general_kernels(arch, a, nullptr);
    CHECK(rel(gs.nngp, fs.nngp) < 1e-13);
    CHECK(rel(gs.ntk, fs.ntk) < 1e-13);
    CHECK(gs.nngp == gs.nngp.transpose());
  }
  for (const std::string spec : {"conv(3, 3x3, b=0.1) relu conv(2, 2x2, padding=circular)",
                                 "conv(3, 3x3, padding=valid) erf conv(2, 1x2, padding=same, w=1.5)"}) {
    CAPTURE(spec);
    const Architecture arch = Architecture::parse(spec);
    const Inputs a = inputs(kImage, 3, 3), b = inputs(kImage, 2, 4);
    CHECK(rel(general_spatial_kernels(arch, a, &b).nngp, spatial_kernels(arch, a, b).nngp) < 1e-13);
    CHECK(rel(general_spatial_kernels(arch, a, &b).ntk, spatial_kernels(arch, a, b).ntk) < 1e-13);
    CHECK(rel(general_spatial_kernels(arch, a, nullptr).ntk, spatial_kernels(arch, a).ntk) < 1e-13);
  }
}

TEST_CASE("avgpool over the whole image followed by flatten is gap; avgpool(1x1) is the identity") {
  const Inputs a = inputs(kImage, 4, 5), b = inputs(kImage, 3, 6);
  for (const std::string body : {"conv(4, 3x3, b=0.2) relu conv(3, 2x2, padding=circular) erf",
                                 "conv(3, 3x2, padding=valid, w=1.2) abs"}) {
    CAPTURE(body);
    const Architecture g = Architecture::parse(body + " gap dense(2, b=0.1)");
    const ExampleShape mid = g.shapes(kImage).shapes[g.layers().size() - 2];
    const std::string window = std::to_string(mid.height) + "x" + std::to_string(mid.width);
    const Architecture p = Architecture::parse(body + " avgpool(" + window + ") flatten dense(2, b=0.1)");
    const Kernels kg = kernels(g, a, b), kp = general_kernels(p, a, &b);
    CHECK(rel(kp.nngp, kg.nngp) < 1e-13);
    CHECK(rel(kp.ntk, kg.ntk) < 1e-13);
    const Kernels ks = kernels(p, a, b);  // the offset slices, one stage per pool
    CHECK(rel(ks.nngp, kg.nngp) < 1e-13);
    CHECK(rel(ks.ntk, kg.ntk) < 1e-13);
    const Architecture one = Architecture::parse(body + " avgpool(1x1) flatten dense(1)");
    const Kernels ko = general_kernels(one, a, &b), kf = kernels(Architecture::parse(body + " flatten dense(1)"), a, b);
    CHECK(rel(ko.nngp, kf.nngp) < 1e-13);
    CHECK(rel(ko.ntk, kf.ntk) < 1e-13);
    // Negative control: a smaller window is not gap.
    const Architecture half = Architecture::parse(body + " avgpool(2x2) flatten dense(2, b=0.1)");
    CHECK(rel(general_kernels(half, a, &b).nngp, kg.nngp) > 1e-3);
  }
}

TEST_CASE("avgpool: every padding and stride equals the window average of the pixel-pair kernel") {
  const std::string body = "conv(3, 3x3, b=0.3) relu conv(2, 3x3, w=1.2)";
  const Inputs a = inputs(kImage, 2, 7), b = inputs(kImage, 2, 8);
  const SpatialKernels k0 = spatial(body, a, b);
  const int H = kImage.height, W = kImage.width;
  for (const std::string pool :
       {"avgpool(2x2)", "avgpool(3x3, stride=2, padding=same)", "avgpool(3x2, stride=2x1, padding=circular)",
        "avgpool(2x3, stride=3, padding=valid)", "avgpool(4x4, stride=2, padding=same)", "avgpool(3x3, padding=circular)"}) {
    CAPTURE(pool);
    const Architecture arch = Architecture::parse(body + " " + pool);
    const Layer& L = arch.layers().back();
    const SpatialKernels k = spatial(body + " " + pool, a, b);
    const int Ho = pooled_size(H, L.filter_h, L.stride_h, L.padding), Wo = pooled_size(W, L.filter_w, L.stride_w, L.padding);
    REQUIRE(k.height == Ho);
    REQUIRE(k.width == Wo);
    const int ph = pooled_pad_before(H, L.filter_h, L.stride_h, L.padding);
    const int pw = pooled_pad_before(W, L.filter_w, L.stride_w, L.padding);
    // Source pixel of output o and tap s along an axis, or −1 (zero padding).
    auto src = [&](int o, int s, int stride, int pad, int n) {
      int i = o * stride + s - pad;
      if (L.padding == Padding::Circular) return ((i % n) + n) % n;
      return (i < 0 || i >= n) ? -1 : i;
    };
    std::vector<double> expect_s(k.nngp.size()), expect_t(k.ntk.size());
    const double norm = 1.0 / std::pow(L.filter_h * L.filter_w, 2);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        for (int h1 = 0; h1 < Ho; ++h1)
          for (int w1 = 0; w1 < Wo; ++w1)
            for (int h2 = 0; h2 < Ho; ++h2)
              for (int w2 = 0; w2 < Wo; ++w2) {
                double s = 0, t = 0;
                for (int a1 = 0; a1 < L.filter_h; ++a1)
                  for (int b1 = 0; b1 < L.filter_w; ++b1)
                    for (int a2 = 0; a2 < L.filter_h; ++a2)
                      for (int b2 = 0; b2 < L.filter_w; ++b2) {
                        const int y1 = src(h1, a1, L.stride_h, ph, H), x1 = src(w1, b1, L.stride_w, pw, W);
                        const int y2 = src(h2, a2, L.stride_h, ph, H), x2 = src(w2, b2, L.stride_w, pw, W);
                        if (y1 < 0 || x1 < 0 || y2 < 0 || x2 < 0) continue;
                        s += k0.nngp[k0.index(i, j, y1, x1, y2, x2)];
                        t += k0.ntk[k0.index(i, j, y1, x1, y2, x2)];
                      }
                expect_s[k.index(i, j, h1, w1, h2, w2)] = norm * s;
                expect_t[k.index(i, j, h1, w1, h2, w2)] = norm * t;
              }
    CHECK(rel(k.nngp, expect_s) < 1e-13);
    CHECK(rel(k.ntk, expect_t) < 1e-13);
    const SpatialKernels f = spatial_kernels(arch, a, b);  // the offset slices
    CHECK(rel(f.nngp, expect_s) < 1e-13);
    CHECK(rel(f.ntk, expect_t) < 1e-13);
  }
}

TEST_CASE("layernorm divides by the variances; residual kernels are the sums of the branches") {
  const Inputs a = inputs(kImage, 3, 9), b = inputs(kImage, 2, 10);
  const std::string body = "conv(3, 3x3, b=0.4) relu conv(3, 2x2, padding=circular, w=1.5, b=0.2)";
  {
    const SpatialKernels k0 = spatial(body, a, b), k = spatial(body + " layernorm", a, b);
    const SpatialKernels qa = spatial(body, a, a), qb = spatial(body, b, b);
    std::vector<double> es(k.nngp.size()), et(k.ntk.size());
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 2; ++j)
        for (int h1 = 0; h1 < 5; ++h1)
          for (int w1 = 0; w1 < 4; ++w1)
            for (int h2 = 0; h2 < 5; ++h2)
              for (int w2 = 0; w2 < 4; ++w2) {
                const double f = 1.0 / std::sqrt((1e-12 + qa.nngp[qa.index(i, i, h1, w1, h1, w1)]) *
                                                 (1e-12 + qb.nngp[qb.index(j, j, h2, w2, h2, w2)]));
                es[k.index(i, j, h1, w1, h2, w2)] = f * k0.nngp[k0.index(i, j, h1, w1, h2, w2)];
                et[k.index(i, j, h1, w1, h2, w2)] = f * k0.ntk[k0.index(i, j, h1, w1, h2, w2)];
              }
    CHECK(rel(k.nngp, es) < 1e-13);
    CHECK(rel(k.ntk, et) < 1e-13);
    // The diagonal of a point with itself is exactly q/(ε+q): 1 up to ε/q.
    const SpatialKernels self = general_spatial_kernels(Architecture::parse(body + " layernorm"), a, nullptr);
    for (int i = 0; i < 3; ++i)
      for (int h = 0; h < 5; ++h)
        for (int w = 0; w < 4; ++w) CHECK(std::abs(self.nngp[self.index(i, i, h, w, h, w)] - 1.0) < 1e-11);
  }
  // Layer norm right after a bias-free first layer makes the kernel scale invariant.
  {
    const Architecture ln = Architecture::parse("dense(8) layernorm relu dense(4, b=0.3) erf dense(1)");
    const ExampleShape v = ExampleShape::vector(5);
    const Inputs x = inputs(v, 4, 11), y = inputs(v, 3, 12);
    const Inputs x3(RowMatrix(3.0 * x.x), v);
    const Kernels k = general_kernels(ln, x, &y), k3 = general_kernels(ln, x3, &y);
    CHECK(rel(k3.nngp, k.nngp) < 1e-12);
    CHECK(rel(k3.ntk, k.ntk) < 1e-12);
    // Control: without the layer norm the kernel changes with the scale.
    const Architecture plain = Architecture::parse("dense(8) relu dense(4, b=0.3) erf dense(1)");
    CHECK(rel(general_kernels(plain, x3, &y).nngp, general_kernels(plain, x, &y).nngp) > 1e-2);
  }
  // x + block(x): the kernels of the shortcut and of the block add (NT's FanOut/FanInSum).
  for (const std::string block : {"relu conv(3, 3x3, b=0.1)", "erf conv(3, 3x3, padding=circular) layernorm",
                                  "relu conv(3, 3x3) residual(abs conv(3, 1x1, w=0.5)) avgpool(1x1)"}) {
    CAPTURE(block);
    const SpatialKernels sum = spatial(body + " residual(" + block + ")", a, b);
    const SpatialKernels shortcut = spatial(body, a, b), branch = spatial(body + " " + block, a, b);
    std::vector<double> es(sum.nngp.size()), et(sum.ntk.size());
    for (std::size_t i = 0; i < es.size(); ++i) {
      es[i] = shortcut.nngp[i] + branch.nngp[i];
      et[i] = shortcut.ntk[i] + branch.ntk[i];
    }
    CHECK(rel(sum.nngp, es) < 1e-13);
    CHECK(rel(sum.ntk, et) < 1e-13);
  }
  // A residual block on the raw inputs of an MLP: K = x·x'/d + K_block.
  {
    const ExampleShape v = ExampleShape::vector(4);
    const Inputs x = inputs(v, 3, 13), y = inputs(v, 2, 14);
    const Kernels k = general_kernels(Architecture::parse("residual(dense(4, w=1.3, b=0.2))"), x, &y);
    const Eigen::MatrixXd lin = x.x * y.x.transpose() / 4.0;
    const Eigen::MatrixXd blk = 1.69 * lin.array() + 0.04;
    CHECK(rel(k.nngp, lin + blk) < 1e-14);
    CHECK(rel(k.ntk, blk) < 1e-14);  // Θ of the input is 0; Θ of one dense layer is its Σ
  }
}

TEST_CASE("general path: bitwise independent of the thread count; symmetric; refuses what does not fit") {
  const Architecture arch = Architecture::parse(
      "conv(3, 3x3) residual(relu conv(3, 3x3, b=0.1) layernorm) avgpool(2x2, stride=2, padding=same) erf flatten "
      "dense(1)");
  const Inputs x = inputs(kImage, 6, 15);
  KernelOptions one, two;
  one.threads = 1;
  two.threads = 2;
  const Kernels k1 = general_kernels(arch, x, nullptr, one), k2 = general_kernels(arch, x, nullptr, two);
  CHECK(k1.nngp == k2.nngp);
  CHECK(k1.ntk == k2.ntk);
  CHECK(k1.nngp == k1.nngp.transpose());
  const Kernels k12 = general_kernels(arch, x, &x, two);
  CHECK(rel(k12.nngp, k1.nngp) < 1e-15);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(k1.ntk);
  CHECK(es.eigenvalues().minCoeff() > -1e-12 * es.eigenvalues().maxCoeff());
  KernelOptions tiny;
  tiny.memory_cap_bytes = 1 << 20;
  const Inputs big = inputs(ExampleShape::image_hwc(24, 24, 1), 2, 1);
  const std::string msg = test::error_of<MemoryCapError>(
      [&] { general_kernels(Architecture::parse("conv(2, 3x3) layernorm gap dense(1)"), big, nullptr, tiny); });
  CHECK(test::contains(msg, "memory cap"));
  CHECK(test::contains(test::error_of<std::invalid_argument>([&] {
                         general_kernels(Architecture::parse("conv(2, 3x3) layernorm"), x, nullptr);
                       }),
                       "spatial_kernels"));
  // kernels() and spatial_kernels() route these layers here; streaming in bands is refused.
  const Kernels routed = kernels(arch, x, two);
  CHECK(routed.summary.path == "general");
  CHECK(routed.nngp == k2.nngp);
  CHECK(routed.ntk == k2.ntk);
  const Architecture no_readout = Architecture::parse("conv(2, 3x3) layernorm relu avgpool(2x2) conv(1, 1x1)");
  CHECK(spatial_kernels(no_readout, x).nngp == general_spatial_kernels(no_readout, x, nullptr).nngp);
  CHECK_FALSE(streams_in_bands(Architecture::parse("dense(3) layernorm dense(1)"), ExampleShape::vector(2)));
  CHECK(uses_general_path(arch));
  CHECK_FALSE(uses_general_path(Architecture::parse("conv(2, 3x3) relu gap dense(1)")));
}

TEST_CASE("Myrtle-5 runs on a 32x32x3 image, equals the general path and is homogeneous of degree 2 (bias-free ReLU)") {
  const std::string c = "conv(1, 3x3, w=1.4142135623730951) relu ", p = "avgpool(2x2, stride=2) ";
  const Architecture myrtle5 = Architecture::parse(c + c + p + c + p + c + p + p + p + "flatten dense(10, w=1.4142135623730951)");
  const Inputs x = inputs(ExampleShape::image_hwc(32, 32, 3), 1, 16);
  const Inputs x2(RowMatrix(2.0 * x.x), x.shape);
  const Kernels k = kernels(myrtle5, x), k2 = kernels(myrtle5, x2);
  CHECK(k.summary.path == "pixel-pairs");  // the offset slices of the fast engine, stage by stage
  const Kernels g = general_kernels(myrtle5, x, nullptr);
  CHECK(std::abs(g.nngp(0, 0) - k.nngp(0, 0)) < 1e-13 * g.nngp(0, 0));
  CHECK(std::abs(g.ntk(0, 0) - k.ntk(0, 0)) < 1e-13 * g.ntk(0, 0));
  CHECK(k.nngp(0, 0) > 0);
  CHECK(k.ntk(0, 0) > k.nngp(0, 0));  // Θ = Σ + (positive terms) for this network
  CHECK(std::abs(k2.nngp(0, 0) - 4 * k.nngp(0, 0)) < 1e-14 * k2.nngp(0, 0));
  CHECK(std::abs(k2.ntk(0, 0) - 4 * k.ntk(0, 0)) < 1e-14 * k2.ntk(0, 0));
}

TEST_CASE("pixel pairs collinear by construction (one channel, 1x1 conv, layer norm) give the exact ReLU kernel") {
  // Σ_conv(a, b) = x_a·y_b: every pixel pair of every input pair is collinear, and after the layer
  // norm c = ±1 exactly. The ReLU dual at c = +1 is E[relu(u)relu(v)] = √(q1q2)/2 with derivative
  // factor 1/2, at c = −1 both are 0, so Σ_relu(a, b) = ½√(l_a m_b)·[x_a y_b > 0] with
  // l_a = x_a²/(ε + x_a²), and Θ_relu = ½·[x_a y_b > 0]·Θ_ln = Σ_relu (Θ of the first layer is its Σ). Without the collinear snap one ulp of round-off in c
  // gives θ ≈ 1.5e-8 and an error of ~1e-9 here (python/compare/mp_reference.py, 50 digits).
  const ExampleShape one = ExampleShape::image_hwc(5, 4, 1);
  const Inputs a = inputs(one, 3, 21), b = inputs(one, 2, 22);
  const SpatialKernels k = spatial("conv(8, 1x1, b=0) layernorm relu conv(1, 1x1)", a, b);
  std::vector<double> es(k.nngp.size()), et(k.ntk.size());
  auto l = [](double v) { return v * v / (1e-12 + v * v); };
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j)
      for (int p = 0; p < 20; ++p)
        for (int q = 0; q < 20; ++q) {
          const double xa = a.x(i, p), yb = b.x(j, q);
          const double s = xa * yb > 0 ? 0.5 * std::sqrt(l(xa) * l(yb)) : 0.0;
          const std::size_t at = k.index(i, j, p / 4, p % 4, q / 4, q % 4);
          es[at] = s;       // conv(1, 1x1): Σ' = Σ_relu
          et[at] = 2 * s;   // Θ' = Σ' + Θ_relu = 2Σ_relu
        }
  CHECK(rel(k.nngp, es) < 1e-14);
  CHECK(rel(k.ntk, et) < 1e-14);
  // The same through a flatten readout: the mean of the pixel diagonal.
  const Kernels r = general_kernels(Architecture::parse("conv(8, 1x1, b=0) layernorm relu flatten dense(1)"), a, &b);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) {
      double s = 0;
      for (int p = 0; p < 20; ++p) s += es[k.index(i, j, p / 4, p % 4, p / 4, p % 4)] / 20;
      CHECK(std::abs(r.nngp(i, j) - s) <= 1e-14 * std::max(s, 1e-3));
      CHECK(std::abs(r.ntk(i, j) - 2 * s) <= 2e-14 * std::max(s, 1e-3));
    }
}

TEST_CASE("pixel-diagonal route: layernorm and residual networks with a flatten readout equal the all-pairs path") {
  const Inputs a = inputs(kImage, 4, 31), b = inputs(kImage, 3, 32);
  for (const std::string spec :
       {"conv(6, 3x3, b=0.2) layernorm residual(relu conv(6, 3x3, padding=circular, w=1.3)) erf flatten dense(2)",
        "conv(4, 2x3, padding=circular) residual(abs conv(4, 3x3, b=0.1) layernorm) relu flatten dense(3) relu dense(1)",
        "conv(5, 3x3, padding=valid, w=1.4) residual(gelu conv(5, 1x1) residual(relu conv(5, 2x2, padding=same))) "
        "layernorm abrelu(-0.3, 1.1) conv(3, 2x2, padding=valid) erf flatten dense(1, b=0.5)",
        "conv(3, 3x3) relu conv(3, 3x3) layernorm relu flatten dense(1)"}) {
    CAPTURE(spec);
    const Architecture arch = Architecture::parse(spec);
    const Kernels d = general_kernels(arch, a, &b), all = general_kernels(arch, a, &b, {}, GeneralRoute::AllPairs);
    CHECK(d.summary.path == "general, pixel-diagonal");
    CHECK(all.summary.path == "general");
    CHECK(rel(d.nngp, all.nngp) < 1e-13);
    CHECK(rel(d.ntk, all.ntk) < 1e-13);
    const Kernels ds = general_kernels(arch, a, nullptr), alls = general_kernels(arch, a, nullptr, {}, GeneralRoute::AllPairs);
    CHECK(rel(ds.nngp, alls.nngp) < 1e-13);
    CHECK(rel(ds.ntk, alls.ntk) < 1e-13);
    CHECK(ds.nngp == ds.nngp.transpose());
    // kernels() routes here and takes the diagonal route too.
    CHECK(kernels(arch, a, b).summary.path == "general, pixel-diagonal");
  }
  // avgpool (each pixel of a pair has its own window) and gap (reads all pairs) stay on all pairs.
  for (const std::string spec : {"conv(4, 3x3) layernorm relu avgpool(2x2) flatten dense(1)",
                                 "conv(4, 3x3) residual(relu conv(4, 3x3)) relu gap dense(1)"}) {
    CAPTURE(spec);
    CHECK(general_kernels(Architecture::parse(spec), a, &b).summary.path == "general");
  }
}

TEST_CASE("general path: bias-free ReLU-family networks are rescaled; 1e-100 inputs give c^2 times the scale-1 kernel") {
  const Inputs a = inputs(kImage, 3, 41), b = inputs(kImage, 2, 42);
  for (const double c : {1e-100, 1e100, 3e-30}) {
    CAPTURE(c);
    const Inputs ac(RowMatrix(c * a.x), a.shape), bc(RowMatrix(c * b.x), b.shape);
    for (const std::string spec : {"conv(4, 3x3) residual(abs conv(4, 3x3, padding=circular)) relu flatten dense(1)",
                                   "conv(4, 3x3) residual(leaky_relu(0.1) conv(4, 2x2)) relu avgpool(2x2) conv(2, 2x2) relu gap dense(1)"}) {
      CAPTURE(spec);
      const Architecture arch = Architecture::parse(spec);
      const Kernels k = general_kernels(arch, a, &b), kc = general_kernels(arch, ac, &bc);
      CHECK(rel(kc.nngp, (c * c) * k.nngp) < 1e-13);
      CHECK(rel(kc.ntk, (c * c) * k.ntk) < 1e-13);
      const Kernels ks = general_kernels(arch, a, nullptr), kcs = general_kernels(arch, ac, nullptr);
      CHECK(rel(kcs.ntk, (c * c) * ks.ntk) < 1e-13);
    }
  }
  // Control: with a bias the kernel is not homogeneous and no rescaling applies (1e-100 inputs then
  // see only the bias: K → the kernel of zero inputs).
  const Architecture biased = Architecture::parse("conv(4, 3x3, b=0.5) residual(relu conv(4, 3x3)) relu flatten dense(1)");
  const Inputs tiny(RowMatrix(1e-100 * a.x), a.shape), zero(RowMatrix(RowMatrix::Zero(a.x.rows(), a.x.cols())), a.shape);
  CHECK(rel(general_kernels(biased, tiny, nullptr).nngp, general_kernels(biased, zero, nullptr).nngp) < 1e-13);
}
