// Power-law fits (fit.hpp): exact recovery, Monte Carlo coverage of the reported standard errors,
// the covariance against (JᵀWJ)⁻¹ from finite differences, and argument checks.
#include <doctest/doctest.h>

#include "support/enum_names.hpp"

#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "emergent/bounds/fit.hpp"
#include "emergent/core/random.hpp"

using emergent::FitStatus;
using emergent::fit_power_law;
using emergent::NormalStream;
using emergent::PowerLawFitResult;
using emergent::PowerLawFitOptions;

namespace {

std::vector<double> geometric(double first, double ratio, int count) {
  std::vector<double> x;
  for (int i = 0; i < count; ++i) x.push_back(first * std::pow(ratio, i));
  return x;
}

// Binomial acceptance band: count of successes in `trials` with success probability p lies
// within 4 standard deviations (+1 for discreteness); fails with probability < 1e-4.
bool within_binomial(int successes, int trials, double p) {
  const double mean = trials * p, sd = std::sqrt(trials * p * (1 - p));
  return std::abs(successes - mean) <= 4 * sd + 1;
}

}  // namespace

TEST_CASE("exact data give exact parameters, with and without offset") {
  const std::vector<double> x = geometric(1.0, 2.0, 6);  // 1 … 32
  std::vector<double> y, yc;
  for (double v : x) {
    y.push_back(2.5 * std::pow(v, -0.5));
    yc.push_back(0.3 - 1.7 * std::pow(v, -1.3));  // negative amplitude is allowed
  }
  const PowerLawFitResult fit = fit_power_law(x, y);
  CHECK(fit.status == FitStatus::Converged);
  CHECK(fit.amplitude == doctest::Approx(2.5).epsilon(1e-10));
  CHECK(fit.exponent == doctest::Approx(0.5).epsilon(1e-10));
  CHECK(fit.chi_square < 1e-20);
  CHECK(fit.covariance_scaled);  // no sigma: relative weights
  CHECK(fit.dof == 4);
  CHECK(fit.evaluate(3.0) == doctest::Approx(2.5 / std::sqrt(3.0)).epsilon(1e-10));

  PowerLawFitOptions with_offset;
  with_offset.offset = true;
  const PowerLawFitResult fc = fit_power_law(x, yc, {}, with_offset);
  CHECK(fc.status == FitStatus::Converged);
  CHECK(fc.has_offset);
  CHECK(fc.amplitude == doctest::Approx(-1.7).epsilon(1e-9));
  CHECK(fc.exponent == doctest::Approx(1.3).epsilon(1e-9));
  CHECK(fc.offset == doctest::Approx(0.3).epsilon(1e-9));
  CHECK(fc.covariance.rows() == 3);
  CHECK(fc.dof == 3);
}

TEST_CASE("covariance equals (J^T W J)^-1 from a finite-difference Jacobian") {
  const std::vector<double> x = geometric(32.0, 2.0, 5);  // 32 … 512, far from 1: tests the x_ref transform
  const std::vector<double> sigma = {0.02, 0.015, 0.01, 0.012, 0.008};
  const NormalStream noise(7, 0);
  std::vector<double> y;
  for (std::size_t i = 0; i < x.size(); ++i) y.push_back(0.1 + 3.0 * std::pow(x[i], -0.6) + sigma[i] * noise.normal(i));
  for (bool offset : {false, true}) {
    PowerLawFitOptions opt;
    opt.offset = offset;
    const PowerLawFitResult fit = fit_power_law(x, y, sigma, opt);
    REQUIRE(fit.covariance_ok);
    CHECK_FALSE(fit.covariance_scaled);
    const int p = offset ? 3 : 2;
    Eigen::VectorXd theta(p);  // exactly p values: the comma initializer must not overrun it
    if (offset) theta << fit.amplitude, fit.exponent, fit.offset;
    else theta << fit.amplitude, fit.exponent;
    auto model = [&](const Eigen::VectorXd& t, double xv) {
      return (p == 3 ? t(2) : 0.0) + t(0) * std::pow(xv, -t(1));
    };
    Eigen::MatrixXd J(x.size(), p);
    for (int k = 0; k < p; ++k) {
      const double h = 1e-6 * std::max(1.0, std::abs(theta(k)));
      Eigen::VectorXd tp = theta, tm = theta;
      tp(k) += h;
      tm(k) -= h;
      for (std::size_t i = 0; i < x.size(); ++i) J(i, k) = (model(tp, x[i]) - model(tm, x[i])) / (2 * h) / sigma[i];
    }
    const Eigen::MatrixXd expected = (J.transpose() * J).inverse();
    for (int r = 0; r < p; ++r)
      for (int s = 0; s < p; ++s)
        CHECK(fit.covariance(r, s) == doctest::Approx(expected(r, s)).epsilon(1e-5));
    // The optimum: the gradient Jᵀr of χ²/2 vanishes.
    Eigen::VectorXd r(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) r(i) = (y[i] - model(theta, x[i])) / sigma[i];
    CHECK((J.transpose() * r).norm() < 1e-6 * J.norm() * std::max(1.0, r.norm()));
    CHECK(fit.chi_square == doctest::Approx(r.squaredNorm()).epsilon(1e-9));
  }
}

TEST_CASE("reported standard errors cover the truth (absolute sigma): ~95.45% of ±2 SE") {
  const std::vector<double> x = geometric(1.0, 2.0, 6);  // M = 1 … 32
  const double a = 0.8, alpha = 0.5;
  const int seeds = 300;
  int cover_a = 0, cover_alpha = 0, converged = 0;
  double chi2_sum = 0, chi2_sq = 0;
  for (int s = 0; s < seeds; ++s) {
    const NormalStream noise(2024, static_cast<std::uint64_t>(s));
    std::vector<double> y, sigma;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double truth = a * std::pow(x[i], -alpha);
      sigma.push_back(0.03 * truth);  // 3% relative noise, as averaged violations have
      y.push_back(truth + sigma.back() * noise.normal(i));
    }
    const PowerLawFitResult fit = fit_power_law(x, y, sigma);
    converged += fit.status == FitStatus::Converged && fit.covariance_ok;
    cover_a += std::abs(fit.amplitude - a) <= 2 * fit.amplitude_se;
    cover_alpha += std::abs(fit.exponent - alpha) <= 2 * fit.exponent_se;
    chi2_sum += fit.chi_square;
    chi2_sq += fit.chi_square * fit.chi_square;
  }
  const double p2 = 1 - 2 * boost::math::cdf(boost::math::normal(), -2.0);  // 0.9545
  CHECK(converged == seeds);
  CHECK(within_binomial(cover_a, seeds, p2));
  CHECK(within_binomial(cover_alpha, seeds, p2));
  // χ² at the optimum is χ²(N − 2) for a linear model; mean within 4 SE of dof = 4.
  const double mean = chi2_sum / seeds, var = chi2_sq / seeds - mean * mean;
  CHECK(std::abs(mean - 4.0) <= 4 * std::sqrt(var / seeds));
}

TEST_CASE("scaled covariance (no sigma) covers as Student's t with N - p dof") {
  const std::vector<double> x = geometric(1.0, 1.5, 12);
  const double a = 2.0, alpha = 0.7, c = 0.4, noise_sd = 0.01;
  const int seeds = 300;
  for (bool offset : {false, true}) {
    PowerLawFitOptions opt;
    opt.offset = offset;
    const int dof = 12 - (offset ? 3 : 2);
    int cover_alpha = 0, cover_a = 0, cover_c = 0;
    for (int s = 0; s < seeds; ++s) {
      const NormalStream noise(99 + offset, static_cast<std::uint64_t>(s));
      std::vector<double> y;
      for (std::size_t i = 0; i < x.size(); ++i)
        y.push_back((offset ? c : 0.0) + a * std::pow(x[i], -alpha) + noise_sd * noise.normal(i));
      const PowerLawFitResult fit = fit_power_law(x, y, {}, opt);
      REQUIRE(fit.covariance_ok);
      REQUIRE(fit.covariance_scaled);
      cover_a += std::abs(fit.amplitude - a) <= 2 * fit.amplitude_se;
      cover_alpha += std::abs(fit.exponent - alpha) <= 2 * fit.exponent_se;
      if (offset) cover_c += std::abs(fit.offset - c) <= 2 * fit.offset_se;
    }
    const double pt = 1 - 2 * boost::math::cdf(boost::math::students_t(dof), -2.0);
    CAPTURE(offset);
    CHECK(within_binomial(cover_a, seeds, pt));
    CHECK(within_binomial(cover_alpha, seeds, pt));
    if (offset) CHECK(within_binomial(cover_c, seeds, pt));
  }
}

TEST_CASE("absolute_sigma = false rescales by the reduced chi-square") {
  const std::vector<double> x = geometric(1.0, 2.0, 7);
  const NormalStream noise(5, 1);
  std::vector<double> y, sigma(x.size(), 0.05);
  for (std::size_t i = 0; i < x.size(); ++i) y.push_back(std::pow(x[i], -0.5) + 0.05 * noise.normal(i));
  const PowerLawFitResult abs_fit = fit_power_law(x, y, sigma);
  PowerLawFitOptions rel;
  rel.absolute_sigma = false;
  const PowerLawFitResult rel_fit = fit_power_law(x, y, sigma, rel);
  CHECK(rel_fit.covariance_scaled);
  CHECK_FALSE(abs_fit.covariance_scaled);
  CHECK(rel_fit.exponent == doctest::Approx(abs_fit.exponent).epsilon(1e-10));
  CHECK(rel_fit.exponent_se ==
        doctest::Approx(abs_fit.exponent_se * std::sqrt(abs_fit.reduced_chi_square)).epsilon(1e-8));
  // Scaling all sigma by 10 leaves a relative-weight fit unchanged.
  std::vector<double> sigma10(x.size(), 0.5);
  const PowerLawFitResult rel10 = fit_power_law(x, y, sigma10, rel);
  CHECK(rel10.exponent_se == doctest::Approx(rel_fit.exponent_se).epsilon(1e-8));
}

TEST_CASE("no degrees of freedom: parameters exact, scaled covariance unavailable") {
  const std::vector<double> x = {2.0, 8.0};
  const std::vector<double> y = {3.0 * std::pow(2.0, -0.25), 3.0 * std::pow(8.0, -0.25)};
  const PowerLawFitResult fit = fit_power_law(x, y);
  CHECK(fit.exponent == doctest::Approx(0.25).epsilon(1e-10));
  CHECK(fit.amplitude == doctest::Approx(3.0).epsilon(1e-10));
  CHECK(fit.dof == 0);
  CHECK_FALSE(fit.covariance_ok);
  // With absolute errors the covariance exists even without dof.
  const PowerLawFitResult fit_abs = fit_power_law(x, y, {0.1, 0.1});
  CHECK(fit_abs.covariance_ok);
  CHECK(fit_abs.exponent_se > 0);
}

TEST_CASE("unidentifiable exponent: covariance reported unavailable, not NaN") {
  // All x equal: a·x^(−α) cannot separate a from α, so JᵀWJ is singular.
  const std::vector<double> x = {3.0, 3.0, 3.0, 3.0}, y = {1.0, 1.1, 0.9, 1.0};
  const PowerLawFitResult fit = fit_power_law(x, y, {0.1, 0.1, 0.1, 0.1});
  CHECK_FALSE(fit.covariance_ok);
  CHECK(fit.covariance.size() == 0);
  CHECK(fit.evaluate(3.0) == doctest::Approx(1.0).epsilon(1e-8));  // the weighted mean is still fitted
  CHECK(fit.message.find("rank deficient") != std::string::npos);
}

TEST_CASE("iteration cap reports NoConvergence") {
  const std::vector<double> x = geometric(1.0, 1.3, 15);
  const NormalStream noise(11, 0);
  std::vector<double> y;
  for (std::size_t i = 0; i < x.size(); ++i) y.push_back(1.0 + 5.0 * std::pow(x[i], -2.2) + 0.2 * noise.normal(i));
  PowerLawFitOptions opt;
  opt.offset = true;
  const PowerLawFitResult full = fit_power_law(x, y, {}, opt);
  CHECK(full.status == FitStatus::Converged);
  CHECK(full.iterations >= 2);  // the grid start is not already the optimum
  opt.max_iterations = 1;
  const PowerLawFitResult capped = fit_power_law(x, y, {}, opt);
  CHECK(capped.status == FitStatus::NoConvergence);
  CHECK(capped.chi_square >= full.chi_square * (1 - 1e-12));
}

TEST_CASE("bad arguments throw std::invalid_argument naming them") {
  const std::vector<double> x = {1, 2, 4}, y = {1, 0.7, 0.5};
  auto throws_with = [](auto&& call, const std::string& word) {
    try {
      call();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what()).find(word) != std::string::npos;
    }
    return false;
  };
  CHECK(throws_with([&] { fit_power_law(x, {1, 2}); }, "y has 2"));
  CHECK(throws_with([&] { fit_power_law(x, y, {0.1, 0.1}); }, "sigma has 2"));
  CHECK(throws_with([&] { fit_power_law({1, 0, 4}, y); }, "x[1] = 0"));
  CHECK(throws_with([&] { fit_power_law({1, -2, 4}, y); }, "x[1] = -2"));
  CHECK(throws_with([&] { fit_power_law(x, y, {0.1, -0.1, 0.1}); }, "sigma[1] = -0.1"));
  CHECK(throws_with([&] { fit_power_law(x, y, {0.1, 0.0, 0.1}); }, "sigma[1] = 0"));
  CHECK(throws_with([&] { fit_power_law(x, {1, NAN, 0.5}); }, "y[1]"));
  CHECK(throws_with([&] { fit_power_law({1.0}, {1.0}); }, "at least 2"));
  PowerLawFitOptions opt;
  opt.offset = true;
  CHECK(throws_with([&] { fit_power_law({1, 2}, {1, 0.5}, {}, opt); }, "at least 3"));
  opt.max_iterations = 0;
  std::string why;
  CHECK_FALSE(opt.IsValid(&why));
  CHECK(why.find("max_iterations") != std::string::npos);
  CHECK(throws_with([&] { fit_power_law(x, y, {}, opt); }, "max_iterations"));
  PowerLawFitOptions tol;
  tol.function_tolerance = -1;
  CHECK_FALSE(tol.IsValid(&why));
  CHECK(why.find("function_tolerance") != std::string::npos);
  CHECK(PowerLawFitOptions{}.IsValid(&why));
}

TEST_CASE("FitStatus: to_string and parse_fit_status are inverse, snake_case, and reject unknown names") {
  using E = emergent::FitStatus;
  const std::vector<E> all = {E::Converged, E::NoConvergence, E::Failed};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_fit_status(s); });
}
