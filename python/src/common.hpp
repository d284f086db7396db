// Shared helpers of the nanobind extension emergent._core: NumPy arrays in and out, and running
// long computations off the GIL so that Ctrl-C interrupts them.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <Eigen/Dense>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "emergent/core/cancellation.hpp"
#include "emergent/core/inputs.hpp"

namespace emergent::python {

namespace nb = nanobind;

/// A read-only float64 C-order array (the Python layer converts every input to this, as the CLI
/// converts .npy files). Taking it costs no copy.
using InArray = nb::ndarray<const double, nb::c_contig, nb::device::cpu>;
/// A float64 NumPy array that owns C++ memory (no copy on the way out).
using OutArray = nb::ndarray<nb::numpy, double>;

/// Inputs from an (N, d) or (N, H, W, C) array (one copy into the row-major matrix that Inputs
/// owns). Bad ranks or sizes throw std::invalid_argument with make_inputs' message naming `what`.
Inputs to_inputs(const InArray& a, const std::string& what);
/// A matrix from a 2-D array (one copy into Eigen's column-major storage, which the C++ API takes).
Eigen::MatrixXd to_matrix(const InArray& a, const std::string& what);
RowMatrix to_row_matrix(const InArray& a, const std::string& what);
/// Reject NaN/±Inf with the CLI's message: "what: element (i, j) is NaN; only finite values are accepted".
void require_finite(const InArray& a, const std::string& what);

/// Hand C++ storage to NumPy without copying: the array keeps it alive through a capsule.
OutArray to_numpy(std::vector<double>&& data, const std::vector<std::size_t>& shape);
OutArray to_numpy(Eigen::MatrixXd&& m);      ///< (rows, cols), Fortran order (Eigen's layout)
OutArray to_numpy(Eigen::VectorXd&& v);
OutArray to_numpy(RowMatrix&& m);            ///< (rows, cols), C order

/// Computations started by interruptible() that have not yet ended (their worker thread not yet
/// joined), and those that ended by cancellation: internal counters the tests read through
/// emergent._core._running_computations() / _cancelled_computations().
int running_computations() noexcept;
long cancelled_computations() noexcept;
namespace detail {
void computation_started() noexcept;
void computation_ended(bool cancelled) noexcept;
}  // namespace detail

/// Run `work` on a worker thread with the GIL released and a fresh CancellationToken current
/// there, while this thread polls for signals every 20 ms. On Ctrl-C (or any signal handler
/// raising) the token is cancelled, this thread waits (GIL released) until the computation has
/// stopped — the library checks the token per loop iteration and throws emergent::Cancelled —
/// and then raises the Python exception (KeyboardInterrupt). So nothing keeps running after
/// the call returns. `work` owns everything it uses (capture by value / shared_ptr). C++
/// exceptions from `work` are rethrown here and translated (python/src/module.cpp).
template <class F>
auto interruptible(F work) -> decltype(work()) {
  using R = decltype(work());
  struct State {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    std::optional<R> value;
    std::exception_ptr error;
    CancellationToken token;
  };
  auto state = std::make_shared<State>();
  detail::computation_started();
  std::thread worker;
  try {
    worker = std::thread([state, work = std::move(work)]() mutable {
      std::optional<R> value;
      std::exception_ptr error;
      {
        F local = std::move(work);  // destroyed (inputs freed) before the caller is told
        const CancellationScope scope(state->token);
        try {
          value.emplace(local());
        } catch (...) {
          error = std::current_exception();
        }
      }
      std::lock_guard<std::mutex> lock(state->mutex);
      state->value = std::move(value);
      state->error = error;
      state->done = true;
      state->done_cv.notify_all();
    });
  } catch (...) {
    detail::computation_ended(false);
    throw;
  }
  std::optional<nb::python_error> interrupt;
  for (;;) {
    bool finished;
    {
      nb::gil_scoped_release release;
      std::unique_lock<std::mutex> lock(state->mutex);
      finished = state->done_cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return state->done; });
    }
    if (finished) break;
    if (PyErr_CheckSignals() != 0) {  // KeyboardInterrupt on Ctrl-C: stop the computation
      interrupt.emplace();             // takes the pending Python exception
      state->token.cancel();
      break;
    }
  }
  {
    nb::gil_scoped_release release;
    worker.join();
  }
  bool was_cancelled = false;
  if (state->error) {
    try {
      std::rethrow_exception(state->error);
    } catch (const Cancelled&) {
      was_cancelled = true;
    } catch (...) {
    }
  }
  detail::computation_ended(was_cancelled);
  if (interrupt) throw std::move(*interrupt);
  if (state->error) std::rethrow_exception(state->error);
  return std::move(*state->value);
}

/// Sub-module binders (one per folder of the C++ library).
void bind_core(nb::module_& m);
void bind_dynamics(nb::module_& m);
void bind_symmetry(nb::module_& m);
void bind_results(nb::module_& m);
void bind_bounds(nb::module_& m);

}  // namespace emergent::python

namespace emergent::python {

/// A result struct bound as a read-only Python class. Every field is recorded in the class
/// attribute `_fields`, from which emergent._results adds to_dict() and __repr__ (dataclass-like).
template <class T>
class Record {
 public:
  Record(nb::handle scope, const char* name, const char* doc) : cls_(scope, name, doc) {}
  template <class M>
  Record& field(const char* name, M T::*member, const char* doc = "") {
    cls_.def_ro(name, member, doc);
    names_.push_back(name);
    return *this;
  }
  template <class F>
  Record& prop(const char* name, F&& getter, const char* doc = "") {
    cls_.def_prop_ro(name, std::forward<F>(getter), doc);
    names_.push_back(name);
    return *this;
  }
  nb::class_<T>& done() {
    nb::list l;
    for (const char* n : names_) l.append(nb::str(n));
    cls_.attr("_fields") = nb::tuple(l);
    return cls_;
  }
  nb::class_<T>& cls() { return cls_; }

 private:
  nb::class_<T> cls_;
  std::vector<const char*> names_;
};

ExampleShape example_shape(const std::vector<int>& s, const char* what);
nb::tuple example_shape_tuple(const ExampleShape& s);

}  // namespace emergent::python

#include "emergent/kernels/kernel.hpp"
namespace emergent::python {
KernelOptions make_kernel_options(std::size_t memory_cap, int threads, int quadrature_order);
}  // namespace emergent::python
#include "emergent/dynamics/gradient_flow.hpp"
namespace emergent::python {
GradientFlowOptions make_flow_options(double learning_rate, double diag_reg, bool diag_reg_relative,
                                      double rank_rtol, double psd_rtol, double ill_conditioned,
                                      double symmetry_rtol, int threads);
}  // namespace emergent::python
