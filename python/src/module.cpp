// emergent._core: the nanobind extension behind the Python package `emergent`. The public,
// documented API is the pure-Python layer in python/emergent/, which converts inputs to float64
// C-order arrays (as the CLI converts .npy files) and calls these functions.
#include "common.hpp"
#include "emergent/core/architecture.hpp"
#include "emergent/data/npy.hpp"
#include "emergent/kernels/kernel.hpp"

NB_MODULE(_core, m) {
  namespace nb = nanobind;
  using namespace emergent;
  m.doc() = "emergent C++ core (nanobind)";
  // Subclasses of ValueError, with the C++ message unchanged (std::invalid_argument itself maps
  // to ValueError in nanobind).
  nb::exception<SpecError>(m, "SpecError", PyExc_ValueError);
  nb::exception<MemoryCapError>(m, "MemoryCapError", PyExc_ValueError);
  nb::exception<NpyError>(m, "NpyError", PyExc_ValueError);
  m.attr("__version__") = EMERGENT_VERSION;
  python::bind_results(m);
  python::bind_core(m);
  python::bind_symmetry(m);
  python::bind_dynamics(m);
  python::bind_bounds(m);
}
