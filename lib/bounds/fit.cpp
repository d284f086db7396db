// Power-law fits (fit.hpp). Ceres Solver is used only in this file: glog's CHECK macro must never
// reach a header or a test (it would silently replace doctest's CHECK).
#include "emergent/bounds/fit.hpp"

#include <ceres/ceres.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <utility>
#include "detail/enum_names.hpp"

namespace emergent {

constexpr detail::EnumNames<FitStatus, 3> kFitStatusNames = {{
    {FitStatus::Converged, "converged"},
    {FitStatus::NoConvergence, "no_convergence"},
    {FitStatus::Failed, "failed"},
}};

const char* to_string(FitStatus value) { return detail::enum_name(kFitStatusNames, value); }

FitStatus parse_fit_status(std::string_view text) { return detail::parse_enum(kFitStatusNames, text, "parse_fit_status", "FitStatus"); }

bool PowerLawFitOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& why) {
    if (error) *error = why;
    return false;
  };
  if (max_iterations < 1) return fail("max_iterations: expected ≥ 1, got " + std::to_string(max_iterations));
  if (!(function_tolerance > 0) || !std::isfinite(function_tolerance))
    return fail("function_tolerance: expected a finite value > 0, got " + std::to_string(function_tolerance));
  if (!(parameter_tolerance > 0) || !std::isfinite(parameter_tolerance))
    return fail("parameter_tolerance: expected a finite value > 0, got " + std::to_string(parameter_tolerance));
  if (!(gradient_tolerance > 0) || !std::isfinite(gradient_tolerance))
    return fail("gradient_tolerance: expected a finite value > 0, got " + std::to_string(gradient_tolerance));
  return true;
}

double PowerLawFitResult::evaluate(double x) const { return offset + amplitude * std::pow(x, -exponent); }

std::string PowerLawFitResult::to_string() const {
  std::ostringstream s;
  s.precision(5);
  s << "a = " << amplitude << " ± " << amplitude_se << ", alpha = " << exponent << " ± " << exponent_se;
  if (has_offset) s << ", c = " << offset << " ± " << offset_se;
  s << ", chi2/dof = " << chi_square << "/" << dof << " = " << reduced_chi_square;
  s << (covariance_scaled ? " (errors scaled by chi2/dof)" : " (absolute errors)");
  if (!covariance_ok) s << " (covariance unavailable)";
  s << ", " << emergent::to_string(status) << " in " << iterations << " iterations";
  return s.str();
}

namespace {

// r_i = (y_i − a'·u_i^(−α) [− c]) / σ_i with u_i = x_i / x_ref, log u_i precomputed.
struct PowerResidual {
  double log_u, y, inv_sigma;
  template <typename T>
  bool operator()(const T* const p, T* residual) const {
    residual[0] = (T(y) - p[0] * exp(-p[1] * log_u)) * inv_sigma;
    return true;
  }
};
struct OffsetPowerResidual {
  double log_u, y, inv_sigma;
  template <typename T>
  bool operator()(const T* const p, const T* const c, T* residual) const {
    residual[0] = (T(y) - c[0] - p[0] * exp(-p[1] * log_u)) * inv_sigma;
    return true;
  }
};

// For fixed α the model is linear in (a', c): weighted least squares gives them and χ².
struct LinearSolve {
  double a = 0, c = 0, chi2 = std::numeric_limits<double>::infinity();
};
LinearSolve solve_linear(double alpha, const std::vector<double>& log_u, const std::vector<double>& y,
                         const std::vector<double>& w, bool offset) {
  const std::size_t n = y.size();
  LinearSolve out;
  double s_ff = 0, s_f = 0, s_1 = 0, s_fy = 0, s_y = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double f = std::exp(-alpha * log_u[i]);
    s_ff += w[i] * f * f;
    s_f += w[i] * f;
    s_1 += w[i];
    s_fy += w[i] * f * y[i];
    s_y += w[i] * y[i];
  }
  if (offset) {
    const double det = s_ff * s_1 - s_f * s_f;
    if (!(std::abs(det) > 1e-300)) return out;
    out.a = (s_fy * s_1 - s_f * s_y) / det;
    out.c = (s_ff * s_y - s_f * s_fy) / det;
  } else {
    if (!(s_ff > 0)) return out;
    out.a = s_fy / s_ff;
  }
  double chi2 = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double r = y[i] - out.c - out.a * std::exp(-alpha * log_u[i]);
    chi2 += w[i] * r * r;
  }
  if (std::isfinite(chi2) && std::isfinite(out.a) && std::isfinite(out.c)) out.chi2 = chi2;
  return out;
}

void check_values(const std::vector<double>& v, const char* name, bool positive) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    const bool ok = std::isfinite(v[i]) && (!positive || v[i] > 0);
    if (!ok) {
      std::ostringstream s;
      s << "fit_power_law: " << name << "[" << i << "] = " << v[i] << ", expected a finite value"
        << (positive ? " > 0" : "");
      throw std::invalid_argument(s.str());
    }
  }
}

}  // namespace

namespace {

void validate_fit(const std::vector<double>& x, const std::vector<double>& y, const std::vector<double>& sigma,
                  const PowerLawFitOptions& options) {
  std::string why;
  if (!options.IsValid(&why)) throw std::invalid_argument("fit_power_law: invalid options: " + why);
  const std::size_t n = x.size();
  const int p = options.offset ? 3 : 2;
  if (y.size() != n)
    throw std::invalid_argument("fit_power_law: y has " + std::to_string(y.size()) +
                                " values, expected as many as x (" + std::to_string(n) + ")");
  if (!sigma.empty() && sigma.size() != n)
    throw std::invalid_argument("fit_power_law: sigma has " + std::to_string(sigma.size()) +
                                " values, expected 0 or as many as x (" + std::to_string(n) + ")");
  if (n < static_cast<std::size_t>(p))
    throw std::invalid_argument("fit_power_law: x has " + std::to_string(n) + " points, expected at least " +
                                std::to_string(p) + " (the number of parameters)");
  check_values(x, "x", true);
  check_values(y, "y", false);
  check_values(sigma, "sigma", true);
}

// x scaled by its geometric mean (a' = a·x_ref^(−α) is then nearly uncorrelated with α), and the weights.
struct ScaledData {
  double mean_log = 0;  // log x_ref
  std::vector<double> log_u, w, inv_sigma;
};

ScaledData scale_data(const std::vector<double>& x, const std::vector<double>& sigma) {
  const std::size_t n = x.size();
  ScaledData d;
  for (double v : x) d.mean_log += std::log(v);
  d.mean_log /= static_cast<double>(n);
  d.log_u.resize(n);
  d.w.resize(n);
  d.inv_sigma.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    d.log_u[i] = std::log(x[i]) - d.mean_log;
    d.inv_sigma[i] = sigma.empty() ? 1.0 : 1.0 / sigma[i];
    d.w[i] = d.inv_sigma[i] * d.inv_sigma[i];
  }
  return d;
}

// Start: α on a grid (the model is linear in a', c for fixed α), refined around the straight
// line in log–log coordinates when all y share one sign. Returns α and the linear solve there.
std::pair<double, LinearSolve> starting_point(const ScaledData& d, const std::vector<double>& y, bool offset) {
  const std::size_t n = y.size();
  double best_alpha = 0.5;
  LinearSolve best = solve_linear(best_alpha, d.log_u, y, d.w, offset);
  auto consider = [&](double alpha) {
    const LinearSolve s = solve_linear(alpha, d.log_u, y, d.w, offset);
    if (s.chi2 < best.chi2) {
      best = s;
      best_alpha = alpha;
    }
  };
  for (int j = -100; j <= 300; ++j) consider(0.02 * j);  // α ∈ [−2, 6]
  bool one_sign = true;
  for (double v : y) one_sign = one_sign && (v > 0) == (y[0] > 0) && v != 0;
  if (one_sign && n >= 2) {  // weighted line log|y| = log a' − α·log u, weights (y/σ)²
    double s0 = 0, s1 = 0, s2 = 0, t0 = 0, t1 = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double wi = d.w[i] * y[i] * y[i], ly = std::log(std::abs(y[i]));
      s0 += wi; s1 += wi * d.log_u[i]; s2 += wi * d.log_u[i] * d.log_u[i]; t0 += wi * ly; t1 += wi * ly * d.log_u[i];
    }
    const double det = s0 * s2 - s1 * s1;
    if (det > 0) consider(-(s0 * t1 - s1 * t0) / det);
  }
  return {best_alpha, best};
}

// Levenberg–Marquardt (Ceres, dense QR) on the residuals (y − model)/σ from params = (a', α) and c.
ceres::Solver::Summary solve_residuals(ceres::Problem& problem, const ScaledData& d, const std::vector<double>& y,
                                       double* params, double* c, const PowerLawFitOptions& options) {
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (options.offset) {
      problem.AddResidualBlock(new ceres::AutoDiffCostFunction<OffsetPowerResidual, 1, 2, 1>(
                                   new OffsetPowerResidual{d.log_u[i], y[i], d.inv_sigma[i]}),
                               nullptr, params, c);
    } else {
      problem.AddResidualBlock(
          new ceres::AutoDiffCostFunction<PowerResidual, 1, 2>(new PowerResidual{d.log_u[i], y[i], d.inv_sigma[i]}),
          nullptr, params);
    }
  }
  ceres::Solver::Options solver;
  solver.linear_solver_type = ceres::DENSE_QR;
  solver.max_num_iterations = options.max_iterations;
  solver.function_tolerance = options.function_tolerance;
  solver.parameter_tolerance = options.parameter_tolerance;
  solver.gradient_tolerance = options.gradient_tolerance;
  solver.num_threads = 1;
  solver.logging_type = ceres::SILENT;
  solver.minimizer_progress_to_stdout = false;
  ceres::Solver::Summary summary;
  ceres::Solve(solver, &problem, &summary);
  return summary;
}

// Screen the conditioning first: ceres::Covariance would refuse a near-singular JᵀWJ too, but
// through glog on stderr. Same threshold as its min_reciprocal_condition_number (1e-14 on JᵀJ).
bool jacobian_well_conditioned(ceres::Problem& problem) {
  ceres::CRSMatrix crs;
  problem.Evaluate(ceres::Problem::EvaluateOptions(), nullptr, nullptr, nullptr, &crs);
  Eigen::MatrixXd jac_dense = Eigen::MatrixXd::Zero(crs.num_rows, crs.num_cols);
  for (int r = 0; r < crs.num_rows; ++r)
    for (int k = crs.rows[r]; k < crs.rows[r + 1]; ++k) jac_dense(r, crs.cols[k]) = crs.values[k];
  const Eigen::VectorXd sv = Eigen::JacobiSVD<Eigen::MatrixXd>(jac_dense).singularValues();
  return sv.size() > 0 && sv.allFinite() && sv(sv.size() - 1) > 1e-7 * sv(0);
}

// Covariance of the internal parameters (a', α[, c]) from (JᵀWJ)⁻¹; false if Ceres refuses it.
bool internal_covariance(ceres::Problem& problem, const double* params, const double* c, bool offset,
                         Eigen::MatrixXd& internal) {
  const int p = offset ? 3 : 2;
  ceres::Covariance::Options cov_options;
  cov_options.algorithm_type = ceres::DENSE_SVD;
  cov_options.num_threads = 1;
  ceres::Covariance covariance(cov_options);
  std::vector<std::pair<const double*, const double*>> blocks = {{params, params}};
  if (offset) {
    blocks.emplace_back(params, c);
    blocks.emplace_back(c, c);
  }
  if (!covariance.Compute(blocks, &problem)) return false;
  internal = Eigen::MatrixXd::Zero(p, p);
  double block[4];
  covariance.GetCovarianceBlock(params, params, block);
  internal(0, 0) = block[0]; internal(0, 1) = block[1]; internal(1, 0) = block[2]; internal(1, 1) = block[3];
  if (offset) {
    double pc[2], cc = 0;
    covariance.GetCovarianceBlock(params, c, pc);
    covariance.GetCovarianceBlock(c, c, &cc);
    internal(0, 2) = internal(2, 0) = pc[0];
    internal(1, 2) = internal(2, 1) = pc[1];
    internal(2, 2) = cc;
  }
  return true;
}

}  // namespace

PowerLawFitResult fit_power_law(const std::vector<double>& x, const std::vector<double>& y, const std::vector<double>& sigma,
                          const PowerLawFitOptions& options) {
  validate_fit(x, y, sigma, options);
  const std::size_t n = x.size();
  const int p = options.offset ? 3 : 2;
  const ScaledData d = scale_data(x, sigma);
  const auto [best_alpha, best] = starting_point(d, y, options.offset);

  double params[2] = {best.a, best_alpha};
  double c = best.c;
  ceres::Problem problem;
  const ceres::Solver::Summary summary = solve_residuals(problem, d, y, params, &c, options);

  PowerLawFitResult fit;
  fit.has_offset = options.offset;
  fit.message = summary.message;
  fit.iterations = static_cast<int>(summary.iterations.size() > 0 ? summary.iterations.size() - 1 : 0);
  switch (summary.termination_type) {
    case ceres::CONVERGENCE: fit.status = FitStatus::Converged; break;
    case ceres::NO_CONVERGENCE: fit.status = FitStatus::NoConvergence; break;
    default: fit.status = FitStatus::Failed; break;
  }
  const double scale_a = std::exp(params[1] * d.mean_log);  // x_ref^α
  fit.amplitude = params[0] * scale_a;
  fit.exponent = params[1];
  fit.offset = options.offset ? c : 0.0;
  fit.chi_square = 2.0 * summary.final_cost;  // Ceres' cost is ½Σr²
  fit.dof = static_cast<int>(n) - p;
  fit.reduced_chi_square = fit.dof > 0 ? fit.chi_square / fit.dof : 0.0;
  fit.covariance_scaled = sigma.empty() || !options.absolute_sigma;
  if (fit.status == FitStatus::Failed || !std::isfinite(fit.amplitude) || !std::isfinite(fit.offset)) {
    fit.status = FitStatus::Failed;
    return fit;
  }
  if (fit.covariance_scaled && fit.dof == 0) {
    fit.message += " (covariance: no degrees of freedom to estimate the error scale)";
    return fit;
  }
  Eigen::MatrixXd internal;
  if (!jacobian_well_conditioned(problem) || !internal_covariance(problem, params, &c, options.offset, internal)) {
    fit.message += " (covariance: JᵀWJ is rank deficient)";
    return fit;
  }
  // (a', α, c) → (a = a'·x_ref^α, α, c).
  Eigen::MatrixXd jac = Eigen::MatrixXd::Identity(p, p);
  jac(0, 0) = scale_a;
  jac(0, 1) = fit.amplitude * d.mean_log;
  fit.covariance = jac * internal * jac.transpose();
  if (fit.covariance_scaled) fit.covariance *= fit.reduced_chi_square;
  if (!fit.covariance.allFinite()) {
    fit.covariance.resize(0, 0);
    fit.message += " (covariance: not finite)";
    return fit;
  }
  fit.covariance_ok = true;
  fit.amplitude_se = std::sqrt(std::max(0.0, fit.covariance(0, 0)));
  fit.exponent_se = std::sqrt(std::max(0.0, fit.covariance(1, 1)));
  if (options.offset) fit.offset_se = std::sqrt(std::max(0.0, fit.covariance(2, 2)));
  return fit;
}

}  // namespace emergent
