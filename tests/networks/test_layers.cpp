// Finite networks with avgpool, layernorm and residual blocks (docs/conventions.md §1): the
// reverse mode against central finite differences, and identities of the forward pass that
// hold at every width (avgpool over the whole image is gap, x + block(x), normalised channels).
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "emergent/networks/network.hpp"

using namespace emergent;

namespace {

// This suite's data come from stream 5150 of the shared generator.
Inputs random_inputs(const ExampleShape& shape, Eigen::Index n, std::uint64_t seed) {
  return test::random_inputs(n, shape, seed, 5150);
}

double pairing(const Network& net, const Inputs& x, const RowMatrix& c) {
  return (net.forward(x).array() * c.array()).sum();
}

/// max over all parameters of |g − g_fd| / (1 + |g|) for s(θ) = Σ⟨c, f(x; θ)⟩, central
/// differences with step 1e-6 (truncation ~1e-12, round-off ~1e-10·|s|).
double finite_difference_error(const std::string& spec, const ExampleShape& shape, std::uint64_t seed) {
  Network net(Architecture::parse(spec), shape, seed);
  const Inputs x = random_inputs(shape, 3, seed + 100);
  const RowMatrix c = test::normals(3, net.output_shape().size(), seed + 200, 5150);
  const Eigen::VectorXd g = net.vjp(x, c);
  double worst = 0;
  const double h = 1e-6;
  REQUIRE(net.parameter_count() > 0);
  for (Eigen::Index p = 0; p < net.parameter_count(); ++p) {
    const double keep = net.parameters()(p);
    net.parameters()(p) = keep + h;
    const double up = pairing(net, x, c);
    net.parameters()(p) = keep - h;
    const double down = pairing(net, x, c);
    net.parameters()(p) = keep;
    worst = std::max(worst, std::abs((up - down) / (2 * h) - g(p)) / (1.0 + std::abs(g(p))));
  }
  return worst;
}

const ExampleShape kImage = ExampleShape::image_hwc(5, 4, 2);  // non-square: catches H/W mix-ups

}  // namespace

TEST_CASE("vjp matches central finite differences through avgpool, layernorm and residual blocks") {
  const std::vector<std::pair<std::string, ExampleShape>> cases = {
      {"conv(3, 3x3, b=0.1) relu avgpool(2x2) flatten dense(2)", kImage},
      {"conv(3, 3x3) erf avgpool(3x2, stride=2, padding=same) conv(2, 2x2, padding=circular) gap dense(2)", kImage},
      {"conv(3, 2x2, padding=circular) tanh avgpool(3x3, stride=2x1, padding=circular) conv(2, 1x1)", kImage},
      {"avgpool(2x3, stride=2, padding=valid) conv(3, 2x2, b=0.3) relu flatten dense(2)", kImage},
      {"dense(6, b=0.2) layernorm relu dense(5) layernorm dense(2)", ExampleShape::vector(4)},
      {"conv(4, 3x3, b=0.5) layernorm gelu conv(3, 3x3) layernorm flatten dense(2)", kImage},
      {"dense(5) residual(relu dense(5, b=0.1)) erf dense(2)", ExampleShape::vector(3)},
      {"residual(dense(3, w=0.8)) dense(4) residual(relu dense(4) residual(tanh dense(4)) layernorm) dense(2)",
       ExampleShape::vector(3)},
      {"conv(3, 3x3, padding=circular) residual(relu conv(3, 3x3, padding=circular, b=0.2)) relu gap dense(2)",
       kImage},
      {"residual(conv(2, 3x3)) conv(3, 3x3) residual(abs conv(3, 2x2) avgpool(1x1)) avgpool(2x2) flatten dense(1)",
       kImage},
  };
  for (const auto& [spec, shape] : cases) {
    CAPTURE(spec);
    CHECK(finite_difference_error(spec, shape, 23) < 1e-6);
  }
}

TEST_CASE("avgpool over the whole image is gap; avgpool(1x1) is the identity; a hand-computed window") {
  const Inputs x = random_inputs(kImage, 4, 3);
  const Network pooled(Architecture::parse("conv(3, 3x3, b=0.2) relu avgpool(5x4)"), kImage, 9);
  const Network gap(Architecture::parse("conv(3, 3x3, b=0.2) relu gap"), kImage, 9);
  REQUIRE(pooled.output_shape() == ExampleShape::image_hwc(1, 1, 3));
  // Same layer indices, hence the same parameters; the sums differ only in their order.
  CHECK(test::max_abs(pooled.forward(x) - gap.forward(x)) < 1e-14);
  const Network one(Architecture::parse("conv(3, 3x3) avgpool(1x1)"), kImage, 4);
  const Network none(Architecture::parse("conv(3, 3x3)"), kImage, 4);
  CHECK(one.forward(x) == none.forward(x));

  // avgpool(3x3, stride=2, padding=same) on a 5×4 single-channel map: output ⌈5/2⌉ × ⌈4/2⌉ = 3×2,
  // lax's SAME padding puts ⌊(2·2 + 3 − 5)/2⌋ = 1 row before (and 1 after) and ⌊(2 + 3 − 4)/2⌋ = 0
  // columns before (1 after); zeros count, the divisor is always 9 (NT's normalize_edges=False).
  const ExampleShape s = ExampleShape::image_hwc(5, 4, 1);
  const Network net(Architecture::parse("conv(1, 1x1) avgpool(3x3, stride=2, padding=same)"), s, 2);
  REQUIRE(net.output_shape() == ExampleShape::image_hwc(3, 2, 1));
  const Inputs img = random_inputs(s, 1, 8);
  const double scale = net.parameters()(0);  // the 1×1 conv multiplies by ω·W/√1
  const RowMatrix out = net.forward(img);
  for (int oh = 0; oh < 3; ++oh)
    for (int ow = 0; ow < 2; ++ow) {
      double sum = 0;
      for (int dh = 0; dh < 3; ++dh)
        for (int dw = 0; dw < 3; ++dw) {
          const int h = 2 * oh + dh - 1, w = 2 * ow + dw;
          if (h >= 0 && h < 5 && w < 4) sum += img.x(0, h * 4 + w);
        }
      CHECK(std::abs(out(0, oh * 2 + ow) - scale * sum / 9) < 1e-14);
    }
  // circular: the same window with wrapped indices.
  const Network circ(Architecture::parse("conv(1, 1x1) avgpool(3x3, stride=2, padding=circular)"), s, 2);
  const RowMatrix oc = circ.forward(img);
  for (int oh = 0; oh < 3; ++oh)
    for (int ow = 0; ow < 2; ++ow) {
      double sum = 0;
      for (int dh = 0; dh < 3; ++dh)
        for (int dw = 0; dw < 3; ++dw) sum += img.x(0, ((2 * oh + dh + 4) % 5) * 4 + (2 * ow + dw) % 4);
      CHECK(std::abs(oc(0, oh * 2 + ow) - scale * sum / 9) < 1e-14);
    }
}

TEST_CASE("residual blocks compute x + block(x); layernorm centres and scales every pixel's channels") {
  const ExampleShape v = ExampleShape::vector(4);
  const Inputs x = random_inputs(v, 5, 11);
  Network res(Architecture::parse("dense(6) residual(relu dense(6, b=0.3))"), v, 5);
  Network plain(Architecture::parse("dense(6) relu dense(6, b=0.3)"), v, 5);
  Network first(Architecture::parse("dense(6)"), v, 5);
  REQUIRE(res.parameter_count() == plain.parameter_count());
  plain.parameters() = res.parameters();  // the same blocks in the same order
  first.parameters() = res.parameters().head(first.parameter_count());
  CHECK(test::max_abs(res.forward(x) - (first.forward(x) + plain.forward(x))) < 1e-14);

  const Network ln(Architecture::parse("conv(7, 3x3, b=1.5) layernorm"), kImage, 3);
  const Inputs im = random_inputs(kImage, 2, 4);
  const RowMatrix y = ln.forward(im);
  for (Eigen::Index r = 0; r < y.rows(); ++r)
    for (int p = 0; p < kImage.pixels(); ++p) {
      const Eigen::Map<const Eigen::RowVectorXd> c(y.row(r).data() + p * 7, 7);
      CHECK(std::abs(c.mean()) < 1e-14);
      CHECK(std::abs(c.squaredNorm() / 7 - 1) < 1e-10);  // eps = 1e-12 against variances O(1)
    }
}
