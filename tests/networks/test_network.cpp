// Finite networks (docs/conventions.md §2): the hand-written reverse mode against central finite
// differences, Jacobian/NTK identities, convolution identities (1×1 conv = per-pixel dense,
// circular convs are translation-equivariant), reproducibility and thread independence.
#include <doctest/doctest.h>

#include "support/test_support.hpp"
#include <omp.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "emergent/networks/network.hpp"
#include "emergent/core/random.hpp"

using namespace emergent;

namespace {

// This suite's data come from stream 7777 of the shared generator.
RowMatrix gaussian(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed) { return test::normals(rows, cols, seed, 7777); }

Inputs random_inputs(const ExampleShape& shape, Eigen::Index n, std::uint64_t seed) {
  return test::random_inputs(n, shape, seed, 7777);
}

/// s(θ) = Σ_i ⟨c_i, f(x_i; θ)⟩, the function whose gradient vjp returns.
double pairing(const Network& net, const Inputs& x, const RowMatrix& c) {
  return (net.forward(x).array() * c.array()).sum();
}

/// Every parameter if there are few, else a deterministic spread that includes the first and
/// last entry of every weight and bias block.
std::vector<Eigen::Index> probe_indices(const Network& net) {
  std::vector<Eigen::Index> idx;
  const Eigen::Index P = net.parameter_count();
  if (P <= 400) {
    for (Eigen::Index p = 0; p < P; ++p) idx.push_back(p);
    return idx;
  }
  for (const auto& b : net.blocks()) {
    idx.push_back(b.weight_offset);
    idx.push_back(b.weight_offset + b.weight_size - 1);
    if (b.bias_size > 0) {
      idx.push_back(b.bias_offset);
      idx.push_back(b.bias_offset + b.bias_size - 1);
    }
  }
  for (Eigen::Index p = 1; p < P; p += P / 150) idx.push_back(p);
  return idx;
}

struct FdResult {
  double max_error = 0.0;  ///< max |g − g_fd| / (1 + |g|)
  Eigen::Index probes = 0;
};

/// Central differences of s(θ) against vjp. Step 1e-6: truncation O(h²) ≈ 1e-12, round-off
/// ≈ ε·|s|/h ≈ 1e-10·|s|; kinks of the ReLU family are crossed only if a pre-activation lies
/// within ~1e-6 of 0, which the fixed seeds below avoid (any crossing would show up as an error).
FdResult finite_difference_check(const std::string& spec, const ExampleShape& shape, std::uint64_t seed,
                                 Eigen::Index n = 3) {
  Network net(Architecture::parse(spec), shape, seed);
  const Inputs x = random_inputs(shape, n, seed + 100);
  const RowMatrix c = gaussian(n, net.output_shape().size(), seed + 200);
  RowMatrix f;
  const Eigen::VectorXd g = net.vjp(x, c, &f);
  CHECK(f == net.forward(x));  // same path for small batches: bitwise
  FdResult r;
  const double h = 1e-6;
  for (Eigen::Index p : probe_indices(net)) {
    const double keep = net.parameters()(p);
    net.parameters()(p) = keep + h;
    const double up = pairing(net, x, c);
    net.parameters()(p) = keep - h;
    const double down = pairing(net, x, c);
    net.parameters()(p) = keep;
    const double fd = (up - down) / (2 * h);
    r.max_error = std::max(r.max_error, std::abs(fd - g(p)) / (1.0 + std::abs(g(p))));
    ++r.probes;
  }
  return r;
}

/// Cyclic shift of every image in a batch by (dy, dx): out(h, w) = in(h − dy, w − dx).
RowMatrix shift_images(const RowMatrix& x, const ExampleShape& s, int dy, int dx) {
  RowMatrix out(x.rows(), x.cols());
  for (Eigen::Index e = 0; e < x.rows(); ++e)
    for (int h = 0; h < s.height; ++h)
      for (int w = 0; w < s.width; ++w)
        for (int c = 0; c < s.channels; ++c) {
          const int hs = ((h - dy) % s.height + s.height) % s.height;
          const int ws = ((w - dx) % s.width + s.width) % s.width;
          out(e, (h * s.width + w) * s.channels + c) = x(e, (hs * s.width + ws) * s.channels + c);
        }
  return out;
}

const ExampleShape kImage = ExampleShape::image_hwc(5, 4, 2);  // non-square: catches H/W mix-ups

}  // namespace

TEST_CASE("vjp matches central finite differences for every layer kind") {
  struct Case {
    std::string spec;
    ExampleShape shape;
  };
  const std::vector<Case> cases = {
      {"dense(7, w=1.3, b=0.2) relu dense(5, w=0.9, b=0.3) erf dense(3, b=0.1)", ExampleShape::vector(4)},
      {"dense(6, b=0.5) tanh dense(6) sigmoid dense(2, w=2)", ExampleShape::vector(3)},
      {"dense(6, b=0.1) gelu dense(5) softplus dense(5) swish dense(1)", ExampleShape::vector(3)},
      {"dense(5) sin dense(5, b=0.2) cos dense(4) abs dense(2)", ExampleShape::vector(3)},
      {"dense(5) leaky_relu(0.2) dense(5) abrelu(-0.5, 1.5) dense(4) identity dense(2)", ExampleShape::vector(3)},
      {"dense(4)", ExampleShape::vector(3)},
      // convolutions: every padding, odd and even filters, both readouts and none
      {"conv(4, 3x3, padding=same, b=0.1) relu conv(3, 2x3, padding=valid) tanh flatten dense(2)", kImage},
      {"conv(3, 3x2, padding=circular, w=1.2, b=0.5) gelu conv(4, 2x2, padding=same) gap dense(2, b=0.3)", kImage},
      {"conv(3, 3x3, padding=circular) erf conv(2, 1x3, padding=valid, b=0.2)", kImage},
      {"conv(3, 2x2, padding=circular) relu conv(2, 4x3, padding=same, w=0.7)", kImage},
      {"conv(3, 3x3, padding=valid, b=1) abs gap", kImage},
      // channel counts that are multiples of 8 take the direct (no im2col) kernels: 8/16/24/40
      // output channels (one to five vector columns), inputs of 2, 3 (fallbacks) and 8–40 channels
      {"conv(8, 3x3, padding=same, b=0.1) relu conv(16, 2x3, padding=valid) tanh flatten dense(2)", kImage},
      {"conv(3, 3x2, padding=circular) gelu conv(8, 2x2, padding=same, b=0.3) relu conv(24, 3x3, padding=circular) "
       "gap dense(2)",
       kImage},
      {"conv(40, 3x3, padding=circular, b=0.2) erf conv(8, 1x3, padding=valid) relu conv(8, 4x3, padding=same)",
       kImage},
      {"flatten dense(3, b=0.4) relu dense(2)", kImage},
      {"gap dense(3) erf dense(2, b=1)", kImage},
  };
  for (const Case& c : cases) {
    CAPTURE(c.spec);
    const FdResult r = finite_difference_check(c.spec, c.shape, 11);
    CHECK(r.probes > 0);
    CHECK(r.max_error < 1e-6);
  }
}

TEST_CASE("batches and widths that are multiples of 8 (the unpacked dense products) pass the same checks") {
  // n % 8 == 0 takes the register-blocked forward product, fan-in % 8 == 0 the unpacked weight
  // update; 12 inputs and 5 examples fall back to Eigen's GEMMs.
  const std::vector<std::string> specs = {"dense(24, b=0.3) relu dense(16) tanh dense(8, b=0.1) erf dense(3)",
                                          "dense(40, b=0.2) gelu dense(12) relu dense(2)"};
  for (const std::string& spec : specs)
    for (Eigen::Index n : {Eigen::Index(5), Eigen::Index(8), Eigen::Index(16)}) {
      CAPTURE(spec);
      CAPTURE(n);
      const FdResult r = finite_difference_check(spec, ExampleShape::vector(16), 13, n);
      CHECK(r.probes > 0);
      CHECK(r.max_error < 1e-6);
      // The first layer against its definition z = b·β + w/√d·W·x, summed by loops.
      const Network one(Architecture::parse("dense(24, w=1.3, b=0.3)"), ExampleShape::vector(16), 14);
      const Inputs x = random_inputs(ExampleShape::vector(16), n, 15);
      const RowMatrix z = one.forward(x);
      const double* W = one.parameters().data();
      const double* beta = W + one.blocks()[0].bias_offset;
      double err = 0;
      for (Eigen::Index e = 0; e < n; ++e)
        for (int o = 0; o < 24; ++o) {
          double sum = 0;
          for (int k = 0; k < 16; ++k) sum += W[o * 16 + k] * x.x(e, k);
          err = std::max(err, std::abs(z(e, o) - (0.3 * beta[o] + 1.3 / 4.0 * sum)));
        }
      CHECK(err <= 1e-14 * (1.0 + z.cwiseAbs().maxCoeff()));
      // descent_step is θ − η·∇L on these paths too.
      Network fused(Architecture::parse(spec), ExampleShape::vector(16), 16);
      const Network reference = fused;
      const RowMatrix y = gaussian(n, fused.output_shape().size(), 17);
      Eigen::VectorXd grad;
      reference.mse_loss_gradient(x, y, grad);
      const Eigen::VectorXd expected = reference.parameters() - 0.7 * grad;
      fused.mse_descent_step(x, y, 0.7);
      CHECK((fused.parameters() - expected).cwiseAbs().maxCoeff() <= 1e-14 * expected.cwiseAbs().maxCoeff());
    }
  const FdResult r = finite_difference_check("conv(8, 3x3, padding=circular, b=0.1) relu flatten dense(8, b=0.2) relu dense(2)",
                                             kImage, 19, 8);
  CHECK(r.probes > 0);
  CHECK(r.max_error < 1e-6);
}

TEST_CASE("a dense product's epilogue (bias, piecewise-linear activation) equals the layer evaluated by its definition") {
  // 16 examples take the register-blocked product whose epilogue adds the bias and applies a
  // following piecewise-linear φ; the hidden activations are checked against loops over the
  // parameters, and the whole network against one example at a time (Eigen's path).
  for (const std::string act : {"relu", "abs", "identity", "leaky_relu(0.2)", "abrelu(-0.3, 1.7)", "tanh"})
    for (const std::string bias : {"", ", b=0.3"}) {
      const std::string spec = "dense(24, w=1.3" + bias + ") " + act + " dense(16" + bias + ") " + act + " dense(3)";
      CAPTURE(spec);
      const Architecture arch = Architecture::parse(spec);
      const Network net(arch, ExampleShape::vector(16), 41);
      const Inputs x = random_inputs(ExampleShape::vector(16), 16, 42);
      const RowMatrix f = net.forward(x);
      double worst = 0;
      for (Eigen::Index e = 0; e < 16; ++e) {
        const RowMatrix one = net.forward(x.rows({e}));
        worst = std::max(worst, (one.row(0) - f.row(e)).cwiseAbs().maxCoeff());
      }
      CHECK(worst <= 1e-13 * (1.0 + f.cwiseAbs().maxCoeff()));
      // The first hidden layer by its definition: φ(b·β + w/√d·W·x).
      const Network first(Architecture::parse("dense(24, w=1.3" + bias + ") " + act), ExampleShape::vector(16), 41);
      REQUIRE(first.parameters().size() == net.blocks()[1].weight_offset);
      const RowMatrix h = first.forward(x);
      const Activation phi = arch.layers()[1].activation;
      const double* W = first.parameters().data();
      const double b_std = bias.empty() ? 0.0 : 0.3;
      double err = 0;
      for (Eigen::Index e = 0; e < 16; ++e)
        for (int o = 0; o < 24; ++o) {
          double sum = 0;
          for (int k = 0; k < 16; ++k) sum += W[o * 16 + k] * x.x(e, k);
          const double beta = bias.empty() ? 0.0 : W[first.blocks()[0].bias_offset + o];
          err = std::max(err, std::abs(h(e, o) - phi.value(b_std * beta + 1.3 / 4.0 * sum)));
        }
      CHECK(err <= 1e-14 * (1.0 + h.cwiseAbs().maxCoeff()));
    }
}

TEST_CASE("the one-pass dense descent step equals the gradient step over several steps, on blocked shapes") {
  // Fan-ins that are multiples of 8 take the fused step: input gradient and weight update in one
  // pass over W, in 128-row × 32-column blocks (64-row blocks on the transposed activations of
  // 16 and 64 examples). 296 outputs need three or five row blocks (the last ragged) and 296 or
  // 40 inputs a narrower last column panel; 13 examples a ragged row tile.
  const Architecture arch = Architecture::parse("dense(40, b=0.2) relu dense(296, b=0.1) relu dense(72) tanh dense(2)");
  for (Eigen::Index n : {Eigen::Index(13), Eigen::Index(16), Eigen::Index(64)}) {
    CAPTURE(n);
    const Inputs x = random_inputs(ExampleShape::vector(16), n, 31);
    const RowMatrix y = gaussian(n, 2, 32);
    Network fused(arch, ExampleShape::vector(16), 33);
    Network reference = fused;
    Eigen::VectorXd grad;
    for (int step = 0; step < 4; ++step) {
      CAPTURE(step);
      const double expected_loss = reference.mse_loss_gradient(x, y, grad);
      reference.parameters() -= 0.3 * grad;
      const double loss = fused.mse_descent_step(x, y, 0.3);
      CHECK(std::abs(loss - expected_loss) <= 1e-13 * expected_loss);
      const double scale = reference.parameters().cwiseAbs().maxCoeff();
      CHECK((fused.parameters() - reference.parameters()).cwiseAbs().maxCoeff() <= 1e-13 * scale);
    }
    // and the steps moved every 128 × 32 block of the hidden layer's weights (296 × 40)
    const Network initial(arch, ExampleShape::vector(16), 33);
    const Network::ParameterBlock& hidden = fused.blocks()[1];
    const Eigen::VectorXd delta = fused.parameters() - initial.parameters();
    const Eigen::Map<const RowMatrix> moved(delta.data() + hidden.weight_offset, 296, 40);
    for (Eigen::Index j0 = 0; j0 < 296; j0 += 128)
      for (Eigen::Index k0 = 0; k0 < 40; k0 += 32)
        CHECK(moved.block(j0, k0, std::min<Eigen::Index>(128, 296 - j0), std::min<Eigen::Index>(32, 40 - k0))
                  .cwiseAbs()
                  .maxCoeff() > 0.0);
  }
}

TEST_CASE("dense chains on batches that are multiples of 8 (transposed activations) agree with the row layout") {
  // A batch of 16 keeps every activation transposed through the step; 13 and 3 examples take the
  // row layout. f is per example and the vjp and the descent step add over examples, so the batch
  // of 16 must equal its two parts (fan-ins 16, 24, 32, 40 take the one-pass step; 12 the
  // separate products and Eigen's weight gradient).
  for (const std::string spec : {"dense(24, b=0.3) relu dense(32, b=0.1) abs dense(40) tanh dense(3, b=0.2)",
                                 "dense(40, b=0.2) gelu dense(12) relu dense(2)"}) {
    CAPTURE(spec);
    const Architecture arch = Architecture::parse(spec);
    const Network net(arch, ExampleShape::vector(16), 51);
    const Inputs x = random_inputs(ExampleShape::vector(16), 16, 52);
    std::vector<Eigen::Index> head(13), tail(3);
    for (Eigen::Index e = 0; e < 16; ++e) (e < 13 ? head[e] : tail[e - 13]) = e;
    const Inputs xh = x.rows(head), xt = x.rows(tail);
    const RowMatrix c = gaussian(16, net.output_shape().size(), 53);
    const RowMatrix ch = c.topRows(13), ct = c.bottomRows(3);
    const RowMatrix f = net.forward(x), fh = net.forward(xh), ft = net.forward(xt);
    const double fscale = 1.0 + f.cwiseAbs().maxCoeff();
    CHECK((f.topRows(13) - fh).cwiseAbs().maxCoeff() <= 1e-13 * fscale);
    CHECK((f.bottomRows(3) - ft).cwiseAbs().maxCoeff() <= 1e-13 * fscale);
    const Eigen::VectorXd g = net.vjp(x, c), parts = net.vjp(xh, ch) + net.vjp(xt, ct);
    const double gscale = parts.cwiseAbs().maxCoeff();
    REQUIRE(gscale > 0.0);
    CHECK((g - parts).cwiseAbs().maxCoeff() <= 1e-13 * gscale);
    // the fused descent step on the linear loss Σ⟨c, f⟩ is θ − η·vjp(x, c)
    Network stepped = net;
    const double eta = 0.4;
    stepped.descent_step(x, eta, [&](const RowMatrix& out, RowMatrix& cot) {
      cot = c;
      return c.cwiseProduct(out).sum();
    });
    const Eigen::VectorXd expected = net.parameters() - eta * parts;
    CHECK((stepped.parameters() - expected).cwiseAbs().maxCoeff() <= 1e-13 * expected.cwiseAbs().maxCoeff());
  }
}

TEST_CASE("jacobian rows are vjps of one-hot cotangents") {
  for (const std::string spec : {"dense(6, b=0.3) erf dense(3)",
                                 "conv(3, 3x3, padding=same, b=0.2) relu conv(2, 3x3, padding=circular)",
                                 "conv(3, 2x2, padding=valid) tanh flatten dense(2, b=0.5)"}) {
    CAPTURE(spec);
    const Architecture arch = Architecture::parse(spec);
    const ExampleShape shape = arch.expects_images() ? kImage : ExampleShape::vector(4);
    const Network net(arch, shape, 5);
    const Inputs x = random_inputs(shape, 3, 9);
    const Eigen::Index k = net.output_shape().size();
    for (Eigen::Index j : {Eigen::Index(0), k / 2, k - 1}) {
      const RowMatrix J = net.jacobian(x, j);
      REQUIRE(J.rows() == 3);
      REQUIRE(J.cols() == net.parameter_count());
      // Row i: the gradient of f_j(x_i); a batch cotangent c·e_j gives Σ_i c_i J_i.
      RowMatrix c = RowMatrix::Zero(3, k);
      c(0, j) = 0.7;
      c(1, j) = -1.3;
      c(2, j) = 2.1;
      const Eigen::VectorXd g = net.vjp(x, c);
      const Eigen::VectorXd combo = J.transpose() * Eigen::Vector3d(0.7, -1.3, 2.1);
      CHECK((g - combo).norm() <= 1e-12 * (1.0 + g.norm()));
      for (Eigen::Index i = 0; i < 3; ++i) {
        RowMatrix one = RowMatrix::Zero(1, k);
        one(0, j) = 1.0;
        const Eigen::VectorXd gi = net.vjp(x.rows({i}), one);
        CHECK((gi - J.row(i).transpose()).norm() <= 1e-13 * (1.0 + gi.norm()));
      }
    }
  }
}

TEST_CASE("empirical NTK equals the mean of J_j J_j^T over outputs and is symmetric PSD") {
  for (const std::string spec : {"dense(8, b=0.3) relu dense(3)",
                                 "conv(3, 3x3, padding=circular, b=0.2) relu flatten dense(2)",
                                 "conv(3, 3x3, padding=same) erf gap dense(3, b=1)",
                                 // no readout: j runs over all pixels and channels
                                 "conv(3, 3x3, padding=same) relu conv(2, 2x2, padding=valid)"}) {
    CAPTURE(spec);
    const Architecture arch = Architecture::parse(spec);
    const ExampleShape shape = arch.expects_images() ? kImage : ExampleShape::vector(4);
    const Network net(arch, shape, 21);
    const Inputs x = random_inputs(shape, 5, 22);
    const Eigen::Index k = net.output_shape().size();
    Eigen::MatrixXd expect = Eigen::MatrixXd::Zero(5, 5);
    for (Eigen::Index j = 0; j < k; ++j) {
      const RowMatrix J = net.jacobian(x, j);
      expect += J * J.transpose();
    }
    expect /= static_cast<double>(k);
    const Eigen::MatrixXd theta = empirical_ntk(net, x, x);
    CHECK((theta - expect).norm() <= 1e-12 * expect.norm());
    CHECK(theta == theta.transpose());
    const Eigen::VectorXd ev = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(theta).eigenvalues();
    CHECK(ev.minCoeff() >= -1e-12 * ev.maxCoeff());
    CHECK(ev.maxCoeff() > 0.0);
    // The cross kernel is the off-diagonal block of the joint one.
    const Inputs a = x.rows({0, 1}), b = x.rows({2, 3, 4});
    const Eigen::MatrixXd cross = empirical_ntk(net, a, b);
    REQUIRE(cross.rows() == 2);
    REQUIRE(cross.cols() == 3);
    CHECK((cross - theta.block(0, 2, 2, 3)).norm() <= 1e-12 * theta.norm());
  }
}

TEST_CASE("convolutions equal their definition summed term by term, for every padding and channel count") {
  // z[e, oh, ow, o] = b_std·β_o + w_std/√(FH·FW·C_in)·Σ_{fh, fw, c} W[o, fh, fw, c]·x[e, ih, iw, c] with
  // ih = oh + fh − pad_h (docs/conventions.md §2: `same` pads (F−1)//2 before; `circular` wraps;
  // `valid` has no offset), evaluated by plain loops. Covers the im2col route (3 channels) and
  // the direct kernels (8, 16, 24, 40: column blocks of 8 to 32 and a remainder).
  for (const char* padding : {"same", "valid", "circular"}) {
    for (int c_in : {1, 3, 8, 40}) {
      for (int c_out : {3, 8, 16, 24, 40}) {
        const ExampleShape img = ExampleShape::image_hwc(5, 6, c_in);
        const int fh = 3, fw = 2;
        const std::string spec = "conv(" + std::to_string(c_out) + ", 3x2, padding=" + padding + ", w=1.1, b=0.3)";
        CAPTURE(spec);
        CAPTURE(c_in);
        const Network net(Architecture::parse(spec), img, 17);
        const Inputs x = random_inputs(img, 3, 18);
        const RowMatrix z = net.forward(x);
        const ExampleShape out = net.output_shape();
        const bool valid = std::string(padding) == "valid", circular = std::string(padding) == "circular";
        const int pad_h = valid ? 0 : (fh - 1) / 2, pad_w = valid ? 0 : (fw - 1) / 2;
        REQUIRE(out.height == (valid ? 5 - fh + 1 : 5));
        const double* W = net.parameters().data() + net.blocks()[0].weight_offset;
        const double* beta = net.parameters().data() + net.blocks()[0].bias_offset;
        const double scale = 1.1 / std::sqrt(static_cast<double>(fh * fw * c_in));
        double err = 0, norm = 0;
        for (int e = 0; e < 3; ++e)
          for (int oh = 0; oh < out.height; ++oh)
            for (int ow = 0; ow < out.width; ++ow)
              for (int o = 0; o < c_out; ++o) {
                double sum = 0;
                for (int a = 0; a < fh; ++a)
                  for (int b = 0; b < fw; ++b) {
                    int ih = oh + a - pad_h, iw = ow + b - pad_w;
                    if (circular) {
                      ih = (ih + 5) % 5;
                      iw = (iw + 6) % 6;
                    } else if (ih < 0 || ih >= 5 || iw < 0 || iw >= 6) {
                      continue;
                    }
                    for (int c = 0; c < c_in; ++c)
                      sum += W[((o * fh + a) * fw + b) * c_in + c] * x.x(e, (ih * 6 + iw) * c_in + c);
                  }
                const double expect = 0.3 * beta[o] + scale * sum;
                err = std::max(err, std::abs(z(e, (oh * out.width + ow) * c_out + o) - expect));
                norm = std::max(norm, std::abs(expect));
              }
        CHECK(norm > 0.1);
        CHECK(err <= 1e-13 * norm);
      }
    }
  }
}

TEST_CASE("a 1x1 convolution is the same dense layer applied at every pixel") {
  const ExampleShape img = ExampleShape::image_hwc(3, 4, 2);
  // Layer 0 in both networks, same shapes of weights and biases ⇒ the same parameter draws.
  const Network conv(Architecture::parse("conv(5, 1x1, w=1.3, b=0.4)"), img, 3);
  const Network dense(Architecture::parse("dense(5, w=1.3, b=0.4)"), ExampleShape::vector(2), 3);
  REQUIRE(conv.parameters() == dense.parameters());
  const Inputs x = random_inputs(img, 4, 8);
  const RowMatrix fc = conv.forward(x);
  // Each image row is (H·W, C) row-major: reinterpret as a batch of pixel vectors.
  const RowMatrix pixels = Eigen::Map<const RowMatrix>(x.x.data(), 4 * 12, 2);
  const RowMatrix fd = dense.forward(Inputs(pixels, ExampleShape::vector(2)));
  const RowMatrix fc_pixels = Eigen::Map<const RowMatrix>(fc.data(), 4 * 12, 5);
  CHECK((fc_pixels - fd).norm() <= 1e-14 * fd.norm());
  // Gradients agree too: one pixel-vector cotangent per pixel.
  const RowMatrix c = gaussian(4, 12 * 5, 4);
  const Eigen::VectorXd gc = conv.vjp(x, c);
  const Eigen::VectorXd gd = dense.vjp(Inputs(pixels, ExampleShape::vector(2)),
                                       Eigen::Map<const RowMatrix>(c.data(), 48, 5));
  CHECK((gc - gd).norm() <= 1e-13 * gd.norm());
}

TEST_CASE("circular convolutions are translation-equivariant, with gap invariant") {
  const ExampleShape img = ExampleShape::image_hwc(5, 6, 2);
  const Inputs x = random_inputs(img, 3, 31);
  const std::string body = "conv(4, 3x3, padding=circular, b=0.3) relu conv(3, 2x3, padding=circular, w=1.5) erf";
  const Network equi(Architecture::parse(body + " conv(2, 3x2, padding=circular)"), img, 4);
  const Network inv(Architecture::parse(body + " gap dense(2, b=0.2)"), img, 4);
  const Network zero_pad(Architecture::parse("conv(4, 3x3, padding=same) relu conv(2, 3x3, padding=same)"), img, 4);
  const RowMatrix f = equi.forward(x), g = inv.forward(x), z = zero_pad.forward(x);
  const ExampleShape out = equi.output_shape();
  REQUIRE(out == ExampleShape::image_hwc(5, 6, 2));
  double worst_equi = 0.0, worst_inv = 0.0, least_zero_pad = 1e300;
  for (int dy = 0; dy < 5; ++dy) {
    for (int dx = 0; dx < 6; ++dx) {
      if (dy == 0 && dx == 0) continue;
      const Inputs xs(shift_images(x.x, img, dy, dx), img);
      const RowMatrix expect = shift_images(f, out, dy, dx);
      worst_equi = std::max(worst_equi, (equi.forward(xs) - expect).cwiseAbs().maxCoeff());
      worst_inv = std::max(worst_inv, (inv.forward(xs) - g).cwiseAbs().maxCoeff());
      // Control: zero padding breaks the symmetry at the border, so the check can fail.
      least_zero_pad = std::min(least_zero_pad,
                                (zero_pad.forward(xs) - shift_images(z, zero_pad.output_shape(), dy, dx))
                                    .cwiseAbs()
                                    .maxCoeff());
    }
  }
  // The same products in the same order: equal up to the last bits of GEMM blocking.
  CHECK(worst_equi <= 1e-13 * f.cwiseAbs().maxCoeff());
  CHECK(worst_inv <= 1e-13 * g.cwiseAbs().maxCoeff());
  CHECK(least_zero_pad > 1e-3);
}

TEST_CASE("parameters: draws of NormalStream(seed, layer), counts, reproducibility") {
  const std::string spec = "conv(4, 3x2, padding=valid, b=0.5) relu conv(3, 3x3) flatten dense(2, b=1)";
  const Architecture arch = Architecture::parse(spec);
  const Network a(arch, kImage, 42), b(arch, kImage, 42), c(arch, kImage, 43);
  // Count: Σ n_in·n_out (+ n_out if b ≠ 0). conv1: 2·3·2·4 + 4; conv2: 4·3·3·3, no bias;
  // valid 3x2 on 5×4 gives 3×3, so flatten has 3·3·3 = 27 features: 27·2 + 2.
  CHECK(a.parameter_count() == (2 * 3 * 2 * 4 + 4) + (4 * 3 * 3 * 3) + (27 * 2 + 2));
  REQUIRE(a.blocks().size() == 3);
  CHECK(a.blocks()[1].layer == 2);
  CHECK(a.blocks()[1].bias_size == 0);
  CHECK(a.blocks()[2].layer == 4);
  CHECK(a.parameters() == b.parameters());
  CHECK(a.parameters() != c.parameters());
  // Parameter p of layer l is draw p of NormalStream(seed, l); biases follow the weights.
  for (const auto& blk : a.blocks()) {
    const NormalStream s(42, static_cast<std::uint64_t>(blk.layer));
    CHECK(a.parameters()(blk.weight_offset) == s.normal(0));
    CHECK(a.parameters()(blk.weight_offset + blk.weight_size - 1) == s.normal(blk.weight_size - 1));
    if (blk.bias_size > 0) {
      CHECK(a.parameters()(blk.bias_offset) == s.normal(blk.weight_size));
    }
  }
  const Inputs x = random_inputs(kImage, 4, 1);
  CHECK(a.forward(x) == b.forward(x));
  CHECK(a.forward(x) != c.forward(x));
  // MLP formula with widths d → n1 → n2 → k.
  const Network mlp(Architecture::parse("dense(512, b=0.1) relu dense(512) relu dense(3, b=0.2)"),
                    ExampleShape::vector(10), 1);
  CHECK(mlp.parameter_count() == 10 * 512 + 512 + 512 * 512 + 512 * 3 + 3);
  // The parameters are standard normal: mean and variance within 5 standard errors.
  const Eigen::VectorXd& p = mlp.parameters();
  const double n = static_cast<double>(p.size());
  const double mean = p.mean(), var = (p.array() - mean).square().sum() / (n - 1);
  CHECK(std::abs(mean) < 5.0 / std::sqrt(n));
  CHECK(std::abs(var - 1.0) < 5.0 * std::sqrt(2.0 / n));
}

TEST_CASE("outputs and gradients do not depend on the number of OpenMP threads") {
  const Architecture cnn = Architecture::parse(
      "conv(8, 3x3, padding=circular, b=0.1) relu conv(8, 3x3, padding=circular) relu flatten dense(3)");
  const Architecture mlp = Architecture::parse("dense(64, b=0.2) erf dense(64) relu dense(2)");
  const ExampleShape img = ExampleShape::image_hwc(6, 6, 3), vec = ExampleShape::vector(5);
  const int members = 12;
  for (const Architecture* arch : {&cnn, &mlp}) {
    const ExampleShape shape = arch == &cnn ? img : vec;
    const Inputs x = random_inputs(shape, 7, 2);
    std::vector<RowMatrix> f_ref(members);
    std::vector<Eigen::VectorXd> g_ref(members);
    std::vector<Eigen::MatrixXd> ntk_ref(members);
    for (int m = 0; m < members; ++m) {
      const Network net(*arch, shape, 1000 + m);
      f_ref[m] = net.forward(x);
      g_ref[m] = net.vjp(x, f_ref[m]);
      ntk_ref[m] = empirical_ntk(net, x, x);
    }
    // One network shared by all threads too (the scratch space is per thread).
    const Network shared(*arch, shape, 1000);
    for (int threads : {1, 2, 3, 4}) {
      std::vector<RowMatrix> f(members);
      std::vector<Eigen::VectorXd> g(members), g_shared(members);
      std::vector<Eigen::MatrixXd> ntk(members);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
      for (int m = 0; m < members; ++m) {
        const Network net(*arch, shape, 1000 + m);
        f[m] = net.forward(x);
        g[m] = net.vjp(x, f[m]);
        ntk[m] = empirical_ntk(net, x, x);
        g_shared[m] = shared.vjp(x, f_ref[0]);
      }
      for (int m = 0; m < members; ++m) {
        CAPTURE(threads);
        CAPTURE(m);
        CHECK(f[m] == f_ref[m]);
        CHECK(g[m] == g_ref[m]);
        CHECK(ntk[m] == ntk_ref[m]);
        CHECK(g_shared[m] == g_ref[0]);
      }
    }
  }
}

TEST_CASE("mse_loss_gradient is the loss of docs/conventions.md §3 and its gradient") {
  const Network net(Architecture::parse("conv(3, 3x3, padding=circular, b=0.2) tanh gap dense(2, b=0.1)"),
                    kImage, 6);
  const Inputs x = random_inputs(kImage, 4, 61);
  const RowMatrix y = gaussian(4, 2, 62);
  Eigen::VectorXd grad;
  RowMatrix f;
  const double loss = net.mse_loss_gradient(x, y, grad, &f);
  CHECK(f == net.forward(x));
  CHECK(loss == doctest::Approx(0.5 * (f - y).squaredNorm() / 8.0).epsilon(1e-14));
  const RowMatrix residual = (f - y) / 8.0;
  CHECK((grad - net.vjp(x, residual)).norm() <= 1e-14 * grad.norm());
  Eigen::VectorXd again = Eigen::VectorXd::Constant(grad.size(), 7.0);
  net.vjp_into(x, residual, again);
  CHECK(again == net.vjp(x, residual));
}

TEST_CASE("NormalStream::fill equals normal() draw by draw for every start and length") {
  const NormalStream s(9, 3);
  for (std::uint64_t first : {0, 1, 2, 7}) {
    for (std::uint64_t n : {0, 1, 2, 3, 10, 11}) {
      std::vector<double> out(n + 1, -99.0);
      s.fill(out.data(), n, first);
      for (std::uint64_t j = 0; j < n; ++j) CHECK(out[j] == s.normal(first + j));
      CHECK(out[n] == -99.0);  // nothing written past the end
    }
  }
}

TEST_CASE("descent_step is one gradient-descent step, for dense and conv layers with and without biases") {
  struct Case {
    std::string spec;
    ExampleShape shape;
  };
  const std::vector<Case> cases = {
      {"dense(7, b=0.3) relu dense(5) erf dense(2, b=0.1)", ExampleShape::vector(4)},
      {"conv(3, 3x3, padding=circular, b=0.2) relu conv(2, 2x2, padding=same) tanh flatten dense(2, b=0.1)", kImage},
      {"conv(3, 3x3, padding=valid) relu gap dense(2)", kImage}};
  for (const Case& c : cases) {
    CAPTURE(c.spec);
    Network fused(Architecture::parse(c.spec), c.shape, 21);
    const Network reference = fused;
    const Inputs x = random_inputs(c.shape, 5, 22);
    const RowMatrix y = gaussian(5, 2, 23);
    const double eta = 0.7;
    Eigen::VectorXd grad;
    RowMatrix f_ref, f;
    const double loss_ref = reference.mse_loss_gradient(x, y, grad, &f_ref);
    const Eigen::VectorXd expected = reference.parameters() - eta * grad;
    const double loss = fused.mse_descent_step(x, y, eta, &f);
    CHECK(f == f_ref);  // outputs before the step
    CHECK(loss == doctest::Approx(loss_ref).epsilon(1e-14));
    // Every parameter moved, by exactly −η·∂L/∂θ up to rounding of θ.
    CHECK((fused.parameters() - expected).cwiseAbs().maxCoeff() <= 1e-14 * expected.cwiseAbs().maxCoeff());
    CHECK((fused.parameters() - reference.parameters()).norm() == doctest::Approx(eta * grad.norm()).epsilon(1e-12));
    // A general loss (here ⟨c, f⟩ for a fixed c) moves along −η·vjp(c).
    const RowMatrix cot = gaussian(5, 2, 24);
    const Network before = fused;
    const Eigen::VectorXd along = before.parameters() - eta * before.vjp(x, cot);
    fused.descent_step(x, eta, [&](const RowMatrix& out, RowMatrix& c_out) {
      c_out = cot;
      return (out.array() * cot.array()).sum();
    });
    CHECK((fused.parameters() - along).cwiseAbs().maxCoeff() <= 1e-14 * along.cwiseAbs().maxCoeff());
  }
  Network net(Architecture::parse("dense(4) relu dense(2)"), ExampleShape::vector(3), 1);
  const Inputs x = random_inputs(ExampleShape::vector(3), 2, 1);
  const Eigen::VectorXd theta = net.parameters();
  CHECK_THROWS_AS(net.mse_descent_step(x, RowMatrix::Zero(2, 2), 0.0), std::invalid_argument);
  CHECK_THROWS_AS(net.mse_descent_step(x, RowMatrix::Zero(2, 2), std::nan("")), std::invalid_argument);
  CHECK_THROWS_AS(net.mse_descent_step(x, RowMatrix::Zero(3, 2), 0.1), std::invalid_argument);
  CHECK_THROWS_AS(net.descent_step(x, 0.1, [](const RowMatrix&, RowMatrix& c) {
    c = RowMatrix::Zero(2, 3);
    return 0.0;
  }),
                  std::invalid_argument);
  CHECK(net.parameters() == theta);  // a rejected step leaves the parameters alone
}

TEST_CASE("forward on large batches (processed in chunks) matches per-example evaluation") {
  const Network net(Architecture::parse("conv(3, 3x3, padding=same) relu flatten dense(2)"), kImage, 8);
  const Inputs x = random_inputs(kImage, 300, 81);
  const RowMatrix f = net.forward(x);
  REQUIRE(f.rows() == 300);
  double worst = 0.0;
  for (Eigen::Index i : {0, 1, 255, 256, 257, 299}) {
    worst = std::max(worst, (net.forward(x.rows({i})).row(0) - f.row(i)).cwiseAbs().maxCoeff());
  }
  CHECK(worst <= 1e-13 * f.cwiseAbs().maxCoeff());
}

TEST_CASE("bad arguments throw std::invalid_argument naming the argument and the values") {
  const Network net(Architecture::parse("dense(4) relu dense(2)"), ExampleShape::vector(3), 1);
  const Inputs wrong = random_inputs(ExampleShape::vector(5), 2, 1);
  const Inputs right = random_inputs(ExampleShape::vector(3), 2, 1);
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  std::string m = message([&] { net.forward(wrong); });
  CHECK(m.find("'x'") != std::string::npos);
  CHECK(m.find("(5)") != std::string::npos);
  CHECK(m.find("(3)") != std::string::npos);
  m = message([&] { net.vjp(right, RowMatrix::Zero(2, 3)); });
  CHECK(m.find("'cotangent'") != std::string::npos);
  CHECK(m.find("2×3") != std::string::npos);
  CHECK(m.find("2×2") != std::string::npos);
  m = message([&] { net.jacobian(right, 2); });
  CHECK(m.find("'output'") != std::string::npos);
  CHECK(m.find("= 2") != std::string::npos);
  CHECK_THROWS_AS(net.jacobian(right, -1), std::invalid_argument);
  CHECK_THROWS_AS(empirical_ntk(net, right, wrong), std::invalid_argument);
  Eigen::VectorXd g;
  CHECK_THROWS_AS(net.mse_loss_gradient(right, RowMatrix::Zero(3, 2), g), std::invalid_argument);
  // An image network on vector input does not fit its spec.
  CHECK_THROWS_AS(Network(Architecture::parse("conv(2, 3x3) flatten dense(1)"), ExampleShape::vector(9), 1),
                  SpecError);
  // An Inputs whose fields were edited after construction is still caught.
  Inputs edited = right;
  edited.x.resize(2, 4);
  CHECK_THROWS_AS(net.forward(edited), std::invalid_argument);
}
