// The layer plan of the kernel engine (lib/kernels/kernel_plan.hpp).
#include "kernels/kernel_plan.hpp"

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
    if (!in->x.allFinite()) throw std::invalid_argument("inputs: expected finite values, got NaN or Inf");
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
      case LayerKind::AvgPool:
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
  plan.slices = plan.pixel_stage && plan.readout != Readout::Flatten && (circular == 0 || plan.circular);
  plan.path = !plan.pixel_stage ? "vector" : plan.readout == Readout::Flatten ? "pixel-diagonal" : "pixel-pairs";
  return plan;
}

}  // namespace emergent::detail
