// Finite groups acting on examples, their output actions and full-orbit augmentation
// (emergent/symmetry).
#include <nanobind/eigen/dense.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "common.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"

namespace emergent::python {

namespace {

std::vector<Eigen::MatrixXd> matrices_from(const InArray& a, const char* what) {
  if (a.ndim() != 3 || a.shape(1) != a.shape(2))
    throw std::invalid_argument(std::string(what) + ": expected an array of shape (|G|, d, d)");
  require_finite(a, what);
  std::vector<Eigen::MatrixXd> out;
  const auto d = static_cast<Eigen::Index>(a.shape(1));
  for (std::size_t g = 0; g < a.shape(0); ++g)
    out.emplace_back(Eigen::Map<const RowMatrix>(a.data() + g * d * d, d, d));
  return out;
}

}  // namespace

void bind_symmetry(nb::module_& m) {
  nb::class_<Representation>(m, "Representation",
                             "A finite group acting linearly on one example: ρ(g) for g = 0..|G|−1, identity first.")
      .def_prop_ro("name", &Representation::name)
      .def_prop_ro("shape", [](const Representation& r) { return example_shape_tuple(r.shape()); })
      .def_prop_ro("size", &Representation::size, "|G|")
      .def("__len__", &Representation::size)
      .def_prop_ro("dim", &Representation::dim, "d: numbers per example")
      .def_prop_ro("exact", &Representation::exact, "A verified finite group of orthogonal maps.")
      .def_prop_ro("is_permutation", &Representation::is_permutation)
      .def_prop_ro("labels", [](const Representation& r) {
            std::vector<std::string> l;
            for (int g = 0; g < r.size(); ++g) l.push_back(r.label(g));
            return l;
          })
      .def("matrix", [](const Representation& r, int g) { return to_numpy(r.matrix(g)); }, nb::arg("g"),
           "The d × d matrix ρ(g) = M_g ⊗ I_block.")
      .def("block_matrix", [](const Representation& r, int g) { return to_numpy(r.block_matrix(g)); }, nb::arg("g"),
           "ρ_K(g): the blocks × blocks matrix M_g (acts on pixel indices of kernels).")
      .def("permutation", &Representation::permutation, nb::arg("g"),
           "Index map p with (ρ(g)x)[i] = x[p(i)] (permutation groups only).")
      .def("apply", [](const Representation& r, int g, const InArray& rows) {
             return to_numpy(r.apply(g, to_row_matrix(rows, "rows")));
           }, nb::arg("g"), nb::arg("rows"), "ρ(g) applied to every row of an (N, d) array.")
      .def("compose", &Representation::compose, nb::arg("g"), nb::arg("h"), "Index of g∘h (exact groups).")
      .def("inverse", &Representation::inverse, nb::arg("g"), "Index of g⁻¹ (exact groups).")
      .def_prop_ro("composition_table", &Representation::composition_table)
      .def("verify", &Representation::verify, "Measure the group axioms (RepresentationSummary).")
      .def("__str__", &Representation::to_string)
      .def("__repr__", [](const Representation& r) { return "<Representation " + r.to_string() + ">"; });

  m.def("make_group", [](const std::string& name, const std::vector<int>& shape) {
          return make_group(name, example_shape(shape, "shape"));
        }, nb::arg("name"), nb::arg("shape"),
        "A built-in group (c4, d4, flip, translations, rot(K), sign, cyclic, rot2(K), cube, icosahedron, "
        "or a .npy path) "
        "for examples of `shape` ((d,) or (H, W, C)); docs/conventions.md §5.");
  m.def("group_from_matrices", [](const std::string& name, const std::vector<int>& shape, const InArray& mats) {
          return group_from_matrices(name, example_shape(shape, "shape"), matrices_from(mats, "matrices"));
        }, nb::arg("name"), nb::arg("shape"), nb::arg("matrices"));
  m.def("trivial_output", &trivial_output, nb::arg("input"), nb::arg("outputs"));
  m.def("pixel_output", [](const Representation& input, const std::vector<int>& output) {
          return pixel_output(input, example_shape(output, "output"));
        }, nb::arg("input"), nb::arg("output_shape"));
  m.def("matrix_output", [](const Representation& input, const InArray& mats) {
          return matrix_output(input, matrices_from(mats, "matrices"));
        }, nb::arg("input"), nb::arg("matrices"));
  m.def("make_output_rep", [](const std::string& name, const Representation& input, const std::vector<int>& output) {
          return make_output_rep(name, input, example_shape(output, "output_shape"));
        }, nb::arg("name"), nb::arg("input"), nb::arg("output_shape"),
        "The output action ρ_Y named like --output-rep (trivial, pixels, sign, regular, rotation or a .npy "
        "path) for outputs of `output_shape`, checked to be orthogonal and a homomorphism of input's law "
        "(docs/conventions.md §5).");
  m.def("augment", [](const InArray& x, const InArray& y, const Representation& rho_x, const Representation& rho_y) {
          AugmentedSet s = augment(to_inputs(x, "x"), to_row_matrix(y, "y"), rho_x, rho_y);
          std::vector<std::size_t> shape = {static_cast<std::size_t>(s.x.count())};
          if (s.x.shape.image) {
            shape.push_back(s.x.shape.height);
            shape.push_back(s.x.shape.width);
          }
          shape.push_back(s.x.shape.channels);
          const std::vector<double> flat(s.x.x.data(), s.x.x.data() + s.x.x.size());
          std::vector<long long> source(s.source.begin(), s.source.end());
          return nb::make_tuple(to_numpy(std::vector<double>(flat), shape), to_numpy(std::move(s.y)), source, s.element);
        }, nb::arg("x"), nb::arg("y"), nb::arg("rho_x"), nb::arg("rho_y"),
        "(x_aug, y_aug, source, element): row g·N + i is (ρ_X(g)x_i, ρ_Y(g)y_i).");
}

}  // namespace emergent::python
