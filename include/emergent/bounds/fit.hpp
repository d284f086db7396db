// Power-law fits by weighted nonlinear least squares, for scaling experiments (how the
// invariance violation of a finite ensemble falls with ensemble size M and width n; the lemma on
// finite ensembles of Gerken & Kessel, ICML 2024, predicts violation ∝ M^(−1/2)).
//
// Model y ≈ a·x^(−α) or, with an offset, y ≈ c + a·x^(−α). Minimizes χ² = Σ_i ((y_i − f(x_i))/σ_i)²
// with Levenberg–Marquardt (Ceres Solver, used only inside lib/bounds/fit.cpp). The parameter covariance
// is the Gauss–Newton one, (JᵀWJ)⁻¹ at the optimum (Press et al., Numerical Recipes §15.5); it is
// multiplied by the reduced chi-square χ²/(N − p) when the σ_i are relative weights only (no σ
// given, or absolute_sigma = false), exactly as scipy.optimize.curve_fit's absolute_sigma switch.
#pragma once

#include <Eigen/Dense>
#include <string>
#include <string_view>
#include <vector>

namespace emergent {

enum class FitStatus {
  Converged,      ///< a convergence tolerance was met
  NoConvergence,  ///< max_iterations reached; the parameters are the best found, not an optimum
  Failed,         ///< the solver failed (non-finite model values, numerical failure)
};
const char* to_string(FitStatus value);  ///< snake_case: converged, no_convergence, failed
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
FitStatus parse_fit_status(std::string_view text);

struct PowerLawFitOptions {
  /// Fit y ≈ c + a·x^(−α) (three parameters) instead of y ≈ a·x^(−α).
  bool offset = false;
  /// Given standard errors are absolute (covariance (JᵀWJ)⁻¹, not rescaled). false: they are
  /// relative weights and the covariance is multiplied by the reduced chi-square. Without
  /// standard errors the covariance is always rescaled (unit weights of unknown scale).
  bool absolute_sigma = true;
  /// Levenberg–Marquardt iterations, ≥ 1.
  int max_iterations = 200;
  /// Ceres' convergence tolerances (relative cost decrease, relative step, max-norm of the
  /// projected gradient); each > 0.
  double function_tolerance = 1e-14;
  double parameter_tolerance = 1e-14;
  double gradient_tolerance = 1e-16;

  /// True if the options make sense; otherwise false with the reason in *error.
  bool IsValid(std::string* error) const;
};

/// Result of a power-law fit. Parameter order everywhere: (a, α) or (a, α, c).
struct PowerLawFitResult {
  FitStatus status = FitStatus::Failed;
  std::string message;          ///< why the solver stopped (Ceres' termination message)
  int iterations = 0;           ///< Levenberg–Marquardt iterations taken
  bool has_offset = false;

  double amplitude = 0.0;       ///< a
  double exponent = 0.0;        ///< α
  double offset = 0.0;          ///< c (0 and not fitted without options.offset)
  double amplitude_se = 0.0;    ///< standard errors: square roots of the covariance diagonal
  double exponent_se = 0.0;
  double offset_se = 0.0;
  Eigen::MatrixXd covariance;   ///< p×p, p = 2 or 3; empty if !covariance_ok
  bool covariance_ok = false;   ///< false: JᵀWJ singular, or rescaling asked with N = p (no dof)
  bool covariance_scaled = false;  ///< true: multiplied by reduced_chi_square (relative weights)

  double chi_square = 0.0;          ///< Σ ((y − f)/σ)² at the optimum (σ = 1 if none given)
  int dof = 0;                      ///< N − p
  double reduced_chi_square = 0.0;  ///< chi_square / dof (0 when dof = 0)

  /// Model value at x > 0.
  double evaluate(double x) const;
  /// One line: "a = … ± …, α = … ± …[, c = … ± …], χ²/dof = …, converged in … iterations".
  std::string to_string() const;
};

/// Fit y ≈ a·x^(−α) [+ c] to points (x_i, y_i) with standard errors sigma_i (empty: unit
/// weights). Needs N ≥ p points, x_i > 0 finite, y_i finite, sigma_i > 0 finite; otherwise
/// std::invalid_argument naming the argument. a and c may have either sign. The start comes
/// from a weighted straight-line fit of log|y| against log x when all y have one sign
/// (α = 1/2 otherwise); internally x is scaled by its geometric mean to decorrelate a and α.
PowerLawFitResult fit_power_law(const std::vector<double>& x, const std::vector<double>& y,
                          const std::vector<double>& sigma = {}, const PowerLawFitOptions& options = {});

}  // namespace emergent
