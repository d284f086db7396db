// The layer plan of the kernel engine (lib/kernels/kernel_plan.hpp).
#include "kernels/kernel_plan.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace emergent::detail {

Axis make_axis(int n_in, int filter, Padding padding) {
  Axis a;
  a.n_in = n_in;
  a.filter = filter;
  // 'same' and 'circular' pad (F−1)//2 before and the rest after (docs/conventions.md §2).
  const int before = padding == Padding::Valid ? 0 : (filter - 1) / 2;
  a.n_out = padding == Padding::Valid ? n_in - filter + 1 : n_in;
  a.before = before;
  a.circular = padding == Padding::Circular;
  a.source.resize(static_cast<std::size_t>(a.n_out) * filter);
  for (int o = 0; o < a.n_out; ++o)
    for (int s = 0; s < filter; ++s) {
      int i = o + s - before;
      if (padding == Padding::Circular) i = ((i % n_in) + n_in) % n_in;
      else if (i < 0 || i >= n_in) i = -1;
      a.source[static_cast<std::size_t>(o) * filter + s] = i;
    }
  a.runs.resize(static_cast<std::size_t>(filter));
  for (int s = 0; s < filter; ++s)
    for (int o = 0; o < a.n_out; ++o) {
      const int i = a.source[static_cast<std::size_t>(o) * filter + s];
      if (i < 0) continue;
      auto& runs = a.runs[static_cast<std::size_t>(s)];
      if (!runs.empty() && runs.back().out + runs.back().len == o && runs.back().in + runs.back().len == i) ++runs.back().len;
      else runs.push_back({o, i, 1});
    }
  return a;
}
PoolAxis make_pool_axis(int n_in, int window, int stride, Padding padding) {
  PoolAxis a;
  a.n_in = n_in;
  a.window = window;
  a.stride = stride;
  a.n_out = pooled_size(n_in, window, stride, padding);
  a.before = pooled_pad_before(n_in, window, stride, padding);
  a.circular = padding == Padding::Circular;
  std::vector<std::vector<int>> feeds(static_cast<std::size_t>(n_in));
  for (int o = 0; o < a.n_out; ++o)
    for (int s = 0; s < window; ++s) {
      int i = o * stride + s - a.before;
      if (a.circular) i = ((i % n_in) + n_in) % n_in;
      else if (i < 0 || i >= n_in) continue;
      feeds[static_cast<std::size_t>(i)].push_back(o);
    }
  a.first.push_back(0);
  a.single = true;
  for (const auto& f : feeds) {
    a.coarse.insert(a.coarse.end(), f.begin(), f.end());
    a.first.push_back(static_cast<int>(a.coarse.size()));
    a.single = a.single && f.size() <= 1;
    a.owner.push_back(f.empty() ? -1 : f.front());
  }
  return a;
}

void check_kernel_arguments(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options) {
  std::string why;
  if (!options.IsValid(&why)) throw std::invalid_argument("kernel options: " + why);
  if (x2 && !(x1.shape == x2->shape))
    throw std::invalid_argument("x2: expected the example shape of x1 " + x1.shape.to_string() + ", got " +
                                x2->shape.to_string());
  for (const Inputs* in : {&x1, x2}) {
    if (!in) continue;
    if (in->x.cols() != in->shape.size())
      throw std::invalid_argument("inputs: expected " + std::to_string(in->shape.size()) + " columns for shape " +
                                  in->shape.to_string() + ", got " + std::to_string(in->x.cols()));
    // v·0 is 0 for every finite v and NaN for ±Inf and NaN: one vectorised sum instead of
    // Eigen's allFinite, which ran at ~13 ns per entry (30 ms on 3000 × 784 inputs).
    if (!((in->x.array() * 0.0).sum() == 0.0))
      throw std::invalid_argument("inputs: expected finite values, got NaN or Inf");
  }
  if (arch.expects_images() != x1.shape.image)
    throw SpecError(std::string("spec: the architecture expects ") +
                    (arch.expects_images() ? "(N, H, W, C) images" : "(N, d) vectors") + ", got examples of shape " +
                    x1.shape.to_string());
}

Plan make_plan(const Architecture& arch, const ExampleShape& in, int quadrature_order) {
  arch.shapes(in);  // throws SpecError if the spec does not fit the input
  Plan plan;
  plan.in_h = in.height;
  plan.in_w = in.width;
  plan.in_c = in.channels;
  int h = in.height, w = in.width;
  bool readout_seen = !in.image;
  for (const auto& layer : arch.layers()) {
    switch (layer.kind) {
      case LayerKind::Conv: {
        SpatialOp op;
        op.kind = OpKind::Affine;
        op.w2 = layer.w_std * layer.w_std;
        op.b2 = layer.b_std * layer.b_std;
        op.height = h;
        op.width = w;
        op.ah = make_axis(h, layer.filter_h, layer.padding);
        op.aw = make_axis(w, layer.filter_w, layer.padding);
        h = op.ah.n_out;
        w = op.aw.n_out;
        plan.spatial.push_back(std::move(op));
        plan.pixel_stage = true;
        break;
      }
      case LayerKind::Dense: {
        VectorOp op;
        op.w2 = layer.w_std * layer.w_std;
        op.b2 = layer.b_std * layer.b_std;
        plan.tail.push_back(op);
        break;
      }
      case LayerKind::Activation: {
        plan.duals.emplace_back(layer.activation, quadrature_order);
        const int d = static_cast<int>(plan.duals.size()) - 1;
        if (!readout_seen) {
          SpatialOp op;
          op.kind = OpKind::Activation;
          op.dual = d;
          op.q_offset = plan.record;
          op.height = h;
          op.width = w;
          plan.record += h * w;
          plan.spatial.push_back(std::move(op));
        } else {
          VectorOp op;
          op.kind = OpKind::Activation;
          op.dual = d;
          plan.tail.push_back(op);
        }
        break;
      }
      case LayerKind::Flatten:
      case LayerKind::GlobalAvgPool: {
        const bool flat = layer.kind == LayerKind::Flatten;
        if (plan.pixel_stage) {
          plan.readout = flat ? Readout::Flatten : Readout::Gap;
        } else {
          plan.reduce_flatten = flat;
          plan.reduce_gap = !flat;
        }
        readout_seen = true;
        plan.out_h = h;
        plan.out_w = w;
        break;
      }
      case LayerKind::AvgPool: {
        SpatialOp op;
        op.kind = OpKind::Pool;
        op.height = h;
        op.width = w;
        op.ph = make_pool_axis(h, layer.filter_h, layer.stride_h, layer.padding);
        op.pw = make_pool_axis(w, layer.filter_w, layer.stride_w, layer.padding);
        op.pool_scale = 1.0 / (static_cast<double>(layer.filter_h) * layer.filter_w * layer.filter_h * layer.filter_w);
        h = op.ph.n_out;
        w = op.pw.n_out;
        plan.spatial.push_back(std::move(op));
        plan.pixel_stage = true;
        plan.pooled = true;
        break;
      }
      case LayerKind::LayerNorm:
      case LayerKind::ResidualBegin:
      case LayerKind::ResidualEnd:  // kernels() routes these to the general path (general_kernel.hpp)
        throw std::logic_error("make_plan: '" + layer.to_string() + "' is computed by the general kernel path");
    }
  }
  if (!readout_seen) {
    plan.out_h = h;
    plan.out_w = w;
  }
  for (auto& op : plan.tail)
    if (op.kind == OpKind::Activation) op.q_offset = plan.record++;
  int circular = 0, convs = 0;
  for (const auto& op : plan.spatial)
    if (op.kind == OpKind::Affine) ++convs, circular += op.ah.circular ? 1 : 0;
  plan.circular = convs > 0 && circular == convs;
  // flatten takes the slices too: only offset 0 of the last stage (Plan::Stage ranges below).
  plan.slices = plan.pixel_stage && (circular == 0 || plan.circular);
  if (plan.pooled && !plan.slices)  // kernels() routes these to the general path (uses_general_path)
    throw std::logic_error("make_plan: avgpool with circular and non-circular convs is computed by the general path");
  plan.path = !plan.pixel_stage ? "vector"
              : plan.readout == Readout::Flatten && !plan.pooled ? "pixel-diagonal"
                                                                 : "pixel-pairs";
  // Stages, then the offsets each needs, from the output backwards.
  Plan::Stage st;
  st.h = plan.in_h;
  st.w = plan.in_w;
  for (int k = 0; k < static_cast<int>(plan.spatial.size()); ++k) {
    const SpatialOp& op = plan.spatial[static_cast<std::size_t>(k)];
    if (op.kind != OpKind::Pool) continue;
    st.end = k;
    plan.stages.push_back(st);
    st = Plan::Stage{};
    st.begin = k + 1;
    st.h = op.ph.n_out;
    st.w = op.pw.n_out;
    plan.coarse_pairs = std::max(plan.coarse_pairs, static_cast<std::size_t>(st.h) * st.w * st.h * st.w);
  }
  st.end = static_cast<int>(plan.spatial.size());
  plan.stages.push_back(st);
  bool all = plan.readout != Readout::Flatten;  // every offset of the current stage
  int dlo = 0, dhi = 0, elo = 0, ehi = 0;
  for (int k = static_cast<int>(plan.stages.size()) - 1; k >= 0; --k) {
    Plan::Stage& s = plan.stages[static_cast<std::size_t>(k)];
    const bool last = k + 1 == static_cast<int>(plan.stages.size());
    if (plan.circular && !(last && plan.readout == Readout::Flatten)) {
      s.dlo = 0, s.dhi = s.h - 1, s.elo = 0, s.ehi = s.w - 1;
    } else if (all) {
      s.dlo = -(s.h - 1), s.dhi = s.h - 1, s.elo = -(s.w - 1), s.ehi = s.w - 1;
    } else {
      s.dlo = std::max(dlo, -(s.h - 1)), s.dhi = std::min(dhi, s.h - 1);
      s.elo = std::max(elo, -(s.w - 1)), s.ehi = std::min(ehi, s.w - 1);
    }
    // Row slabs where they apply (see Plan::Stage).
    s.slab = !plan.circular && s.elo == -(s.w - 1) && s.ehi == s.w - 1;
    s.pad = 1;
    for (int j = s.begin; j < s.end && s.slab; ++j) {
      const SpatialOp& op = plan.spatial[static_cast<std::size_t>(j)];
      if (op.kind != OpKind::Affine) continue;
      const bool same = op.ah.n_out == op.ah.n_in && op.aw.n_out == op.aw.n_in && !op.ah.circular;
      s.slab = same;
      s.pad = std::max({s.pad, op.aw.before, op.aw.filter - 1 - op.aw.before});
      s.row_guard = std::max({s.row_guard, op.ah.before + 1, op.ah.filter - op.ah.before});
    }
    if (s.slab && !last) {
      const SpatialOp& pool = plan.spatial[static_cast<std::size_t>(s.end)];
      s.slab = pool.ph.single && pool.pw.single;
    }
    // A slab holds h·(w+2p)·(w+p) doubles per array (Σ and Θ, in place): beyond ~64 Ki doubles (about
    // a 36×36 map) they leave L2 and the slices, which stay in L1, are the better layout.
    if (s.slab && static_cast<std::size_t>(s.h) * (s.w + 2 * s.pad) * (s.w + s.pad) > (std::size_t(1) << 16))
      s.slab = false;
    if (s.slab) {
      const std::size_t row = static_cast<std::size_t>(s.w + 2 * s.pad) * (s.w + s.pad);
      plan.slab_doubles = std::max(plan.slab_doubles, static_cast<std::size_t>(s.h + s.row_guard) * row);
      plan.slab_row = std::max(plan.slab_row, row);
    }
    if (plan.circular && plan.stages.size() == 1 && plan.readout != Readout::Flatten &&
        static_cast<std::size_t>(s.h) * s.w * s.w <= (std::size_t(1) << 15)) {
      s.ring = true;
      int filter = 1;
      std::size_t acts = 0;
      for (const auto& op : plan.spatial) {
        if (op.kind == OpKind::Affine) filter = std::max(filter, op.aw.filter);
        if (op.kind == OpKind::Activation) ++acts;
      }
      const std::size_t block = static_cast<std::size_t>(s.h) * s.w * s.w;
      plan.ring_doubles = 4 * block + (acts + plan.in_c) * s.h * 2 * s.w + 2 * static_cast<std::size_t>(s.w + filter) * s.w + 16;
    }
    if (k == 0) break;
    // Coarse offset D = A − B needs the fine offsets D·S + s − t, |s − t| < K (the padding
    // shifts both pixels alike); a circular pool wraps them, so then all.
    const SpatialOp& pool = plan.spatial[static_cast<std::size_t>(s.begin - 1)];
    if (pool.ph.circular) all = true;
    dlo = s.dlo * pool.ph.stride - (pool.ph.window - 1), dhi = s.dhi * pool.ph.stride + (pool.ph.window - 1);
    elo = s.elo * pool.pw.stride - (pool.pw.window - 1), ehi = s.ehi * pool.pw.stride + (pool.pw.window - 1);
  }
  // The offsets of a records-only run with itself (Plan::Stage::rec_*): an activation in stage k
  // reads the variances of its pixels, offset 0 of stage k; offset 0 of stage k is fed by the
  // fine offsets |d| < K of the pool before it, and so on backwards (the same rule as above).
  // Circular pools or maps wrap offsets: there the run keeps every offset the output needs.
  bool none = true, wrapped = plan.circular;
  int rlo = 0, rhi = -1, clo = 0, chi = -1;  // the current stage's output offsets (empty if none)
  for (int k = static_cast<int>(plan.stages.size()) - 1; k >= 0; --k) {
    Plan::Stage& s = plan.stages[static_cast<std::size_t>(k)];
    bool act = false;
    for (int j = s.begin; j < s.end; ++j) act = act || plan.spatial[static_cast<std::size_t>(j)].kind == OpKind::Activation;
    if (act && none) rlo = rhi = clo = chi = 0, none = false;
    else if (act) rlo = std::min(rlo, 0), rhi = std::max(rhi, 0), clo = std::min(clo, 0), chi = std::max(chi, 0);
    if (wrapped && !none) rlo = s.dlo, rhi = s.dhi, clo = s.elo, chi = s.ehi;
    if (!none) {
      s.rec_dlo = std::max(rlo, -(s.h - 1)), s.rec_dhi = std::min(rhi, s.h - 1);
      s.rec_elo = std::max(clo, -(s.w - 1)), s.rec_ehi = std::min(chi, s.w - 1);
    }
    if (k == 0 || none) continue;
    const SpatialOp& pool = plan.spatial[static_cast<std::size_t>(s.begin - 1)];
    wrapped = wrapped || pool.ph.circular || pool.pw.circular;
    rlo = s.rec_dlo * pool.ph.stride - (pool.ph.window - 1), rhi = s.rec_dhi * pool.ph.stride + (pool.ph.window - 1);
    clo = s.rec_elo * pool.pw.stride - (pool.pw.window - 1), chi = s.rec_ehi * pool.pw.stride + (pool.pw.window - 1);
  }
  return plan;
}

// Bias-free networks whose activations are positively homogeneous of degree 1 (the ReLU family
// a·min(x,0) + b·max(x,0)) have K(cx, cx') = c²·K(x, x') and Θ(cx, cx') = c²·Θ(x, x') for c > 0
// (every step of the recursion of docs/conventions.md §2 is homogeneous of degree 2, and so are
// avgpool, residual sums, flatten and gap; a layer norm is not). For such
// networks, inputs far from scale 1 are rescaled by a power of two — exact in floating point —
// and the kernels scaled back, so 1e-100 inputs do not underflow inside the dual's q1·q2 and give
// the scale-1 answer times c² (docs/robustness.md). Returns the exponent e of the factor 2^e by
// which the inputs are divided, or 0 when the rescaling does not apply or is not needed.
int homogeneous_exponent(const Architecture& arch, const Inputs& x1, const Inputs* x2, double max_abs) {
  for (const auto& layer : arch.layers()) {
    if (layer.kind == LayerKind::LayerNorm) return 0;  // ε makes Σ/√((ε+Σ_aa)(ε+Σ_bb)) not homogeneous
    if (layer.affine() && layer.b_std != 0.0) return 0;
    if (layer.kind == LayerKind::Activation) {
      const ActivationKind k = layer.activation.kind;
      if (k != ActivationKind::Identity && k != ActivationKind::Relu && k != ActivationKind::Abs &&
          k != ActivationKind::LeakyRelu && k != ActivationKind::AbRelu)
        return 0;
    }
  }
  if (max_abs < 0) {
    max_abs = 0;
    for (const Inputs* in : {&x1, x2})
      if (in && in->x.size() > 0) max_abs = std::max(max_abs, in->x.cwiseAbs().maxCoeff());
  }
  if (!(max_abs > 0) || !std::isfinite(max_abs)) return 0;
  const int e = std::ilogb(max_abs);
  return (e < -16 || e > 16) ? e : 0;
}

}  // namespace emergent::detail
