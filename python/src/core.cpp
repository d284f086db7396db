// Architecture specs, shapes, memory caps and the analytic kernels (emergent/core, emergent/kernels).
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "common.hpp"
#include "emergent/core/architecture.hpp"
#include "emergent/core/memory.hpp"
#include "emergent/kernels/kernel.hpp"

namespace emergent::python {

namespace {

nb::tuple shape_tuple(const ExampleShape& s) {
  if (!s.image) return nb::make_tuple(s.channels);
  return nb::make_tuple(s.height, s.width, s.channels);
}

ExampleShape shape_from(const std::vector<int>& s, const char* what) {
  if (s.size() == 1) return ExampleShape::vector(s[0]);
  if (s.size() == 3) return ExampleShape::image_hwc(s[0], s[1], s[2]);
  std::vector<std::size_t> u(s.begin(), s.end());
  throw std::invalid_argument(std::string(what) + ": example shape " + shape_string(u) +
                              " has rank " + std::to_string(s.size()) + "; expected (d,) or (H, W, C)");
}

const char* layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::Dense: return "dense";
    case LayerKind::Conv: return "conv";
    case LayerKind::Activation: return "activation";
    case LayerKind::Flatten: return "flatten";
    case LayerKind::GlobalAvgPool: return "gap";
    case LayerKind::AvgPool: return "avgpool";
    case LayerKind::LayerNorm: return "layernorm";
    case LayerKind::ResidualBegin: return "residual_begin";
    case LayerKind::ResidualEnd: return "residual_end";
  }
  return "?";
}

const char* padding_name(Padding p) {
  switch (p) {
    case Padding::Same: return "same";
    case Padding::Valid: return "valid";
    case Padding::Circular: return "circular";
  }
  return "?";
}

nb::dict layer_dict(const Layer& l) {
  nb::dict d;
  d["kind"] = layer_kind_name(l.kind);
  d["spec"] = l.to_string();
  if (l.affine()) {
    d["width"] = l.width;
    d["w_std"] = l.w_std;
    d["b_std"] = l.b_std;
  }
  if (l.kind == LayerKind::Conv) {
    d["filter"] = nb::make_tuple(l.filter_h, l.filter_w);
    d["padding"] = padding_name(l.padding);
  }
  if (l.kind == LayerKind::AvgPool) {
    d["window"] = nb::make_tuple(l.filter_h, l.filter_w);
    d["stride"] = nb::make_tuple(l.stride_h, l.stride_w);
    d["padding"] = padding_name(l.padding);
  }
  if (l.kind == LayerKind::LayerNorm) d["eps"] = l.eps;
  if (l.kind == LayerKind::Activation) d["activation"] = l.activation.name();
  return d;
}

nb::dict summary_dict(const KernelSummary& s) {
  nb::dict d;
  d["n1"] = s.n1;
  d["n2"] = s.n2;
  d["symmetric"] = s.symmetric;
  d["path"] = s.path;
  d["blocks"] = s.blocks;
  d["block_size"] = s.block_size;
  d["estimated_peak_bytes"] = s.estimated_peak_bytes;
  d["memory_cap_bytes"] = s.memory_cap_bytes;
  d["threads"] = s.threads;
  d["seconds"] = s.seconds;
  d["text"] = s.to_string();
  return d;
}

KernelOptions kernel_options(std::size_t memory_cap, int threads, int quadrature_order) {
  KernelOptions o;
  o.memory_cap_bytes = memory_cap;
  o.threads = threads;
  o.quadrature_order = quadrature_order;
  std::string error;
  if (!o.IsValid(&error)) throw std::invalid_argument(error);
  return o;
}

}  // namespace

// Used by the other binders.
ExampleShape example_shape(const std::vector<int>& s, const char* what) { return shape_from(s, what); }
nb::tuple example_shape_tuple(const ExampleShape& s) { return shape_tuple(s); }
KernelOptions make_kernel_options(std::size_t memory_cap, int threads, int quadrature_order) {
  return kernel_options(memory_cap, threads, quadrature_order);
}

void bind_core(nb::module_& m) {
  nb::class_<Architecture>(m, "Architecture",
                           "A network spec (docs/conventions.md §1), e.g. "
                           "'conv(64, 3x3, padding=circular) relu gap dense(1)'.")
      .def("__init__", [](Architecture* self, const std::string& spec) { new (self) Architecture(Architecture::parse(spec)); },
           nb::arg("spec"), "Parse a spec; raises SpecError (a ValueError) naming the token and its column.")
      .def_prop_ro("outputs", &Architecture::outputs, "k: the width of the last affine layer.")
      .def_prop_ro("has_readout", &Architecture::has_readout, "True if a flatten or gap layer is present.")
      .def_prop_ro("expects_images", &Architecture::expects_images, "True if inputs are (N, H, W, C) images.")
      .def_prop_ro("layers", [](const Architecture& a) {
            nb::list l;
            for (const auto& layer : a.layers()) l.append(layer_dict(layer));
            return l;
          }, "One dict per layer (kind, spec, width, w_std, b_std, filter, padding, activation).")
      .def("shapes", [](const Architecture& a, const std::vector<int>& input) {
            nb::list l;
            for (const auto& s : a.shapes(shape_from(input, "input shape")).shapes) l.append(shape_tuple(s));
            return l;
          }, nb::arg("input_shape"),
          "Shape after every layer for one example of `input_shape` ((d,) or (H, W, C)); entry 0 is the input.")
      .def("__str__", &Architecture::to_string)
      .def("__repr__", [](const Architecture& a) { return "Architecture('" + a.to_string() + "')"; })
      .def("__eq__", [](const Architecture& a, const Architecture& b) { return a.to_string() == b.to_string(); });

  m.def("parse_bytes", [](const std::string& text, const std::string& what) { return parse_bytes(text, what); },
        nb::arg("text"), nb::arg("what") = "memory cap",
        "Bytes from '4G', '512M', '1.5GiB', '100000' or '25%' (of physical memory).");
  m.def("default_memory_cap_bytes", &default_memory_cap_bytes);
  m.def("physical_memory_bytes", &physical_memory_bytes);

  m.def("kernels",
        [](const Architecture& arch, const InArray& x1, std::optional<InArray> x2, std::size_t memory_cap,
           int threads, int quadrature_order) {
          Inputs in1 = to_inputs(x1, "x1");
          std::optional<Inputs> in2;
          if (x2) in2 = to_inputs(*x2, "x2");
          const KernelOptions options = kernel_options(memory_cap, threads, quadrature_order);
          // Pixel-indexed kernels for CNNs without readout, Gram matrices otherwise.
          const bool spatial = !arch.has_readout() && arch.expects_images();
          if (spatial) {
            SpatialKernels k = interruptible([arch, in1 = std::move(in1), in2, options]() {
              return in2 ? spatial_kernels(arch, in1, *in2, options) : spatial_kernels(arch, in1, options);
            });
            const auto shape = k.shape();
            nb::dict summary = summary_dict(k.summary);
            return nb::make_tuple(to_numpy(std::move(k.nngp), shape), to_numpy(std::move(k.ntk), shape), summary);
          }
          Kernels k = interruptible([arch, in1 = std::move(in1), in2, options]() {
            return in2 ? kernels(arch, in1, *in2, options) : kernels(arch, in1, options);
          });
          nb::dict summary = summary_dict(k.summary);
          return nb::make_tuple(to_numpy(std::move(k.nngp)), to_numpy(std::move(k.ntk)), summary);
        },
        nb::arg("arch"), nb::arg("x1"), nb::arg("x2").none() = nb::none(), nb::arg("memory_cap") = 0,
        nb::arg("threads") = 0, nb::arg("quadrature_order") = 0,
        "(nngp, ntk, summary): K and Θ on x1 × x2 (x2=None: x1 × x1, one triangle computed). "
        "Readout/MLP: (N1, N2); CNN without readout: (N1, N2, H, W, H, W).");
}

}  // namespace emergent::python
