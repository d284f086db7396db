// Theorem 5.1 of Gerken & Kessel (ICML 2024), checked numerically
// (include/emergent/theorems/kernel_transform.hpp).
#include "emergent/theorems/kernel_transform.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/theorem_support.hpp"
#include "theorems/check_support.hpp"

namespace emergent {

using Eigen::Index;
using Eigen::MatrixXd;
using detail::bad;
using detail::check_inputs_for;
using detail::collinear_pairs;
using detail::collinear_rel_tol;
using detail::conj_blocks;
using detail::finish;
using detail::finish_theorem;
using detail::Gram;
using detail::gram;
using detail::is_spatial;
using detail::kEps;
using detail::kinked_activations;
using detail::max_abs;
using detail::num;
using detail::require_same_map;

bool EquivarianceCheckOptions::IsValid(std::string* error) const {
  std::string e;
  if (!(safety >= 1.0) || !std::isfinite(safety)) e = "safety: expected a finite number ≥ 1, got " + num(safety);
  else if (!kernel.IsValid(&e)) e = "kernel." + e;
  if (error) *error = e;
  return e.empty();
}

double kernel_roundoff_ops(const Architecture& arch, const ExampleShape& shape, const Representation* rho) {
  const ShapeTrace trace = arch.shapes(shape);
  double ops = shape.channels;                                  // Σ⁰ = x·x'/C
  if (rho && !rho->is_permutation()) ops += static_cast<double>(rho->blocks());  // ρ(g)x is a matrix product
  const auto& layers = arch.layers();
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const Layer& L = layers[l];
    const double P = trace.shapes[l].pixels();
    switch (L.kind) {
      case LayerKind::Dense: ops += 4; break;
      case LayerKind::Conv: ops += L.filter_h * L.filter_w + 4; break;
      case LayerKind::Activation: ops += L.activation.closed_form() ? 16 : 64; break;
      case LayerKind::Flatten: ops += P; break;
      case LayerKind::GlobalAvgPool: ops += P * P; break;
      case LayerKind::AvgPool: ops += 2.0 * L.filter_h * L.filter_w; break;
      case LayerKind::LayerNorm: ops += 8; break;
      case LayerKind::ResidualBegin:
      case LayerKind::ResidualEnd: ops += 1; break;
    }
  }
  return ops;
}

namespace {
TheoremResult check_5_1_impl(const Architecture& arch, const Inputs& x1, const Inputs* x2p,
                             const Representation& rho, const EquivarianceCheckOptions& options) {
  std::string err;
  if (!options.IsValid(&err)) bad("check_theorem_5_1: options." + err);
  check_inputs_for(rho, x1, "x1", "check_theorem_5_1");
  if (x2p) check_inputs_for(rho, *x2p, "x2", "check_theorem_5_1");
  const bool spatial = is_spatial(arch);
  if (spatial) {
    require_same_map(arch, x1.shape, "check_theorem_5_1");
    if (rho.blocks() != x1.shape.pixels())
      bad("check_theorem_5_1: group '" + rho.name() + "' does not act pixel-wise, so it has no ρ_K on pixel-indexed kernels");
  }
  const Gram base = gram(arch, x1, x2p, options.kernel);
  const Index P = base.pixels;
  std::vector<ElementViolation> vk, vt, vc;
  double scale_k = max_abs(base.nngp), scale_t = max_abs(base.ntk);
  const bool kinked = kinked_activations(arch) > 0;
  const auto colpairs = collinear_pairs(x1.x, x2p ? x2p->x : x1.x);
  bool any_col = false;
  for (const auto& row : colpairs)
    for (char c : row) any_col = any_col || c;
  for (int g = 0; g < rho.size(); ++g) {
    const Inputs g1 = rho.apply(g, x1);
    Gram tg;
    if (x2p) {
      const Inputs g2 = rho.apply(g, *x2p);
      tg = gram(arch, g1, &g2, options.kernel);
    } else {
      tg = gram(arch, g1, nullptr, options.kernel);
    }
    MatrixXd ek = base.nngp, et = base.ntk;
    if (spatial) {
      const MatrixXd M = rho.block_matrix(g);  // ρ_K(g) on pixel indices
      ek = conj_blocks(base.nngp, M, P);
      et = conj_blocks(base.ntk, M, P);
    }
    scale_k = std::max(scale_k, max_abs(tg.nngp));
    scale_t = std::max(scale_t, max_abs(tg.ntk));
    vk.push_back({g, rho.label(g), max_abs(tg.nngp - ek)});
    double gen = 0, col = 0;
    for (Index r = 0; r < et.rows(); ++r)
      for (Index c = 0; c < et.cols(); ++c) {
        const double d = std::abs(tg.ntk(r, c) - et(r, c));
        if (kinked && colpairs[r / P][c / P]) col = std::max(col, d);
        else gen = std::max(gen, d);
      }
    vt.push_back({g, rho.label(g), gen});
    vc.push_back({g, rho.label(g), col});
  }
  const double ops = kernel_roundoff_ops(arch, x1.shape, &rho);
  const std::string rule = num(options.safety) + "·2·ε·ops·scale, ops = " + num(ops) +
                           " (input dot product, transform, filter taps, activations, readout sums)";
  TheoremResult t;
  t.theorem = std::string("Theorem 5.1 (") + rho.name() + ", " + (spatial ? "pixel-indexed kernels, ρ_K = pixel action" : "readout/MLP kernels, invariance") + ")";
  t.parts.push_back(finish({Theorem::KernelTransform51, Quantity::Nngp, InputSet::Given}, std::move(vk), scale_k, options.safety * 2 * kEps * ops * scale_k, rule));
  t.parts.push_back(finish({Theorem::KernelTransform51, Quantity::Ntk, InputSet::Given}, std::move(vt), scale_t, options.safety * 2 * kEps * ops * scale_t, rule));
  if (kinked && any_col)
    t.parts.push_back(finish({Theorem::KernelTransform51, Quantity::Ntk, InputSet::Collinear}, std::move(vc), scale_t,
                             options.safety * 2 * collinear_rel_tol(arch, ops) * scale_t,
                             num(options.safety) + "·2·(kinked layers)·√(2·ε·ops)/π·scale: the ReLU-family NTK factor at θ = 0"));
  if (!rho.exact()) t.status = "group '" + rho.name() + "' is not an exact orthogonal group (" + rho.verify().to_string() + ")";
  finish_theorem(t);
  return t;
}
}  // namespace

TheoremResult check_theorem_5_1(const Architecture& arch, const Inputs& x1, const Inputs& x2,
                                const Representation& rho_x, const EquivarianceCheckOptions& options) {
  return check_5_1_impl(arch, x1, &x2, rho_x, options);
}

TheoremResult check_theorem_5_1(const Architecture& arch, const Inputs& x, const Representation& rho_x,
                                const EquivarianceCheckOptions& options) {
  return check_5_1_impl(arch, x, nullptr, rho_x, options);
}

}  // namespace emergent
