// Analytic NNGP and NTK kernels by the layer recursions of docs/conventions.md §2.
//
// Three paths, chosen from the architecture:
//  * "vector"          — MLPs (and CNN specs that start with flatten/gap): Σ⁰ = x·x'/d from a
//                        GEMM per tile, then a scalar recursion per entry (Lee et al. 2018 Eq. 4,
//                        Jacot et al. 2018 Thm. 1).
//  * "pixel-diagonal"  — convolutions followed by flatten: a conv couples pixel pair (a, b) only
//                        to (a+s, b+s), so the offset a−b is conserved and a flatten readout needs
//                        only the P diagonal pairs (Novak et al. 2019, Sec. 3; Arora et al. 2019).
//  * "pixel-pairs"     — convolutions followed by gap, or no readout: all P² pixel pairs
//                        (Novak et al. 2019 Eq. 7; Garriga-Alonso et al. 2019).
// The conv window sum is separable: one pass along H, one along W, O(FH+FW) per entry.
// Every Gram entry is computed by one thread from its inputs alone, and each entry of the input
// Gram Σ⁰ of the vector path is one fused multiply-add chain in feature order
// (lib/detail/packed_gram.hpp), so results depend neither on the thread count nor on the memory cap.
//
// This file holds the public entry points, the magnitude checks and the rescaling of
// homogeneous networks; the engine itself is lib/kernels/kernel_engine.hpp.
#include "emergent/kernels/kernel.hpp"
#include "emergent/kernels/general_kernel.hpp"
#include "emergent/kernels/activation_dual.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "emergent/core/memory.hpp"
#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/parallel.hpp"
#include "kernels/kernel_engine.hpp"

namespace emergent {

using detail::Engine;
using detail::make_plan;
using detail::Plan;
using detail::Readout;

bool KernelOptions::IsValid(std::string* error) const {
  auto bad = [&](const std::string& why) {
    if (error) *error = why;
    return false;
  };
  if (threads < 0 || threads > detail::kMaxThreads)
    return bad("threads: expected 0 (OpenMP default) to " + std::to_string(detail::kMaxThreads) + ", got " +
               std::to_string(threads));
  if (quadrature_order < 0 || quadrature_order > kMaxQuadratureOrder)
    return bad("quadrature_order: expected 0 (default) to " + std::to_string(kMaxQuadratureOrder) + ", got " +
               std::to_string(quadrature_order));
  if (memory_cap_bytes != 0 && memory_cap_bytes < (1u << 20))
    return bad("memory_cap_bytes: expected 0 (25% of RAM) or at least 1 MiB, got " + std::to_string(memory_cap_bytes));
  return true;
}

std::string KernelSummary::to_string() const {
  std::ostringstream os;
  os << n1 << " x " << n2 << (symmetric ? " (symmetric)" : "") << ", " << path << ", " << blocks << " blocks, "
     << threads << " threads, estimated peak " << format_bytes(estimated_peak_bytes) << " of cap "
     << format_bytes(memory_cap_bytes) << ", " << seconds << " s";
  return os.str();
}

namespace {
// Refuses, naming the layer, an architecture and inputs whose kernel variances leave float64.
// The diagonal recursion of docs/conventions.md §2 is run on the largest per-entry variance
// max x² of the inputs: affine layers average over their window (conv) or features (dense), so
// this bounds every point's variance from above and costs O(layers). Without it the overflow
// surfaces as an ActivationDual error deep inside a parallel region, naming no layer. Returns
// max |x| (for homogeneous_exponent: one pass over the inputs instead of two).
double check_magnitudes(const Architecture& arch, const Inputs& x1, const Inputs* x2, int quadrature_order) {
  double max_abs = 0;
  for (const Inputs* in : {&x1, x2})
    if (in && in->x.size() > 0) max_abs = std::max(max_abs, in->x.cwiseAbs().maxCoeff());
  if (!std::isfinite(max_abs))
    detail::bad("the inputs hold a non-finite entry; expected finite numbers");
  double q = max_abs * max_abs;
  if (!std::isfinite(q))
    detail::bad("the inputs: the covariance overflowed (inf) with max |x| = " + detail::num(max_abs) +
                "; expected |x| < 1e154 (rescale the inputs, see docs/robustness.md)");
  int dense = 0, conv = 0, act = 0;
  for (const auto& layer : arch.layers()) {
    std::string name;
    if (layer.kind == LayerKind::Dense || layer.kind == LayerKind::Conv) {
      name = layer.kind == LayerKind::Dense ? "dense #" + std::to_string(++dense) : "conv #" + std::to_string(++conv);
      q = layer.w_std * layer.w_std * q + layer.b_std * layer.b_std;
      if (!std::isfinite(q))
        detail::bad(name + ": the covariance overflowed (inf) with w = " + detail::num(layer.w_std) +
                    ", b = " + detail::num(layer.b_std) + " and inputs up to |x| = " + detail::num(max_abs) +
                    "; the kernel is not representable in float64 (see docs/robustness.md)");
    } else if (layer.kind == LayerKind::Activation) {
      name = layer.activation.name() + " #" + std::to_string(++act);
      double next = 0;
      try {
        next = ActivationDual(layer.activation, quadrature_order)(q, q, q).nngp;
      } catch (const std::invalid_argument&) {
        next = std::numeric_limits<double>::infinity();
      }
      if (!std::isfinite(next))
        detail::bad(name + ": the covariance overflowed (inf) at input variance " + detail::num(q) +
                    "; the kernel is not representable in float64 (see docs/robustness.md)");
      q = next;
    }
  }
  return max_abs;
}

Inputs scaled(const Inputs& in, int e) { return Inputs(RowMatrix(in.x.array() * std::ldexp(1.0, -e)), in.shape); }

Kernels rescaled(Kernels r, int e) {
  const double f = std::ldexp(1.0, 2 * e);
  r.nngp *= f;
  r.ntk *= f;
  return r;
}
}  // namespace

// Layers the fast paths do not handle (avgpool, layernorm, residual blocks) take the general path.
Kernels kernels(const Architecture& arch, const Inputs& x1, const Inputs& x2, const KernelOptions& options) {
  if (uses_general_path(arch)) return general_kernels(arch, x1, &x2, options);
  const double max_abs = check_magnitudes(arch, x1, &x2, options.quadrature_order);
  if (const int e = detail::homogeneous_exponent(arch, x1, &x2, max_abs)) {
    const Inputs a = scaled(x1, e), b = scaled(x2, e);
    return rescaled(kernels(arch, a, b, options), e);
  }
  return Engine(arch, x1, &x2, options, false).run_gram();
}

Kernels kernels(const Architecture& arch, const Inputs& x, const KernelOptions& options) {
  if (uses_general_path(arch)) return general_kernels(arch, x, nullptr, options);
  const double max_abs = check_magnitudes(arch, x, nullptr, options.quadrature_order);
  if (const int e = detail::homogeneous_exponent(arch, x, nullptr, max_abs)) return rescaled(kernels(arch, scaled(x, e), options), e);
  return Engine(arch, x, nullptr, options, false).run_gram();
}

namespace {
// Passes bands on scaled back by 2^(2e), as rescaled() does in memory (the same products, so the
// streamed entries keep the bits of kernels()).
class RescalingSink final : public KernelBandSink {
 public:
  RescalingSink(KernelBandSink& inner, int e) : inner_(inner), factor_(std::ldexp(1.0, 2 * e)) {}
  void begin(Eigen::Index n1, Eigen::Index n2, bool symmetric, Eigen::Index band_rows) override {
    inner_.begin(n1, n2, symmetric, band_rows);
  }
  void start(const KernelBandLayout& layout) override { inner_.start(layout); }
  bool wanted(Eigen::Index band) override { return inner_.wanted(band); }
  void progress(Eigen::Index band, std::size_t done, std::size_t total) override { inner_.progress(band, done, total); }
  void write(const KernelBand& band) override {
    const std::size_t n = static_cast<std::size_t>(band.rows * band.cols) * band.entry_size;
    nngp_.assign(band.nngp, band.nngp + n);
    ntk_.assign(band.ntk, band.ntk + n);
    for (std::size_t i = 0; i < n; ++i) nngp_[i] *= factor_, ntk_[i] *= factor_;
    KernelBand out = band;
    out.nngp = nngp_.data();
    out.ntk = ntk_.data();
    inner_.write(out);
  }

 private:
  KernelBandSink& inner_;
  double factor_;
  std::vector<double> nngp_, ntk_;
};
}  // namespace

KernelSummary stream_kernels(const Architecture& arch, const Inputs& x1, const Inputs* x2,
                             const KernelOptions& options, KernelBandSink& sink) {
  if (!streams_in_bands(arch, x1.shape))
    throw std::invalid_argument("stream_kernels: the architecture '" + arch.to_string() +
                                "' is not computed in bands; use kernels or spatial_kernels");
  const double max_abs = check_magnitudes(arch, x1, x2, options.quadrature_order);
  const Plan plan = make_plan(arch, x1.shape, options.quadrature_order);
  const bool keeps_pixels = plan.pixel_stage && plan.readout == Readout::None;
  auto run = [&](const Inputs& a, const Inputs* b, KernelBandSink& out) {
    Engine engine(arch, a, b, options, keeps_pixels, true);
    return plan.pixel_stage ? engine.stream_pixels(out) : engine.stream_vector(out);
  };
  // Gram matrices are rescaled as kernels() rescales them; spatial_kernels() does not rescale.
  if (const int e = keeps_pixels ? 0 : detail::homogeneous_exponent(arch, x1, x2, max_abs)) {
    const Inputs a = scaled(x1, e);
    const Inputs b = x2 ? scaled(*x2, e) : Inputs();
    RescalingSink rescaling(sink, e);
    return run(a, x2 ? &b : nullptr, rescaling);
  }
  return run(x1, x2, sink);
}

bool streams_in_bands(const Architecture& arch, const ExampleShape& shape) {
  if (uses_general_path(arch)) return false;
  if (arch.expects_images() != shape.image) return false;
  try {
    make_plan(arch, shape, 0);  // the three paths of the engine; other layers are not banded
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

SpatialKernels spatial_kernels(const Architecture& arch, const Inputs& x1, const Inputs& x2,
                               const KernelOptions& options) {
  if (uses_general_path(arch)) return general_spatial_kernels(arch, x1, &x2, options);
  check_magnitudes(arch, x1, &x2, options.quadrature_order);
  return Engine(arch, x1, &x2, options, true).run_spatial();
}

SpatialKernels spatial_kernels(const Architecture& arch, const Inputs& x, const KernelOptions& options) {
  if (uses_general_path(arch)) return general_spatial_kernels(arch, x, nullptr, options);
  check_magnitudes(arch, x, nullptr, options.quadrature_order);
  return Engine(arch, x, nullptr, options, true).run_spatial();
}

}  // namespace emergent
