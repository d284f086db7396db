// Every result struct and status enum of the library, bound in one place: the Record helper
// (common.hpp) lists each field in `_fields`, from which emergent/_results.py adds to_dict() and
// __repr__. To bind a new field of a C++ result, add one .field(...) line here (and to _core.pyi).
// Also the theorem checks, whose results these are.
#include <nanobind/eigen/dense.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include "common.hpp"
#include "emergent/bounds/finite_ensemble.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/bounds/fit.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"

namespace emergent::python {

namespace {

template <class E>
void str_method(nb::enum_<E>& e) {
  e.def("__str__", [](E v) { return std::string(to_string(v)); });
}

EquivarianceCheckOptions equivariance_options(std::size_t memory_cap, int threads, double safety) {
  EquivarianceCheckOptions o;
  o.kernel = make_kernel_options(memory_cap, threads, 0);
  o.safety = safety;
  std::string error;
  if (!o.IsValid(&error)) throw std::invalid_argument(error);
  return o;
}

}  // namespace

void bind_results(nb::module_& m) {
  // ---- status enums: str(status) is the C++ to_string ----
  nb::enum_<SpectralStatus> spectral(m, "SpectralStatus");
  spectral.value("Ok", SpectralStatus::Ok)
      .value("RankDeficient", SpectralStatus::RankDeficient)
      .value("IllConditioned", SpectralStatus::IllConditioned)
      .value("ZeroKernel", SpectralStatus::ZeroKernel)
      .value("NotPositiveSemidefinite", SpectralStatus::NotPositiveSemidefinite);
  str_method(spectral);
  nb::enum_<TailStatus> tail(m, "TailStatus");
  tail.value("Ok", TailStatus::Ok).value("NotConverged", TailStatus::NotConverged);
  str_method(tail);
  nb::enum_<MembersStatus> members(m, "MembersStatus");
  members.value("Ok", MembersStatus::Ok).value("TooMany", MembersStatus::TooMany);
  str_method(members);
  nb::enum_<FitStatus> fit(m, "FitStatus");
  fit.value("Converged", FitStatus::Converged)
      .value("NoConvergence", FitStatus::NoConvergence)
      .value("Failed", FitStatus::Failed);
  str_method(fit);
  // ---- what a theorem part checks (typed, so no caller parses names) ----
  nb::enum_<Theorem> theorem(m, "Theorem");
  theorem.value("KernelTransform51", Theorem::KernelTransform51)
      .value("Lemma51", Theorem::Lemma51)
      .value("Lemma52", Theorem::Lemma52)
      .value("Ensemble52", Theorem::Ensemble52);
  str_method(theorem);
  nb::enum_<Quantity> quantity(m, "Quantity");
  quantity.value("RowPermutation", Quantity::RowPermutation)
      .value("Nngp", Quantity::Nngp)
      .value("Ntk", Quantity::Ntk)
      .value("SpectralFilter", Quantity::SpectralFilter)
      .value("Mean", Quantity::Mean)
      .value("Covariance", Quantity::Covariance);
  str_method(quantity);
  nb::enum_<InputSet> input_set(m, "InputSet");
  input_set.value("Given", InputSet::Given)
      .value("Train", InputSet::Train)
      .value("Collinear", InputSet::Collinear)
      .value("Test", InputSet::Test)
      .value("Noise", InputSet::Noise);
  str_method(input_set);

  // ---- records ----
  Record<SpectralSummary>(m, "SpectralSummary", "What the eigendecomposition of a kernel matrix found.")
      .field("status", &SpectralSummary::status)
      .field("size", &SpectralSummary::size)
      .field("regularizer", &SpectralSummary::regularizer)
      .field("min_eigenvalue", &SpectralSummary::min_eigenvalue)
      .field("max_eigenvalue", &SpectralSummary::max_eigenvalue)
      .field("condition", &SpectralSummary::condition)
      .field("effective_condition", &SpectralSummary::effective_condition)
      .field("rank_threshold", &SpectralSummary::rank_threshold)
      .field("rank", &SpectralSummary::rank)
      .field("clipped_negative", &SpectralSummary::clipped_negative)
      .field("most_negative", &SpectralSummary::most_negative)
      .done()
      .def("__str__", &SpectralSummary::to_string);

  Record<CovarianceFactorSummary>(m, "CovarianceFactorSummary",
                                  "How K~ = V^T K(X,X) V behind GradientFlow.covariance was factored (pivoted Cholesky).")
      .field("status", &CovarianceFactorSummary::status)
      .field("size", &CovarianceFactorSummary::size)
      .field("rank", &CovarianceFactorSummary::rank)
      .field("tolerance", &CovarianceFactorSummary::tolerance)
      .field("remainder", &CovarianceFactorSummary::remainder)
      .field("dense", &CovarianceFactorSummary::dense)
      .done()
      .def("__str__", &CovarianceFactorSummary::to_string);

  Record<RepresentationSummary>(m, "RepresentationSummary", "What verifying the group axioms found.")
      .field("identity_violation", &RepresentationSummary::identity_violation)
      .field("orthogonality_violation", &RepresentationSummary::orthogonality_violation)
      .field("closure_violation", &RepresentationSummary::closure_violation)
      .field("inverse_violation", &RepresentationSummary::inverse_violation)
      .field("tolerance", &RepresentationSummary::tolerance)
      .field("identity_first", &RepresentationSummary::identity_first)
      .field("orthogonal", &RepresentationSummary::orthogonal)
      .field("closed", &RepresentationSummary::closed)
      .field("has_inverses", &RepresentationSummary::has_inverses)
      .prop("exact", &RepresentationSummary::exact)
      .done()
      .def("__str__", &RepresentationSummary::to_string);

  Record<ElementViolation>(m, "ElementViolation", "Largest violation of one identity for one group element.")
      .field("element", &ElementViolation::element)
      .field("label", &ElementViolation::label)
      .field("violation", &ElementViolation::violation)
      .done();

  Record<CheckResult>(m, "CheckResult", "One checked identity: holds iff max_violation ≤ tolerance.")
      .prop("name", &CheckResult::name)
      .field("theorem", &CheckResult::theorem)
      .field("quantity", &CheckResult::quantity)
      .field("inputs", &CheckResult::inputs)
      .field("time", &CheckResult::time, "training time t (inf allowed); NaN for parts without one")
      .field("holds", &CheckResult::holds)
      .field("max_violation", &CheckResult::max_violation)
      .field("scale", &CheckResult::scale)
      .field("tolerance", &CheckResult::tolerance)
      .field("tolerance_rule", &CheckResult::tolerance_rule)
      .field("worst_element", &CheckResult::worst_element)
      .field("elements", &CheckResult::elements)
      .prop("relative_violation", &CheckResult::relative_violation)
      .done()
      .def("__str__", &CheckResult::to_string);

  Record<TheoremResult>(m, "TheoremResult", "A theorem: several identities, holds iff every part holds.")
      .field("theorem", &TheoremResult::theorem)
      .field("holds", &TheoremResult::holds)
      .field("status", &TheoremResult::status)
      .field("parts", &TheoremResult::parts)
      .prop("max_ratio", &TheoremResult::max_ratio)
      .done()
      .def("part", &TheoremResult::part, nb::arg("quantity"), nb::arg("inputs"), nb::arg("time") = kNoTime,
           nb::rv_policy::copy, "The part comparing quantity on inputs at time; raises IndexError if there is none.")
      .def(
          "find",
          [](const TheoremResult& r, Quantity q, InputSet i, double t) -> std::optional<CheckResult> {
            const CheckResult* c = r.find(q, i, t);
            return c ? std::optional<CheckResult>(*c) : std::nullopt;
          },
          nb::arg("quantity"), nb::arg("inputs"), nb::arg("time") = kNoTime, "As part, but None if there is none.")
      .def("__str__", &TheoremResult::to_string);

  Record<MemberViolationResult>(m, "MemberViolationResult", "Equivariance violation of individual members.")
      .field("kind", &MemberViolationResult::kind)
      .field("members", &MemberViolationResult::members)
      .field("times", &MemberViolationResult::times)
      .field("member_max", &MemberViolationResult::member_max)
      .field("member_mean", &MemberViolationResult::member_mean)
      .field("sample_mean", &MemberViolationResult::sample_mean)
      .field("scale", &MemberViolationResult::scale)
      .field("diverged", &MemberViolationResult::diverged, "members with non-finite predictions, per time")
      .done()
      .def("__str__", &MemberViolationResult::to_string);

  // ---- the theorem checks ----
  m.def("check_theorem_5_1",
        [](const Architecture& arch, const InArray& x1, std::optional<InArray> x2, const Representation& rho_x,
           std::size_t memory_cap, int threads, double safety) {
          const auto o = equivariance_options(memory_cap, threads, safety);
          Inputs a = to_inputs(x1, "x1");
          std::optional<Inputs> b;
          if (x2) b = to_inputs(*x2, "x2");
          return interruptible([arch, a = std::move(a), b, rho_x, o]() {
            return b ? check_theorem_5_1(arch, a, *b, rho_x, o) : check_theorem_5_1(arch, a, rho_x, o);
          });
        },
        nb::arg("arch"), nb::arg("x1"), nb::arg("x2").none(), nb::arg("rho_x"), nb::arg("memory_cap") = 0,
        nb::arg("threads") = 0, nb::arg("safety") = 4.0);
  m.def("check_lemmas_5_1_5_2",
        [](const Architecture& arch, const InArray& train_x, const Representation& rho_x, double learning_rate,
           int outputs, std::vector<double> times, std::size_t memory_cap, int threads, double safety) {
          LemmaCheckOptions o;
          o.equivariance = equivariance_options(memory_cap, threads, safety);
          o.learning_rate = learning_rate;
          o.outputs = outputs;
          o.times = std::move(times);
          std::string error;
          if (!o.IsValid(&error)) throw std::invalid_argument(error);
          Inputs x = to_inputs(train_x, "train_x");
          return interruptible([arch, x = std::move(x), rho_x, o]() { return check_lemmas_5_1_5_2(arch, x, rho_x, o); });
        },
        nb::arg("arch"), nb::arg("train_x"), nb::arg("rho_x"), nb::arg("learning_rate") = 1.0,
        nb::arg("outputs") = 1, nb::arg("times") = std::vector<double>{1.0, 100.0}, nb::arg("memory_cap") = 0,
        nb::arg("threads") = 0, nb::arg("safety") = 4.0);
  m.def("check_theorem_5_2",
        [](const Architecture& arch, const InArray& train_x, const InArray& train_y, const InArray& test_x,
           const Representation& rho_x, const Representation& rho_y, std::vector<double> times, bool augment,
           int noise_inputs, std::uint64_t seed, double safety, double learning_rate, double diag_reg,
           std::size_t memory_cap, int threads) {
          Theorem52Options o;
          o.kernel = make_kernel_options(memory_cap, threads, 0);
          o.flow = make_flow_options(learning_rate, diag_reg, false, 0.0, 1e-8, 1e10, 1e-10, threads);
          o.times = std::move(times);
          o.augment = augment;
          o.noise_inputs = noise_inputs;
          o.seed = seed;
          o.safety = safety;
          std::string error;
          if (!o.IsValid(&error)) throw std::invalid_argument(error);
          Inputs x = to_inputs(train_x, "train_x");
          RowMatrix y = to_row_matrix(train_y, "train_y");
          Inputs z = to_inputs(test_x, "test_x");
          return interruptible([arch, x = std::move(x), y = std::move(y), z = std::move(z), rho_x, rho_y, o]() {
            return check_theorem_5_2(arch, x, y, z, rho_x, rho_y, o);
          });
        },
        nb::arg("arch"), nb::arg("train_x"), nb::arg("train_y"), nb::arg("test_x"), nb::arg("rho_x"),
        nb::arg("rho_y"), nb::arg("times"), nb::arg("augment") = true, nb::arg("noise_inputs") = 3,
        nb::arg("seed") = 1, nb::arg("safety") = 4.0, nb::arg("learning_rate") = 1.0, nb::arg("diag_reg") = 0.0,
        nb::arg("memory_cap") = 0, nb::arg("threads") = 0);
  m.def("linearized_member_violation",
        [](const Architecture& arch, const InArray& train_x, const InArray& train_y, const InArray& inputs,
           const Representation& rho_x, const Representation& rho_y, std::vector<double> times, int members,
           std::uint64_t seed, double learning_rate, double diag_reg, std::size_t memory_cap, int threads) {
          const KernelOptions k = make_kernel_options(memory_cap, threads, 0);
          const GradientFlowOptions f = make_flow_options(learning_rate, diag_reg, false, 0.0, 1e-8, 1e10, 1e-10, threads);
          Inputs x = to_inputs(train_x, "train_x");
          RowMatrix y = to_row_matrix(train_y, "train_y");
          Inputs z = to_inputs(inputs, "inputs");
          return interruptible([=, x = std::move(x), y = std::move(y), z = std::move(z)]() {
            return linearized_member_violation(arch, x, y, z, rho_x, rho_y, times, members, seed, k, f);
          });
        },
        nb::arg("arch"), nb::arg("train_x"), nb::arg("train_y"), nb::arg("inputs"), nb::arg("rho_x"),
        nb::arg("rho_y"), nb::arg("times"), nb::arg("members"), nb::arg("seed"), nb::arg("learning_rate") = 1.0,
        nb::arg("diag_reg") = 0.0, nb::arg("memory_cap") = 0, nb::arg("threads") = 0);
  m.def("finite_member_violation",
        [](const Architecture& arch, const InArray& train_x, const InArray& train_y, const InArray& inputs,
           const Representation& rho_x, const Representation& rho_y, int members, int steps, double learning_rate,
           std::uint64_t seed, std::vector<int> checkpoints, int threads) {
          TrainingOptions o;
          o.members = members;
          o.steps = steps;
          o.learning_rate = learning_rate;
          o.seed = seed;
          o.checkpoints = std::move(checkpoints);
          o.threads = threads;
          Inputs x = to_inputs(train_x, "train_x");
          RowMatrix y = to_row_matrix(train_y, "train_y");
          Inputs z = to_inputs(inputs, "inputs");
          return interruptible([=, x = std::move(x), y = std::move(y), z = std::move(z)]() {
            return finite_member_violation(arch, x, y, z, rho_x, rho_y, o);
          });
        },
        nb::arg("arch"), nb::arg("train_x"), nb::arg("train_y"), nb::arg("inputs"), nb::arg("rho_x"),
        nb::arg("rho_y"), nb::arg("members"), nb::arg("steps"), nb::arg("learning_rate"), nb::arg("seed"),
        nb::arg("checkpoints"), nb::arg("threads") = 0);
}

}  // namespace emergent::python
