// emergent._core: the nanobind extension behind the Python package `emergent`. The public,
// documented API is the pure-Python layer in python/emergent/, which converts inputs to float64
// C-order arrays (as the CLI converts .npy files) and calls these functions.
#include <atomic>
#include <stdexcept>

#include "common.hpp"
#include "emergent/core/architecture.hpp"
#include "emergent/core/cancellation.hpp"
#include "emergent/core/errors.hpp"
#include "emergent/data/npy.hpp"
#include "emergent/kernels/kernel.hpp"

namespace emergent::python {
namespace {
std::atomic<int> running{0};
std::atomic<long> cancelled{0};

// Every exception the library or its dependencies can throw, in the words of
// emergent::describe_failure (the CLI prints the same line). Registered before the typed
// exceptions below, so it is tried after them: SpecError, NpyError ... keep their classes.
void translate(const std::exception_ptr& error, void*) {
  try {  // a lookup that finds nothing (TheoremResult.part) is an IndexError, message unchanged
    std::rethrow_exception(error);
  } catch (const std::out_of_range& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
    return;
  } catch (...) {
  }
  const Failure f = describe_failure(error);
  switch (f.kind) {
    case FailureKind::BadInput: PyErr_SetString(PyExc_ValueError, f.message.c_str()); return;
    case FailureKind::OutOfMemory: PyErr_SetString(PyExc_MemoryError, f.message.c_str()); return;
    case FailureKind::Cancelled:  // a Cancelled that no Ctrl-C caused: the typed exception handles it
      std::rethrow_exception(error);
    case FailureKind::Numerical:
    case FailureKind::Internal: PyErr_SetString(PyExc_RuntimeError, f.message.c_str()); return;
  }
}
}  // namespace

int running_computations() noexcept { return running.load(); }
long cancelled_computations() noexcept { return cancelled.load(); }
void detail::computation_started() noexcept { ++running; }
void detail::computation_ended(bool was_cancelled) noexcept {
  if (was_cancelled) ++cancelled;
  --running;
}
}  // namespace emergent::python

NB_MODULE(_core, m) {
  namespace nb = nanobind;
  using namespace emergent;
  m.doc() = "emergent C++ core (nanobind)";
  // Subclasses of ValueError, with the C++ message unchanged (std::invalid_argument itself maps
  // to ValueError in nanobind).
  nb::register_exception_translator(&python::translate);
  nb::exception<Cancelled>(m, "Cancelled", PyExc_RuntimeError);
  nb::exception<SpecError>(m, "SpecError", PyExc_ValueError);
  nb::exception<MemoryCapError>(m, "MemoryCapError", PyExc_ValueError);
  nb::exception<NpyError>(m, "NpyError", PyExc_ValueError);
  m.attr("__version__") = EMERGENT_VERSION;
  // Internal (tests): computations of interruptible() still running, and those ended by Ctrl-C.
  m.def("_running_computations", &python::running_computations);
  m.def("_cancelled_computations", &python::cancelled_computations);
  python::bind_results(m);
  python::bind_core(m);
  python::bind_symmetry(m);
  python::bind_dynamics(m);
  python::bind_bounds(m);
}
