// The bounds calculators: finite ensembles (exact laws and the paper's Mills-ratio bounds),
// continuous groups approximated by C_k, and power-law fits (emergent/bounds).
#include <nanobind/eigen/dense.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "common.hpp"
#include "emergent/bounds/continuous_group.hpp"
#include "emergent/bounds/finite_ensemble.hpp"
#include "emergent/bounds/fit.hpp"

namespace emergent::python {

namespace {

ChiSquareMixtureOptions mixture_options(double relative_tolerance, std::int64_t max_terms, double rank_rtol) {
  ChiSquareMixtureOptions o;
  o.relative_tolerance = relative_tolerance;
  o.max_terms = max_terms;
  o.rank_rtol = rank_rtol;
  std::string error;
  if (!o.IsValid(&error)) throw std::invalid_argument(error);
  return o;
}

#define EMERGENT_MIXTURE_ARGS \
  nb::arg("relative_tolerance") = 1e-14, nb::arg("max_terms") = 4'000'000, nb::arg("rank_rtol") = 0.0

}  // namespace

void bind_bounds(nb::module_& m) {
  Record<EnsembleDeviation>(m, "EnsembleDeviation", "P(|f̂_t(x) − f̄_t(x)| > δ) for M members, Var = Σ_t(x,x)/M.")
      .field("sigma", &EnsembleDeviation::sigma)
      .field("exact_probability", &EnsembleDeviation::exact_probability)
      .field("log_exact_probability", &EnsembleDeviation::log_exact_probability)
      .field("paper_bound", &EnsembleDeviation::paper_bound)
      .field("log_paper_bound", &EnsembleDeviation::log_paper_bound)
      .done();
  Record<EnsembleDelta>(m, "EnsembleDelta", "δ at which the probability equals p.")
      .field("exact_delta", &EnsembleDelta::exact_delta)
      .field("paper_delta", &EnsembleDelta::paper_delta)
      .done();
  Record<MemberCount>(m, "MemberCount", "Smallest member count M that passes.")
      .field("status", &MemberCount::status)
      .field("members", &MemberCount::members)
      .field("members_real", &MemberCount::members_real)
      .done();
  Record<MinMembers>(m, "MinMembers", "Smallest M: exactly, by the paper's bound, by the tightest upper bound.")
      .field("exact", &MinMembers::exact)
      .field("paper", &MinMembers::paper)
      .field("upper", &MinMembers::upper)
      .done();
  Record<ChiSquareMixtureTail>(m, "ChiSquareMixtureTail", "P(Σ w_i Z_i² > x) by Ruben's series.")
      .field("status", &ChiSquareMixtureTail::status)
      .field("probability", &ChiSquareMixtureTail::probability)
      .field("log_probability", &ChiSquareMixtureTail::log_probability)
      .field("error_bound", &ChiSquareMixtureTail::error_bound)
      .field("terms", &ChiSquareMixtureTail::terms)
      .done();
  Record<ViolationProbability>(m, "ViolationProbability", "P(‖v‖ > δ) for the M-member violation v ~ N(0, S/M).")
      .field("outputs", &ViolationProbability::outputs)
      .field("rank", &ViolationProbability::rank)
      .field("eigenvalues", &ViolationProbability::eigenvalues)
      .field("status", &ViolationProbability::status)
      .field("exact_probability", &ViolationProbability::exact_probability)
      .field("log_exact_probability", &ViolationProbability::log_exact_probability)
      .field("error_bound", &ViolationProbability::error_bound)
      .field("terms", &ViolationProbability::terms)
      .field("union_bound", &ViolationProbability::union_bound)
      .field("chernoff_bound", &ViolationProbability::chernoff_bound)
      .field("upper_bound", &ViolationProbability::upper_bound)
      .field("paper_bound", &ViolationProbability::paper_bound)
      .done();
  Record<ViolationDelta>(m, "ViolationDelta", "δ at which each probability/bound equals p.")
      .field("exact_delta", &ViolationDelta::exact_delta)
      .field("paper_delta", &ViolationDelta::paper_delta)
      .field("upper_delta", &ViolationDelta::upper_delta)
      .field("status", &ViolationDelta::status)
      .done();
  Record<ContinuousBoundPoint>(m, "ContinuousBoundPoint", "Bound and measured worst case, one test point and time.")
      .field("test_index", &ContinuousBoundPoint::test_index)
      .field("time", &ContinuousBoundPoint::time)
      .field("kappa", &ContinuousBoundPoint::kappa)
      .field("lipschitz_constant", &ContinuousBoundPoint::lipschitz_constant)
      .field("paper_bound", &ContinuousBoundPoint::paper_bound)
      .field("fourier_bound", &ContinuousBoundPoint::fourier_bound)
      .field("roundoff", &ContinuousBoundPoint::roundoff)
      .field("bound", &ContinuousBoundPoint::bound)
      .field("measured", &ContinuousBoundPoint::measured)
      .field("measured_scan", &ContinuousBoundPoint::measured_scan)
      .field("worst_angle", &ContinuousBoundPoint::worst_angle)
      .field("ratio", &ContinuousBoundPoint::ratio)
      .field("f_norm", &ContinuousBoundPoint::f_norm)
      .field("f_perp_norm", &ContinuousBoundPoint::f_perp_norm)
      .done();
  Record<ContinuousBoundResult>(m, "ContinuousBoundResult", "SO(2) approximated by C_k: bounds for every point and time.")
      .field("order", &ContinuousBoundResult::order)
      .field("kappa", &ContinuousBoundResult::kappa)
      .field("train_size", &ContinuousBoundResult::train_size)
      .field("augmented_size", &ContinuousBoundResult::augmented_size)
      .field("times", &ContinuousBoundResult::times)
      .field("points", &ContinuousBoundResult::points)
      .field("spectral", &ContinuousBoundResult::spectral)
      .field("quadrature_error", &ContinuousBoundResult::quadrature_error)
      .field("max_ratio", &ContinuousBoundResult::max_ratio)
      .field("min_ratio", &ContinuousBoundResult::min_ratio)
      .done()
      .def("at", &ContinuousBoundResult::at, nb::arg("time_index"), nb::arg("test_index"), nb::rv_policy::copy)
      .def("__str__", &ContinuousBoundResult::to_string);
  Record<ViolationLaw>(m, "ViolationLaw", "f̂_t(gx) − f̂_t(x) ~ N(mean, (variance/M)·I_k).")
      .field("test_index", &ViolationLaw::test_index)
      .field("element", &ViolationLaw::element)
      .field("time", &ViolationLaw::time)
      .field("variance", &ViolationLaw::variance)
      .field("mean", &ViolationLaw::mean)
      .done();
  Record<PowerLawFitResult>(m, "PowerLawFitResult", "y ≈ a·x^(−α) [+ c] by weighted least squares.")
      .field("status", &PowerLawFitResult::status)
      .field("message", &PowerLawFitResult::message)
      .field("iterations", &PowerLawFitResult::iterations)
      .field("has_offset", &PowerLawFitResult::has_offset)
      .field("amplitude", &PowerLawFitResult::amplitude)
      .field("exponent", &PowerLawFitResult::exponent)
      .field("offset", &PowerLawFitResult::offset)
      .field("amplitude_se", &PowerLawFitResult::amplitude_se)
      .field("exponent_se", &PowerLawFitResult::exponent_se)
      .field("offset_se", &PowerLawFitResult::offset_se)
      .field("covariance", &PowerLawFitResult::covariance)
      .field("covariance_ok", &PowerLawFitResult::covariance_ok)
      .field("covariance_scaled", &PowerLawFitResult::covariance_scaled)
      .field("chi_square", &PowerLawFitResult::chi_square)
      .field("dof", &PowerLawFitResult::dof)
      .field("reduced_chi_square", &PowerLawFitResult::reduced_chi_square)
      .done()
      .def("evaluate", &PowerLawFitResult::evaluate, nb::arg("x"))
      .def("__str__", &PowerLawFitResult::to_string);

  m.def("ensemble_deviation", &ensemble_deviation, nb::arg("variance"), nb::arg("members"), nb::arg("delta"));
  m.def("ensemble_delta", &ensemble_delta, nb::arg("variance"), nb::arg("members"), nb::arg("probability"));
  m.def("ensemble_min_members", &ensemble_min_members, nb::arg("variance"), nb::arg("delta"), nb::arg("probability"));
  m.def("chi_square_mixture_tail",
        [](const Eigen::VectorXd& w, double x, double rt, std::int64_t mt, double rr) {
          return chi_square_mixture_tail(w, x, mixture_options(rt, mt, rr));
        }, nb::arg("weights"), nb::arg("x"), EMERGENT_MIXTURE_ARGS);
  m.def("violation_probability",
        [](const Eigen::MatrixXd& S, std::int64_t members, double delta, double rt, std::int64_t mt, double rr) {
          return violation_probability(S, members, delta, mixture_options(rt, mt, rr));
        }, nb::arg("S"), nb::arg("members"), nb::arg("delta"), EMERGENT_MIXTURE_ARGS);
  m.def("violation_delta",
        [](const Eigen::MatrixXd& S, std::int64_t members, double p, double rt, std::int64_t mt, double rr) {
          return violation_delta(S, members, p, mixture_options(rt, mt, rr));
        }, nb::arg("S"), nb::arg("members"), nb::arg("probability"), EMERGENT_MIXTURE_ARGS);
  m.def("violation_min_members",
        [](const Eigen::MatrixXd& S, double delta, double p, double rt, std::int64_t mt, double rr) {
          return violation_min_members(S, delta, p, mixture_options(rt, mt, rr));
        }, nb::arg("S"), nb::arg("delta"), nb::arg("probability"), EMERGENT_MIXTURE_ARGS);
  m.def("rot2_kappa", &rot2_kappa, nb::arg("k"));
  m.def("continuous_group_bound",
        [](const Architecture& arch, const InArray& train_x, const InArray& train_y, const InArray& test_x, int order,
           std::vector<double> times, double learning_rate, double diag_reg, int quadrature_nodes, int scan_points,
           std::size_t memory_cap, int threads) {
          ContinuousBoundOptions o;
          o.order = order;
          o.times = std::move(times);
          o.flow = make_flow_options(learning_rate, diag_reg, false, 0.0, 1e-8, 1e10, 1e-10, threads);
          o.kernel = make_kernel_options(memory_cap, threads, 0);
          o.quadrature_nodes = quadrature_nodes;
          o.scan.scan_points = scan_points;
          std::string error;
          if (!o.IsValid(&error)) throw std::invalid_argument(error);
          Inputs x = to_inputs(train_x, "train_x");
          RowMatrix y = to_row_matrix(train_y, "train_y");
          Inputs z = to_inputs(test_x, "test_x");
          return interruptible([arch, x = std::move(x), y = std::move(y), z = std::move(z), o]() {
            return continuous_group_bound(arch, x, y, z, o);
          });
        },
        nb::arg("arch"), nb::arg("train_x"), nb::arg("train_y"), nb::arg("test_x"), nb::arg("order"),
        nb::arg("times"), nb::arg("learning_rate") = 1.0, nb::arg("diag_reg") = 0.0,
        nb::arg("quadrature_nodes") = 64, nb::arg("scan_points") = 256, nb::arg("memory_cap") = 0,
        nb::arg("threads") = 0);
  m.def("invariance_violation_laws",
        [](const Architecture& arch, const InArray& train_x, const InArray& train_y, const InArray& test_x,
           const Representation& group, std::optional<Representation> augment, std::vector<double> times,
           double learning_rate, double diag_reg, std::size_t memory_cap, int threads) {
          ViolationLawOptions o;
          o.times = std::move(times);
          o.flow = make_flow_options(learning_rate, diag_reg, false, 0.0, 1e-8, 1e10, 1e-10, threads);
          o.kernel = make_kernel_options(memory_cap, threads, 0);
          std::string error;
          if (!o.IsValid(&error)) throw std::invalid_argument(error);
          Inputs x = to_inputs(train_x, "train_x");
          RowMatrix y = to_row_matrix(train_y, "train_y");
          Inputs z = to_inputs(test_x, "test_x");
          return interruptible([arch, x = std::move(x), y = std::move(y), z = std::move(z), group, augment, o]() {
            return invariance_violation_laws(arch, x, y, z, group, augment ? &*augment : nullptr, o);
          });
        },
        nb::arg("arch"), nb::arg("train_x"), nb::arg("train_y"), nb::arg("test_x"), nb::arg("group"),
        nb::arg("augment").none(), nb::arg("times"), nb::arg("learning_rate") = 1.0, nb::arg("diag_reg") = 0.0,
        nb::arg("memory_cap") = 0, nb::arg("threads") = 0);
  m.def("fit_power_law",
        [](const std::vector<double>& x, const std::vector<double>& y, const std::vector<double>& sigma, bool offset,
           bool absolute_sigma, int max_iterations) {
          PowerLawFitOptions o;
          o.offset = offset;
          o.absolute_sigma = absolute_sigma;
          o.max_iterations = max_iterations;
          std::string error;
          if (!o.IsValid(&error)) throw std::invalid_argument(error);
          return fit_power_law(x, y, sigma, o);
        },
        nb::arg("x"), nb::arg("y"), nb::arg("sigma") = std::vector<double>{}, nb::arg("offset") = false,
        nb::arg("absolute_sigma") = true, nb::arg("max_iterations") = 200);
}

}  // namespace emergent::python
